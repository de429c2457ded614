"""Undo/redo: property test over random edit sequences, persistence across reopen, crash recovery, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.editing import (
    CopyTrackFromFrame,
    DeleteTrackOnFrame,
    EditError,
    EditSession,
    Erase,
    FillRegion,
    History,
    HistoryMismatch,
    MovePixels,
    Paint,
    PaintMode,
    polygon_mask,
    stroke_mask,
)
from annotator.editing.history import MAGIC
from annotator.project import FrameState, Project
from resources.demo import write_demo_project

H, W = 72, 128
LOCKED = 2  # a stuff track (wall) kept locked in the property test


@pytest.fixture(scope="module")
def project_path(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("hist") / "p", seed=5, num_frames=20, height=H, width=W,
                              source=None)


@pytest.fixture
def fresh_project(tmp_path):
    return write_demo_project(tmp_path / "p", seed=6, num_frames=20, height=H, width=W, source=None)


def _labels(session, n):
    return [session.label(i).copy() for i in range(n)]


# --------------------------------------------------------------------------- property test

_op = st.one_of(
    st.tuples(st.just("brush"), st.integers(0, 3), st.integers(1, 9), st.lists(
        st.tuples(st.floats(-10, W + 10), st.floats(-10, H + 10)), min_size=1, max_size=4), st.floats(0.5, 9),
        st.sampled_from(list(PaintMode))),
    st.tuples(st.just("erase"), st.integers(0, 3), st.lists(
        st.tuples(st.floats(0, W), st.floats(0, H)), min_size=1, max_size=3), st.floats(1, 12)),
    st.tuples(st.just("poly"), st.integers(0, 3), st.integers(1, 9), st.integers(0, W - 20), st.integers(0, H - 20),
              st.integers(3, 40)),
    st.tuples(st.just("fill"), st.integers(0, 3), st.integers(1, 9), st.integers(0, W - 1), st.integers(0, H - 1)),
    st.tuples(st.just("move"), st.integers(0, 3), st.integers(1, 9), st.integers(0, 9)),
    st.tuples(st.just("delete"), st.integers(0, 3), st.integers(1, 9)),
    st.tuples(st.just("copy"), st.integers(0, 3), st.integers(1, 9), st.integers(0, 3)),
)


def _make(op):
    kind, frame = op[0], op[1]
    if kind == "brush":
        return frame, Paint(stroke_mask((H, W), op[3], op[4]), op[2], op[5])
    if kind == "erase":
        return frame, Erase(stroke_mask((H, W), op[2], op[3]))
    if kind == "poly":
        x, y, s = op[3], op[4], op[5]
        return frame, Paint(polygon_mask((H, W), [(x, y), (x + s, y + s // 3), (x + s // 2, y + s)]), op[2])
    if kind == "fill":
        return frame, FillRegion((op[3], op[4]), op[2])
    if kind == "move":
        return frame, MovePixels(op[2], op[3])
    if kind == "delete":
        return frame, DeleteTrackOnFrame(op[2])
    return frame, CopyTrackFromFrame(op[2], op[3])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=60), group_at=st.integers(0, 60))
def test_undo_all_redo_all_property(project_path, ops, group_at):
    video = Project.open(project_path).open_video("demo_mixed")
    try:
        s = EditSession(video, locked={LOCKED}, persist=False, max_steps=1000)
        n = video.num_frames
        original = _labels(s, n)
        applied = 0
        for k, op in enumerate(ops):
            frame, operation = _make(op)
            locked_before = s.label(frame) == LOCKED
            try:
                if k == group_at:  # one grouped multi-frame step
                    with s.group("grouped"):
                        s.apply(frame, operation)
                        s.apply((frame + 1) % n, operation)
                else:
                    s.apply(frame, operation)
            except EditError:
                pass  # locked/unknown target: refused, nothing changed
            assert np.array_equal(s.label(frame) == LOCKED, locked_before)  # locked track never changes
            applied = len(s.history)
        edited = _labels(s, n)
        assert applied == len(s.history)
        while s.can_undo:
            s.undo()
        for a, b in zip(_labels(s, n), original, strict=True):
            assert np.array_equal(a, b)
        while s.can_redo:
            s.redo()
        for a, b in zip(_labels(s, n), edited, strict=True):
            assert np.array_equal(a, b)
    finally:
        video.readonly = True  # nothing was flushed; do not let close() touch the shared project
        video.close()


# --------------------------------------------------------------------------- session behaviour


def test_states_provenance_and_undo_restore_them(fresh_project):
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        video.set_frame_state(1, FrameState.PROPAGATED)
        s = EditSession(video)
        before_prov = video.provenance(1)
        s.apply(1, Paint(stroke_mask((H, W), [(20, 20), (60, 30)], 5), 5))
        assert s.frame_state(1) == FrameState.REFINED
        assert s.provenance(1)[5] == FrameState.REFINED
        assert s.dirty == [1]
        assert s.flush() == [1] and s.dirty == []
        assert video.frame_state(1) == FrameState.REFINED
        s.undo()
        s.flush()
        assert video.frame_state(1) == FrameState.PROPAGATED
        assert video.provenance(1) == before_prov
        s.apply(0, Paint(stroke_mask((H, W), [(5, 5)], 3), 6))
        assert s.frame_state(0) == FrameState.REVIEWED  # a human state stays; touched track is manual
        assert s.provenance(0)[6] == FrameState.MANUAL


def test_history_survives_reopen(fresh_project):
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video)
        original = _labels(s, video.num_frames)
        for k in range(30):
            s.apply(k % 4, Paint(stroke_mask((H, W), [(3 * k, 10), (3 * k + 20, 60)], 3), 5 + k % 4))
        s.undo()
        s.undo()
        edited = _labels(s, video.num_frames)
        s.close()
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video)
        assert s.recovered == [] and s.history.load_warning == ""
        assert len(s.history) == 28 and s.history.redo_depth == 2
        for a, b in zip(_labels(s, video.num_frames), edited, strict=True):
            assert np.array_equal(a, b)
        while s.can_undo:
            s.undo()
        s.close()
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        for i in range(video.num_frames):
            assert np.array_equal(video.read_label(i), original[i])
        s = EditSession(video)
        assert s.history.redo_depth == 30
        s.redo()
        assert s.history.redo_name.startswith("paint")


def test_unflushed_edits_recovered_after_crash(fresh_project):
    video = Project.open(fresh_project).open_video("demo_mixed")
    s = EditSession(video)
    s.apply(0, Paint(stroke_mask((H, W), [(10, 10), (90, 50)], 6), 7))
    s.apply(2, Erase(stroke_mask((H, W), [(40, 40)], 9)))
    s.apply(0, FillRegion((100, 5), 8))
    s.flush([2])
    s.undo()  # undo of the fill: in memory only
    expected = _labels(s, video.num_frames)
    video.close()  # the session is never flushed: frames 0 was left behind on disk
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video)
        assert s.recovered == [0]
        for a, b in zip(_labels(s, video.num_frames), expected, strict=True):
            assert np.array_equal(a, b)
        assert s.history.redo_depth == 1
        s.redo()
        assert (s.label(0)[0:2, 100] == 8).all()


def test_change_outside_history_is_detected(fresh_project):
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video, write_through=True)
        s.apply(1, Paint(stroke_mask((H, W), [(30, 30)], 6), 5))
        assert video.read_label(1)[30, 30] == 5  # write-through
        label = video.read_label(1)
        label[25:35, 25:35] = 3
        video.write_label(1, label)  # e.g. propagation
        s.invalidate(1)
        with pytest.raises(HistoryMismatch, match="changed outside"):
            s.undo()
        assert not s.can_undo and not s.can_redo
        assert np.array_equal(video.read_label(1), label)


def test_undo_refuses_deleted_track_with_clear_message(fresh_project):
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video, write_through=True)
        thing = int(video.read_label(0).max())
        assert thing >= 5
        assert s.apply(0, MovePixels(thing, 1)) is not None  # the thing's pixels go to the sky
        assert s.apply(1, Paint(stroke_mask((H, W), [(5, 5)], 2), 3)) is not None
        video.delete_track(thing)  # gone from frame 0 already; deleting it clears other frames
        s.invalidate()
        s.undo()  # frame 1 step: fine
        with pytest.raises(EditError, match="deleted track"):
            s.undo()
        assert s.can_undo  # history kept: restoring the track makes undo possible again


def test_readonly_video_cannot_be_edited(fresh_project):
    proj = Project.open(fresh_project)
    with proj.open_video("demo_mixed", readonly=True) as video:
        s = EditSession(video)
        assert s.history.path is None
        with pytest.raises(EditError, match="read-only"):
            s.apply(0, Paint(stroke_mask((H, W), [(5, 5)], 2), 6))


def test_bounds_steps_and_memory(fresh_project):
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video, persist=False, max_steps=250)
        for k in range(260):
            s.apply(k % 4, Paint(stroke_mask((H, W), [(k % W, (7 * k) % H)], 2), 5 + k % 2))
        assert len(s.history) == 250  # >= 200 steps kept, oldest dropped
        n100 = s.history.nbytes
        assert 0 < n100 < 250 * 4000  # small patches, not frames (a frame is 18 kB here)
        small = EditSession(video, persist=False, max_bytes=20_000)
        for k in range(200):
            small.apply(k % 4, Paint(stroke_mask((H, W), [(k % W, 30)], 8), 5 + k % 3))
            assert small.history.nbytes <= 20_000
        assert 1 <= len(small.history) < 200
        small.flush()


def test_journal_torn_tail_and_garbage(tmp_path):
    path = tmp_path / "history"
    h = History(path)
    from annotator.editing.history import Command, FramePatch

    for k in range(5):
        a = np.full((3, 4), k, np.uint16)
        h.push(Command(f"c{k}", [FramePatch.make(0, 1, 2, a, a + 1)]))
    h.undo()
    with path.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a record cut short by a crash
    h2 = History(path)
    assert "torn" in h2.load_warning or "damaged" in h2.load_warning
    assert len(h2) == 4 and h2.redo_depth == 1 and h2.undo_name == "c3"
    cmd = h2.peek_undo()
    assert np.array_equal(cmd.patches[0].after_array(), np.full((3, 4), 4, np.uint16))
    path.write_bytes(b"not a history")
    h3 = History(path)
    assert "not a history" in h3.load_warning and len(h3) == 0
    assert path.read_bytes() == MAGIC
    with pytest.raises(ValueError):
        History(None, max_steps=0)


# --------------------------------------------------------------------------- QA regressions (crash recovery)


def test_unflushed_undo_survives_crash_after_new_edit(fresh_project):
    """An undo kept in memory, then a new edit (which clears the redo stack): a crash must not
    bring back the undone stroke - the undo was acknowledged."""
    video = Project.open(fresh_project).open_video("demo_mixed")
    s = EditSession(video)
    original = s.label(1).copy()
    s.apply(1, Paint(stroke_mask((H, W), [(30, 30)], 6), 5))
    s.flush()
    s.undo()  # frame 1 back to the original, in memory only
    s.apply(2, Paint(stroke_mask((H, W), [(60, 30)], 6), 5))  # clears the redo stack
    expected = _labels(s, video.num_frames)
    video.close()  # crash: nothing flushed
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video)
        assert np.array_equal(s.label(1), original)
        for a, b in zip(_labels(s, video.num_frames), expected, strict=True):
            assert np.array_equal(a, b)
        s.undo()
        assert not s.can_undo


def test_unflushed_edits_survive_crash_when_oldest_steps_are_dropped(fresh_project):
    """Edits of a frame never flushed while the step bound drops its oldest patches: nothing lost."""
    video = Project.open(fresh_project).open_video("demo_mixed")
    s = EditSession(video, max_steps=3)
    for k in range(5):
        s.apply(1, Paint(stroke_mask((H, W), [(10 + 25 * k, 30)], 5), 5 + k % 3))
    expected = s.label(1).copy()
    video.close()  # crash
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        s = EditSession(video, max_steps=3)
        assert np.array_equal(s.label(1), expected)
        assert len(s.history) == 3


def test_pending_edits_survive_crash_after_history_mismatch(fresh_project):
    """Undo refused because a frame changed outside the history clears the history: edits of other
    frames not yet written must not depend on it any more."""
    video = Project.open(fresh_project).open_video("demo_mixed")
    s = EditSession(video)
    s.apply(1, Paint(stroke_mask((H, W), [(30, 30)], 6), 5))  # pending
    s.apply(2, Paint(stroke_mask((H, W), [(60, 30)], 6), 5))
    s.flush([2])
    label = video.read_label(2)
    label[25:35, 55:65] = 3
    video.write_label(2, label)  # e.g. propagation
    s.invalidate(2)
    expected = s.label(1).copy()
    with pytest.raises(HistoryMismatch):
        s.undo()
    video.close()  # crash: frame 1 never flushed by the session
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        assert np.array_equal(EditSession(video).label(1), expected)


def test_undo_keeps_state_and_provenance_changed_outside_the_edit(fresh_project):
    """Undo reverts what the stroke changed, not the frame's whole state: a review or the
    provenance of tracks propagated since the stroke survive it."""
    with Project.open(fresh_project).open_video("demo_mixed") as video:
        video.set_frame_state(1, FrameState.PROPAGATED)
        s = EditSession(video, write_through=True)
        s.apply(1, Paint(stroke_mask((H, W), [(20, 20)], 4), 5))
        assert video.frame_state(1) == FrameState.REFINED
        video.set_frame_state(1, FrameState.REVIEWED)  # a reviewer accepts the frame
        label = video.read_label(1)
        label[50:60, 100:110] = 7  # and propagation changes a track away from the stroke
        prov = video.provenance(1)
        prov[7] = FrameState.PROPAGATED
        video.write_label(1, label, state=FrameState.REVIEWED, provenance=prov)
        s.invalidate(1)
        s.undo()
        assert video.frame_state(1) == FrameState.REVIEWED
        assert video.provenance(1)[7] == FrameState.PROPAGATED
        assert 5 not in video.provenance(1) or video.provenance(1)[5] != FrameState.REFINED
        s.redo()
        assert video.provenance(1)[5] == FrameState.REFINED and video.frame_state(1) == FrameState.REVIEWED
