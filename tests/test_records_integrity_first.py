"""Issue #28: every writing command and window action checks integrity first and refuses, naming the
problem, changing nothing (``correct`` and ``associate`` are covered in ``test_records_schema.py``).

The damage: a reviewed frame lost its label PNG. ``review`` decisions, ``preannotate``,
``accept-draft`` / ``reject-draft``, the track panel's corrections and the review dock's decisions
each refuse it with one named message; no file of the video folder changes (sha256 manifest).
``import-dataset`` only ever creates new videos (an existing id is refused), so it needs no check.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from annotator.cli import main as cli_main
from tests import records_project as rp

VIDEO = rp.VIDEO
LOST = "00002.png"  # frame 2 of the records project is reviewed


def _damaged(tmp_path: Path) -> Path:
    proj = rp.copy(tmp_path)
    (proj / "videos" / VIDEO / "labels" / LOST).unlink()
    return proj


def _manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the lock, held while the window is open, aside)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    import torch

    from models.clip_panofcn.checkpoint import save_checkpoint
    from models.clip_panofcn.network import build_model

    torch.set_num_threads(1)
    return save_checkpoint(build_model(seed=1), tmp_path_factory.mktemp("ckpt") / "clip_panofcn.pth")


# ----------------------------------------------------------------------------------- command line
CLI_CASES = {
    "review accept-track": (["review", "{p}", "--video", VIDEO, "--accept-track", "1"], "review"),
    "review reject-frame": (["review", "{p}", "--video", VIDEO, "--reject-frame", "1", "--comment", "x"], "review"),
    "review accept-frame": (["review", "{p}", "--video", VIDEO, "--accept-frame", "2"], "review"),
    "review flags": (["review", "{p}", "--video", VIDEO, "--flags"], "review"),
    "accept-draft": (["accept-draft", "{p}", "--video", VIDEO], "accept-draft"),
    "reject-draft": (["reject-draft", "{p}", "--video", VIDEO, "--frames", "0-1"], "reject-draft"),
    "preannotate": (["preannotate", "{p}", "--video", VIDEO, "--checkpoint", "{ckpt}", "--over-propagated"],
                    "preannotate"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_writing_command_refuses_a_damaged_video_and_changes_nothing(case, tmp_path, capsys, request):
    proj = _damaged(tmp_path)
    folder = proj / "videos" / VIDEO
    argv, action = CLI_CASES[case]
    extra = {"ckpt": str(request.getfixturevalue("ckpt"))} if "{ckpt}" in argv else {}
    argv = [a.format(p=proj, **extra) for a in argv]
    before = _manifest(folder)
    assert cli_main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert action in line and "refused" in line and LOST in line and "label PNG is missing" in line, line
    assert _manifest(folder) == before
    assert not (folder / ".lock").exists() and not (folder / ".txn").exists()


def test_a_missing_frame_image_does_not_block_a_review_decision(tmp_path, capsys):
    """Label-only operations need no pixels (as ``correct``): a lost JPEG does not stop them."""
    proj = rp.copy(tmp_path)
    (proj / "videos" / VIDEO / "frames" / "00001.jpg").unlink()
    assert cli_main(["review", str(proj), "--video", VIDEO, "--accept-track", "1"]) == 0
    assert "recorded 1 decision(s)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- the window
def _open_window(qtbot, proj: Path):
    from PyQt5.QtWidgets import QApplication

    from annotator.gui.main_window import MainWindow
    from annotator.project import Project

    w = MainWindow(Project.open(proj))
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    messages: list[str] = []
    w.controller.message_posted.connect(lambda text, _scope: messages.append(text))
    w.messages = messages  # type: ignore[attr-defined]
    w.folder = proj / "videos" / VIDEO  # type: ignore[attr-defined]
    return w


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from tests.gui_helpers_workspace import isolate_settings

    isolate_settings(tmp_path, monkeypatch)
    w = _open_window(qtbot, _damaged(tmp_path))
    assert w.controller.video is not None and not w.banner.isHidden()
    assert LOST in w.banner.text()  # named on open already
    yield w
    w.job_runner.shutdown()
    w.close()


def _refused(w, what: str) -> str:
    hits = [m for m in w.messages if "refused" in m and LOST in m]
    assert len(hits) == 1, w.messages
    assert what in hits[0] and "label PNG is missing" in hits[0], hits[0]
    assert w.status.message.toolTip() == hits[0]  # in the status bar (whole in its tool tip)
    return hits[0]


MENU_CASES = {
    "swap": (["Swap with, from frame 1 on", "#6 "], "swap"),
    "merge": (["Merge into this track", "#6 "], "merge"),
    "split": (["Split from frame 1"], "split"),
    "delete_from": (["Delete from frame 1 on"], "delete"),
    "delete": (["Delete track (every frame)"], "delete"),
}


@pytest.mark.parametrize("case", sorted(MENU_CASES))
def test_track_panel_correction_refuses_a_damaged_video(case, qtbot, window, tmp_path):
    from tests.gui_helpers_workspace import choose_in_menu, right_click_menu

    w, c = window, window.controller
    path, what = MENU_CASES[case]
    tracks = dict(c.video.tracks)
    before = _manifest(w.folder)
    panel = w.tracks
    choose_in_menu(qtbot, path, lambda: right_click_menu(qtbot, panel, panel.row_position(5)))
    _refused(w, what)
    assert _manifest(w.folder) == before
    assert dict(c.video.tracks) == tracks and c.undo_stack.next_redo() is None
    assert c.undo_stack.next_undo(False) is None  # nothing to undo: nothing was done
    if case == "swap":
        shot = Path(os.environ.get("VPS_TEST_SCREENSHOT_DIR", tmp_path)) / "integrity_first_refusal.png"
        assert w.grab().save(str(shot))


@pytest.mark.parametrize("button", ["accept_track", "reject_track", "accept_frame", "reject_frame", "accept_all"])
def test_review_decision_refuses_a_damaged_video(button, qtbot, window):
    from PyQt5.QtCore import Qt

    w, c = window, window.controller
    qtbot.keyClick(w.canvas, Qt.Key_R, Qt.ControlModifier | Qt.ShiftModifier)  # review mode
    assert w.pipeline.review_dock.isVisible()
    c.select_track(1)
    c.go_to(1)
    before = _manifest(w.folder)
    qtbot.mouseClick(w.pipeline.review.buttons[button], Qt.LeftButton)
    _refused(w, button.split("_")[0])
    assert _manifest(w.folder) == before


def test_undo_of_a_correction_refuses_a_video_damaged_since(qtbot, tmp_path, monkeypatch):
    """A correction made while the video was intact; a label PNG is lost; Ctrl+Z refuses, naming it."""
    from PyQt5.QtCore import Qt

    from tests.gui_helpers_workspace import choose_in_menu, isolate_settings, right_click_menu

    isolate_settings(tmp_path, monkeypatch)
    w = _open_window(qtbot, rp.copy(tmp_path))
    try:
        panel = w.tracks
        choose_in_menu(qtbot, ["Merge into this track", "#6 "],
                       lambda: right_click_menu(qtbot, panel, panel.row_position(5)))
        assert 6 not in w.controller.video.tracks
        (w.folder / "labels" / LOST).unlink()
        before = _manifest(w.folder)
        w.canvas.setFocus()
        qtbot.keyClick(w.canvas, Qt.Key_Z, Qt.ControlModifier)
        _refused(w, "undo of merge track 6 into 5")
        assert 6 not in w.controller.video.tracks
        assert _manifest(w.folder) == before
    finally:
        w.job_runner.shutdown()
        w.close()


@pytest.mark.parametrize("action", ["associate", "preannotate", "accept_draft_video", "reject_draft_frame",
                                    "flags"])
def test_pipeline_job_refuses_a_damaged_video(action, qtbot, window, request, monkeypatch):
    """Association, pre-annotation, the draft decisions and the stored review flags run as jobs:
    each refuses first."""
    from PyQt5.QtCore import Qt
    from PyQt5.QtWidgets import QAction

    w, p = window, window.pipeline
    if action == "preannotate":
        monkeypatch.setenv("VPS_CLIP_PANOFCN_CHECKPOINT", str(request.getfixturevalue("ckpt")))
    before = _manifest(w.folder)
    if action == "associate":
        w.canvas.setFocus()
        qtbot.keyClick(w.canvas, Qt.Key_A, Qt.ControlModifier | Qt.ShiftModifier)
    elif action == "flags":
        qtbot.keyClick(w.canvas, Qt.Key_R, Qt.ControlModifier | Qt.ShiftModifier)  # review mode
        qtbot.mouseClick(p.flags.button, Qt.LeftButton)
    else:
        act = w.findChild(QAction, f"action_{action}")
        assert act is not None
        act.trigger()
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=30_000)
    qtbot.waitUntil(lambda: any("refused" in m for m in w.messages), timeout=5_000)
    what = {"associate": "association", "flags": "review flags", "preannotate": "pre-annotation"}.get(
        action, action.split("_")[0] + " draft")
    _refused(w, what)
    assert _manifest(w.folder) == before
