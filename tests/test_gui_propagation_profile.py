"""Issue 23 item 12: one default propagation profile (fast) for the window and the CLI, named in
the status bar and in the jobs panel's propagate job."""

from __future__ import annotations

import json

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication

from annotator.cli import build_parser
from annotator.gui.main_window import MainWindow
from annotator.gui.pipeline import actions
from annotator.gui.pipeline.actions import build_propagator, propagation_profile
from annotator.project import Project
from annotator.project.settings import effective
from annotator.stages.propagate import PropagateOptions
from propagation.flow_config import FlowConfig
from resources.demo import write_demo_project
from tests.gui_helpers_workspace import isolate_settings


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


@pytest.fixture()
def demo(tmp_path):
    return write_demo_project(tmp_path / "demo.vpsproj", scenarios=("mixed",), num_frames=11)


def open_window(qtbot, path):
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def propagate_by_key(qtbot, w):
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    before = len(w.job_runner.jobs)
    qtbot.keyClick(w, Qt.Key_B, Qt.ControlModifier | Qt.ShiftModifier)  # Pipeline > Propagate whole video
    qtbot.waitUntil(lambda: len(w.job_runner.jobs) > before, timeout=5000)
    job = w.job_runner.jobs[-1]
    assert w.job_runner.wait_all(120, external=False)
    return job


def test_window_and_cli_share_the_fast_default(qtbot, demo):
    proj = Project.open(demo)
    settings = effective(proj.settings)
    assert settings["propagation_speed"] == "fast"
    window_engine = build_propagator(settings)
    # the CLI: `propagate` with no --backend/--speed, options built as run_propagate builds them
    args = build_parser().parse_args(["propagate", str(demo), "--video", "demo_mixed"])
    cli = PropagateOptions(args.backend, args.checkpoint, args.preset, args.speed,
                           effective(proj.settings, strict=True)).with_engine()
    assert window_engine.config == FlowConfig.profile("fast") == cli.engine.config
    assert propagation_profile(settings) == "flow, fast"


def test_status_bar_and_jobs_panel_name_the_profile(qtbot, demo, tmp_path):
    w = open_window(qtbot, demo)
    assert "optical flow (fast)" in w.backend_label.text()
    job = propagate_by_key(qtbot, w)
    assert job.title.endswith("(flow, fast)"), job.title
    assert job.status == "done", job.error
    row = w.shell.jobs_panel.rows[job]
    assert row.title.toolTip() == job.title and "fast" in row.title.toolTip()
    w.close()
    # the user's file asks for another profile: both texts follow it
    settings_file = tmp_path / "user_config" / "settings.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps({"propagation_speed": "balanced"}))
    w = open_window(qtbot, demo)
    assert "optical flow (balanced)" in w.backend_label.text()
    job = propagate_by_key(qtbot, w)
    assert job.title.endswith("(flow, balanced)"), job.title
    w.close()


def test_window_runs_the_stage_face_with_the_engine_built_by_build_propagator(qtbot, demo, monkeypatch):
    """The window's propagate job and ``main.py propagate`` run one code path: the stage's face
    ``run_propagate`` with ``PropagateOptions``, the engine from ``actions.build_propagator``."""
    built, calls, reports = [], [], []
    real_build, real_run = actions.build_propagator, actions.run_propagate
    monkeypatch.setattr(actions, "build_propagator", lambda settings: built.append(real_build(settings)) or built[-1])

    def spy(video, options, progress=None, cancel=None):
        calls.append(options)
        reports.append(real_run(video, options, progress, cancel))
        return reports[-1]

    monkeypatch.setattr(actions, "run_propagate", spy)
    w = open_window(qtbot, demo)
    job = propagate_by_key(qtbot, w)
    assert job.status == "done", job.error
    assert len(calls) == 1 and calls[0].engine is built[0] and calls[0].frame_range is None
    assert calls[0].settings["propagation_speed"] == "fast"
    assert w.status.message.text() == reports[0].summary()
    w.close()
