"""Corrections of the sparse tracking loop, each logged and undoable bit-exactly.

The annotator fixes what association got wrong with six operations (docs/architecture.md, the pipeline):
reassign a track's segments to another track from frame N on, swap two tracks from N on, merge
two tracks, split a track at N, change a track's class, delete a track. The GUI and the CLI
(``main.py correct``) call these same functions.

Every operation goes through an :class:`~annotator.stages.edit_record.EditRecorder`, which keeps
exactly what changed and saves an undo record; the recorder, :func:`undo_last`, :func:`undo_stack`
and :func:`confirmed_keyframes` live in ``annotator.stages.edit_record`` and are re-exported here.

Confirmed keyframes: a keyframe whose identities a human fixed (the first keyframe a frame-based
correction or a merge rewrote) or explicitly confirmed (:func:`confirm`) is a *fixed anchor* of
association - later runs match the carried tracks against it but never relabel it (the paper's
"the corrected instances are inputs of the tracker"). The set is not stored separately: each
logged step names the keyframes it confirmed / unconfirmed (``confirmed`` / ``unconfirmed`` in its
``video.json`` event) and :func:`confirmed_keyframes` replays the steps not undone. So it is as
durable as the log (journaled), undone together with the step that set it, and never out of sync.

All or nothing: every operation (and :func:`undo_last`) runs inside one video transaction
(:meth:`annotator.project.Video.transaction`) together with its undo record and log event, so a
process killed at any write, or a full disk, leaves the operation either fully applied with a
working undo step or not applied at all (rolled back on the next open, or at once in the process).

Track ids are never reused (``Video.new_track``). Undoing a delete or a merge brings the removed
track back *with its old id* (``Video.restore_track``: the same object, so the same id). Undoing
a split deletes the split-off track: its id stays retired, as every deleted id does.
"""

from __future__ import annotations

from typing import Any

from annotator import panoptic
from annotator.errors import InputError
from annotator.project import MAIN_LAYER, Track, Video
from annotator.stages.edit_record import (
    CONFIRMED_KEY,
    UNCONFIRMED_KEY,
    UNDO_DIR,
    UNDOABLE_KINDS,
    CorrectionResult,
    EditRecorder,
    confirmed_keyframes,
    propagated_since,
    transactional,
    undo_last,
    undo_stack,
    video_transaction,
)

__all__ = ["CONFIRMED_KEY", "UNCONFIRMED_KEY", "UNDO_DIR", "UNDOABLE_KINDS", "CorrectionResult", "EditRecorder",
           "confirm", "confirmed_keyframes", "delete", "merge", "propagated_since", "reassign", "set_class",
           "split", "swap", "touched_tracks", "transactional", "unconfirm", "undo_last", "undo_stack",
           "video_transaction"]


# ----------------------------------------------------------------- operations
def _require_track(video: Video, track_id: int) -> Track:
    t = video.tracks.get(int(track_id))
    if t is None:
        known = ", ".join(str(i) for i in sorted(video.tracks)[:20]) or "none"
        raise InputError(f"no track {track_id} in video {video.id!r} (tracks: {known})")
    return t


def _same_category(video: Video, a: Track, b: Track, op: str) -> None:
    if a.category_id != b.category_id:
        ca, cb = video.taxonomy.get(a.category_id).name, video.taxonomy.get(b.category_id).name
        raise InputError(f"{op}: track {a.id} is {ca!r} but track {b.id} is {cb!r}; "
                         f"change the class first (set-class) so both tracks are the same category")


def _check_frame(video: Video, frame: int) -> int:
    if not 0 <= int(frame) < video.num_frames:
        raise InputError(f"frame {frame} out of range 0..{video.num_frames - 1} in video {video.id!r}")
    return int(frame)


def _relabel(rec: EditRecorder, frames: list[int], mapping: dict[int, int], layer: str = MAIN_LAYER) -> None:
    """Apply ``mapping`` (old id -> new id) on the given frames; provenance follows the pixels.

    Where a mapped track lands on a track already on the frame (merge), the unmapped track's
    provenance wins, since its pixels were not moved - unless only the mapped one is human work
    (manual/refined/reviewed): then the merged track is human on that frame, or the next dense
    propagation would overwrite the pixels the annotator refined.
    """
    v = rec.video
    for i in frames:
        old = v.read_label(i, layer)
        new = panoptic.remap(old, mapping)
        if layer != MAIN_LAYER:
            rec.write_label(i, new, old=old, layer=layer)
            continue
        prov_old = v.provenance(i)
        prov = {t: s for t, s in prov_old.items() if t not in mapping}
        for t, s in prov_old.items():
            if t in mapping:
                target = mapping[t]
                if target not in prov or (s.is_human and not prov[target].is_human):
                    prov[target] = s
        rec.write_label(i, new, old=old, provenance=prov)


