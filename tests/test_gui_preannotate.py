"""Pre-annotation in the window: a background job drafts the open video (random Clip-PanoFCN
weights built here: wiring only), drafts can be accepted per frame, and without a checkpoint the
action says what to provide."""

from __future__ import annotations

import pytest
import torch

from annotator.gui.main_window import MainWindow
from annotator.gui.pipeline import preannotation
from annotator.project import FrameState, Project
from annotator.stages.preannotate import DRAFT_LAYER
from models.clip_panofcn.checkpoint import save_checkpoint
from models.clip_panofcn.network import build_model
from resources.demo import generate_demo_video
from tests.gui_helpers_workspace import isolate_settings

H, W, N = 64, 96, 4


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


@pytest.fixture
def window(qtbot, tmp_path):
    demo = generate_demo_video(0, N, H, W, "mixed")
    proj = Project.create(tmp_path / "p.vpsproj")
    with proj.create_video("v", [f"{i:05d}" for i in range(N)], H, W) as v:
        for i, f in enumerate(demo.frames):
            v.write_frame_image(i, f)
    w = MainWindow(Project.open(tmp_path / "p.vpsproj"))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_without_checkpoint_the_action_says_what_to_provide(window):
    window.pipeline.actions["preannotate"].trigger()
    assert window.pipeline.jobs.job is None
    assert "clip_panofcn" in window.status.message.text()


def test_draft_job_then_accept_a_frame(window, qtbot, tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = build_model(seed=1)
    with torch.no_grad():  # raise two thing-centre maps so that things appear, as tests/test_preannotate.py
        net.position_head.out_inst.bias[:2] += 3.0
        net.thing_generator.embed_extractor.bias += 0.05
    monkeypatch.setenv("VPS_CLIP_PANOFCN_CHECKPOINT", str(save_checkpoint(net, tmp_path / "c.pth")))
    p = window.pipeline
    p.actions["preannotate"].trigger()
    assert p.jobs.job is not None
    qtbot.waitUntil(lambda: p.jobs.job is None, timeout=240_000)
    v = window.controller.video
    assert all(v.has_label(i, DRAFT_LAYER) for i in range(N))
    drafted = [i for i in range(N) if v.frame_state(i) == FrameState.PREANNOTATED]
    assert drafted, [v.frame_state(i) for i in range(N)]
    window.controller.go_to(drafted[0])
    p.actions["accept_draft_frame"].trigger()
    qtbot.waitUntil(lambda: p.jobs.job is None, timeout=60_000)
    assert v.frame_state(drafted[0]) == FrameState.REVIEWED
    dlg = p.preannotation.score_draft()
    assert dlg.pred.layer.text() == DRAFT_LAYER


def test_draft_job_runs_the_stage_face(window, qtbot, tmp_path, monkeypatch):
    """The window drafts through ``run_preannotate(video, PreannotateOptions(...))``, as
    ``main.py preannotate`` does (one code path); its summary is the status message."""
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"not read by the spy")
    monkeypatch.setenv("VPS_CLIP_PANOFCN_CHECKPOINT", str(checkpoint))
    calls = []

    class Done:
        def summary(self) -> str:
            return "v: drafted by the spy"

    def spy(video, options, progress=None, cancel=None):
        calls.append((video.id, options))
        return Done()

    monkeypatch.setattr(preannotation, "run_preannotate", spy)
    p = window.pipeline
    p.actions["preannotate_replace"].trigger()
    qtbot.waitUntil(lambda: p.jobs.job is None, timeout=30_000)
    assert [(vid, o.checkpoint, o.replace) for vid, o in calls] == [("v", checkpoint, True)]
    assert window.status.message.text() == "v: drafted by the spy"
