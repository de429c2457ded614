"""Preferences dialog: checkpoints validated when chosen (sha256 / reason), defaults, user vs project scope."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PyQt5.QtCore import Qt

from annotator.gui.dialogs.settings_dialog import SettingsDialog
from annotator.gui.job_runner import JobRunner
from annotator.project import FrameState, Project
from annotator.project import settings as user_settings
from models.weights import REGISTRY, ModelKind, _prefix_check

TINY = "tiny_test"


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(user_settings.SETTINGS_FILE_ENV, raising=False)
    for kind in REGISTRY.values():
        for var in kind.env_vars:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(user_settings.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    return tmp_path / "cfg"


@pytest.fixture()
def tiny_checkpoint(tmp_path, monkeypatch) -> Path:
    """A real checkpoint file of a tiny model kind registered for the test (the real kinds weigh
    100+ MB), so validation runs the whole ``models.weights`` path: load, key check, damage check."""
    monkeypatch.setitem(REGISTRY, TINY, ModelKind(TINY, "tiny test network", _prefix_check(("encoder.",))))
    g = torch.Generator().manual_seed(0)
    sd = {"encoder.conv.weight": torch.randn(4, 3, 3, 3, generator=g), "encoder.conv.bias": torch.zeros(4)}
    path = tmp_path / "tiny.pth"
    torch.save(sd, path)
    return path


def _shot(qtbot, widget, name: str) -> None:
    """Save a screenshot when asked (VPS_TEST_SHOTS=dir); tests write nothing outside tmp otherwise."""
    folder = os.environ.get("VPS_TEST_SHOTS")
    qtbot.wait(50)  # pending layout updates
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / name))


def _type_path(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key_Return)


def test_checkpoint_accepted_with_sha256_and_saved_for_the_user(qtbot, tiny_checkpoint, config_dir):
    dlg = SettingsDialog(None, None, ask_file=lambda title, start: str(tiny_checkpoint))
    qtbot.addWidget(dlg)
    dlg.show()
    row = dlg.rows[TINY]
    assert row.status.text() == "not set"
    qtbot.mouseClick(row.browse, Qt.LeftButton)
    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in row.status.text() and row.value == str(tiny_checkpoint)
    dlg.brush.setFocus()
    dlg.brush.selectAll()
    qtbot.keyClicks(dlg.brush, "33")
    dlg.speed.setCurrentText("fast")
    with qtbot.waitSignal(dlg.saved) as saved:
        qtbot.mouseClick(dlg.save_button, Qt.LeftButton)
    stored = user_settings.load_user()
    assert stored["checkpoints"] == {TINY: str(tiny_checkpoint)}
    assert (stored["brush_size"], stored["propagation_speed"]) == (33, "fast")
    assert saved.args[0]["brush_size"] == 33
    # the CLI reads the same file (its effective settings come from annotator.project.settings)
    assert user_settings.effective(None, strict=True)["checkpoints"][TINY] == str(tiny_checkpoint)


def test_refused_checkpoint_shows_reason_and_keeps_previous(qtbot, tmp_path, tiny_checkpoint):
    png = tmp_path / "photo.pth"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    user_settings.save_user({"checkpoints": {"sam_vit_b": str(tiny_checkpoint)}})
    dlg = SettingsDialog(None, None)
    qtbot.addWidget(dlg)
    dlg.show()
    row = dlg.rows["sam_vit_b"]
    assert row.edit.text() == str(tiny_checkpoint)
    _type_path(qtbot, row.edit, str(png))
    assert "refused" in row.status.text() and "PNG image" in row.status.text()
    assert row.value == str(tiny_checkpoint) and row.edit.text() == str(tiny_checkpoint)
    # a checkpoint of another model kind is refused with what does not fit
    _type_path(qtbot, row.edit, str(tmp_path / "missing.pth"))
    assert "checkpoint not found" in row.status.text()
    stcn = dlg.rows["stcn"]
    _type_path(qtbot, stcn.edit, str(tiny_checkpoint))
    assert "refused" in stcn.status.text() and "key_encoder" in stcn.status.text()
    assert stcn.value == ""
    _shot(qtbot, dlg, "settings_dialog_refused.png")


def test_check_runs_as_background_job(qtbot, tiny_checkpoint):
    runner = JobRunner()
    dlg = SettingsDialog(None, runner)
    qtbot.addWidget(dlg)
    dlg.show()
    row = dlg.rows[TINY]
    _type_path(qtbot, row.edit, str(tiny_checkpoint))
    assert row.status.text().startswith("checking") and dlg.checking
    qtbot.mouseClick(dlg.save_button, Qt.LeftButton)  # refused while checking
    assert dlg.isVisible() and "still being checked" in dlg.error_label.text()
    assert runner.wait_all(30)
    assert [j.title for j in runner.jobs] == [f"check {TINY} checkpoint"] and runner.jobs[0].status == "done"
    assert "sha256" in row.status.text() and not dlg.checking


def test_project_scope_stores_only_overrides(qtbot, tmp_path, tiny_checkpoint):
    user_settings.save_user({"brush_size": 20, "autosave_s": 45})
    project = Project.create(tmp_path / "p.vpsproj")
    dlg = SettingsDialog(project, None)
    qtbot.addWidget(dlg)
    dlg.show()
    assert dlg.brush.value() == 20
    qtbot.mouseClick(dlg.scope_project, Qt.LeftButton)
    assert dlg.scope == "project" and dlg.autosave.value() == 45
    dlg.brush.setValue(9)
    row = dlg.rows[TINY]
    _type_path(qtbot, row.edit, str(tiny_checkpoint))
    _shot(qtbot, dlg, "settings_dialog_project.png")
    qtbot.mouseClick(dlg.save_button, Qt.LeftButton)
    stored = Project.open(project.path).settings
    assert stored["brush_size"] == 9 and "autosave_s" not in stored
    assert stored["checkpoints"] == {TINY: str(tiny_checkpoint)}
    assert user_settings.load_user()["brush_size"] == 20


def test_closing_during_a_check_is_harmless(qtbot, tiny_checkpoint):
    runner = JobRunner()
    dlg = SettingsDialog(None, runner)
    dlg.setAttribute(Qt.WA_DeleteOnClose, True)
    dlg.show()
    _type_path(qtbot, dlg.rows[TINY].edit, str(tiny_checkpoint))
    dlg.close()
    qtbot.wait(20)  # the deferred delete happens
    assert runner.wait_all(30)
    assert runner.jobs[0].status == "done" and runner.jobs[0].error is None


def test_environment_override_is_shown(qtbot, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("VPS_SAM_CHECKPOINT", "/elsewhere/sam.pth")
    user_settings.save_user({"checkpoints": {"sam_vit_b": str(tiny_checkpoint)}})
    dlg = SettingsDialog(None, None)
    qtbot.addWidget(dlg)
    for kind in ("sam_vit_b", "sam_vit_l"):
        assert "VPS_SAM_CHECKPOINT=/elsewhere/sam.pth overrides" in dlg.rows[kind].status.text()
    assert dlg.rows["stcn"].status.text() == "not set"


# --------------------------------------------------------------------------- one propagation speed
def _tiny_video_project(path: Path) -> Project:
    """A project with one 3-frame video whose keyframe 0 holds a square track (propagation can run)."""
    project = Project.create(path)
    video = project.create_video("v", ["a", "b", "c"], 24, 32)
    rng = np.random.default_rng(0)
    for i in range(3):
        video.write_frame_image(i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    track = video.new_track(project.taxonomy.ids[0])
    label = np.zeros((24, 32), np.uint16)
    label[6:16, 8:20] = track.id
    video.write_label(0, label, FrameState.MANUAL)
    video.save()
    video.close()
    return project


def _cli_propagator_config(monkeypatch, project: Project) -> object:
    """Run ``main.py propagate`` on the project; the FlowConfig of the flow propagator it built."""
    from annotator.cli import main as cli_main
    from propagation.flow import FlowPropagator

    built: list[FlowPropagator] = []
    real_init = FlowPropagator.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(FlowPropagator, "__init__", spy)
    assert cli_main(["propagate", str(project.path), "--video", "v"]) == 0
    monkeypatch.setattr(FlowPropagator, "__init__", real_init)
    assert len(built) == 1
    return built[0].config


def test_speed_chosen_for_the_project_is_what_propagate_uses(qtbot, tmp_path, monkeypatch):
    from propagation.flow import FlowConfig

    project = _tiny_video_project(tmp_path / "p.vpsproj")
    dlg = SettingsDialog(project, None)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.mouseClick(dlg.scope_project, Qt.LeftButton)
    assert dlg.speed.currentText() == "fast"  # the one default, before anything is chosen
    dlg.speed.setCurrentText("quality")
    with qtbot.waitSignal(dlg.saved) as saved:
        qtbot.mouseClick(dlg.save_button, Qt.LeftButton)
    assert saved.args[0]["propagation_speed"] == "quality"
    assert Project.open(project.path).settings["propagation_speed"] == "quality"
    assert user_settings.load_user().get("propagation_speed") is None  # only this project
    assert _cli_propagator_config(monkeypatch, project) == FlowConfig.profile("quality")


def test_window_and_cli_share_the_default_speed(qtbot, tmp_path, monkeypatch):
    from annotator.gui.pipeline.actions import build_propagator
    from propagation.factory import DEFAULT_SPEED
    from propagation.flow import FlowConfig

    project = _tiny_video_project(tmp_path / "p.vpsproj")
    window_settings = user_settings.effective(project.settings)  # what the window's jobs use
    assert window_settings["propagation_speed"] == DEFAULT_SPEED
    window_config = build_propagator(window_settings).config
    assert window_config == _cli_propagator_config(monkeypatch, project) == FlowConfig.profile(DEFAULT_SPEED)


def test_browse_starts_beside_the_value_else_the_project_else_home(qtbot, tmp_path, tiny_checkpoint, monkeypatch):
    """The checkpoint chooser never opens in the working directory: beside the current checkpoint,
    else beside the open project, else the home folder (real clicks on Browse)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    weights = tmp_path / "weights"
    weights.mkdir()
    chosen = weights / "tiny.pth"
    chosen.write_bytes(tiny_checkpoint.read_bytes())
    starts: list[str] = []
    answers = iter(["", str(chosen), ""])

    def ask(title: str, start: str) -> str:
        starts.append(start)
        return next(answers)

    project = Project.create(tmp_path / "projects" / "p.vpsproj")
    dlg = SettingsDialog(project, None, ask_file=ask)
    qtbot.addWidget(dlg)
    dlg.show()
    row = dlg.rows[TINY]
    qtbot.mouseClick(row.browse, Qt.LeftButton)  # nothing set: beside the project
    assert starts[-1] == str(tmp_path / "projects")
    qtbot.mouseClick(row.browse, Qt.LeftButton)  # picks weights/tiny.pth
    assert row.value == str(chosen)
    qtbot.mouseClick(row.browse, Qt.LeftButton)  # beside the current value
    assert starts[-1] == str(weights)

    alone = SettingsDialog(None, None, ask_file=lambda title, start: starts.append(start) or "")
    qtbot.addWidget(alone)
    alone.show()
    qtbot.mouseClick(alone.rows[TINY].browse, Qt.LeftButton)  # no project, no recent one: home
    assert starts[-1] == str(home)
