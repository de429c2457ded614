"""The polygon tool with real mouse and key events (issue 23, items 3 and 4).

Item 3: a refused polygon stays open with its reason on the canvas until it is fixed or discarded,
survives a tool switch, and an outline along the image border that overshoots its start (a
zero-area spike, not a crossing anyone meant) is repaired and closes. Item 4: two quick clicks a
few pixels apart (Qt reports them as a double click) are two vertices; a click on the first vertex
closes the ring, a double click at a new spot too, a double click on the last vertex does not.

The helpers here are shared with ``test_gui_status_messages.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from tests.gui_helpers_workspace import at, click, double_click, isolate_settings, key, move, pick_class

H, W = 90, 160
SHOTS = Path(os.environ.get("VPS_TEST_SHOTS", "/tmp/vps_shots"))


# ---------------------------------------------------------------------------- shared helpers
def blank_project(path: Path, videos: tuple[str, ...] = ("a", "b")) -> Path:
    """A project whose frames carry no labels (every pixel void), with a textured image."""
    proj = Project.create(path)
    rng = np.random.default_rng(0)
    for vid in videos:
        v = proj.create_video(vid, [f"f{i}" for i in range(3)], H, W)
        for i in range(3):
            img = np.full((H, W, 3), 90, np.uint8)
            img[:, :, 1] = np.linspace(40, 200, W).astype(np.uint8)[None, :]
            img += rng.integers(0, 20, img.shape, dtype=np.uint8)
            v.write_frame_image(i, img)
        v.save()
        v.close()
    return path


def open_window(qtbot, path: Path) -> MainWindow:
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitActive(w):  # keys go to the focus widget of the active window
        w.activateWindow()
    w.canvas.setFocus()
    return w


def quick_clicks(qtbot, window, first: QPoint, second: QPoint) -> None:
    """Two clicks within Qt's double-click time and distance, as the window gets them from the
    window system: press, release, double click (in place of the second press), release."""
    vp = window.canvas.viewport()
    qtbot.mouseClick(vp, Qt.LeftButton, Qt.NoModifier, first)
    qtbot.mouseDClick(vp, Qt.LeftButton, Qt.NoModifier, second)  # QTest sends the double click event only
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, second)


def label(w) -> np.ndarray:
    return w.controller.session.label(w.controller.index)


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    w = open_window(qtbot, blank_project(tmp_path / "p.vpsproj"))
    pick_class(qtbot, w, "person")
    key(qtbot, w, Qt.Key_P)
    yield w
    w.close()


# ---------------------------------------------------------------------------- item 3
def test_refused_polygon_stays_open_with_its_reason_through_a_tool_switch(window, qtbot):
    c, tool = window.controller, window.controller.tools["polygon"]
    for p in [(20, 20), (60, 60), (60, 20), (20, 60)]:  # a bow tie
        click(qtbot, window, *p)
    key(qtbot, window, Qt.Key_Return)
    assert not tool.closed and len(tool.ring) == 4  # kept open, every point still there
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)  # brush: the polygon is kept, and it says so
    assert c.tool_name == "brush" and len(tool.ring) == 4
    assert "kept" in window.status.message.text()
    key(qtbot, window, Qt.Key_P)  # back: the polygon and its reason again
    assert "intersects itself" in window.canvas.problem_text
    key(qtbot, window, Qt.Key_P)  # choosing it once more changes nothing
    assert len(tool.ring) == 4 and "intersects itself" in window.canvas.problem_text
    assert not window.canvas.preview_bad.path().isEmpty()  # the crossing edges are marked
    assert (label(window) == 0).all()
    move(window, 100, 50)  # the cursor read-out changes; the reason stays
    assert window.status.cursor.text().startswith("(100, 50)")
    assert "intersects itself" in window.canvas.problem_text
    SHOTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(SHOTS / "item3_refused_polygon.png"))

    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)  # the reason goes with the polygon's preview
    assert window.canvas.problem_text == ""
    key(qtbot, window, Qt.Key_P)
    assert "intersects itself" in window.canvas.problem_text and len(tool.ring) == 4

    key(qtbot, window, Qt.Key_Backspace)  # the fix: (20, 60) goes, a triangle remains
    assert window.canvas.problem_text == "" and "fixed" in window.status.message.text()
    key(qtbot, window, Qt.Key_Return)
    lab = label(window)
    assert lab[30, 50] > 0 and lab[50, 25] == 0 and not tool.busy


def test_outline_along_the_border_that_overshoots_its_start_is_repaired(window, qtbot):
    """Sky traced by clicking beyond the top edge: the clicks snap to the border, the last edge runs
    back over the first (a zero-area spike); the ring closes without the spike."""
    tool = window.controller.tools["polygon"]
    for p in [(80, -3), (150, -3), (150, 30), (10, 30), (10, -3)]:
        click(qtbot, window, *p)
    click(qtbot, window, 100, -3)
    double_click(qtbot, window, 100, -3)
    assert tool.closed and window.canvas.problem_text == ""
    assert "dropped" in window.status.message.text()
    key(qtbot, window, Qt.Key_Return)
    assert "dropped" in window.status.message.text()  # said again with the commit
    lab = label(window) > 0
    assert lab[0:30, 11:150].all() and not lab[31:].any() and not lab[:, :10].any() and not lab[:, 151:].any()


def test_esc_discards_a_refused_polygon_and_its_reason(window, qtbot):
    tool = window.controller.tools["polygon"]
    for p in [(20, 20), (60, 60), (60, 20), (20, 60)]:
        click(qtbot, window, *p)
    key(qtbot, window, Qt.Key_Return)
    key(qtbot, window, Qt.Key_Escape)
    assert not tool.busy and "intersect" not in window.status.message.text()
    assert window.canvas.problem_text == ""


def test_polygon_open_on_a_frame_change_is_discarded_with_a_notice(window, qtbot):
    tool = window.controller.tools["polygon"]
    for p in [(20, 20), (60, 20), (60, 60)]:
        click(qtbot, window, *p)
    key(qtbot, window, Qt.Key_D)
    assert window.controller.index == 1 and not tool.busy
    assert "discarded" in window.status.message.text()


# ---------------------------------------------------------------------------- item 4
def test_two_quick_clicks_a_few_pixels_apart_are_two_vertices(window, qtbot):
    """Tracing a hoof: Qt pairs two clicks 3 screen pixels apart into a double click."""
    tool = window.controller.tools["polygon"]
    for p in [(20, 20), (120, 20), (120, 70)]:
        click(qtbot, window, *p)
    hoof = at(window, 70, 70)
    quick_clicks(qtbot, window, hoof, hoof - QPoint(3, 0))
    assert not tool.closed and len(tool.ring) == 5
    end = at(window, 40, 60)
    quick_clicks(qtbot, window, end, end)  # a double click on a new spot closes
    assert tool.closed and len(tool.exterior) == 6 and tool.ring == []
    key(qtbot, window, Qt.Key_Return)
    assert label(window)[40, 60] > 0 and not tool.busy


def test_first_vertex_click_closes_and_a_double_click_on_the_last_vertex_does_not(window, qtbot):
    tool = window.controller.tools["polygon"]
    for p in [(20, 20), (120, 20), (120, 70)]:
        click(qtbot, window, *p)
    last = at(window, 120, 70)
    quick_clicks(qtbot, window, last + QPoint(1, 0), last + QPoint(1, 0))  # on the last vertex
    assert not tool.closed and len(tool.ring) == 3  # two clicks there, deduplicated
    click(qtbot, window, 20, 70)
    first = at(window, 20, 20)
    qtbot.mouseClick(window.canvas.viewport(), Qt.LeftButton, Qt.NoModifier, first + QPoint(4, -3))
    assert tool.closed and len(tool.exterior) == 4  # closed on the first vertex, no fifth point
    # the holes close the same way; Enter commits outline and hole
    for p in [(50, 35), (80, 35), (80, 55)]:
        click(qtbot, window, *p)
    click(qtbot, window, 50, 35)
    assert len(tool.holes) == 1
    key(qtbot, window, Qt.Key_Return)
    lab = label(window)
    assert lab[30, 30] > 0 and lab[40, 70] == 0
