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
    image, label = c.current_images()
    colors = c.track_colors()
    inner = label.copy()
    inner[panoptic.boundaries(label, 3)] = 0
    tid = int(np.bincount(inner[inner > 0]).argmax())
    ys, xs = np.nonzero(inner == tid)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    expected = 0.5 * image[y, x].astype(float) + 0.5 * np.array(colors[tid])
    np.testing.assert_allclose(window.canvas.rendered[y, x], expected, atol=1.5)
    window.controller.set_track_visible(tid, False)
    np.testing.assert_array_equal(window.canvas.rendered[y, x], image[y, x])


def test_second_window_is_read_only_with_banner(window, qtbot, demo_path):
    other = MainWindow(Project.open(demo_path))
    qtbot.addWidget(other)
    assert other.controller.video.readonly
    assert not other.banner.isHidden() and "opened read-only" in other.banner.text()
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
    from annotator.backends import backend_status

    expected = backend_status(window.controller.project.settings)
    assert window.backend_label.text() == expected.summary
    assert "SAM" in expected.summary and "propagation:" in expected.summary
    assert "memory propagation" in window.backend_label.toolTip()
