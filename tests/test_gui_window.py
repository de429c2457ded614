"""First GUI window: opens a project, navigates, draws the overlay, shows read-only and no-screen states."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PyQt5.QtCore import QPoint, Qt  # noqa: E402

from annotator import panoptic  # noqa: E402
from annotator.gui.main_window import MainWindow  # noqa: E402
from annotator.project import Project  # noqa: E402
from resources.demo import write_demo_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    from tests.gui_helpers_workspace import isolate_settings

    isolate_settings(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("gui") / "d.vpsproj", scenarios=("mixed", "crossing"))


@pytest.fixture()
def window(qtbot, demo_path):
    w = MainWindow(Project.open(demo_path))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_keys_navigate_frames_and_keyframes(window, qtbot):
    c = window.controller
    assert c.video.id == "demo_crossing" and c.index == 0
    qtbot.keyClick(window, Qt.Key_Right)
    assert c.index == 1
    qtbot.keyClick(window, Qt.Key_D)
    assert c.index == 2
    qtbot.keyClick(window, Qt.Key_Right, Qt.ShiftModifier)
    assert c.index == c.video.keyframes[1]
    qtbot.keyClick(window, Qt.Key_Left, Qt.ShiftModifier)
    assert c.index == 0
    qtbot.keyClick(window, Qt.Key_End)
    assert c.index == c.video.num_frames - 1
    assert "frame 10/10" in window.frame_label.text()


def test_timeline_click_jumps(window, qtbot):
    tl = window.timeline
    n = len(tl.states)
    qtbot.mouseClick(tl, Qt.LeftButton, pos=QPoint(int(tl.width() * (6.5 / n)), 20))
    assert window.controller.index == 6


def test_overlay_pixels_have_track_colour(window):
    c = window.controller
    image = c.video.read_frame(c.index)
    label = c.session.label(c.index)
    colors = c.track_colors()
    inner = label.copy()
    inner[panoptic.boundaries(label, 3)] = 0
    tid = int(np.bincount(inner[inner > 0]).argmax())
    ys, xs = np.nonzero(inner == tid)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    expected = 0.5 * image[y, x].astype(float) + 0.5 * np.array(colors[tid])
    np.testing.assert_allclose(window.canvas.composite()[y, x], expected, atol=2)
    window.controller.set_track_visible(tid, False)
    np.testing.assert_array_equal(window.canvas.composite()[y, x], image[y, x])
    window.controller.set_track_visible(tid, True)
    window.canvas.set_view_option("outline_only", True)
    np.testing.assert_array_equal(window.canvas.composite()[y, x], image[y, x])
    assert window.canvas.rgba[panoptic.boundaries(label)][:, 3].min() > 0
    window.canvas.set_view_option("outline_only", False)
    window.canvas.set_view_option("opacity", 1.0)
    np.testing.assert_allclose(window.canvas.composite()[y, x], colors[tid], atol=1)
    window.canvas.set_view_option("hide_stuff", True)
    stuff = next(t for t in c.video.tracks.values() if not c.video.taxonomy.get(t.category_id).isthing)
    assert (window.canvas.rgba[label == stuff.id][:, 3] == 0).all()
    window.canvas.set_view_option("hide_stuff", False)
    c.select_track(tid)
    window.canvas.set_view_option("only_selected", True)
    assert (window.canvas.rgba[(label != tid) & (label > 0)][:, 3] == 0).all()
    assert (window.canvas.rgba[inner == tid][:, 3] > 0).all()


def test_second_window_is_read_only_with_banner(window, qtbot, demo_path):
    other = MainWindow(Project.open(demo_path))
    qtbot.addWidget(other)
    assert other.controller.video.readonly
    assert not other.banner.isHidden() and "opened read-only" in other.banner.text()
    assert "Editing tools are disabled" in other.banner.text()
    assert not any(a.isEnabled() for a in other.toolbar.tool_actions.values())
    assert "read-only" in other.toolbar.tool_actions["brush"].toolTip()
    other.close()


def test_launch_without_screen_says_how(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, str(REPO / "main.py")], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "QT_QPA_PLATFORM=offscreen" in r.stderr and "Xvfb" in r.stderr
    assert "Traceback" not in r.stderr


def test_launch_opens_demo_headless(tmp_path):
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "VPS_GUI_SCREENSHOT": str(shot)}
    r = subprocess.run([sys.executable, str(REPO / "main.py")], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo" / "demo.vpsproj" / "project.json").exists()
    assert shot.stat().st_size > 10_000


def test_status_bar_names_active_backends(window):
    assert window.backend_label.text() == window.backends.propagator_text
    assert window.status.sam.text() == "SAM: off (no checkpoint)"
    assert "memory propagation" in window.backend_label.toolTip()
    sam = window.toolbar.tool_actions["sam"]
    assert not sam.isEnabled() and "SAM tool unavailable" in sam.toolTip()
