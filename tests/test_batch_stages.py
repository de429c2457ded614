"""batch: every stage over a small multi-video demo project with the local pool, compared with the
single-video commands; reruns skip, --force redoes, locked videos are skipped, failures are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotator.batch.driver import run_batch
from annotator.batch.markers import marker_path, read_marker
from annotator.cli import main as cli
from annotator.errors import InputError
from annotator.project import Project
from tests.test_batch_helpers import (
    PRED_LAYER,
    copy_project,
    file_stamps,
    label_state,
    make_project,
    same_tree,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("batch") / "base.vpsproj")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No user settings or checkpoint variables of the machine leak into a test."""
    monkeypatch.setenv("VPS_ANNOTATOR_SETTINGS", str(tmp_path / "no_settings.json"))
    for name in ("VPS_SAM_CHECKPOINT", "VPS_SAM_VIT_B_CHECKPOINT", "VPS_SAM_VIT_L_CHECKPOINT",
                 "VPS_SAM_VIT_H_CHECKPOINT", "VPS_CLIP_PANOFCN_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_propagate_pool_equals_command_per_video_and_rerun_skips(base, tmp_path, capsys):
    a = copy_project(base, tmp_path / "a.vpsproj")
    b = copy_project(base, tmp_path / "b.vpsproj")
    summary = run_batch(a, "propagate", workers=2)
    assert summary.ok and [r.status for r in summary.results] == ["done"] * 3, summary.lines()
    for vid in Project.open(b).video_ids:
        assert cli(["propagate", str(b), "--video", vid]) == 0
    assert label_state(a) == label_state(b)
    for vid in Project.open(a).video_ids:  # confidence maps and flags too
        assert not same_tree(a / "videos" / vid / "arrays", b / "videos" / vid / "arrays")
        assert read_marker(marker_path(a / "videos" / vid, "propagate"))["details"]["written"] > 0
    stamps = file_stamps(a)
    again = run_batch(a, "propagate", workers=2)
    assert again.ok and all(r.status == "skipped" and r.reason.startswith("already done") for r in again.results)
    assert file_stamps(a) == stamps  # a skipped video is not even opened for writing
    # a person relabels one keyframe: only that video is redone
    proj = Project.open(a)
    with proj.open_video("demo_mixed") as v:
        v.write_label(0, v.read_label(0))
        v.save()
    third = run_batch(a, "propagate", workers=1, runner="inline")
    assert {r.video_id: r.status for r in third.results} == {
        "demo_crossing": "skipped", "demo_mixed": "done", "demo_occlusion": "skipped"}
    forced = run_batch(a, "propagate", videos=["demo_crossing"], force=True, runner="inline")
    assert [r.status for r in forced.results] == ["done"]


def test_export_vipseg_and_labelme_equal_the_export_command(base, tmp_path):
    proj = copy_project(base, tmp_path / "p.vpsproj")
    assert cli(["propagate", str(proj), "--video", "demo_mixed"]) == 0  # one fully labelled video
    s = run_batch(proj, "export", options={"format": "vipseg", "out": str(tmp_path / "batch_vip"), "seed": 3,
                                           "split_ratios": [0.5, 0.2, 0.3], "resize_height": 720}, workers=2)
    assert s.ok, s.lines()
    assert cli(["export", str(proj), "--format", "vipseg", "--out", str(tmp_path / "cmd_vip"), "--seed", "3",
                "--split-ratio", "0.5,0.2,0.3"]) == 0
    assert same_tree(tmp_path / "batch_vip", tmp_path / "cmd_vip") == []
    assert (tmp_path / "batch_vip" / "panoptic_gt_VIPSeg.json").is_file()
    # rerun: staged videos are skipped, the dataset is assembled again identically
    s2 = run_batch(proj, "export", options={"format": "vipseg", "out": str(tmp_path / "batch_vip"), "seed": 3,
                                            "split_ratios": [0.5, 0.2, 0.3], "resize_height": 720,
                                            "overwrite": True}, runner="inline")
    assert s2.ok and all(r.status == "skipped" for r in s2.results), s2.lines()
    assert same_tree(tmp_path / "batch_vip", tmp_path / "cmd_vip") == []

    s3 = run_batch(proj, "export", options={"format": "labelme", "out": str(tmp_path / "batch_lm")}, runner="inline")
    assert s3.ok, s3.lines()
    assert cli(["export", str(proj), "--format", "labelme", "--out", str(tmp_path / "cmd_lm")]) == 0
    assert same_tree(tmp_path / "batch_lm", tmp_path / "cmd_lm") == []
    with pytest.raises(InputError, match="ytvis"):
        run_batch(proj, "export", options={"format": "ytvis", "out": str(tmp_path / "y")}, runner="inline")


def test_score_equals_the_score_command(base, tmp_path):
    proj = copy_project(base, tmp_path / "p.vpsproj")
    s = run_batch(proj, "score", options={"pred_layer": PRED_LAYER, "windows": [1, 2]}, workers=2)
    assert s.ok, s.lines()
    for r in s.results:
        out = tmp_path / f"cmd_{r.video_id}"
        assert cli(["score", "--gt", str(proj), "--pred", str(proj), "--pred-layer", PRED_LAYER, "--windows", "1,2",
                    "--videos", r.video_id, "--out", str(out), "--no-figure"]) == 0
        expected = json.loads((out / "scores.json").read_text())
        assert r.details["scores"] == expected
        assert read_marker(marker_path(proj / "videos" / r.video_id, "score"))["details"]["scores"] == expected
    with pytest.raises(InputError, match="--pred-layer"):
        run_batch(proj, "score", runner="inline")


def test_validate_reports_a_torn_label_file_in_one_line(base, tmp_path, capsys):
    proj = copy_project(base, tmp_path / "p.vpsproj")
    png = proj / "videos" / "demo_occlusion" / "labels" / "00000.png"
    png.write_bytes(png.read_bytes()[:40])
    code = cli(["batch", str(proj), "validate", "--workers", "2", "--json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    status = {r["video_id"]: r for r in doc["results"]}
    assert status["demo_occlusion"]["status"] == "failed" and "00000.png" in status["demo_occlusion"]["reason"]
    assert "\n" not in status["demo_occlusion"]["reason"]
    assert status["demo_mixed"]["status"] == status["demo_crossing"]["status"] == "done"
    assert doc["counts"] == {"done": 2, "skipped": 0, "failed": 1} and doc["ok"] is False


def test_locked_video_is_skipped_listed_and_never_written(base, tmp_path, capsys):
    proj_path = copy_project(base, tmp_path / "p.vpsproj")
    proj = Project.open(proj_path)
    held = proj.open_video("demo_crossing")  # an annotator has it open (this live process holds the lock)
    try:
        assert not held.readonly
        before = file_stamps(proj_path / "videos" / "demo_crossing")
        code = cli(["batch", str(proj_path), "propagate", "--workers", "2"])
        out = capsys.readouterr().out
        assert code == 0  # skipped is not failed
        assert "skipped demo_crossing: locked: being edited by" in out
        assert file_stamps(proj_path / "videos" / "demo_crossing") == before
        assert not marker_path(proj_path / "videos" / "demo_crossing", "propagate").exists()
        assert marker_path(proj_path / "videos" / "demo_mixed", "propagate").exists()
    finally:
        held.close()
    s = run_batch(proj_path, "propagate", runner="inline")  # free again: the rerun does just that video
    assert {r.video_id: r.status for r in s.results}["demo_crossing"] == "done"


def test_embed_without_checkpoint_fails_with_one_clear_line(base, tmp_path, isolated, capsys):
    proj = copy_project(base, tmp_path / "p.vpsproj")
    assert cli(["batch", str(proj), "embed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SAM checkpoint" in err[0]
    assert cli(["batch", str(proj), "preannotate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


class _FakeSam:
    """Stands in for the SAM encoder (minutes on this CPU): a deterministic small feature map."""

    model_key = "fake_sam"
    calls = 0

    def embed(self, image, cancel=None):
        from models.sam import FEATURE_SHAPE, Embedding

        _FakeSam.calls += 1
        feats = np.full(FEATURE_SHAPE, float(image.mean()) / 255, np.float16)
        return Embedding(feats, image.shape[:2], (1024, 1024))


def test_embed_task_fills_the_project_cache_and_reruns_skip(base, tmp_path, monkeypatch):
    from annotator.batch import stages
    from models.sam import SamEngine, default_cache_dir

    proj = copy_project(base, tmp_path / "p.vpsproj")
    monkeypatch.setattr(stages, "open_engine", lambda p, o: SamEngine(_FakeSam(), default_cache_dir(p.path)))
    monkeypatch.setattr("annotator.batch.driver._preflight", lambda *a: None)
    _FakeSam.calls = 0
    s = run_batch(proj, "embed", runner="inline")
    assert s.ok and [r.details["computed"] for r in s.results] == [2, 2, 2], s.lines()
    files = list(default_cache_dir(proj).rglob("*"))
    assert sum(f.is_file() for f in files) >= 6 and _FakeSam.calls == 6
    again = run_batch(proj, "embed", runner="inline")
    assert all(r.status == "skipped" for r in again.results) and _FakeSam.calls == 6
    forced = run_batch(proj, "embed", runner="inline", force=True)  # redone, but every frame is a cache hit
    assert [r.details["computed"] for r in forced.results] == [0, 0, 0] and _FakeSam.calls == 6


def test_unknown_video_and_stage_are_refused(base, tmp_path):
    proj = copy_project(base, tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match="no video 'nope'"):
        run_batch(proj, "validate", videos=["nope"], runner="inline")
    with pytest.raises(InputError, match="unknown batch stage"):
        run_batch(proj, "train", runner="inline")


@pytest.mark.slow
def test_preannotate_with_a_random_weight_checkpoint_equals_the_command(base, tmp_path, isolated):
    torch = pytest.importorskip("torch", reason="pre-annotation needs torch")
    from models.clip_panofcn.checkpoint import save_checkpoint
    from models.clip_panofcn.network import build_model

    net = build_model(seed=1)  # random weights: cheap, and enough to check the plumbing and the files
    with torch.no_grad():
        net.position_head.out_inst.bias[:2] += 3.0
    ckpt = save_checkpoint(net, tmp_path / "clip_panofcn.pth")
    a = copy_project(base, tmp_path / "a.vpsproj")
    b = copy_project(base, tmp_path / "b.vpsproj")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = run_batch(a, "preannotate", videos=["demo_mixed"], options={"checkpoint": str(ckpt)},
                      workers=1, worker_env={"OMP_NUM_THREADS": "1"})
        assert s.ok and [r.status for r in s.results] == ["done"], s.lines()
        for vid in ("demo_mixed",):
            assert cli(["preannotate", str(b), "--video", vid, "--checkpoint", str(ckpt)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert label_state(a) == label_state(b)
    for vid in ("demo_mixed",):
        la, lb = a / "videos" / vid / "layers", b / "videos" / vid / "layers"
        assert same_tree(la, lb) == []
    again = run_batch(a, "preannotate", videos=["demo_mixed"], options={"checkpoint": str(ckpt)}, runner="inline")
    assert [r.status for r in again.results] == ["skipped"]


def test_gpu_is_requested_only_for_model_stages_on_a_cluster_with_gpus():
    from annotator.batch.runners import gpus_per_task

    class FakeRay:
        def __init__(self, gpus: int) -> None:
            self.gpus = gpus

        def cluster_resources(self) -> dict:
            return {"CPU": 8.0, "GPU": float(self.gpus)}

    assert gpus_per_task(FakeRay(2), "embed", {}) == 1.0
    assert gpus_per_task(FakeRay(2), "preannotate", {}) == 1.0
    assert gpus_per_task(FakeRay(2), "propagate", {"backend": "memory"}) == 1.0
    assert gpus_per_task(FakeRay(2), "propagate", {"backend": "flow"}) == 0.0
    assert gpus_per_task(FakeRay(2), "export", {}) == 0.0
    assert gpus_per_task(FakeRay(0), "embed", {}) == 0.0


def test_export_with_a_locked_video_is_not_assembled(base, tmp_path):
    proj_path = copy_project(base, tmp_path / "p.vpsproj")
    held = Project.open(proj_path).open_video("demo_occlusion")
    try:
        s = run_batch(proj_path, "export", options={"format": "labelme", "out": str(tmp_path / "lm")}, runner="inline")
    finally:
        held.close()
    assert not s.ok and not (tmp_path / "lm").exists()
    assert {r.video_id: r.status for r in s.results}["demo_occlusion"] == "skipped"
    assert "export not assembled" in s.errors[0] and "demo_occlusion" in s.errors[0]
    s2 = run_batch(proj_path, "export", options={"format": "labelme", "out": str(tmp_path / "lm")}, runner="inline")
    assert s2.ok and [r.status for r in s2.results] == ["skipped", "skipped", "done"]  # staged ones reused
    assert sorted(p.name for p in (tmp_path / "lm").iterdir() if p.is_dir()) == [
        "demo_crossing", "demo_mixed", "demo_occlusion"]
