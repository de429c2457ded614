"""Review mode in the window: flags computed as a job, next/previous flag keys, tube view of the
selected track, accept / reject per track and frame with a comment, progress, CSV report; the
project overview table (double click opens a video); the scoring dialog equals the CLI."""

from __future__ import annotations

import argparse
import csv
import dataclasses

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication

from annotator.gui.main_window import MainWindow
from annotator.project import FrameState, Project
from tests.gui_helpers_workspace import isolate_settings
from tests.test_gui_pipeline import make_project


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    from annotator.stages.association import associate_video
    from annotator.stages.propagate import propagate_video
    from propagation.base import CopyPropagator
    from propagation.factory import association_propagator

    isolate_settings(tmp_path, monkeypatch)
    path, _gt, _cats = make_project(tmp_path, scenario="mixed")
    proj = Project.open(path)
    with proj.open_video("v") as video:  # the annotator's part, done headless here
        associate_video(video, association_propagator())
        propagate_video(video, CopyPropagator())
        video.save()
    other = proj.create_video("w", ["a", "b"], 8, 8)
    for i in range(2):
        other.write_frame_image(i, np.full((8, 8, 3), 90 * i, np.uint8))
    other.close()
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    w.canvas.setFocus()
    yield w
    w.job_runner.shutdown()


def test_review_mode(qtbot, window, tmp_path):
    from annotator.review.store import ReviewStore

    w, c = window, window.controller
    p = w.pipeline
    v = c.video
    qtbot.keyClick(w.canvas, Qt.Key_R, Qt.ControlModifier | Qt.ShiftModifier)
    assert p.review_dock.isVisible() and p.flags_dock.isVisible() and not w.picker.isVisible()

    # flags: computed in the background, cached in the review store, next / previous flag keys
    qtbot.mouseClick(p.flags.button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=60_000)
    review = [r for r in p.flags.rows if r.source == "review"]
    assert ReviewStore(v).flags is not None and len(review) == len(ReviewStore(v).flags)
    if review:
        w.canvas.setFocus()
        qtbot.keyClick(w.canvas, Qt.Key_F)
        first = min(r.frame for r in p.flags.rows if r.frame > 0) if any(r.frame > 0 for r in p.flags.rows) \
            else min(r.frame for r in p.flags.rows)
        assert c.index == first
        qtbot.keyClick(w.canvas, Qt.Key_F, Qt.ShiftModifier)
        frames = sorted(r.frame for r in p.flags.rows)
        earlier = [f for f in frames if f < first]
        assert c.index == (earlier[-1] if earlier else frames[-1])  # wraps around the video

    # tube view of a track chosen in the track panel; a click on a cell jumps to its frame
    c.go_to(0)
    tid = max(v.frame_tracks(0))
    item = w.tracks.item_of(tid)
    qtbot.mouseClick(w.tracks.viewport(), Qt.LeftButton, Qt.NoModifier, w.tracks.visualItemRect(item).center())
    assert c.selected == tid
    frames = v.track_frames(tid)
    assert p.review.tube.frames == frames and p.review.tube.count() == len(frames)
    cell = p.review.tube.item(len(frames) - 1)
    qtbot.mouseClick(p.review.tube.viewport(), Qt.LeftButton, Qt.NoModifier,
                     p.review.tube.visualItemRect(cell).center())
    assert c.index == frames[-1]

    # accept the track with a comment (typed: F and Shift+F type letters there, they do not jump)
    here = c.index
    qtbot.keyClicks(p.review.comment, "fF")
    assert c.index == here and p.review.comment.text() == "fF"
    p.review.comment.clear()
    qtbot.keyClicks(p.review.comment, "looks right")
    qtbot.mouseClick(p.review.buttons["accept_track"], Qt.LeftButton)
    store = ReviewStore(v)
    d = store.latest("track", tid)
    assert d.decision == "accept" and d.comment == "looks right"
    assert p.review.comment.text() == ""
    c.go_to(2)
    qtbot.keyClicks(p.review.comment, "mask bleeds")
    qtbot.mouseClick(p.review.buttons["reject_frame"], Qt.LeftButton)
    assert ReviewStore(v).latest("frame", 2).comment == "mask bleeds"
    prog = ReviewStore(v).progress()
    assert p.review.progress_tracks.value() == round(100 * prog.track_share) > 0
    # the review dock counts the flags the flags panel lists (one set, issue 23 item 7)
    assert p.review.summary.text() == dataclasses.replace(prog, open_flags=len(p.flags.rows)).summary()

    # accept a frame: state reviewed, the timeline shows it
    c.go_to(3)
    qtbot.mouseClick(p.review.buttons["accept_frame"], Qt.LeftButton)
    assert v.frame_state(3) == FrameState.REVIEWED and w.timeline.states[3] == FrameState.REVIEWED
    out = p.review.save_csv(str(tmp_path / "review.csv"))
    rows = list(csv.DictReader(out.open()))
    assert {"looks right", "mask bleeds"} <= {r.get("comment") for r in rows}


