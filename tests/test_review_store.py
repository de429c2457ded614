"""Review decisions: accept / reject tracks and frames with comments, persistence, progress, CSV, CLI."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from annotator.cli import main as cli_main
from annotator.errors import InputError, ProjectError, ReadOnlyError
from annotator.project import FrameState, Project
from annotator.review import Flag
from annotator.review.store import REVIEW_FILE, ReviewStore, write_report_csv
from resources.demo import write_demo_project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One demo project per module (generating it is the slow part); each test gets a copy."""
    return write_demo_project(tmp_path_factory.mktemp("tpl") / "p.vpsproj", scenarios=("mixed", "crossing"),
                              num_frames=26, source=None, state=FrameState.PROPAGATED)


@pytest.fixture
def proj(template, tmp_path):
    return Project.open(shutil.copytree(template, tmp_path / "p.vpsproj"))


def test_frame_accept_reject_and_reopen(proj):
    with proj.open_video("demo_mixed") as v:
        store = ReviewStore(v)
        store.accept_frame(2, "looks right")
        assert v.frame_state(2) == FrameState.REVIEWED
        store.accept_frame(2)  # twice: the state to restore stays the original one
        store.reject_frame(2, "car edge is off")
        assert v.frame_state(2) == FrameState.PROPAGATED
        store.accept_frames([3, 4])
    with proj.open_video("demo_mixed") as v:  # survives reopen
        store = ReviewStore(v)
        assert store.latest("frame", 2).decision == "reject"
        assert [d.comment for d in store.comments("frame", 2)] == ["looks right", "car edge is off"]
        assert v.frame_state(3) == FrameState.REVIEWED and v.frame_state(2) == FrameState.PROPAGATED
        assert any(e["kind"] == "review" and "time" in e for e in v.log)
        p = store.progress()
        assert (p.frames_reviewed, p.frames_rejected, p.frames) == (2, 1, v.num_frames)


def test_track_accept_reviews_frames_and_reject_reopens_them(proj):
    with proj.open_video("demo_crossing") as v:
        store = ReviewStore(v)
        tracks = sorted(v.tracks)
        for t in tracks[:-1]:
            store.accept_track(t)
        assert store.progress().frames_reviewed == sum(
            1 for i in range(v.num_frames) if not set(v.frame_tracks(i)) - set(tracks[:-1]))
        store.accept_track(tracks[-1], "all good")
        p = store.progress()
        assert p.track_share == 1.0 and p.frame_share == 1.0
        store.reject_track(tracks[0], "swapped with the other person at frame 3")
        p = store.progress()
        assert p.tracks_rejected == 1 and p.tracks_accepted == len(tracks) - 1
        assert all(v.frame_state(i) == FrameState.PROPAGATED for i in v.track_frames(tracks[0]))
        with pytest.raises(InputError):
            store.accept_track(999)
        with pytest.raises(InputError):
            store.accept_frame(v.num_frames)


def test_decisions_need_a_writable_video_and_videos_do_not_share_files(proj):
    with proj.open_video("demo_mixed") as v:
        ReviewStore(v).accept_track(5, "ok")
        other = proj.open_video("demo_mixed")  # the lock is held: read-only
        assert other.readonly
        with pytest.raises(ReadOnlyError):
            ReviewStore(other).accept_frame(0)
        assert ReviewStore(other).latest("track", 5).decision == "accept"  # reading works
        other.close()
    with proj.open_video("demo_crossing") as v:
        assert ReviewStore(v).decisions == []
        ReviewStore(v).accept_frame(1)
    files = sorted(p.parent.name for p in proj.videos_dir.glob(f"*/{REVIEW_FILE}"))
    assert files == ["demo_crossing", "demo_mixed"]


def test_flags_open_resolved_and_dropped_when_a_frame_becomes_reference(proj):
    from annotator.stages.propagate import load_confidence, store_confidence

    with proj.open_video("demo_mixed") as v:
        store = ReviewStore(v)
        assert store.open_flags() is None and store.progress().open_flags is None
        flags = [Flag("low_iou", 2, 5, 0.8, "a", (1, 2)), Flag("dropped", 4, 6, 0.9, "b", (4,)),
                 Flag("class_flip", 3, 7, 0.7, "c", (2, 3), 8), Flag("fragment", 1, 4, 0.3, "d", (1,))]
        store.set_flags(flags)
        assert len(store.open_flags()) == 3  # the fragment is a hint
        store.accept_track(5)
        store.accept_track(7)  # a flip needs both tracks
        assert {f.kind for f in store.open_flags()} == {"dropped", "class_flip"}
        store.dismiss_flag(flags[2], "not a flip: reflections")
        store_confidence(v, 4, np.full(v.shape, 0.2, np.float32))
        store.accept_frame(4)  # now a reference: its confidence map and flags go
        assert load_confidence(v, 4) is None
        assert store.open_flags() == [] and all(f.frame != 4 for f in store.flags)


def test_report_rows_and_csv(proj, tmp_path):
    with proj.open_video("demo_mixed") as v:
        store = ReviewStore(v)
        store.accept_track(5, "fine, über-sharp")
        store.reject_frame(3, 'edge, "quoted"')
        store.comment("flag", "low_iou:2:5:0", "check the legs")
        with pytest.raises(InputError):
            store.comment("frame", 1, "  ")
        rows = store.rows()
    path = write_report_csv(tmp_path / "r.csv", rows)
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [r["target"] for r in got] == ["track", "frame", "flag"]
    assert got[0]["category"] == "person" and got[0]["comment"] == "fine, über-sharp"
    assert got[1]["frame_name"] == "00003" and got[1]["comment"] == 'edge, "quoted"'
    assert got[2]["flag"] == "low_iou:2:5:0" and got[2]["decision"] == "comment"


def test_malformed_review_file_is_a_clear_error(proj):
    with proj.open_video("demo_mixed") as v:
        (v.path / REVIEW_FILE).write_text('{"kind": "review", "schema_version": 1, "decisions": [{"x": 1}]}')
        with pytest.raises(ProjectError, match="malformed"):
            ReviewStore(v)


def test_cli_review_and_overview(proj, tmp_path, capsys):
    report, table = tmp_path / "review.csv", tmp_path / "overview.csv"
    args = ["review", str(proj.path), "--video", "demo_mixed", "--flags", "--accept-track", "5",
            "--accept-frame", "1-2", "--comment", "ok", "--report", str(report)]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "flags" in out and "tracks 1/" in out and report.exists()
    assert cli_main(["review", str(proj.path), "--video", "demo_mixed", "--comment", "x"]) == 2
    assert cli_main(["review", str(proj.path), "--video", "demo_mixed", "--accept-frame", "x-"]) == 2
    everything = tmp_path / "all_reviews.csv"
    assert cli_main(["overview", str(proj.path), "--csv", str(table), "--review-csv", str(everything)]) == 0
    with open(everything, newline="", encoding="utf-8") as fh:
        assert {r["video"] for r in csv.DictReader(fh)} == {"demo_mixed"}
    with open(table, newline="", encoding="utf-8") as fh:
        rows = {r["video"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"demo_mixed", "demo_crossing"}
    assert rows["demo_mixed"]["open_flags"] != "" and rows["demo_crossing"]["open_flags"] == ""
    assert int(rows["demo_mixed"]["reviewed"]) >= 2 and int(rows["demo_mixed"]["edit_actions"]) >= 2
