"""Status messages belong to the state they describe (issue 23, item 5), with real events.

A tool's hint goes when its preview goes (commit), a tool's error with Esc or a tool change, a
frame's message with a frame change, a video's with a video switch, everything with a project
switch; the cursor read-out describes the pixel under the pointer after an edit, not before it.
"""

from __future__ import annotations

import pytest
from PyQt5.QtCore import Qt

from annotator.errors import InputError
from tests.gui_helpers_workspace import click, isolate_settings, key, move, pick_class
from tests.test_gui_polygon import blank_project, label, open_window


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    w = open_window(qtbot, blank_project(tmp_path / "p.vpsproj"))
    yield w
    w.close()


def _message(w) -> str:
    return w.status.message.text()


def _shown(w) -> str:
    """Every text the window shows about the pending state: status message, canvas banner."""
    return f"{_message(w)} | {getattr(w.canvas, 'problem_text', '')}"


def test_polygon_hint_goes_with_the_commit(window, qtbot):
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_P)
    for p in [(20, 20), (60, 20), (60, 60), (20, 60), (20, 20)]:  # the last click closes on the first vertex
        click(qtbot, window, *p)
    assert "closed" in _message(window)
    key(qtbot, window, Qt.Key_Return)
    assert label(window)[40, 40] > 0
    assert "closed" not in _message(window) and "Enter" not in _message(window)


def test_error_goes_with_esc_and_with_a_tool_change(window, qtbot):
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_P)
    for p in [(20, 20), (60, 60), (60, 20), (20, 60)]:
        click(qtbot, window, *p)
    key(qtbot, window, Qt.Key_Return)  # refused: crosses itself
    key(qtbot, window, Qt.Key_Escape)
    assert "intersect" not in _message(window) and "fix the outline" not in _message(window)
    assert window.canvas.problem_text == ""
    # a tool's error (a fill refused on a locked track) goes when another tool is chosen
    pick_class(qtbot, window, "sky")
    key(qtbot, window, Qt.Key_3, Qt.ShiftModifier)
    click(qtbot, window, 100, 40)
    window.controller.set_track_locked(int(label(window)[40, 100]), True)
    pick_class(qtbot, window, "grass")
    click(qtbot, window, 100, 40)
    error = _message(window)
    assert "locked" in error or "nothing painted" in error
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    assert _message(window) != error and "painted" not in _message(window)


def test_readout_describes_the_pixel_after_a_fill(window, qtbot):
    pick_class(qtbot, window, "sky")
    key(qtbot, window, Qt.Key_3, Qt.ShiftModifier)
    move(window, 80, 40)
    assert window.status.cursor.text() == "(80, 40)  void"
    click(qtbot, window, 80, 40)  # no mouse move after the click
    assert label(window)[40, 80] > 0
    assert "sky" in window.status.cursor.text() and "void" not in window.status.cursor.text()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # and after an undo
    assert window.status.cursor.text() == "(80, 40)  void"


def test_frame_and_video_messages_go_with_their_frame_and_video(window, qtbot):
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert "nothing to undo" in _message(window)
    key(qtbot, window, Qt.Key_D)  # next frame
    assert window.controller.index == 1 and "nothing to undo" not in _message(window)
    window.controller.message("associated 1 keyframe(s): 0 new track(s)")  # a job's result for video "a"
    window.video_box.setCurrentText("b")
    assert window.controller.video.id == "b" and "associated" not in _message(window)


def test_review_report_message_goes_with_the_project(window, qtbot, tmp_path):
    out = window.pipeline.review.save_csv(str(tmp_path / "review.csv"))
    assert out is not None and "review report written" in _message(window)
    other = blank_project(tmp_path / "other.vpsproj", videos=("c",))
    assert window.shell.open_project(other)
    assert window.project.path.name == "other.vpsproj"
    assert "review report" not in _message(window)


class _FailingEngine:
    def predict(self, emb, **prompt):
        raise InputError("point (500, 500) is outside the 160x90 frame")


def test_sam_decode_error_stays_on_the_canvas_until_the_prompt_changes(window, qtbot, monkeypatch):
    """The error used to be replaced at once by the tool's hint in the same click."""
    r = window.resources
    monkeypatch.setattr(r, "sam_available", True)
    monkeypatch.setattr(r, "embedding", lambda frame: (_FailingEngine(), object()))
    window.update_tool_state()  # what refresh_backends does once a checkpoint resolves
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_Q)
    assert window.controller.tool_name == "sam"
    click(qtbot, window, 50, 40)
    assert "outside the 160x90 frame" in _shown(window)  # on the canvas
    move(window, 70, 40)
    assert "outside the 160x90 frame" in window.canvas.problem_text
    key(qtbot, window, Qt.Key_Escape)
    assert window.canvas.problem_text == "" and "outside" not in _message(window)
