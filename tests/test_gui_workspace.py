"""A whole keyframe session driven with real mouse and key events on the canvas.

Create a project from a video file through the new-project dialog's code path (``run_import`` in a
background job), pick a class by typing, draw a thing with the polygon, fix it with the brush,
fill a stuff region, add a second object with GrabCut and a third with a SAM click (vit_b with
random weights: wiring only), undo and redo, merge two tracks from the track panel's context menu,
move to another keyframe, close, reopen: the label maps are the same pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from tests.gui_helpers_workspace import (
    choose_in_menu,
    click,
    demo_video_file,
    drag,
    isolate_settings,
    key,
    pick_class,
    random_sam_checkpoint,
    right_click_menu,
    seed_sam_embeddings,
)

PERSON, SKY = 60, 28


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


def _label(window) -> np.ndarray:
    c = window.controller
    return c.session.label(c.index)


def test_whole_keyframe_session(qtbot, tmp_path, monkeypatch, settings):
    from annotator.gui.dialogs.new_project import ImportOptions

    source = demo_video_file(tmp_path)
    window = MainWindow(None)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    proj_path = tmp_path / "session.vpsproj"
    window.shell.start_import(ImportOptions(source=source, project_path=proj_path, create=True,
                                            dense_fps=5.0, key_every=5, resize_height=None))
    qtbot.waitUntil(lambda: window.controller.video is not None, timeout=60_000)
    c = window.controller
    assert c.video.num_frames == 10 and c.video.keyframes == [0, 5]
    sam_action = window.toolbar.tool_actions["sam"]
    assert not sam_action.isEnabled() and "SAM tool unavailable" in sam_action.toolTip()
    assert "no checkpoint" in window.status.sam.text()

    # polygon thing after picking its class by typing
    pick_class(qtbot, window, "perso")
    assert c.active_class == PERSON and window.canvas.hasFocus()
    key(qtbot, window, Qt.Key_P)
    assert c.tool_name == "polygon"
    for x, y in [(20, 20), (50, 20), (50, 60), (20, 60)]:
        click(qtbot, window, x, y)
    assert window.canvas.preview_path.path().elementCount() > 0  # live outline
    key(qtbot, window, Qt.Key_Return)
    lab = _label(window)
    t1 = int(lab[40, 35])
    assert t1 > 0 and c.video.tracks[t1].category_id == PERSON
    assert lab[10, 35] == 0 and lab[40, 55] == 0
    assert c.selected == t1

    # brush fix: extend the person to the right while dragging ([ / ] set the size)
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    assert c.tool_name == "brush" and window.canvas.cursor_radius == c.brush_radius
    while c.brush_radius > 3:
        key(qtbot, window, Qt.Key_BracketLeft)
    key(qtbot, window, Qt.Key_BracketRight)
    assert c.brush_radius == 4
    drag(qtbot, window, [(48, 40), (56, 40), (64, 40)])
    assert _label(window)[40, 62] == t1 and _label(window)[46, 62] == 0
    assert not window.canvas.cursor_item.isVisible() or window.canvas.cursor_item.rect().width() == 8

    # fill a stuff region: the void background becomes sky
    pick_class(qtbot, window, "sky")
    assert c.active_class == SKY and c.selected is None
    key(qtbot, window, Qt.Key_3, Qt.ShiftModifier)
    assert c.tool_name == "fill"
    click(qtbot, window, 150, 110)
    lab = _label(window)
    sky = int(lab[110, 150])
    assert c.video.tracks[sky].category_id == SKY
    assert lab[40, 35] == t1 and (lab == sky).sum() > 0.5 * lab.size

    # a second object with GrabCut (box, then Enter)
    pick_class(qtbot, window, "person")
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_4, Qt.ShiftModifier)
    assert c.tool_name == "grabcut"
    drag(qtbot, window, [(121, 54), (130, 70), (141, 91)])  # around the second demo person
    assert c.tools["grabcut"].region is not None and window.canvas.preview_mask.isVisible()
    key(qtbot, window, Qt.Key_Return)
    lab = _label(window)
    t2 = max(c.video.tracks)
    assert t2 not in (t1, sky) and c.video.tracks[t2].category_id == PERSON
    assert (lab == t2).sum() > 20 and not (lab == t2)[:, :115].any()

    # a third object with a SAM click: a checkpoint is configured (as the settings dialog does), the
    # click waits for the model and the embedding, then Tab cycles, Enter accepts
    ckpt = random_sam_checkpoint(tmp_path)
    seed_sam_embeddings(proj_path, ckpt, c.video, c.video.keyframes)
    monkeypatch.setenv("VPS_SAM_VIT_B_CHECKPOINT", str(ckpt))
    window.refresh_backends()
    assert sam_action.isEnabled()
    key(qtbot, window, Qt.Key_N)
    key(qtbot, window, Qt.Key_Q)
    assert c.tool_name == "sam"
    click(qtbot, window, 28, 80)
    sam = c.tools["sam"]
    assert sam.waiting and "waiting" in window.status.message.text()
    qtbot.waitUntil(lambda: sam.prompt.prediction is not None, timeout=120_000)
    qtbot.waitUntil(lambda: "ready (2 frames embedded)" in window.status.sam.text(), timeout=10_000)
    titles = [j.title for j in window.job_runner.jobs]
    assert "load SAM model" in titles and any(t.startswith("SAM embeddings of") for t in titles)
    first = sam.prompt.choice
    key(qtbot, window, Qt.Key_Tab)
    assert sam.prompt.choice == (first + 1) % 3
    for _ in range(3):
        if not sam.prompt.region().empty:
            break
        key(qtbot, window, Qt.Key_Tab)
    expected = sam.prompt.mask()
    key(qtbot, window, Qt.Key_Return)
    lab = _label(window)
    t3 = int(lab[expected].max()) if expected.any() else 0
    assert t3 not in (0, t1, t2, sky) and c.video.tracks[t3].category_id == PERSON
    with_sam = lab.copy()

    # undo and redo (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert not (_label(window) == t3).any()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    np.testing.assert_array_equal(_label(window), with_sam)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    key(qtbot, window, Qt.Key_Y, Qt.ControlModifier)
    np.testing.assert_array_equal(_label(window), with_sam)

    # merge two tracks from the context menu of the track panel (a correction, undoable too)
    panel = window.tracks
    clicked = choose_in_menu(qtbot, ["Merge into this track", f"#{t2} "],
                             lambda: right_click_menu(qtbot, panel, panel.row_position(t1)))
    assert clicked[0].startswith("Merge")
    assert t2 not in c.video.tracks and (_label(window)[with_sam == t2] == t1).all()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert t2 in c.video.tracks and (_label(window)[with_sam == t2] == t2).all()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert t2 not in c.video.tracks

    # another keyframe: R jumps there, a brush stroke labels it
    key(qtbot, window, Qt.Key_R)
    assert c.index == 5
    key(qtbot, window, Qt.Key_1, Qt.ShiftModifier)
    pick_class(qtbot, window, "grass")
    drag(qtbot, window, [(10, 100), (60, 100), (100, 105)])
    assert (_label(window) > 0).sum() > 100

    expected_labels = [c.session.label(i).copy() for i in range(c.video.num_frames)]
    tracks = {t.id: t.category_id for t in c.video.tracks.values()}
    window.close()

    monkeypatch.delenv("VPS_SAM_VIT_B_CHECKPOINT")  # the reopened window need not load SAM again
    project = Project.open(proj_path)
    again = MainWindow(project)
    qtbot.addWidget(again)
    v = again.controller.video
    assert {t.id: t.category_id for t in v.tracks.values()} == tracks
    for i, exp in enumerate(expected_labels):
        np.testing.assert_array_equal(v.read_label(i), exp, err_msg=f"frame {i}")
    assert again.controller.session.recovered == []
    again.close()
