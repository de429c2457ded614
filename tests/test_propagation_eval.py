"""Evaluation: DAVIS J and F, DAVIS-style folders, project videos, and the two CLI commands."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.cli import main
from annotator.errors import InputError
from annotator.project import FrameState, Project
from annotator.stages.evaluate import (
    DavisSequence,
    Score,
    boundary_f,
    davis_sequences,
    evaluate_davis,
    evaluate_video,
    format_table,
    mean_score,
    region_j,
    score_labels,
    seg2bmap,
)
from propagation.base import CopyPropagator
from propagation.flow import FlowPropagator
from resources.demo import generate_demo_video, write_demo_project


def _square(h: int, w: int, y0: int, x0: int, s: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y0 + s, x0:x0 + s] = True
    return m


def test_region_j_and_boundary_f():
    a = _square(100, 100, 10, 10, 40)
    b = _square(100, 100, 10, 30, 40)
    assert region_j(a, a) == 1.0 and boundary_f(a, a) == 1.0
    assert region_j(a, b) == pytest.approx(20 * 40 / (60 * 40))
    empty = np.zeros_like(a)
    assert region_j(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_j(a, empty) == 0.0 and boundary_f(a, empty) == 0.0
    # the DAVIS tolerance is ceil(0.008 * diagonal) = 2 px here: a 1 px shift is still a perfect F
    assert boundary_f(a, _square(100, 100, 11, 11, 40)) == 1.0
    assert boundary_f(a, _square(100, 100, 30, 30, 40)) < 0.5


def test_seg2bmap_is_a_one_pixel_outline():
    m = _square(20, 20, 5, 5, 6)
    b = seg2bmap(m)
    assert b.dtype == bool and b.sum() > 0
    assert not b[7:10, 7:10].any()  # interior
    assert (b & ~cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)).sum() == 0


def test_score_labels_averages_per_track_then_sequence():
    gt = {1: np.array([[1, 1], [2, 2]], np.uint16), 2: np.array([[1, 1], [2, 2]], np.uint16)}
    pred = {1: gt[1].copy(), 2: np.array([[1, 1], [1, 2]], np.uint16)}
    s = score_labels(pred, gt, "x")
    assert s.masks == 4 and 0 < s.needs_fix < 1
    assert s.j == pytest.approx((np.mean([1, 2 / 3]) + np.mean([1, 1 / 2])) / 2)
    overall = mean_score([s, Score("y", 1.0, 1.0, 0.0, 4, 1.0)])
    assert overall.j == pytest.approx((s.j + 1) / 2) and overall.masks == 8
    assert "overall" in format_table({"m": [s, overall]})


def _davis_folder(root: Path, seqs=("alpha", "beta")) -> Path:
    """A DAVIS-2016-style folder (binary 0/255 masks of one object) rendered by the demo generator."""
    for n, name in enumerate(seqs):
        demo = generate_demo_video(seed=n, num_frames=49, height=90, width=160, scenario="crossing", fps=24.0)
        obj = min(t for t in demo.tracks if t >= 5)
        (root / "JPEGImages" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for t, (img, lab) in enumerate(zip(demo.frames, demo.labels, strict=True)):
            cv2.imwrite(str(root / "JPEGImages" / name / f"{t:05d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "Annotations" / name / f"{t:05d}.png"), ((lab == obj) * 255).astype(np.uint8))
    return root


def test_davis_folder_evaluation(tmp_path):
    root = _davis_folder(tmp_path / "davis")
    assert davis_sequences(root) == ["alpha", "beta"]
    seq = DavisSequence(root, "alpha")
    assert seq.num_frames == 11 and seq.source_indices[5] == 24  # 24 fps read at 5 fps
    assert len(seq.read_source_frames(0, 1)) == 6
    assert set(np.unique(seq.read_gt(3)).tolist()) <= {0, 1}
    rows = evaluate_davis(root, {"flow": FlowPropagator, "copy": CopyPropagator})
    assert [s.name for s in rows["flow"]] == ["alpha", "beta", "overall"]
    assert rows["flow"][-1].frames == 16  # 8 targets per sequence: dense 1-4 and 6-9
    assert rows["flow"][-1].j > rows["copy"][-1].j + 0.1
    with pytest.raises(InputError, match="DAVIS"):
        davis_sequences(tmp_path)


def test_project_video_evaluation(tmp_path):
    path = write_demo_project(tmp_path / "gt.vpsproj", scenarios=("crossing",), num_frames=51, height=90, width=160)
    proj = Project.open(path)
    with proj.open_video("demo_crossing", readonly=True) as v:
        scores = evaluate_video(v, {"flow": FlowPropagator, "copy": CopyPropagator})
    assert scores["flow"].frames == 8 and scores["flow"].j > scores["copy"].j
    assert 0 <= scores["copy"].vpq < scores["flow"].vpq <= 100  # panoptic view from annotator.metrics
    assert 0 <= scores["copy"].stq < scores["flow"].stq <= 100
    assert "VPQ" in format_table({"flow": [scores["flow"]]})


def test_cli_eval_and_propagate(tmp_path, capsys):
    root = _davis_folder(tmp_path / "davis", seqs=("alpha",))
    assert main(["eval-propagation", str(root), "--speed", "fast"]) == 0
    out = capsys.readouterr().out
    for name in ("flow-fast", "copy-nearest-keyframe", "flow-5fps-chain", "alpha", "overall", "J&F"):
        assert name in out
    assert main(["eval-propagation", str(root), "--sequences", "nope"]) == 2
    assert "no sequence 'nope'" in capsys.readouterr().err

    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("crossing",), num_frames=26, height=90, width=160)
    with Project.open(path).open_video("demo_crossing") as v:
        for i in range(v.num_frames):
            if not v.is_keyframe(i):
                v.write_label(i, np.zeros((90, 160), np.uint16), state=FrameState.UNLABELLED, provenance={})
        v.save()
    assert main(["propagate", str(path), "--video", "demo_crossing", "--frames", "1-3"]) == 0
    assert "3 frames propagated" in capsys.readouterr().out
    with Project.open(path).open_video("demo_crossing", readonly=True) as v:
        assert [v.frame_state(i) for i in (1, 3, 4)] == [FrameState.PROPAGATED, FrameState.PROPAGATED,
                                                        FrameState.UNLABELLED]
    assert main(["propagate", str(path), "--video", "nope"]) == 2
    assert "no video 'nope'" in capsys.readouterr().err
    assert main(["propagate", str(path), "--video", "demo_crossing", "--frames", "5-2"]) == 2


def test_cli_memory_backend_without_checkpoint_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VPS_STCN_CHECKPOINT", raising=False)
    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("crossing",), num_frames=6, height=45, width=80)
    code = main(["propagate", str(path), "--video", "demo_crossing", "--backend", "memory",
                 "--checkpoint", str(tmp_path / "missing.pth")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_davis_reader_handles_palette_binary_and_colour_masks(tmp_path):
    from PIL import Image

    (tmp_path / "JPEGImages" / "x").mkdir(parents=True)
    (tmp_path / "Annotations" / "x").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "JPEGImages" / "x" / "0.jpg")
    mask = tmp_path / "Annotations" / "x" / "0.png"
    idx = np.zeros((8, 8), np.uint8)
    idx[:2], idx[5:] = 1, 2
    pal = Image.fromarray(idx, "P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)  # DAVIS 2017 palette: red, green
    pal.save(mask)
    assert np.array_equal(DavisSequence(tmp_path, "x").read_gt(0), idx)
    Image.fromarray((idx == 1).astype(np.uint8) * 255, "L").save(mask)  # DAVIS 2016: 0/255
    assert np.array_equal(DavisSequence(tmp_path, "x").read_gt(0), (idx == 1).astype(np.uint16))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:2], rgb[5:] = (200, 10, 10), (10, 200, 10)
    Image.fromarray(rgb).save(mask)
    got = DavisSequence(tmp_path, "x").read_gt(0)
    assert got[0, 0] != got[7, 7] and got[3, 3] == 0 and len(np.unique(got)) == 3


def test_default_flow_profile_is_fast_and_project_settings_override():
    from propagation.factory import make_propagator
    from propagation.flow import FlowConfig

    assert make_propagator("flow").config == FlowConfig.profile("fast")
    assert make_propagator("flow", settings={"propagation_speed": "quality"}).config == FlowConfig.profile("quality")
    assert (make_propagator("flow", speed="balanced", settings={"propagation_speed": "quality"}).config
            == FlowConfig.profile("balanced"))


def test_ten_sequence_matrix_and_guard_counts():
    from annotator.stages.evaluate import evaluate_frames, format_matrix
    from propagation.shape_guard import COLLAPSE, GuardedResult, GuardEvent

    rows = {"flow-fast": [Score("a", 0.9, 0.8, 0.1, 4), Score("b", 0.5, 0.7, 0.5, 4)],
            "flow-5fps-chain": [Score("a", 0.7, 0.7, 0.2, 4), Score("b", 0.6, 0.6, 0.5, 4)]}
    for m in rows:
        rows[m].append(mean_score(rows[m]))
    md = format_matrix(rows)
    assert md.splitlines()[0] == "| method | a | b | overall |"
    assert "| flow-fast | 0.850 | 0.600 | 0.725 |" in md and "| flow-5fps-chain | 0.700 | 0.600 | 0.650 |" in md
    assert "J&F per sequence" in format_table(rows) and md in format_table(rows)

    class Guarded(CopyPropagator):
        def propagate(self, frames, references, targets, progress=None, cancel=None):
            res = super().propagate(frames, references, targets, progress, cancel)
            ev = GuardEvent(targets[0], 1, COLLAPSE, 1, 50, "", "track 1 shrank")
            return GuardedResult(res.labels, res.confidence, {targets[0]: [ev, ev]})

    gt = {i: np.ones((8, 8), np.uint16) for i in range(4)}
    score, _ = evaluate_frames(None, gt, [0], Guarded(), "g")
    assert score.guarded == 2 and mean_score([score, score]).guarded == 4
    assert evaluate_frames(None, gt, [0], CopyPropagator(), "c")[0].guarded == 0
