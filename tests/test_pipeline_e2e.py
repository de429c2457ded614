"""The whole VIPSeg pipeline through the CLI, as a dataset team runs it on one video.

Identity-free keyframe drawings -> ``associate`` -> ``propagate`` -> ``score`` against the hidden
ground truth -> ``export`` VIPSeg -> ``import-dataset`` -> ``score`` export vs project. Each stage
has its own tests; this one checks that they fit together (track ids, layers, frame states, file
layout) and that the result is good enough to save annotators work.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.project import FrameState, Project
from annotator.stages.tracking_eval import write_shuffled_keyframes
from resources.demo import write_demo_project

VIDEO = "demo_crossing"


@pytest.fixture()
def drawn_project(tmp_path):
    """A project whose keyframes hold identity-free drawings; the ground truth sits in layer ``gt``."""
    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("crossing",), num_frames=100, source="folder")
    with Project.open(path).open_video(VIDEO) as video:
        gt = {i: video.read_label(i) for i in range(video.num_frames)}
        cats = video.track_category()
        for i, label in gt.items():
            video.write_label(i, label, layer="gt")
            video.write_label(i, np.zeros_like(label), state=FrameState.UNLABELLED)
        write_shuffled_keyframes(video, {k: gt[k] for k in video.keyframes}, cats, seed=3)
        video.save()
    return path


def test_draw_associate_propagate_score_export_import(drawn_project, tmp_path, capsys):
    p = str(drawn_project)
    assert main(["associate", p, "--video", VIDEO, "--quiet"]) == 0
    assert main(["propagate", p, "--video", VIDEO]) == 0
    with Project.open(drawn_project).open_video(VIDEO, readonly=True) as video:
        states = {video.frame_state(i) for i in range(video.num_frames)}
        assert FrameState.UNLABELLED not in states and FrameState.PROPAGATED in states
        assert all(video.frame_state(k) == FrameState.MANUAL for k in video.keyframes)

    report = tmp_path / "report"
    assert main(["score", "--gt", p, "--gt-layer", "gt", "--pred", p, "--out", str(report), "--no-figure"]) == 0
    scores = json.loads((report / "scores.json").read_text())
    capsys.readouterr()
    # keyframes exact + flow in between: a good draft with identities kept through the crossing
    # (measured VPQ 96.9, STQ 0.913, AQ 0.859)
    assert scores["vpq"]["vpq"]["all"] > 90, scores["vpq"]["vpq"]
    assert scores["stq"]["aq"] > 0.8 and scores["stq"]["stq"] > 0.85, scores["stq"]

    export = tmp_path / "VIPSeg_720P"
    assert main(["export", p, "--format", "vipseg", "--out", str(export), "--split", f"val={VIDEO}"]) == 0
    assert (export / "val.txt").read_text() == f"{VIDEO}\n"
    back = tmp_path / "back.vpsproj"
    assert main(["import-dataset", str(export), "--format", "vipseg", "--project", str(back)]) == 0
    exact = tmp_path / "exact"
    assert main(["score", "--gt", str(export), "--split", "val", "--pred", str(back), "--out", str(exact),
                 "--no-figure"]) == 0
    exact_scores = json.loads((exact / "scores.json").read_text())
    assert exact_scores["vpq"]["vpq"]["all"] == pytest.approx(100)
    assert exact_scores["stq"]["stq"] == pytest.approx(1)
