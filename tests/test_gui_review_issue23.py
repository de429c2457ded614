"""Issue 23 items 6, 7 and 10 in the window: one frame numbering (the timeline's, from 1) in the
flag table, the flags' reasons and the status line; flags refreshed after a correction and its
undo, one set of flags in the Flags panel and the Review dock; the review report lists decisions
and flags (kind, frame, track, reason, state)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication

from annotator.gui.main_window import MainWindow
from annotator.project import FrameState, Project
from tests.gui_helpers_workspace import choose_in_menu, isolate_settings, right_click_menu

PERSON = 60
N, H, W = 15, 48, 64  # keyframes 0, 5, 10


def _frames(video) -> None:
    rng = np.random.default_rng(0)
    for i in range(N):
        video.write_frame_image(i, rng.integers(60, 200, (H, W, 3), dtype=np.uint8))


def _square(lab: np.ndarray, tid: int, x: int) -> None:
    lab[18:30, x:x + 12] = tid


def make_jump_project(root, all_frames: bool):
    """A person on the left up to frame index 4, then (index 5 on) one on the right: association
    sees a new track and a vanished one on keyframe 5, the checks an appearing and a vanishing track."""
    proj = Project.create(root / "jump.vpsproj")
    v = proj.create_video("v", [f"{i:05d}" for i in range(N)], H, W)
    _frames(v)
    a, b = v.new_track(PERSON).id, v.new_track(PERSON).id
    c = v.new_track(PERSON).id if not all_frames else b
    for i in range(N) if all_frames else v.keyframes:
        lab = np.zeros((H, W), np.uint16)
        if i < 5:
            _square(lab, a, 12)
        else:
            _square(lab, b if (all_frames or i == 5) else c, 40)
        v.write_label(i, lab, state=FrameState.MANUAL)
    v.save()
    v.close()
    return proj.path


def open_window(qtbot, path):
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    w.canvas.setFocus()
    return w


def click_row(qtbot, panel, n: int) -> None:
    item = panel.item_of(n)
    panel.tree.scrollToItem(item)
    qtbot.mouseClick(panel.tree.viewport(), Qt.LeftButton, Qt.NoModifier, panel.tree.visualItemRect(item).center())


def make_checked_project(root):
    """Every frame labelled by hand: a wall behind a person walking right, whose mask is missing on
    frame indices 6 and 7 and who continues under another id from index 11 on (an identity switch)."""
    proj = Project.create(root / "checked.vpsproj")
    v = proj.create_video("v", [f"{i:05d}" for i in range(N)], H, W)
    _frames(v)
    wall, a, b = v.new_track(0).id, v.new_track(PERSON).id, v.new_track(PERSON).id
    for i in range(N):
        lab = np.full((H, W), wall, np.uint16)
        if i not in (6, 7):
            _square(lab, a if i < 11 else b, 14 + 2 * i)
        v.write_label(i, lab, state=FrameState.MANUAL)
    v.save()
    v.close()
    return proj.path


@pytest.fixture()
def checked_window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    w = open_window(qtbot, make_checked_project(tmp_path))
    yield w
    w.job_runner.shutdown()


@pytest.fixture()
def associated_window(qtbot, tmp_path, monkeypatch):
    from annotator.stages.association import associate_video
    from propagation.factory import association_propagator

    isolate_settings(tmp_path, monkeypatch)
    path = make_jump_project(tmp_path, all_frames=False)
    with Project.open(path).open_video("v") as video:
        associate_video(video, association_propagator("copy"))
        video.save()
    w = open_window(qtbot, path)
    yield w
    w.job_runner.shutdown()


def test_one_frame_numbering_in_table_reasons_and_window(qtbot, checked_window, tmp_path):
    w, c = checked_window, checked_window.controller
    p = w.pipeline
    p.show_flags()
    qtbot.mouseClick(p.flags.button, Qt.LeftButton)  # Compute review flags
    qtbot.waitUntil(lambda: not p.jobs.busy, timeout=60_000)
    rows = [r for r in p.flags.rows if r.kind in ("dropped", "appear", "vanish", "identity_switch", "area_jump")]
    assert rows, [(r.kind, r.reason) for r in p.flags.rows]
    for r in rows:
        n = p.flags.rows.index(r)
        shown = p.flags.item_of(n).text(2)
        said = re.search(r"frame(?:\(s\))? (\d+)", r.reason)
        assert said is not None and said.group(1) == shown, (shown, r.reason)
        click_row(qtbot, p.flags, n)  # a click jumps there: the window names the same number
        assert c.index == r.frame
        assert f"frame {shown}/{N}" in w.frame_label.text()
    # next-flag key: the status line uses the same number
    c.go_to(0)
    w.canvas.setFocus()
    qtbot.keyClick(w.canvas, Qt.Key_F)
    first = min(r.frame for r in p.flags.rows if r.frame > 0)
    assert f"on frame {first + 1}:" in w.status.message.text()
    w.grab().save(str(tmp_path / "item6_numbering.png"))


def test_flags_follow_a_merge_and_its_undo_in_both_panels(qtbot, associated_window, tmp_path, monkeypatch):
    from PyQt5.QtWidgets import QFileDialog

    w, c = associated_window, associated_window.controller
    p = w.pipeline
    v = c.video
    tracks = sorted(v.tracks)
    assert len(tracks) == 2  # kept: the left person, and the right one association found new on keyframe 5
    a, b = tracks
    kinds = {(r.kind, r.track) for r in p.flags.assoc}
    assert ("new_track", b) in kinds and ("vanished", a) in kinds
    p.actions["review_mode"].trigger()
    # the review dock counts what the flags panel lists (not "flags not computed")
    assert f"{len(p.flags.rows)} open flags" in p.review.summary.text()

    # merge the new track into the old one from the track panel's context menu (real events)
    c.go_to(5)
    panel = w.tracks
    clicked = choose_in_menu(qtbot, ["Merge into this track", f"#{b} "],
                             lambda: right_click_menu(qtbot, panel, panel.row_position(a)))
    assert clicked[0].startswith("Merge") and b not in v.tracks
    named = {t for r in p.flags.rows for t in (r.track, r.other) if t}
    assert b not in named, [(r.kind, r.track, r.reason) for r in p.flags.rows]
    assert not [r for r in p.flags.assoc if r.kind in ("new_track", "vanished")]
    assert not [r for r in p.flags.rows if re.search(rf"track {b}\b", r.reason)]
    assert f"{len(p.flags.rows)} open flags" in p.review.summary.text()
    w.grab().save(str(tmp_path / "item7_after_merge.png"))

    # Ctrl+Z brings track b back, and with it its flags
    w.canvas.setFocus()
    qtbot.keyClick(w.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert b in v.tracks
    kinds = {(r.kind, r.track) for r in p.flags.assoc}
    assert ("new_track", b) in kinds and ("vanished", a) in kinds
    assert f"{len(p.flags.rows)} open flags" in p.review.summary.text()

    # the reviewer's report: decisions and the open flags, in the window's numbering
    qtbot.mouseClick(p.review.buttons["accept_frame"], Qt.LeftButton)  # frame index 5, shown as 6
    out = tmp_path / "report.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "CSV (*.csv)"))
    p.actions["review_csv"].trigger()
    got = list(csv.DictReader(out.open(encoding="utf-8")))
    decision = next(r for r in got if r["target"] == "frame")
    assert decision["frame"] == "6" and decision["decision"] == "accept" and decision["frame_name"] == "00005"
    flags = [r for r in got if r["target"] == "flag"]
    new = next(r for r in flags if r["kind"] == "new_track")
    assert new["frame"] == "6" and new["track"] == str(b) and new["state"] == "open"
    assert new["source"] == "association" and f"track {b}" in new["reason"]
    assert {"kind", "frame", "track", "reason", "state"} <= set(got[0])


def test_review_report_lists_cached_flags_with_their_state(tmp_path):
    from annotator.review import Flag, ReviewStore, write_report_csv

    path = make_jump_project(tmp_path, all_frames=True)
    with Project.open(path).open_video("v") as v:
        store = ReviewStore(v)
        store.set_flags([Flag("appear", 5, 2, 0.9, "track 2 appears at frame 6"),
                         Flag("vanish", 5, 1, 0.8, "track 1 vanishes at frame 6"),
                         Flag("fragment", 7, 2, 0.2, "a hint")])
        store.dismiss_flag("vanish:5:1:0", "it left behind a pole")
        rows = store.rows()
    out = list(csv.DictReader(write_report_csv(tmp_path / "r.csv", rows).open(encoding="utf-8")))
    flags = {r["kind"]: r for r in out if r["target"] == "flag" and r["kind"] and r["state"] != "accept"}
    assert set(flags) == {"appear", "vanish"}  # the hint under the score bar is left out
    assert flags["appear"]["state"] == "open" and flags["appear"]["frame"] == "6"
    assert flags["appear"]["track"] == "2" and flags["appear"]["category"] == "person"
    assert flags["vanish"]["state"] == "dismissed"
    dismissal = next(r for r in out if r["decision"] == "accept")
    assert dismissal["kind"] == "vanish" and dismissal["frame"] == "6" and dismissal["comment"]


def test_cli_review_speaks_the_window_numbering(tmp_path, capsys):
    from annotator.cli import main as cli_main
    from annotator.review import ReviewStore

    path = make_checked_project(tmp_path)
    assert cli_main(["review", str(path), "--video", "v", "--flags", "--accept-frame", "6"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"frame\s+(\d+)\s+track \S+\s+(.*)", out)
    assert len(listed) == 2, out
    for number, reason in listed:
        said = re.search(r"frame(?:\(s\))? (\d+)", reason)
        if said:
            assert said.group(1) == number, (number, reason)
    with Project.open(path).open_video("v", readonly=True) as v:
        assert ReviewStore(v).latest("frame", 5).decision == "accept"  # frame 6 of the window
    assert cli_main(["review", str(path), "--video", "v", "--accept-frame", "0"]) == 2
    assert "numbered 1-15" in capsys.readouterr().err