def _confirm_anchor(rec: EditRecorder, frames: list[int]) -> None:
    """Confirm the first keyframe among ``frames`` (those a correction rewrote): the one the
    annotator fixed. Later keyframes are not frozen: association re-derives them from the anchor,
    so they follow the corrected identities and can still gain from a later re-run."""
    key = next((i for i in sorted(frames) if rec.video.is_keyframe(i)), None)
    if key is not None:
        rec.set_confirmed([key], True)


def _finish(rec: EditRecorder, own: bool, new_track: int | None = None) -> CorrectionResult:
    frames = rec.changed_frames()
    added, removed = rec.confirmed_changes()
    undo_id = rec.finish({"frames": len(frames)}) if own else None
    return CorrectionResult(rec.op, undo_id, frames, new_track, added, removed)


def _recorder(video: Video, recorder: EditRecorder | None, op: str, params: dict[str, Any]
              ) -> tuple[EditRecorder, bool]:
    if recorder is not None:
        recorder.params.setdefault("steps", []).append({"op": op, **params})
        return recorder, False
    return EditRecorder(video, op, params), True


@transactional("reassign")
def reassign(video: Video, track: int, to_track: int | None, from_frame: int = 0,
             recorder: EditRecorder | None = None) -> CorrectionResult:
    """From ``from_frame`` on, the pixels of ``track`` become ``to_track`` (None: a new track).

    Fixes an identity switch where one object continues under the wrong id. Where ``to_track``
    already has pixels on a frame, both become one segment of ``to_track``.
    """
    a = _require_track(video, track)
    from_frame = _check_frame(video, from_frame)
    frames = [i for i in video.track_frames(a.id) if i >= from_frame]
    if not frames:
        raise InputError(f"reassign: track {a.id} has no pixels from frame {from_frame} on")
    if to_track is not None:
        b = _require_track(video, to_track)
        if b.id == a.id:
            raise InputError(f"reassign: track {a.id} onto itself changes nothing")
        _same_category(video, a, b, "reassign")
    rec, own = _recorder(video, recorder, "reassign", {"track": a.id, "to": to_track, "from": from_frame})
    target = rec.new_track(a.category_id) if to_track is None else int(to_track)
    _relabel(rec, frames, {a.id: target})
    _confirm_anchor(rec, frames)
    return _finish(rec, own, target if to_track is None else None)


@transactional("swap")
def swap(video: Video, track_a: int, track_b: int, from_frame: int = 0,
         recorder: EditRecorder | None = None) -> CorrectionResult:
    """From ``from_frame`` on, tracks ``a`` and ``b`` exchange their pixels (fixes a crossing switch)."""
    a, b = _require_track(video, track_a), _require_track(video, track_b)
    if a.id == b.id:
        raise InputError(f"swap: track {a.id} with itself changes nothing")
    _same_category(video, a, b, "swap")
    from_frame = _check_frame(video, from_frame)
    frames = sorted({i for t in (a.id, b.id) for i in video.track_frames(t) if i >= from_frame})
    if not frames:
        raise InputError(f"swap: neither track {a.id} nor {b.id} has pixels from frame {from_frame} on")
    rec, own = _recorder(video, recorder, "swap", {"tracks": [a.id, b.id], "from": from_frame})
    _relabel(rec, frames, {a.id: b.id, b.id: a.id})
    _confirm_anchor(rec, frames)
    return _finish(rec, own)


@transactional("merge")
def merge(video: Video, keep: int, absorb: int, recorder: EditRecorder | None = None) -> CorrectionResult:
    """Track ``absorb`` becomes part of ``keep`` on every frame and layer, then is deleted."""
    a, b = _require_track(video, keep), _require_track(video, absorb)
    if a.id == b.id:
        raise InputError(f"merge: track {a.id} with itself changes nothing")
    _same_category(video, a, b, "merge")
    rec, own = _recorder(video, recorder, "merge", {"keep": a.id, "absorb": b.id})
    absorbed = video.track_frames(b.id)
    _relabel(rec, absorbed, {b.id: a.id})
    _confirm_anchor(rec, absorbed)
    for layer in video.layers():
        frames = [i for i in range(video.num_frames)
                  if video.has_label(i, layer) and (video.read_label(i, layer) == b.id).any()]
        _relabel(rec, frames, {b.id: a.id}, layer=layer)
    rec.delete_track(b.id)
    return _finish(rec, own)


