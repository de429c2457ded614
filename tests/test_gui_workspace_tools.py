"""Workspace details with real events: shortcuts and the text-field guard, class picker at 1,000+
classes, recent classes, polygon holes, eraser, paint modes and locks, cursor read-out, SAM box with
candidates (stub decoder), flush on frame change, corrections from the track panel and their undo."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from annotator.gui.shortcuts import BINDINGS, SHORTCUTS, conflicts
from annotator.project import Project
from annotator.taxonomy import Category, Taxonomy
from resources.demo import write_demo_project
from tests.gui_helpers_workspace import (
    click,
    double_click,
    drag,
    isolate_settings,
    key,
    move,
    pick_class,
    shown_window,
)

PERSON, SKY = 60, 28


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("tpl") / "t.vpsproj", scenarios=("mixed",),
                              height=90, width=160)


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch, demo_template):
    isolate_settings(tmp_path, monkeypatch)
    path = tmp_path / "p.vpsproj"
    shutil.copytree(demo_template, path)
    w = shown_window(qtbot, Project.open(path))
    yield w
    w.close()


def _label(w) -> np.ndarray:
    return w.controller.session.label(w.controller.index)


def test_binding_table_has_no_conflicts_and_documents_every_action():
    assert conflicts() == []
    keys = " ".join(k for k, _ in SHORTCUTS)
    for expected in ("Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Shift+1", "Q", "W", "[", "]", "Tab", "1 … 9"):
        assert expected in keys
    assert len({b.command for b in BINDINGS}) == len(BINDINGS)


def test_typing_in_class_search_never_triggers_shortcuts(window, qtbot):
    c = window.controller
    key(qtbot, window, Qt.Key_C)
    assert window.picker.search.hasFocus()
    qtbot.keyClicks(window.picker.search, "dad")  # D = next frame, A = previous frame elsewhere
    assert c.index == 0 and window.picker.search.text() == "dad"
    window.picker.search.clear()
    qtbot.keyClicks(window.picker.search, "car")
    qtbot.keyClick(window.picker.search, Qt.Key_Return)
    assert c.active_class == 48 and window.canvas.hasFocus()
    key(qtbot, window, Qt.Key_D)
    assert c.index == 1


def test_class_picker_with_1500_classes_searches_as_you_type(qtbot):
    from annotator.gui.class_picker import ClassPicker

    cats = [Category(i, f"class_{i:04d}_{'thing' if i % 2 else 'stuff'}", bool(i % 2), (i % 255, 0, 0))
            for i in range(1500)]
    picker = ClassPicker()
    qtbot.addWidget(picker)
    picker.set_taxonomy(Taxonomy(cats, "big"))
    assert picker.proxy.rowCount() == 1500
    chosen = []
    picker.chosen.connect(chosen.append)
    qtbot.keyClicks(picker.search, "class_12")
    assert picker.visible_ids() == list(range(1200, 1300))
    qtbot.keyClicks(picker.search, "34")
    assert picker.visible_ids() == [1234]
    assert "(stuff)" in picker.proxy.index(0, 0).data()
    qtbot.keyClick(picker.search, Qt.Key_Return)
    assert chosen == [1234]


def test_recent_classes_on_number_keys(window, qtbot):
    c = window.controller
    pick_class(qtbot, window, "sky")
    pick_class(qtbot, window, "person")
    assert c.recent_classes[:2] == [PERSON, SKY]
    key(qtbot, window, Qt.Key_2)
    assert c.active_class == SKY
    assert "1 sky" in window.picker.recent.text()


def test_polygon_with_hole_and_only_unlabelled_mode(window, qtbot):
    c = window.controller
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_P)
    for p in [(40, 10), (120, 10), (120, 60)]:
        click(qtbot, window, *p)
    click(qtbot, window, 40, 60)
    double_click(qtbot, window, 40, 60)  # closes the outline
    assert c.tools["polygon"].closed
    for p in [(70, 25), (90, 25), (90, 45)]:
        click(qtbot, window, *p)
    click(qtbot, window, 70, 45)
    double_click(qtbot, window, 70, 45)  # closes the hole
    before = _label(window).copy()
    key(qtbot, window, Qt.Key_Return)
    lab = _label(window)
    t = c.selected
    assert lab[20, 50] == t and lab[35, 80] == before[35, 80] != t

    # only unlabelled: a second person painted over labelled pixels changes nothing there
    window.toolbar.mode.setCurrentIndex(1)
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    drag(qtbot, window, [(45, 30), (60, 30)])
    assert (_label(window) == lab).all()

    # Ctrl+Z undoes the committed polygon but keeps the points of one in progress (Backspace removes them)
    window.toolbar.mode.setCurrentIndex(0)
    key(qtbot, window, Qt.Key_P)
    click(qtbot, window, 5, 80)
    click(qtbot, window, 30, 80)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    np.testing.assert_array_equal(_label(window), before)
    assert c.tools["polygon"].ring == [(5, 80), (30, 80)] or len(c.tools["polygon"].ring) == 2
    key(qtbot, window, Qt.Key_Backspace)
    assert len(c.tools["polygon"].ring) == 1


def test_eraser_lock_and_cursor_readout(window, qtbot):
    c = window.controller
    lab = _label(window).copy()
    y, x = 10, 20
    tid = int(lab[y, x])
    move(window, x, y)
    cat = c.video.taxonomy.get(c.video.tracks[tid].category_id)
    assert f"#{tid} {cat.name}" in window.status.cursor.text()
    c.set_track_locked(tid, True)
    c.set_brush_radius(3)
    key(qtbot, window, Qt.Key_2, Qt.ShiftModifier)
    assert c.tool_name == "eraser"
    drag(qtbot, window, [(x - 5, y), (x + 5, y)])
    assert (_label(window) == lab).all()  # locked: untouched
    assert "[locked]" in c.describe_pixel(x, y)
    c.set_track_locked(tid, False)
    drag(qtbot, window, [(x - 5, y), (x + 5, y)])
    assert _label(window)[y, x] == 0
    # Ctrl+drag with the brush erases too; Ctrl+Z brings both strokes back
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    drag(qtbot, window, [(x + 20, y), (x + 25, y)], mods=Qt.ControlModifier)
    assert _label(window)[y, x + 22] == 0
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    np.testing.assert_array_equal(_label(window), lab)


class _StubPrediction:
    def __init__(self, h, w):
        self.scores = np.array([0.2, 0.9, 0.5], np.float32)
        self.logits = np.zeros((3, 256, 256), np.float32)
        self._m = [np.zeros((h, w), bool) for _ in range(3)]
        for i, m in enumerate(self._m):
            m[10:20 + 10 * i, 10:30] = True

    def __len__(self):
        return 3

    def best(self):
        return 1

    def mask(self, i):
        return self._m[i]


class _StubEngine:
    def __init__(self, h, w):
        self.calls = []
        self.h, self.w = h, w

    def predict(self, emb, **prompt):
        self.calls.append(prompt)
        return _StubPrediction(self.h, self.w)


def test_sam_box_candidates_cycle_and_logits_fed_back(window, qtbot, monkeypatch):
    c, r = window.controller, window.resources
    engine = _StubEngine(c.video.height, c.video.width)
    monkeypatch.setattr(r, "sam_available", True)
    monkeypatch.setattr(r, "embedding", lambda frame: (engine, object()))
    window._update_tool_state()  # what refresh_backends does once a checkpoint resolves
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_W)
    assert c.tool_name == "sam_box"
    drag(qtbot, window, [(8, 8), (20, 20), (35, 40)])
    assert engine.calls[-1]["box"] == pytest.approx((8, 8, 35, 40), abs=0.6)
    tool = c.tools["sam_box"]
    assert tool.prompt.choice == 1 and "candidate 2/3" in window.status.message.text()
    click(qtbot, window, 15, 15, Qt.RightButton)  # negative click refines: previous logits fed back
    assert engine.calls[-1]["labels"] == [0] and engine.calls[-1]["prev_logits"] is not None
    key(qtbot, window, Qt.Key_Tab)
    assert tool.prompt.choice == 2
    key(qtbot, window, Qt.Key_Escape)
    assert tool.prompt.empty and not window.canvas.preview_mask.isVisible()
    drag(qtbot, window, [(8, 8), (35, 40)])
    key(qtbot, window, Qt.Key_Tab, Qt.ShiftModifier)
    assert tool.prompt.choice == 0
    key(qtbot, window, Qt.Key_Return)
    lab = _label(window)
    assert (lab[10:20, 10:30] == c.selected).all() and c.video.tracks[c.selected].category_id == PERSON


def test_frame_change_flushes_and_undo_returns_to_the_edited_frame(window, qtbot):
    c = window.controller
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    pick_class(qtbot, window, "person")
    drag(qtbot, window, [(100, 70), (130, 70)])
    edited = _label(window).copy()
    assert c.session.dirty == [0]
    key(qtbot, window, Qt.Key_Right)
    qtbot.waitUntil(lambda: c.session.dirty == [], timeout=3000)
    np.testing.assert_array_equal(c.video.read_label(0), edited)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert c.index == 0 and not (_label(window) == edited).all()
    window.apply_settings({"autosave_s": 0.05})
    qtbot.waitUntil(lambda: c.session.dirty == [], timeout=3000)


def test_track_panel_corrections_and_their_undo(window, qtbot):
    from annotator.gui import track_actions

    c = window.controller
    persons = sorted(t.id for t in c.video.tracks.values() if t.category_id == PERSON)
    a, b = persons[:2]
    frames_a = c.video.track_frames(a)
    key(qtbot, window, Qt.Key_R)  # keyframe 5
    f = c.index
    res = track_actions.split(c, a, f)
    new = res.new_track
    assert c.video.track_frames(new) == [i for i in frames_a if i >= f]
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert new not in c.video.tracks and c.video.track_frames(a) == frames_a
    track_actions.swap(c, a, b, f)
    assert c.video.read_label(f)[c.video.read_label(0) == 0].size >= 0
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    track_actions.delete_from(c, a, f)
    assert c.video.track_frames(a) == [i for i in frames_a if i < f]
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert c.video.track_frames(a) == frames_a
    track_actions.set_class(c, a, 48)
    assert c.video.tracks[a].category_id == 48
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert c.video.tracks[a].category_id == PERSON
    c.select_track(a)
    key(qtbot, window, Qt.Key_Delete)
    assert not (_label(window) == a).any() and a in c.video.tracks
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert (_label(window) == a).any()


def test_grabcut_minus_stroke_and_colour_fill(window, qtbot):
    c = window.controller
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_4, Qt.ShiftModifier)
    c.set_brush_radius(4)
    drag(qtbot, window, [(100, 20), (140, 70)])
    tool = c.tools["grabcut"]
    assert tool.region is not None
    first = tool.region.to_mask(_label(window).shape)
    ys, xs = np.nonzero(first)
    y, x = int(ys.mean()), int(xs.mean())
    drag(qtbot, window, [(x - 3, y), (x + 3, y)], button=Qt.RightButton)  # "-": background here
    second = tool.region.to_mask(_label(window).shape)
    assert not second[y, x] and second.sum() < first.sum()
    key(qtbot, window, Qt.Key_Escape)
    assert tool.region is None and not window.canvas.preview_mask.isVisible()
    # Shift+click with the fill tool fills by colour, void pixels only: erase a patch first
    key(qtbot, window, Qt.Key_2, Qt.ShiftModifier)
    drag(qtbot, window, [(20, 15), (40, 15)])
    hole = _label(window) == 0
    pick_class(qtbot, window, "sky")
    key(qtbot, window, Qt.Key_3, Qt.ShiftModifier)
    click(qtbot, window, 30, 15, mods=Qt.ShiftModifier)
    lab = _label(window)
    assert lab[15, 30] != 0 and c.video.tracks[int(lab[15, 30])].category_id == SKY
    assert ((lab != 0) | ~hole).sum() > (~hole).sum()


def test_read_ahead_never_shows_a_stale_label(window, qtbot):
    c = window.controller
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    pick_class(qtbot, window, "person")
    for _ in range(3):  # edit frame 1, step away and back: read-ahead must not bring the old file back
        key(qtbot, window, Qt.Key_D)
        assert c.index == 1
        drag(qtbot, window, [(10 + 20 * _, 80), (25 + 20 * _, 80)])
        edited = c.session.label(1).copy()
        key(qtbot, window, Qt.Key_A)
        qtbot.waitUntil(lambda: c.session.dirty == [], timeout=3000)
        qtbot.wait(50)  # let the read-ahead thread run
        key(qtbot, window, Qt.Key_D)
        np.testing.assert_array_equal(window.canvas.label, edited)
        key(qtbot, window, Qt.Key_A)
    assert window.resources.prefetch is not None and window.resources.prefetch.hits > 0
