"""Scissors mode of the polygon tool with real mouse and key events (issue 24, item 1).

A bright disc on a dark background: I turns scissors on (the tool bar's toggle follows), the rubber
band under the pointer follows the disc's edge once the frame's features are ready (straight before),
four clicks and a click on the first anchor outline the disc, Shift+click gives a straight vertex,
Backspace removes a whole segment, and the features are computed off the GUI thread, also after a
frame switch.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PyQt5.QtCore import Qt

from annotator.gui import tool_features
from annotator.gui.tools.polygon import HINT_WAIT
from annotator.project import Project
from tests.gui_helpers_workspace import click, isolate_settings, key, move, pick_class, shown_window

H, W = 120, 160
CX, CY, R = 80, 60, 40
SHOTS = Path(os.environ.get("VPS_TEST_SHOTS", "/tmp/vps_shots"))


def disc_project(path: Path, frames: int = 3) -> Path:
    proj = Project.create(path)
    v = proj.create_video("a", [f"f{i}" for i in range(frames)], H, W)
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = np.full((H, W, 3), 25, np.uint8)
        cv2.circle(img, (CX + 2 * i, CY), R, (225, 220, 210), -1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        v.write_frame_image(i, img)
    v.save()
    v.close()
    return path


def disc(i: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.hypot(xx - CX - 2 * i, yy - CY) <= R


class Previews:
    def __init__(self, controller) -> None:
        self.last = None
        controller.preview_changed.connect(self._got)

    def _got(self, p) -> None:
        self.last = p

    def band(self) -> np.ndarray:
        pts = [q for line, closed in self.last.lines if not closed for q in line]
        return np.asarray(pts, float)


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    w = shown_window(qtbot, Project.open(disc_project(tmp_path / "p.vpsproj")))
    with qtbot.waitActive(w):  # keys go to the focus widget of the active window
        w.activateWindow()
    pick_class(qtbot, w, "person")
    yield w
    w.close()


def features(w):
    return w.controller.resources.features


def wait_features(qtbot, w) -> None:
    tool = w.controller.tools["polygon"]
    qtbot.waitUntil(lambda: tool._scissors() is not None, timeout=10000)


def wait_map(qtbot, w) -> None:
    tool = w.controller.tools["polygon"]
    qtbot.waitUntil(lambda: tool._scissors() is not None and tool._scissors().has_map(tool.ring[-1]),
                    timeout=10000)


def radius(pts: np.ndarray, i: int = 0) -> np.ndarray:
    return np.hypot(pts[:, 0] - CX - 2 * i, pts[:, 1] - CY)


def test_i_toggles_scissors_and_the_outline_follows_the_disc_edge(window, qtbot):
    c, tool = window.controller, window.controller.tools["polygon"]
    previews = Previews(c)
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)  # from the brush: I picks the polygon tool in scissors mode
    key(qtbot, window, Qt.Key_I)
    assert c.tool_name == "polygon" and tool.scissors and window.toolbar.scissors.isChecked()
    assert "scissors on" in window.status.message.text()
    wait_features(qtbot, window)
    anchors = [(CX, CY - R), (CX + R, CY), (CX, CY + R), (CX - R, CY)]
    click(qtbot, window, *anchors[0])
    wait_map(qtbot, window)
    move(window, *anchors[1])  # the live preview: the band from the anchor to the pointer hugs the edge
    band = previews.band()
    assert len(band) >= 3 and np.abs(radius(band) - R).max() <= 2.5
    for p in anchors[1:]:
        click(qtbot, window, *p)
    assert np.abs(radius(np.asarray(tool.ring)) - R).max() <= 2.5
    SHOTS.mkdir(parents=True, exist_ok=True)
    move(window, CX - 28, CY - 28)
    window.grab().save(str(SHOTS / "scissors_open_ring.png"))
    click(qtbot, window, *anchors[0])  # a click on the first anchor closes along the edge
    assert tool.closed
    key(qtbot, window, Qt.Key_Return)
    lab = c.session.label(0) > 0
    iou = (lab & disc()).sum() / (lab | disc()).sum()
    assert iou > 0.93  # the straight 4-gon through the same anchors: 0.64
    window.grab().save(str(SHOTS / "scissors_committed.png"))
    key(qtbot, window, Qt.Key_I)  # I again: straight segments
    assert not tool.scissors and not window.toolbar.scissors.isChecked()
    key(qtbot, window, Qt.Key_I)
    assert tool.scissors and window.toolbar.scissors.isChecked()
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)  # another tool ends the mode, the toggle follows
    assert not tool.scissors and not window.toolbar.scissors.isChecked()


def test_shift_click_places_a_straight_vertex_and_backspace_removes_a_segment(window, qtbot):
    tool = window.controller.tools["polygon"]
    key(qtbot, window, Qt.Key_I)
    wait_features(qtbot, window)
    click(qtbot, window, CX, CY - R)
    wait_map(qtbot, window)
    click(qtbot, window, CX + R, CY, mods=Qt.ShiftModifier)  # straight: just the anchor
    assert len(tool.ring) == 2
    wait_map(qtbot, window)
    click(qtbot, window, CX, CY + R)
    n = len(tool.ring)
    assert n > 3 and np.abs(radius(np.asarray(tool.ring[1:])) - R).max() <= 2.5
    key(qtbot, window, Qt.Key_Backspace)  # the whole edge-following segment goes
    assert len(tool.ring) == 2
    wait_map(qtbot, window)
    click(qtbot, window, CX, CY + R)
    click(qtbot, window, CX - R, CY)
    key(qtbot, window, Qt.Key_Return)  # Enter closes along the edge and commits
    lab = window.controller.session.label(0) > 0
    yy, xx = np.mgrid[0:H, 0:W]
    cap = disc() & ((xx - CX) - (yy - CY) > R + 1.5)  # beyond the straight chord top -> right
    assert cap.sum() > 200 and lab[cap].mean() < 0.05
    other = disc() & ((yy > CY + 2) | (xx < CX - 2))
    assert lab[other].mean() > 0.95


def test_band_is_straight_until_the_features_are_ready_and_computed_off_the_gui_thread(window, qtbot,
                                                                                         monkeypatch):
    c, tool = window.controller, window.controller.tools["polygon"]
    previews = Previews(c)
    gate = threading.Event()
    threads: list[str] = []
    real = tool_features.EdgeScissors

    def slow(image, *a, **k):
        threads.append(threading.current_thread().name)
        gate.wait(10)
        return real(image, *a, **k)

    monkeypatch.setattr(tool_features, "EdgeScissors", slow)
    key(qtbot, window, Qt.Key_I)
    qtbot.waitUntil(lambda: bool(threads), timeout=5000)
    click(qtbot, window, CX, CY - R)
    move(window, CX + R, CY)
    band = previews.band()
    assert len(band) == 2  # straight: the anchor and the pointer
    assert HINT_WAIT in window.status.message.text() or HINT_WAIT in previews.last.text
    gate.set()  # the features arrive: the band snaps without another mouse move
    qtbot.waitUntil(lambda: len(previews.band()) > 2, timeout=10000)
    assert np.abs(radius(previews.band()) - R).max() <= 2.5
    key(qtbot, window, Qt.Key_Escape)
    key(qtbot, window, Qt.Key_D)  # a frame switch: the new frame's features, in the background
    qtbot.waitUntil(lambda: c.index == 1 and tool._scissors() is not None, timeout=10000)
    assert len(threads) == 2 and all(t == "tool-features" for t in threads)
    assert threading.main_thread().name not in threads