@transactional("split")
def split(video: Video, track: int, at_frame: int, recorder: EditRecorder | None = None) -> CorrectionResult:
    """From ``at_frame`` on, ``track`` continues as a new track of the same class (returned)."""
    a = _require_track(video, track)
    at_frame = _check_frame(video, at_frame)
    frames = video.track_frames(a.id)
    after = [i for i in frames if i >= at_frame]
    if not after:
        raise InputError(f"split: track {a.id} has no pixels from frame {at_frame} on")
    if len(after) == len(frames):
        raise InputError(f"split: track {a.id} starts at frame {frames[0]} >= {at_frame}; nothing would "
                         "remain before the split (use reassign to give it another id)")
    rec, own = _recorder(video, recorder, "split", {"track": a.id, "at": at_frame})
    new_id = rec.new_track(a.category_id, a.note)
    _relabel(rec, after, {a.id: new_id})
    _confirm_anchor(rec, after)
    return _finish(rec, own, new_id)


@transactional("set-class")
def set_class(video: Video, track: int, category_id: int, recorder: EditRecorder | None = None
              ) -> CorrectionResult:
    """Change a track's category (thing <-> stuff allowed; its pixels do not change)."""
    a = _require_track(video, track)
    video.taxonomy.get(category_id)
    if a.category_id == int(category_id):
        raise InputError(f"set-class: track {a.id} already is {video.taxonomy.get(category_id).name!r}")
    rec, own = _recorder(video, recorder, "set_class",
                         {"track": a.id, "from_category": a.category_id, "category": int(category_id)})
    rec.set_category(a.id, category_id)
    return _finish(rec, own)


@transactional("delete")
def delete(video: Video, track: int, recorder: EditRecorder | None = None) -> CorrectionResult:
    """Delete a track and its pixels on every frame and layer (undo brings both back)."""
    a = _require_track(video, track)
    rec, own = _recorder(video, recorder, "delete", {"track": a.id, "category": a.category_id})
    rec.delete_track(a.id)
    return _finish(rec, own)


@transactional("confirm")
def confirm(video: Video, frame: int, recorder: EditRecorder | None = None) -> CorrectionResult:
    """Mark keyframe ``frame`` as confirmed: association keeps its ids and follows them afterwards.

    Why explicit: the annotator checked a keyframe (or fixed it with the drawing tools rather than
    a correction) and wants no later association run to relabel it.
    """
    frame = _check_frame(video, frame)
    if not video.is_keyframe(frame):
        raise InputError(f"confirm: frame {frame} is not a keyframe of video {video.id!r} "
                         f"(keyframes: {', '.join(map(str, video.keyframes[:20]))})")
    pending = confirmed_keyframes(video, recorder)
    if frame in pending:
        raise InputError(f"confirm: keyframe {frame} of video {video.id!r} is already confirmed")
    rec, own = _recorder(video, recorder, "confirm", {"frame": frame})
    rec.set_confirmed([frame], True)
    return _finish(rec, own)


@transactional("unconfirm")
def unconfirm(video: Video, frame: int, recorder: EditRecorder | None = None) -> CorrectionResult:
    """Drop the confirmation of ``frame``: the next association run may relabel it again."""
    frame = _check_frame(video, frame)
    pending = confirmed_keyframes(video, recorder)
    if frame not in pending:
        listed = ", ".join(map(str, sorted(pending)[:20])) or "none"
        raise InputError(f"unconfirm: frame {frame} of video {video.id!r} is not confirmed "
                         f"(confirmed keyframes: {listed})")
    rec, own = _recorder(video, recorder, "unconfirm", {"frame": frame})
    rec.set_confirmed([frame], False)
    return _finish(rec, own)


# ----------------------------------------------------------------- what a step touched
_TRACK_KEYS = ("track", "tracks", "to", "keep", "absorb")


def touched_tracks(video: Video, since: int = 0) -> set[int]:
    """Tracks named by the correction steps logged at ``video.log[since:]``, and by the steps an
    ``undo`` there reverted (looked up by undo id): what a view of flags must refresh after them.

    Tracks a step created without naming them (a split's new part) are not in the log: a caller
    compares the track table before and after for those.
    """
    log = video.log
    by_undo = {e.get("undo"): e for e in log if e.get("kind") in UNDOABLE_KINDS and e.get("undo")}
    out: set[int] = set()
    for e in log[since:]:
        if e.get("kind") == "undo":
            e = by_undo.get(e.get("undo"), {})
        if e.get("kind") != "correction":
            continue
        for step in [e, *(e.get("steps") or [])]:
            for key in _TRACK_KEYS:
                value = step.get(key)
                for t in value if isinstance(value, list) else [value]:
                    if isinstance(t, int) and not isinstance(t, bool) and t > 0:
                        out.add(t)
    return out
