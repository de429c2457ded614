"""Issue 12's Done-when, driven through the window on a demo video.

Annotate the keyframes (the ground-truth masks applied through the controller's ``paint`` - what
every tool calls - with the class picked and N pressed for each new object, so ids are fresh and
shuffled per keyframe), associate (Ctrl+Shift+A), inject an identity swap on the last keyframe and fix it with the track
panel's swap correction (right click, menu) which re-associates the later keyframes, propagate
(Ctrl+Shift+B), refine one propagated frame with the brush (real drag) and re-propagate its gap
(Ctrl+B), review (Ctrl+Shift+R, click "Accept all tracks"), score against the hidden ground truth
in the scoring dialog (equal to the ``score`` command's output) and export VIPSeg from the export
dialog (the export imports back to the same labels, as the format tests check).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication

from annotator.editing import Region
from annotator.gui.main_window import MainWindow
from annotator.project import FrameState, Project
from tests.gui_helpers_workspace import choose_in_menu, drag, isolate_settings, key, right_click_menu

NUM_SOURCE, HEIGHT, WIDTH, SEED = 60, 90, 120, 1


def _projects(root):
    """An empty project over the demo frames, and a hidden ground-truth project with every label."""
    from resources.demo import generate_demo_video

    demo = generate_demo_video(SEED, NUM_SOURCE, HEIGHT, WIDTH, "mixed")
    idx = demo.dense_indices(5.0)
    gt = {i: demo.labels[s] for i, s in enumerate(idx)}
    names = [f"{i:05d}" for i in range(len(idx))]
    paths = []
    for name, labelled in (("work", False), ("truth", True)):
        proj = Project.create(root / f"{name}.vpsproj")
        video = proj.create_video("v", names, HEIGHT, WIDTH)
        for i, s in enumerate(idx):
            video.write_frame_image(i, demo.frames[s])
        if labelled:
            for tid in sorted(demo.tracks):
                video.add_track(tid, demo.tracks[tid])
            for i in range(len(idx)):
                video.write_label(i, gt[i], state=FrameState.REVIEWED)
        video.save()
        video.close()
        paths.append(proj.path)
    return paths[0], paths[1], gt, demo.tracks


def _annotate_keyframes(qtbot, w, gt, cats) -> None:
    c = w.controller
    rng = np.random.default_rng(0)
    tax = c.video.taxonomy
    for n, k in enumerate(c.video.keyframes):
        if n:
            key(qtbot, w, Qt.Key_R)  # next keyframe
        assert c.index == k
        ids = [int(i) for i in np.unique(gt[k]) if i]
        rng.shuffle(ids)
        for g in ids:
            c.set_class(cats[g])
            if tax.get(cats[g]).isthing:
                key(qtbot, w, Qt.Key_N)  # new object: the next thing mask starts a new track
            assert c.paint(Region.from_mask(gt[k] == g), "polygon")
    key(qtbot, w, Qt.Key_Home)
    c.flush()


def _score_cli(gt_path, pred_path, capsys) -> str:
    from annotator.commands.score import run_score

    capsys.readouterr()
    args = argparse.Namespace(gt=str(gt_path), pred=str(pred_path), gt_layer=None, pred_layer=None, split=None,
                              gt_json=None, videos=None, windows="1,2,4,6,8", mode="official", metrics="vpq,stq",
                              out=None, no_figure=True, workers=1)
    assert run_score(args) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.slow
def test_whole_pipeline_in_the_window(qtbot, tmp_path, monkeypatch, capsys):
    from annotator.formats.vipseg import import_vipseg

    isolate_settings(tmp_path, monkeypatch)
    work, truth, gt, cats = _projects(tmp_path)
    w = MainWindow(Project.open(work))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()  # window shortcuts need the active window
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    w.canvas.setFocus()
    c = w.controller
    v = c.video
    p = w.pipeline

    def wait_job() -> None:
        qtbot.waitUntil(lambda: not p.jobs.busy, timeout=90_000)

    # 1. keyframes, ids fresh per keyframe
    _annotate_keyframes(qtbot, w, gt, cats)
    assert v.keyframes == [0, 5, 10]
    assert all(v.frame_state(k) == FrameState.MANUAL for k in v.keyframes)
    things = {k: {t for t in v.frame_tracks(k) if v.taxonomy.get(v.tracks[t].category_id).isthing}
              for k in v.keyframes}
    assert not (things[0] & things[5])

    # 2. associate
    key(qtbot, w, Qt.Key_A, Qt.ControlModifier | Qt.ShiftModifier)
    wait_job()
    assert p.last_association.keyframes == [0, 5, 10]
    associated = {k: v.read_label(k).copy() for k in v.keyframes}

    def track_of(k: int, g: int) -> int:
        return int(np.bincount(v.read_label(k)[gt[k] == g]).argmax())

    persons = [g for g, cid in cats.items() if cid == 60 and all((gt[k] == g).any() for k in (0, 5, 10))]
    assert len(persons) == 2
    a, b = track_of(10, persons[0]), track_of(10, persons[1])
    assert a != b

    # 3. an identity swap injected on the last keyframe, fixed with the track panel's swap correction
    for k in (10,):
        lab = v.read_label(k)
        swapped = np.where(lab == a, b, np.where(lab == b, a, lab)).astype(lab.dtype)
        v.write_label(k, swapped, state=v.frame_state(k), provenance=v.provenance(k))
    p.jobs.refresh()
    assert track_of(10, persons[0]) == b
    key(qtbot, w, Qt.Key_End)
    key(qtbot, w, Qt.Key_E)
    assert c.index == 10
    pos = w.tracks.row_position(a)
    choose_in_menu(qtbot, ["Swap with, from frame 11 on", f"#{b} "],
                   lambda: right_click_menu(qtbot, w.tracks, pos))
    assert p.jobs.busy  # the correction re-associates the later keyframes in the background
    wait_job()
    for k in v.keyframes:
        np.testing.assert_array_equal(v.read_label(k), associated[k])

    # 4. propagate the whole video
    key(qtbot, w, Qt.Key_B, Qt.ControlModifier | Qt.ShiftModifier)
    wait_job()
    assert all(v.frame_state(i) == FrameState.PROPAGATED for i in range(v.num_frames) if i not in v.keyframes)

    # 5. refine frame 3 with the brush, re-propagate its gap: the refined pixels stay
    key(qtbot, w, Qt.Key_Home)
    for _ in range(3):
        key(qtbot, w, Qt.Key_D)
    assert c.index == 3
    lab = c.session.label(3)
    t = track_of(3, persons[0])
    ys, xs = np.nonzero(lab == t)
    cy, cx = int(ys.mean()), int(xs.mean())
    c.select_track(t)
    key(qtbot, w, Qt.Key_1, Qt.ShiftModifier)
    drag(qtbot, w, [(cx - 6, cy), (cx, cy), (cx + 6, cy)])
    refined = c.session.label(3).copy()
    assert c.session.frame_state(3) == FrameState.REFINED and (refined != lab).any()
    key(qtbot, w, Qt.Key_B, Qt.ControlModifier)  # this gap, the refined frame as a reference
    wait_job()
    np.testing.assert_array_equal(v.read_label(3), refined)
    assert v.frame_state(3) == FrameState.REFINED and v.frame_state(2) == FrameState.PROPAGATED

    # 6. review: accept all tracks
    key(qtbot, w, Qt.Key_R, Qt.ControlModifier | Qt.ShiftModifier)
    assert p.review_dock.isVisible()
    qtbot.mouseClick(p.review.buttons["accept_all"], Qt.LeftButton)
    assert all(v.frame_state(i) == FrameState.REVIEWED for i in range(v.num_frames))
    assert p.review.progress_tracks.value() == 100 and p.review.progress_frames.value() == 100

    # 7. score in the dialog = the score command
    p.actions["score"].trigger()
    dlg = p.score_dialog
    dlg.gt.path.setText(str(truth))
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=90_000)
    assert dlg.summary.toPlainText().strip() == _score_cli(truth, work, capsys)
    assert dlg.table.rowCount() == len(dlg.result["classes"]) > 0

    # 8. export VIPSeg from the dialog; it imports back to the same labels
    p.actions["export"].trigger()
    ex = p.export_dialog
    out = tmp_path / "vipseg"
    ex.out.setText(str(out))
    ex.no_resize.setChecked(True)
    qtbot.mouseClick(ex.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(ex.lines) or "failed" in ex.status.text(), timeout=90_000)
    assert ex.lines and ex.lines[0].startswith("1 videos, 12 frames"), ex.status.text()
    import_vipseg(out, tmp_path / "back.vpsproj")
    back = Project.open(tmp_path / "back.vpsproj").open_video("v", readonly=True)
    for i in range(v.num_frames):
        np.testing.assert_array_equal(back.read_label(i), v.read_label(i))
    back.close()
    w.job_runner.shutdown()
