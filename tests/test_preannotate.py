"""Pre-annotation driver and CLI on a demo video with random Clip-PanoFCN weights (tests only):
draft layer + main labels, human labels untouched, accept/reject, replace, cancel, no-checkpoint
refusal, model-vs-annotator scoring through annotator.metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from annotator import panoptic
from annotator.cli import main as cli_main
from annotator.jobs import Cancelled, CancelToken
from annotator.project import FrameState, Project
from annotator.stages.preannotate import (
    DRAFT_LAYER,
    DRAFT_NOTE,
    accept_draft,
    merge_draft,
    preannotate_video,
    reject_draft,
    score_draft,
)
from models.clip_panofcn.checkpoint import save_checkpoint
from models.clip_panofcn.inference import InferenceConfig
from models.clip_panofcn.network import build_model
from resources.demo import generate_demo_video

H, W, N = 64, 96, 5
CFG = InferenceConfig(stuff_area_limit=64)  # the released 4096 is for 720p frames


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    """Random weights, with two thing-centre maps raised so that things appear (not only stuff)."""
    net = build_model(seed=1)
    with torch.no_grad():
        net.position_head.out_inst.bias[:2] += 3.0
        net.thing_generator.embed_extractor.bias += 0.05
    return net


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory) -> Path:
    return save_checkpoint(model, tmp_path_factory.mktemp("pre") / "clip_panofcn.pth")


@pytest.fixture
def project(tmp_path) -> Project:
    """One demo video: frame 0 reviewed by a person, frame 1 propagated, the rest unlabelled."""
    demo = generate_demo_video(0, N, H, W, "mixed")
    proj = Project.create(tmp_path / "p.vpsproj")
    with proj.create_video("v", [f"{i:05d}" for i in range(N)], H, W) as v:
        for i, f in enumerate(demo.frames):
            v.write_frame_image(i, f)
        for tid, cat in demo.tracks.items():
            v.add_track(tid, cat)
        v.write_label(0, demo.labels[0], state=FrameState.REVIEWED)
        half = demo.labels[1].copy()
        half[:, W // 2:] = 0
        v.write_label(1, half, state=FrameState.PROPAGATED)
        v.save()
    return proj


def _check_valid(video, layer: str) -> None:
    for i in range(video.num_frames):
        lab = video.read_label(i, layer)
        assert lab.shape == (H, W) and lab.dtype == np.uint16
        for t in panoptic.present_ids(lab).tolist():
            assert t in video.tracks
            video.taxonomy.get(video.tracks[t].category_id)


def test_merge_draft_never_touches_human_pixels():
    label = np.array([[1, 1, 2, 0], [3, 3, 0, 0]], np.uint16)
    prov = {1: FrameState.REVIEWED, 2: FrameState.PROPAGATED, 3: FrameState.PREANNOTATED}
    draft = np.array([[9, 9, 9, 9], [9, 0, 0, 9]], np.uint16)
    new, filled, kept = merge_draft(label, prov, draft)
    assert new.tolist() == [[1, 1, 2, 9], [9, 0, 0, 9]] and filled == 3 and kept == 3
    new, _, _ = merge_draft(label, prov, draft, over_propagated=True)
    assert new.tolist() == [[1, 1, 9, 9], [9, 0, 0, 9]]


def test_no_checkpoint_exits_2_saying_what_to_provide(project, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("VPS_CLIP_PANOFCN_CHECKPOINT", raising=False)
    monkeypatch.setenv("VPS_ANNOTATOR_SETTINGS", str(tmp_path / "none.json"))
    assert cli_main(["preannotate", str(project.path), "--video", "v"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "VPS_CLIP_PANOFCN_CHECKPOINT" in err and "model_final.pth" in err
    with project.open_video("v") as v:
        assert DRAFT_LAYER not in v.layers() and not [t for t in v.tracks.values() if t.note == DRAFT_NOTE]


def test_cli_preannotate_loads_the_checkpoint_and_writes_a_draft(project, ckpt, capsys):
    with project.open_video("v") as v:
        before0, before1 = v.read_label(0), v.read_label(1)
    assert cli_main(["preannotate", str(project.path), "--video", "v", "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "seconds per frame:" in out and "draft tracks" in out
    with project.open_video("v") as v:
        _check_valid(v, DRAFT_LAYER)
        _check_valid(v, "labels")
        assert np.array_equal(v.read_label(0), before0)  # a person's frame is untouched
        assert v.frame_state(0) == FrameState.REVIEWED
        lab1 = v.read_label(1)
        assert np.array_equal(lab1[before1 > 0], before1[before1 > 0])  # propagated pixels kept
        drafts = {t.id for t in v.tracks.values() if t.note == DRAFT_NOTE}
        assert drafts and all(v.has_label(i, DRAFT_LAYER) for i in range(N))
        for i in range(2, N):
            if panoptic.present_ids(v.read_label(i)).size:
                assert v.frame_state(i) == FrameState.PREANNOTATED
                assert set(v.provenance(i).values()) == {FrameState.PREANNOTATED}
        assert any(e["kind"] == "preannotate" for e in v.log)
    # a second run refuses to overwrite the draft unless asked
    assert cli_main(["preannotate", str(project.path), "--video", "v", "--checkpoint", str(ckpt)]) == 2
    assert "--replace" in capsys.readouterr().err


def test_accept_reject_replace_and_scoring(project, model, ckpt):
    res = preannotate_video(project, "v", ckpt, inference=CFG, model=model)
    assert res.frames == N and res.tracks > 0 and res.seconds_per_frame > 0
    with project.open_video("v") as v:
        things = [t.id for t in v.tracks.values() if t.note == DRAFT_NOTE and v.taxonomy.get(t.category_id).isthing]
        assert things  # the thing path (centres, kernel fusion, tracking) ran end to end
        # clips are frames 0-2 and 3-4: a thing found in both keeps one id across the clip boundary
        layer = [v.read_label(i, DRAFT_LAYER) for i in range(N)]
        assert any((layer[2] == t).any() and (layer[3] == t).any() for t in things)
        draft_before = [v.read_label(i, DRAFT_LAYER) for i in range(N)]
        assert accept_draft(v, frames=[2]) == 1
        assert v.frame_state(2) == FrameState.REVIEWED
        assert set(v.provenance(2).values()) == {FrameState.REVIEWED}
        accepted = set(v.provenance(2))
        assert reject_draft(v, frames=[3]) == 1
        assert not panoptic.present_ids(v.read_label(3)).size and v.frame_state(3) == FrameState.UNLABELLED
        assert np.array_equal(v.read_label(3, DRAFT_LAYER), draft_before[3])  # kept for scoring
        v.save()
    report = score_draft(project.path, ["v"])  # frames 0 and 2 are finished by a person
    assert report.vpq is not None or report.stq is not None
    res2 = preannotate_video(project, "v", ckpt, inference=CFG, model=model, replace=True)
    with project.open_video("v") as v:
        assert accepted <= set(v.tracks)  # accepted draft tracks survive a replace
        assert v.frame_state(2) == FrameState.REVIEWED and v.frame_state(0) == FrameState.REVIEWED
        drafts = [t for t in v.tracks.values() if t.note == DRAFT_NOTE]
        assert all(v.track_frames(t.id) or t.id in accepted or _in_layer(v, t.id) for t in drafts)
        _check_valid(v, DRAFT_LAYER)
    assert res2.frames == N


def _in_layer(video, tid: int) -> bool:
    return any((video.read_label(i, DRAFT_LAYER) == tid).any() for i in range(video.num_frames))


def test_cancel_leaves_the_video_unchanged(project, model, ckpt):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        preannotate_video(project, "v", ckpt, inference=CFG, model=model, cancel=token)
    with project.open_video("v") as v:
        assert DRAFT_LAYER not in v.layers() and v.frame_state(2) == FrameState.UNLABELLED
