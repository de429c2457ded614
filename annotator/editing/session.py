"""``EditSession``: the one entry point the GUI (and scripts) use to edit a video's label maps.

It ties together the pieces: an :class:`Operation` computes a change, the session updates the
frame (label map, frame state, per-track provenance: a human touched these tracks) and records a
:class:`Command` in the undo history persisted at ``video.path / "history"``.

Why label files are written behind (``write_through=False``, the default): encoding and fsyncing
a 720p label PNG costs 20-70 ms on the target machine, far over the 16 ms a brush stroke may take.
So an edit changes the label map in memory and appends its (small, compressed) patch to the
history journal at once; the frame's PNG is written by :meth:`flush` - the GUI calls it on frame
change and with autosave - or automatically when too many frames are pending. Nothing is lost by
a crash: the history journal holds every applied patch, and a new session *recovers* frames whose
PNG is behind (or ahead of) the journal by replaying patches (:attr:`recovered`).
Anything else that writes label maps (propagation, track deletion) must run after :meth:`flush`.

Typical use::

    s = EditSession(video)
    s.apply(frame, Paint(stroke_mask(shape, pts, 8), track_id=5))
    with s.group("copy car to 3 frames"):
        for f in (4, 5, 6):
            s.apply(f, CopyTrackFromFrame(5, source_frame=3))
    s.undo(); s.redo()
    s.flush()          # or s.close()
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator import panoptic
from annotator.editing.history import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_STEPS,
    Command,
    FramePatch,
    History,
    region_crc,
)
from annotator.editing.operations import Change, EditContext, EditError, Operation
from annotator.errors import InputError, ProjectError
from annotator.project import FrameState, Video, record_edit

HISTORY_FILE = "history"

#: frame state after a human edit, by state before (a corrected machine result is "refined")
_STATE_AFTER_EDIT = {
    FrameState.UNLABELLED: FrameState.MANUAL,
    FrameState.PROPAGATED: FrameState.REFINED,
    FrameState.PREANNOTATED: FrameState.REFINED,
}


def _ids(values: np.ndarray) -> set[int]:
    """Non-void track ids among ``values`` (bincount: far cheaper than np.unique on a big box)."""
    return {int(i) for i in panoptic.present_ids(np.ascontiguousarray(values, dtype=panoptic.LABEL_DTYPE))}


class HistoryMismatch(ProjectError):
    """Undo/redo found a label map that was changed outside the history."""


@dataclass
class _Pending:
    """A frame edited in memory whose PNG is not written yet."""

    label: np.ndarray
    state: FrameState
    provenance: dict[int, FrameState]


class EditSession:
    """Edits of one open video with undo/redo; not thread-safe (call it from the GUI thread).

    ``locked`` is the set of locked track ids (the track panel's lock toggles; mutable: change it
    at any time). ``persist=False`` keeps the history in memory only; a read-only video never
    persists and cannot be edited. ``write_through=True`` writes every edit's PNG immediately
    (scripts); the default writes behind (see the module docstring) - call :meth:`flush`.
    """

    def __init__(self, video: Video, locked: Iterable[int] = (), max_steps: int = DEFAULT_MAX_STEPS,
                 max_bytes: int = DEFAULT_MAX_BYTES, persist: bool = True, cache_frames: int = 8,
                 write_through: bool = False, max_pending: int = 16) -> None:
        self.video = video
        self.locked: set[int] = set(locked)
        self.write_through = write_through
        self.max_pending = max(1, max_pending)
        path: Path | None = Path(video.path) / HISTORY_FILE if persist and not video.readonly else None
        self.history = History(path, max_steps=max_steps, max_bytes=max_bytes)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._group: list[FramePatch] | None = None
        #: per pending frame, ids of the patches applied or reverted since its file was written
        self._unsaved: dict[int, set[int]] = {}
        #: frames whose label file disagreed with the history journal and were repaired on open
        self.recovered: list[int] = []
        if path is not None:
            self.recovered = self._recover()

    # ----------------------------------------------------------------- label access

    def label(self, frame: int) -> np.ndarray:
        """The current label map of ``frame`` (read-only array; edit through :meth:`apply`)."""
        pend = self._pending.get(frame)
        if pend is not None:
            return pend.label
        arr = self._cache.get(frame)
        if arr is None:
            arr = self.video.read_label(frame)
            arr.setflags(write=False)
            self._remember(frame, arr)
        else:
            self._cache.move_to_end(frame)
        return arr

    def frame_state(self, frame: int) -> FrameState:
        pend = self._pending.get(frame)
        return pend.state if pend is not None else self.video.frame_state(frame)

    def provenance(self, frame: int) -> dict[int, FrameState]:
        """Per-track states on ``frame`` (tracks with pixels only), pending edits included."""
        pend = self._pending.get(frame)
        if pend is None:
            return self.video.provenance(frame)
        present = {int(i) for i in panoptic.present_ids(pend.label)}
        return {t: s for t, s in pend.provenance.items() if t in present}

    def _raw_provenance(self, frame: int) -> dict[int, FrameState]:
        """Provenance without the full-frame scan; may list tracks whose last pixels were just removed
        (pruned on write), which keeps a brush stroke's cost proportional to its size."""
        pend = self._pending.get(frame)
        return dict(pend.provenance) if pend is not None else self.video.provenance(frame)

    def _remember(self, frame: int, arr: np.ndarray) -> None:
        self._cache[frame] = arr
        self._cache.move_to_end(frame)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)

    def invalidate(self, frame: int | None = None) -> None:
        """Forget cached label maps (after something else wrote the frame, e.g. propagation).

        Pending edits are kept: :meth:`flush` before letting anything else write label maps.
        """
        if frame is None:
            self._cache.clear()
        else:
            self._cache.pop(frame, None)

    def context(self) -> EditContext:
        return EditContext(locked=frozenset(self.locked), tracks=self.video.tracks, read_label=self.label)

    # ----------------------------------------------------------------- saving

    @property
    def dirty(self) -> list[int]:
        """Frames edited in memory whose label file is not written yet."""
        return list(self._pending)

    def flush(self, frames: Iterable[int] | None = None) -> list[int]:
        """Write pending frames (all by default) to the video; returns the frames written."""
        todo = list(self._pending) if frames is None else [f for f in frames if f in self._pending]
        for f in todo:
            pend = self._pending[f]
            self._store(f, pend.label, pend.state, pend.provenance)
            del self._pending[f]
            self._remember(f, pend.label)
        return todo

    def close(self) -> None:
        """Flush pending frames (the video itself stays open; the caller closes it)."""
        if not self.video.readonly:
            self.flush()

    def __enter__(self) -> EditSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _store(self, frame: int, label: np.ndarray, state: FrameState, prov: dict[int, FrameState]) -> None:
        self._unsaved.pop(frame, None)
        present = {int(i) for i in panoptic.present_ids(label)}
        prov = {t: FrameState(s) for t, s in prov.items() if t in present}
        self.video.write_label(frame, label, state=state, provenance=prov)

    def _write(self, frame: int, label: np.ndarray, state: FrameState, prov: dict[int, FrameState]) -> None:
        label.setflags(write=False)
        if self.write_through:
            self._store(frame, label, state, prov)
            self._pending.pop(frame, None)
            self._remember(frame, label)
            return
        self._cache.pop(frame, None)
        self._pending[frame] = _Pending(label, state, dict(prov))
        self._pending.move_to_end(frame)
        while len(self._pending) > self.max_pending:
            self.flush([next(iter(self._pending))])

    # ----------------------------------------------------------------- editing

    def preview(self, frame: int, op: Operation) -> Change | None:
        """What ``op`` would change, without writing anything (for a hover preview)."""
        return op.apply(self.label(frame), self.context())

    def apply(self, frame: int, op: Operation, name: str | None = None) -> Change | None:
        """Apply ``op`` to ``frame`` and record it for undo; returns the change (``None``: no-op).

        Raises :class:`EditError` (nothing changed) for a locked or unknown target track, bad
        geometry, or a read-only video.
        """
        if self.video.readonly:
            raise EditError(self.video.lock_message or f"video {self.video.id!r} is open read-only; "
                            "edits are disabled")
        current = self.label(frame)
        change = op.apply(current, self.context())
        if change is None:
            return None
        before = current[change.box]
        new = current.copy()
        new[change.box] = change.after
        diff = change.after != before
        taken = _ids(before[diff])
        changed_ids = taken | _ids(change.after[diff])
        state_before = self.frame_state(frame)
        prov_before = self._raw_provenance(frame)
        state_after = _STATE_AFTER_EDIT.get(state_before, state_before)
        touched = FrameState.REFINED if state_after == FrameState.REFINED else FrameState.MANUAL
        prov_after = dict(prov_before)
        for t in changed_ids:
            prov_after[t] = touched
        if self._removes_a_track(taken, change.after, new):
            # The human decided a track is not on this frame (deleted or erased it whole). Only the
            # remaining labels can carry that decision: marking them human makes the frame a whole
            # reference, so re-propagation cannot bring the removed track back around them.
            for t in _ids(new):
                prov_after[t] = touched
        self._write(frame, new, state_after, prov_after)
        patch = FramePatch.make(frame, change.y0, change.x0, before, change.after,
                                state_before=state_before.value, state_after=state_after.value,
                                prov_before={str(k): FrameState(v).value for k, v in prov_before.items()},
                                prov_after={str(k): FrameState(v).value for k, v in prov_after.items()})
        self._mark_unsaved(frame, [patch])
        if self._group is not None:
            self._group.append(patch)
        else:
            self._push(Command(name or op.describe(), [patch]))
        return change

    @staticmethod
    def _removes_a_track(taken: set[int], after: np.ndarray, new: np.ndarray) -> bool:
        """Whether an edit took a track off the frame entirely: only tracks that lost pixels and are
        gone from the edited box are checked on the whole frame (rare: a brush stroke keeps them)."""
        return any(not (after == t).any() and not (new == t).any() for t in taken)

    def _push(self, cmd: Command) -> None:
        """Record ``cmd``; first write pending frames touched by the steps the push forgets
        (the redo stack, the oldest steps), since recovery could not replay those any more."""
        dropped = self.history.dropped_by_push(cmd) if self._unsaved else []
        self.flush({p.frame for c in dropped for p in c.patches if id(p) in self._unsaved.get(p.frame, ())})
        self.history.push(cmd)
        record_edit(self.video, cmd)  # timestamps for the overview's active-time and action counts

    def _mark_unsaved(self, frame: int, patches: Iterable[FramePatch]) -> None:
        if frame in self._pending:
            self._unsaved.setdefault(frame, set()).update(id(p) for p in patches)

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Make every :meth:`apply` inside the block one undo step (e.g. a multi-frame copy)."""
        if self._group is not None:  # nested: the outer group owns the step
            yield
            return
        self._group = []
        try:
            yield
        finally:
            patches, self._group = self._group, None
            if patches:
                self._push(Command(name, patches))

    # ----------------------------------------------------------------- undo / redo

    @property
    def can_undo(self) -> bool:
        return self.history.can_undo

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo

    def _revert(self, cmd: Command, forward: bool) -> list[int]:
        """Apply a command's patches (``forward``) or their inverse, all frames or none."""
        patches = cmd.patches if forward else list(reversed(cmd.patches))
        work: dict[int, tuple[np.ndarray, FrameState, dict[int, FrameState]]] = {}
        restored: set[int] = set()
        for p in patches:  # on working copies first, so a mismatch leaves every frame untouched
            if p.frame not in work:
                work[p.frame] = (self.label(p.frame).copy(), self.frame_state(p.frame),
                                 self._raw_provenance(p.frame))
            arr = work[p.frame][0]
            expect = p.crc_before if forward else p.crc_after
            if arr[p.box].shape != (p.h, p.w) or region_crc(arr[p.box]) != expect:
                raise HistoryMismatch(
                    f"cannot {'redo' if forward else 'undo'} '{cmd.name}': frame {p.frame} of video "
                    f"{self.video.id!r} was changed outside the undo history (e.g. by propagation); "
                    "the history has been cleared")
            values = p.after_array() if forward else p.before_array()
            other = p.before_array() if forward else p.after_array()
            arr[p.box] = values
            restored |= _ids(values)
            # revert only what the command changed: a state or provenance set since (a review,
            # propagated tracks) stays; the command's own tracks get their old provenance back
            old_state, new_state = (p.state_before, p.state_after) if forward else (p.state_after, p.state_before)
            state, prov = work[p.frame][1], dict(work[p.frame][2])
            if state.value == old_state:
                state = FrameState(new_state)
            src, dst = (p.prov_before, p.prov_after) if forward else (p.prov_after, p.prov_before)
            for t in _ids(values) | _ids(other) | {int(k) for k in set(src) | set(dst) if src.get(k) != dst.get(k)}:
                if str(t) in dst:
                    prov[t] = FrameState(dst[str(t)])
                else:
                    prov.pop(t, None)
            work[p.frame] = (arr, state, prov)
        tracks = self.video.tracks
        missing = sorted(i for i in restored if i != panoptic.VOID and i not in tracks)
        if missing:  # only the restored boxes can bring back ids: no full-frame scan
            raise EditError(f"cannot {'redo' if forward else 'undo'} '{cmd.name}': it would bring back pixels "
                            f"of deleted track(s) {missing[:5]} on frame(s) {cmd.frames}; restore the track first")
        for f, (arr, state, prov) in work.items():
            self._write(f, arr, state, prov)
            self._mark_unsaved(f, [p for p in patches if p.frame == f])
        return cmd.frames

    def undo(self) -> list[int]:
        """Undo the newest step; returns the frames it changed (empty if there was nothing to undo)."""
        cmd = self.history.peek_undo()
        if cmd is None:
            return []
        try:
            frames = self._revert(cmd, forward=False)
        except HistoryMismatch:
            self._drop_history()
            raise
        self.history.undo()
        record_edit(self.video, cmd, op="undo")
        return frames

    def _drop_history(self) -> None:
        """Forget the history after a mismatch; pending frames are written first, since crash
        recovery could no longer replay their patches."""
        self.flush()
        self.history.drop_undo()

    def redo(self) -> list[int]:
        """Redo the newest undone step; returns the frames it changed."""
        cmd = self.history.peek_redo()
        if cmd is None:
            return []
        try:
            frames = self._revert(cmd, forward=True)
        except HistoryMismatch:
            self._drop_history()
            raise
        self.history.redo()
        record_edit(self.video, cmd, op="redo")
        return frames

    # ----------------------------------------------------------------- crash recovery

    def _recover(self) -> list[int]:
        """Bring label files in line with the history journal after a crash; returns repaired frames.

        Per frame, the history gives a timeline of patches (undo stack, then the redo stack in
        redo order) and the position the user was at. If the file on disk matches another position
        of that timeline (edits not flushed, or an unflushed undo), the patches in between are
        replayed and the frame is written. A file that matches no position is left alone: undo
        will then report the mismatch. The position is judged on the frame's whole timeline
        (:func:`_matches_position`), not on one edit's area: a later stroke that puts an area back
        as it was must not make a file that lacks an earlier stroke elsewhere look up to date.
        """
        seqs: dict[int, list[FramePatch]] = {}
        here: dict[int, int] = {}
        for k, cmd in enumerate(self.history.undo_commands + self.history.redo_commands):
            for p in cmd.patches:
                seqs.setdefault(p.frame, []).append(p)
            if k == len(self.history) - 1:
                here = {f: len(s) for f, s in seqs.items()}
        repaired = []
        for f, seq in seqs.items():
            if not 0 <= f < self.video.num_frames:
                continue
            n = here.get(f, 0)
            disk = self.video.read_label(f)

            def at(j: int, arr: np.ndarray = disk, seq: list[FramePatch] = seq) -> bool:
                return _matches_position(arr, seq, j)

            if at(n):
                continue
            order = sorted(range(len(seq) + 1), key=lambda j: (abs(j - n), j))
            pos = next((j for j in order if j != n and at(j)), None)
            if pos is None:
                continue
            arr = disk.copy()
            ok = True
            steps = seq[pos:n] if pos < n else list(reversed(seq[n:pos]))
            for p in steps:
                expect, value = ((p.crc_before, p.after_array()) if pos < n else (p.crc_after, p.before_array()))
                if region_crc(arr[p.box]) != expect:
                    ok = False
                    break
                arr[p.box] = value
            if not ok:
                continue
            last = seq[n - 1] if n > 0 else seq[0]
            state = FrameState(last.state_after if n > 0 else last.state_before)
            prov = {int(k): FrameState(v) for k, v in (last.prov_after if n > 0 else last.prov_before).items()}
            try:
                self._store(f, arr, state, prov)
            except (ProjectError, InputError):
                continue
            repaired.append(f)
        return repaired


def _matches_position(disk: np.ndarray, seq: list[FramePatch], j: int) -> bool:
    """Whether ``disk`` is the frame as it was after the first ``j`` patches of ``seq``.

    Checked on every patched area: walking back from position ``j`` to the start, each patch must
    find its "after" pixels, and walking forward over the whole timeline each must find its
    "before" pixels. So a pixel counts as the last patch at or before ``j`` that covers it left
    it, or as it was before the first patch after ``j`` that covers it. A quick check of patch
    ``j``'s own area first keeps the common case (one candidate) cheap.
    """
    first = seq[j - 1] if j > 0 else seq[0]
    if region_crc(disk[first.box]) != (first.crc_after if j > 0 else first.crc_before):
        return False
    arr = disk.copy()
    for p in reversed(seq[:j]):
        if arr[p.box].shape != (p.h, p.w) or region_crc(arr[p.box]) != p.crc_after:
            return False
        arr[p.box] = p.before_array()
    for p in seq:
        if arr[p.box].shape != (p.h, p.w) or region_crc(arr[p.box]) != p.crc_before:
            return False
        arr[p.box] = p.after_array()
    return True
