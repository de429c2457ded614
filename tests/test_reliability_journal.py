"""Journals survive crashes: the video journal's torn tail is cut (and reported), a damaged line in
the middle is an error naming it, and the edit history's crash recovery finds the right step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator.editing import EditSession, Paint
from annotator.errors import ProjectError
from annotator.project import Project
from resources.demo import write_demo_project

H, W = 48, 64


@pytest.fixture
def demo(tmp_path):
    return write_demo_project(tmp_path / "p", seed=6, num_frames=6, height=H, width=W, source=None)


def _crash(video) -> None:
    """Leave like a killed process: no save, no journal fold, only the lock is dropped."""
    video._journal.close()
    video._lock.release()
    video._closed = True


def _uniform_square(label: np.ndarray, size: int = 6) -> tuple[int, int, int]:
    for y in range(0, label.shape[0] - size, 2):
        for x in range(0, label.shape[1] - size, 2):
            box = label[y:y + size, x:x + size]
            if (box == box[0, 0]).all() and box[0, 0] != 0:
                return y, x, int(box[0, 0])
    raise AssertionError("no uniform square in the demo frame")


def test_history_recovery_checks_the_whole_frame_not_one_edit(demo):
    """Issue #11 item 6: three unflushed strokes A (paint), B (paint elsewhere), A' (A painted back
    to what it was). The PNG on disk is the original. Judging by the last stroke's area alone, the
    file looked up to date (A' equals the original there) and stroke B was silently lost."""
    video = Project.open(demo).open_video("demo_mixed")
    s = EditSession(video)
    f = 1
    original = s.label(f).copy()
    y, x, v = _uniform_square(original)
    sq = np.zeros((H, W), bool)
    sq[y:y + 6, x:x + 6] = True
    far = np.zeros((H, W), bool)
    by, bx = (y + 20) % (H - 8), (x + 30) % (W - 8)
    far[by:by + 5, bx:bx + 5] = True
    far &= ~sq
    other = next(t for t in video.tracks if t != v and t not in set(original[far].tolist()))
    s.apply(f, Paint(sq, other))
    s.apply(f, Paint(far, other))
    s.apply(f, Paint(sq, v))  # square A back to its original pixels
    expected = s.label(f).copy()
    assert not np.array_equal(expected, original)
    video.close()  # the session is never flushed: the PNG is still the original
    with Project.open(demo).open_video("demo_mixed") as again:
        s2 = EditSession(again)
        np.testing.assert_array_equal(s2.label(f), expected)
        assert f in s2.recovered
        assert len(s2.history) == 3
        s2.undo()
        s2.undo()
        s2.undo()
        np.testing.assert_array_equal(s2.label(f), original)


# --------------------------------------------------------------------------- the video journal
@pytest.fixture
def small(tmp_path):
    from tests import reliability_project as rp

    return rp.build(tmp_path / "s.vpsproj")


def _journal(path) -> Path:
    return path / "videos" / "v" / "journal.jsonl"


def test_torn_tail_is_cut_so_later_records_are_not_glued_on(small):
    from tests.reliability_project import PERSON

    video = Project.open(small).open_video("v")
    t1 = video.new_track(PERSON).id
    _crash(video)
    with open(_journal(small), "ab") as fh:
        fh.write(b'{"op":"track","id":99,"categ')  # killed mid-append
    torn = _journal(small).read_bytes()
    # a read-only opener ignores the tail and leaves the file alone (the writer may be alive)
    with Project.open(small).open_video("v", readonly=True) as ro:
        assert t1 in ro.tracks and 99 not in ro.tracks
        assert any("torn" in n for n in ro.recovery_notes)
    assert _journal(small).read_bytes() == torn
    video = Project.open(small).open_video("v")
    assert any("cut a torn last record" in n for n in video.recovery_notes), video.recovery_notes
    assert _journal(small).read_bytes().endswith(b"\n")
    t2 = video.new_track(PERSON).id  # appended after the cut, not glued onto the fragment
    label = video.read_label(0)
    label[20:, 28:] = t2
    video.write_label(0, label)
    _crash(video)
    with Project.open(small).open_video("v") as again:  # a second crash: everything still there
        assert {t1, t2} <= set(again.tracks)
        assert again.frame_tracks(0) == sorted(set(again.read_label(0).ravel().tolist()) - {0})
        assert again.recovery_notes == []


def test_garbage_line_in_the_middle_is_an_error_naming_it(small, capsys):
    from annotator import cli
    from tests.reliability_project import PERSON

    video = Project.open(small).open_video("v")
    for _ in range(3):
        video.new_track(PERSON)
    _crash(video)
    lines = _journal(small).read_bytes().split(b"\n")
    lines[1] = b'{"op":"track","id":1' + b"\xff garbage"
    _journal(small).write_bytes(b"\n".join(lines))
    before = _journal(small).read_bytes()
    with pytest.raises(ProjectError, match=r"journal.jsonl, line 2: damaged journal record"):
        Project.open(small).open_video("v")
    assert cli.main(["correct", str(small), "--video", "v", "delete", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err and err.count("\n") == 1
    assert _journal(small).read_bytes() == before  # nothing was changed
    assert not (small / "videos" / "v" / ".lock").exists()


def test_reader_ignores_a_live_writers_unfinished_transaction(small):
    writer = Project.open(small).open_video("v")
    original = writer.read_label(1)
    with writer.transaction("test", {"x": 1}):
        label = original.copy()
        label[label == 1] = 0
        writer.write_label(1, label)
        journal = _journal(small).read_bytes()
        with Project.open(small).open_video("v") as reader:  # locked: opens read-only
            assert reader.readonly
            assert 1 in reader.frame_tracks(1)  # the uncommitted record is not applied
            assert any("unfinished" in n for n in reader.recovery_notes)
        assert _journal(small).read_bytes() == journal  # and no file was touched
        assert (small / "videos" / "v" / ".txn").exists()
    assert 1 not in writer.frame_tracks(1)
    writer.close()
    with Project.open(small).open_video("v", readonly=True) as reader:
        assert 1 not in reader.frame_tracks(1) and reader.recovery_notes == []
    assert not (small / "videos" / "v" / ".txn").exists()


def test_crash_during_rollback_is_finished_by_the_next_open(small):
    """A transaction killed mid-way, then the opener rolling it back killed too: the third open
    completes the rollback (it is idempotent)."""
    import os
    import subprocess
    import sys

    from annotator.store import KILL_AFTER_WRITES_ENV

    with Project.open(small).open_video("v", readonly=True) as video:
        originals = [video.read_label(i) for i in range(video.num_frames)]
    repo = Path(__file__).resolve().parent.parent
    edit = ("import sys\nfrom annotator.project import Project\nv = Project.open(sys.argv[1]).open_video('v')\n"
            "with v.transaction('test'):\n    for i in range(v.num_frames):\n        lab = v.read_label(i)\n"
            "        lab[lab == 1] = 0\n        v.write_label(i, lab)\n")
    reopen = "import sys\nfrom annotator.project import Project\nProject.open(sys.argv[1]).open_video('v')\n"
    for code, kill_at in ((edit, "14"), (reopen, "3")):  # mid-transaction, then mid-rollback
        env = {**os.environ, "PYTHONPATH": str(repo), KILL_AFTER_WRITES_ENV: kill_at}
        proc = subprocess.run([sys.executable, "-c", code, str(small)], env=env, cwd=repo, timeout=120)
        assert proc.returncode == -9
        assert (small / "videos" / "v" / ".txn").exists()
    with Project.open(small).open_video("v") as again:
        assert any("rolled back" in n for n in again.recovery_notes)
        for i in range(again.num_frames):
            np.testing.assert_array_equal(again.read_label(i), originals[i])
            assert again.frame_tracks(i) == sorted(set(originals[i].ravel().tolist()) - {0})
    assert not (small / "videos" / "v" / ".txn").exists()