def test_overview_table_opens_a_video(qtbot, window, tmp_path):
    w = window
    dlg = w.pipeline.open_overview()
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 2, timeout=60_000)
    assert [r.video for r in dlg.rows] == ["v", "w"]
    assert dlg.table.item(0, 1).text() == "12" and dlg.table.item(0, 2).text() == "3/3"
    pos = dlg.table.visualItemRect(dlg.table.item(1, 0)).center()
    qtbot.mouseClick(dlg.table.viewport(), Qt.LeftButton, Qt.NoModifier, pos)  # Qt 5 item views want the
    qtbot.mouseDClick(dlg.table.viewport(), Qt.LeftButton, Qt.NoModifier, pos)  # press before the double click
    assert w.controller.video.id == "w"
    assert dlg.save_csv(str(tmp_path / "o.csv")).read_text().startswith("video,frames")


def test_score_dialog_equals_the_cli(qtbot, window, capsys):
    from annotator.commands.score import run_score

    w = window
    dlg = w.pipeline.open_score()
    here = str(w.project.path)
    dlg.gt.path.setText(here)
    dlg.windows.setText("1,2")
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None or "failed" in dlg.status.text(), timeout=60_000)
    assert dlg.result is not None, dlg.status.text()
    capsys.readouterr()
    args = argparse.Namespace(gt=here, pred=here, gt_layer=None, pred_layer=None, split=None, gt_json=None,
                              videos=None, windows="1,2", mode="official", metrics="vpq,stq", out=None,
                              no_figure=True, workers=1)
    assert run_score(args) == 0
    assert dlg.summary.toPlainText().strip() == capsys.readouterr().out.strip()
    assert "100.00" in dlg.summary.toPlainText()  # a source against itself
    assert dlg.table.rowCount() > 0 and dlg.table.horizontalHeaderItem(0).text() == "name"


def test_dismiss_flag_and_play_track(qtbot, window):
    from annotator.review.store import ReviewStore

    w, c = window, window.controller
    p = w.pipeline
    p.actions["review_mode"].trigger()
    p.compute_flags()
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=60_000)
    review = [r for r in p.flags.rows if r.source == "review"]
    if review:  # dismiss the first review flag: recorded, no longer open
        n = p.flags.rows.index(review[0])
        p.flags.tree.setCurrentItem(p.flags.item_of(n))
        qtbot.mouseClick(p.flags.dismiss_button, Qt.LeftButton)
        assert review[0] not in p.flags.rows
        assert ReviewStore(c.video).latest("flag", review[0].key).decision == "accept"
        assert len(ReviewStore(c.video).open_flags()) == len(review) - 1
    # play one track alone: the canvas shows only it, the frames step through the track's frames
    tid = min(c.video.frame_tracks(0))
    c.select_track(tid)
    qtbot.mouseClick(p.review.buttons["play"], Qt.LeftButton)
    assert w.canvas.style.only_selected
    last = c.video.track_frames(tid)[-1]
    qtbot.waitUntil(lambda: c.index == last, timeout=20_000)
    qtbot.waitUntil(lambda: not w.canvas.style.only_selected, timeout=20_000)


def test_import_dataset_dialog(qtbot, window, tmp_path):
    from annotator.formats.vipseg import export_vipseg

    w = window
    src = w.project.path
    export_vipseg(src, tmp_path / "ds", videos=["v"], resize_height=None)
    empty = Project.create(tmp_path / "empty.vpsproj")
    w.open_project(empty.path)
    assert w.controller.video is None
    dlg = w.pipeline.open_import()
    dlg.dataset.setText(str(tmp_path / "ds"))
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(dlg.lines) or "failed" in dlg.status.text(), timeout=60_000)
    assert dlg.lines and dlg.lines[0].startswith("1 videos, 12 frames"), dlg.status.text()
    assert w.controller.video is not None and w.controller.video.id == "v"
    with Project.open(src).open_video("v", readonly=True) as a:
        for i in (0, 5, 11):
            np.testing.assert_array_equal(w.controller.video.read_label(i), a.read_label(i))
