"""Project overview rows and human effort: active time, actions, pixel shares, lock holder, CSV."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from annotator.editing.history import Command, FramePatch, History
from annotator.overview import (
    CSV_FIELDS,
    EFFORT_FILE,
    active_time,
    history_times,
    overview_rows,
    record_edit,
    video_row,
    write_overview_csv,
)
from annotator.project import FrameState, Project
from annotator.review import Flag
from annotator.review.store import ReviewStore
from resources.demo import write_demo_project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("tpl") / "p.vpsproj", scenarios=("mixed", "crossing"),
                              num_frames=21, source=None, state=FrameState.PROPAGATED)


@pytest.fixture
def proj(template, tmp_path):
    import shutil

    return Project.open(shutil.copytree(template, tmp_path / "p.vpsproj"))


def _command(t: float, frame: int = 0, changed: int = 6) -> Command:
    before = np.zeros((3, 4), np.uint16)
    after = before.copy()
    after.flat[:changed] = 5
    return Command("brush", [FramePatch.make(frame, 0, 0, before, after)], time=t)


def test_active_time_skips_idle_gaps():
    assert active_time([]) == 0 and active_time([5.0]) == 0
    assert active_time([0, 10, 20, 500, 510]) == 30  # the 480 s pause is idle
    assert active_time([30, 0, 10]) == 30  # order does not matter
    assert active_time([0, 120, 241]) == 120  # a gap of exactly 2 minutes counts, over it does not


def test_record_edit_and_history_times(proj, tmp_path):
    with proj.open_video("demo_mixed") as v:
        record_edit(v, _command(1000.0, changed=6))
        record_edit(v, _command(1030.0, changed=2), op="undo")
        lines = [json.loads(x) for x in (v.path / EFFORT_FILE).read_text().splitlines()]
        assert [(r["t"], r["op"], r["pixels"], r["frames"]) for r in lines] == [
            (1000.0, "edit", 6, [0]), (1030.0, "undo", 2, [0])]
        ro = proj.open_video("demo_mixed")  # read-only (locked): records nothing
        record_edit(ro, _command(2000.0))
        ro.close()
        assert len((v.path / EFFORT_FILE).read_text().splitlines()) == 2
    hist = History(tmp_path / "history")
    hist.push(_command(10.0))
    hist.push(_command(20.0))
    hist.undo()
    assert history_times(tmp_path / "history") == [10.0, 20.0]
    (tmp_path / "junk").write_bytes(b"not a history")
    assert history_times(tmp_path / "junk") == [] and history_times(tmp_path / "missing") == []


def test_video_row_counts_effort_flags_lock_and_pixels(proj):
    with proj.open_video("demo_mixed") as v:
        lab = v.read_label(0)
        prov = {t: FrameState.MANUAL for t in v.frame_tracks(0)}
        v.write_label(0, lab, state=FrameState.MANUAL, provenance=prov)  # a person drew keyframe 0
        for n, t in enumerate([100.0, 130.0, 150.0, 1000.0, 1010.0]):  # one idle pause
            record_edit(v, _command(t, frame=n % 2))
        hist = History(v.path / "history")  # the same command in history and effort log counts once
        hist.push(_command(100.0))
        hist.push(_command(1500.0))  # only in the history (before effort recording existed)
        ReviewStore(v).set_flags([Flag("dropped", 3, 5, 0.9, "x", (3,)), Flag("fragment", 2, 4, 0.2, "y", (2,))])
        row = video_row(proj, "demo_mixed")
        assert row.lock_holder and "pid" in row.lock_holder  # we hold it right now
        n = v.num_frames
        keys = v.keyframes
    assert (row.frames, row.keyframes, row.keyframes_annotated) == (n, len(keys), 1)
    assert row.propagated == n - 1 and row.reviewed == 0 and row.tracks == 8
    assert row.open_flags == 1
    assert row.edit_actions == 6 and row.pixels_edited == 30
    assert row.active_minutes == pytest.approx((30 + 20 + 10) / 60)
    assert 0 < row.human_pixel_share < 0.5 < row.machine_pixel_share
    assert row.human_pixel_share + row.machine_pixel_share == pytest.approx(1.0)
    after = video_row(proj, "demo_mixed", pixels=False)
    assert after.lock_holder == "" and after.human_pixel_share is None
    assert after.last_edit >= row.last_edit > 0


def test_overview_rows_and_csv(proj, tmp_path):
    calls = []
    rows = overview_rows(proj, pixels=False, progress=lambda d, t, m: calls.append((d, t, m)))
    assert [r.video for r in rows] == ["demo_crossing", "demo_mixed"] and calls[-1][:2] == (2, 2)
    assert all(r.open_flags is None and r.error == "" for r in rows)
    path = write_overview_csv(tmp_path / "o.csv", rows)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        got = list(reader)
        assert reader.fieldnames == CSV_FIELDS
    assert got[1]["video"] == "demo_mixed" and got[1]["open_flags"] == "" and got[1]["last_edit"]


def test_edits_through_edit_session_are_counted(proj):
    """The session records every stroke, undo and redo, so the overview's effort is not only the
    (bounded) undo history."""
    from annotator.editing.operations import Paint
    from annotator.editing.session import EditSession
    from annotator.project import read_effort_log

    vid = proj.video_ids[0]
    with proj.open_video(vid) as video:
        tid = video.new_track(60).id  # a new person: every masked pixel changes
        mask = np.zeros(video.shape, bool)
        mask[2:9, 3:12] = True
        with EditSession(video) as session:
            session.apply(0, Paint(mask, tid))
            session.undo()
            session.redo()
        recs = read_effort_log(video.path)
    assert [r["op"] for r in recs] == ["edit", "undo", "redo"]
    assert recs[0]["frames"] == [0] and recs[0]["pixels"] > 0
    assert video_row(proj, vid, pixels=False).edit_actions >= 3
