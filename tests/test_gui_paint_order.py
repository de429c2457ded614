"""Issue 23 items 1 and 11 with real events: the panoptic paint order is the default (stuff paints
behind things, a thing takes stuff's pixels), paint modes on Alt+1..4 and in the F1 sheet, the
paint-mode list opens below its box, a stroke that changes nothing says why; instances of one
class get distinct shades while stuff keeps its class colour (display only)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt
from PyQt5.QtWidgets import QApplication, QTableWidget

from annotator import panoptic
from annotator.editing import PaintMode
from annotator.gui.dialogs.help_dialogs import ShortcutSheet
from annotator.project import Project
from annotator.taxonomy import vipseg_taxonomy
from tests.gui_helpers_workspace import click, drag, isolate_settings, key, pick_class, shown_window

PERSON, SKY = 60, 28
H, W = 120, 160


def make_project(path, frames: list[np.ndarray]) -> Project:
    """A project with one unlabelled video of the given RGB frames."""
    proj = Project.create(path)
    video = proj.create_video("v", [f"{i:05d}" for i in range(len(frames))], frames[0].shape[0],
                              frames[0].shape[1], keyframes=[0])
    for i, f in enumerate(frames):
        video.write_frame_image(i, f)
    video.save()
    video.close()
    return Project.open(path)


def noise_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 10, (H, W, 3)) + 110).clip(0, 255).astype(np.uint8)


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    w = shown_window(qtbot, make_project(tmp_path / "p.vpsproj", [noise_frame(0), noise_frame(1)]))
    yield w
    w.close()


def _label(w) -> np.ndarray:
    return w.controller.session.label(w.controller.index)


def polygon(qtbot, w, pts) -> None:
    key(qtbot, w, Qt.Key_P)
    for p in pts:
        click(qtbot, w, *p)
    key(qtbot, w, Qt.Key_Return)  # closes and commits the ring


def brush(qtbot, w, pts, radius: float = 4) -> None:
    key(qtbot, w, Qt.Key_1, Qt.ShiftModifier)
    w.controller.set_brush_radius(radius)
    drag(qtbot, w, pts)


def test_stuff_paints_behind_things_and_things_take_stuff(window, qtbot):
    c = window.controller
    assert c.paint_mode == PaintMode.PANOPTIC and window.toolbar.mode.currentData() == "panoptic"
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    polygon(qtbot, window, [(40, 30), (80, 30), (80, 70), (40, 70)])
    person = c.selected
    assert person is not None and _label(window)[50, 60] == person
    # a sky polygon drawn over the person (the rider and horse heads) keeps the person
    pick_class(qtbot, window, "sky")
    polygon(qtbot, window, [(10, 10), (150, 10), (150, 100), (10, 100)])
    lab = _label(window)
    sky = int(lab[15, 15])
    assert c.video.tracks[sky].category_id == SKY
    assert lab[50, 60] == person and (lab == person).sum() > 1000
    _shot(window, "panoptic_order.png")
    # a thing drawn over stuff takes those pixels
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    brush(qtbot, window, [(110, 50), (130, 50)])
    second = c.selected
    assert second != person and _label(window)[50, 120] == second
    # a sky stroke entirely on the person changes nothing and says so in the status bar
    pick_class(qtbot, window, "sky")
    before = _label(window).copy()
    brush(qtbot, window, [(50, 45), (70, 45)])
    np.testing.assert_array_equal(_label(window), before)
    text = window.status.message.text()
    _shot(window, "protected_stroke.png")
    assert "nothing painted" in text and "protected" in text and "Alt+3" in text
    # Alt+3: replace, as asked; the box follows the key
    key(qtbot, window, Qt.Key_3, Qt.AltModifier)
    assert c.paint_mode == PaintMode.REPLACE and window.toolbar.mode.currentText() == "replace"
    brush(qtbot, window, [(50, 45), (70, 45)])
    assert _label(window)[45, 60] == sky
    key(qtbot, window, Qt.Key_1, Qt.AltModifier)
    assert c.paint_mode == PaintMode.PANOPTIC and window.toolbar.mode.currentData() == "panoptic"
    key(qtbot, window, Qt.Key_2, Qt.AltModifier)
    assert window.toolbar.mode.currentData() == "only_unlabelled"
    window.toolbar.mode.setCurrentIndex(0)  # and the box sets the controller's mode
    assert c.paint_mode == PaintMode.PANOPTIC


def test_fill_with_stuff_never_takes_a_thing(window, qtbot):
    c = window.controller
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    polygon(qtbot, window, [(40, 30), (80, 30), (80, 70), (40, 70)])
    person = c.selected
    pick_class(qtbot, window, "sky")
    key(qtbot, window, Qt.Key_3, Qt.ShiftModifier)
    click(qtbot, window, 60, 50)  # on the person: refused in the panoptic order
    assert _label(window)[50, 60] == person and "protected" in window.status.message.text()
    click(qtbot, window, 10, 10)  # on void: filled
    lab = _label(window)
    assert c.video.tracks[int(lab[10, 10])].category_id == SKY and lab[50, 60] == person


def test_paint_modes_in_the_f1_sheet_and_list_opens_below(window, qtbot):
    key(qtbot, window, Qt.Key_F1)
    sheets = [w for w in QApplication.topLevelWidgets() if isinstance(w, ShortcutSheet) and w.isVisible()]
    assert sheets
    table = sheets[0].findChild(QTableWidget)
    rows = [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]
    for k in ("Alt+1", "Alt+2", "Alt+3", "Alt+4"):
        assert any(k == a and "paint mode" in b for a, b in rows), k
    sheets[0].close()

    box = window.toolbar.mode
    box.setCurrentIndex(3)  # the last item: a popup centred on it would start above the box
    qtbot.mouseClick(box, Qt.LeftButton)
    popup = box.view().window()
    qtbot.waitUntil(popup.isVisible)
    below = box.mapToGlobal(QPoint(0, box.height())).y()
    assert popup.geometry().top() >= below - 1
    assert abs(popup.geometry().left() - box.mapToGlobal(QPoint(0, 0)).x()) <= 1
    _shot(window, "paint_mode_window.png")
    _shot(popup, "paint_mode_popup.png")
    box.hidePopup()


def test_instances_of_a_class_get_distinct_shades_stuff_keeps_its_colour(window, qtbot):
    c = window.controller
    tax = c.video.taxonomy
    pick_class(qtbot, window, "sky")
    brush(qtbot, window, [(10, 100), (150, 100)], radius=8)
    tids = []
    for x in (8, 33, 58, 83, 108, 133):  # six people (tracks 2..7)
        pick_class(qtbot, window, "person")
        key(qtbot, window, Qt.Key_N)
        brush(qtbot, window, [(x, 30), (x + 10, 60)], radius=5)
        tids.append(c.selected)
    assert len(set(tids)) == 6
    rgba = window.canvas.rgba
    lab = _label(window)

    def shown(tid: int) -> np.ndarray:  # the overlay's colour of a track, un-premultiplied
        y, x = np.argwhere((lab == tid) & ~panoptic.boundaries(lab))[0]
        px = rgba[y, x].astype(float)
        return px[:3] * 255 / px[3]

    cols = [shown(t) for t in tids]
    for a, b in itertools.combinations(cols, 2):
        assert np.linalg.norm(a - b) >= 40
    sky = int(lab[100, 80])
    np.testing.assert_allclose(shown(sky), tax.get(SKY).color, atol=2)
    _shot(window, "instance_shades.png")


def test_display_shades_are_distinct_for_every_vipseg_thing_class():
    tax = vipseg_taxonomy()
    for cat in tax:
        rows = [(tid, cat.id, cat.color, cat.isthing) for tid in range(1, 9)]
        colors = list(panoptic.display_colors(rows).values())
        if not cat.isthing:
            assert set(colors) == {tuple(cat.color)}
            continue
        assert colors[0] == tuple(cat.color)
        d = min(np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(colors, 2))
        assert d >= 40, (cat.name, d)


def _shot(window, name: str) -> None:
    """Save a screenshot when ``VPS_TEST_SHOTS`` names a folder (to look at the window; off by default)."""
    folder = os.environ.get("VPS_TEST_SHOTS")
    if folder:
        window.grab().save(str(Path(folder) / name))
