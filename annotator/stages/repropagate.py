"""Re-propagate only some tracks from a fixed frame through its gap (issue 24, item 4d).

After a person fixes one track on frame ``f`` (GrabCut refine, snap, cut, brush), the frames up to
the next reference still hold the old, wrong mask of that track; re-running dense propagation
would also rewrite every other track there, which the person may already have looked at. This
stage runs the propagator over the gap with ``f`` (and the reference at the gap's other end) as
references and takes from its result only the chosen tracks:

* a chosen track's new pixels are taken from whoever had them, unless that is a human track of
  the frame (human work is never overwritten);
* pixels a chosen track leaves go to what the fresh propagation put there when that is another
  track that is not human on the frame (the propagator's view of what is behind), else to void;
* every other pixel stays bit for bit, so the panoptic invariant (one owner per pixel) holds and
  the other tracks' masks change only where the chosen ones moved.

The confidence map is updated on the pixels that changed owner and the review flags of the chosen
tracks are recomputed. All frames are written in one ``Transaction``: a cancel or a crash leaves
the gap as it was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, check_open_video, require_intact
from annotator.project.array_names import FLAGS_ARRAY
from annotator.review import shown_frame
from annotator.stages.propagate import (
    FLAG_DTYPE,
    ONE_SIDED_CHUNK,
    PropagateOptions,
    find_references,
    guard_flags,
    human_tracks,
    load_confidence,
    load_flags,
    review_flags,
    store_confidence,
)
from propagation.base import Propagator, Reference

DIRECTIONS = ("forward", "backward", "both")


@dataclass
class TrackReport:
    """What :func:`repropagate_tracks` changed."""

    frame: int  # the fixed frame the tracks were carried from
    tracks: tuple[int, ...]
    backend: str
    written: list[int] = field(default_factory=list)  # frames where a chosen track changed
    unchanged: list[int] = field(default_factory=list)  # frames visited with nothing to change
    pixels: int = 0  # pixels that changed owner, over all frames

    def summary(self) -> str:
        ids = ", ".join(str(t) for t in self.tracks)
        return (f"track {ids} re-propagated from frame {shown_frame(self.frame)} ({self.backend}): "
                f"{len(self.written)} frames changed, {len(self.unchanged)} unchanged, {self.pixels} pixels")


def merge_tracks(old: np.ndarray, proposal: np.ndarray, tracks: Collection[int],
                 protected: Collection[int] = ()) -> np.ndarray:
    """``old`` with the chosen ``tracks`` taken from ``proposal`` (both HxW uint16 label maps).

    ``protected``: track ids whose pixels never change (the frame's human tracks, locked tracks).
    Rules in the module docstring; returns a new array.
    """
    chosen = np.fromiter((int(t) for t in tracks), np.int64)
    keep = np.isin(old, np.fromiter((int(t) for t in protected), np.int64)) if protected else \
        np.zeros(old.shape, bool)
    out = old.copy()
    new_in = np.isin(proposal, chosen) & ~keep
    was = np.isin(old, chosen) & ~keep
    leaving = was & ~new_in
    if leaving.any():
        behind = proposal[leaving]
        bad = np.isin(behind, chosen) | (np.isin(behind, np.fromiter((int(t) for t in protected), np.int64))
                                         if protected else False)
        out[leaving] = np.where(bad, 0, behind)
    out[new_in] = proposal[new_in]
    return out


def _jobs(frame: int, direction: str, refs: dict[int, Reference], num_frames: int) -> list[tuple[list[int], int | None]]:
    """The gap(s) next to ``frame`` in ``direction``: (targets in time order, far reference or None)."""
    others = sorted(set(refs) - {frame})
    jobs: list[tuple[list[int], int | None]] = []
    if direction in ("forward", "both"):
        right = min((r for r in others if r > frame), default=None)
        jobs.append((list(range(frame + 1, right if right is not None else num_frames)), right))
    if direction in ("backward", "both"):
        left = max((r for r in others if r < frame), default=None)
        jobs.append((list(range(left + 1 if left is not None else 0, frame)), left))
    return [(ts, r) for ts, r in jobs if ts]


def repropagate_tracks(video: Any, frame: int, tracks: Collection[int], propagator: Propagator,
                       direction: str = "forward", locked: Collection[int] = (),
                       progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> TrackReport:
    """Carry ``tracks`` from frame ``frame`` through the gap to the next reference (``direction``
    ``forward``; ``backward``: to the previous one; ``both``), leaving every other track's pixels
    alone where the rules allow (module docstring).

    ``video``: an open, writable ``Video`` (flush an edit session first); ``frame``: dense index of
    the fixed frame (its label map is the reference, whatever its state); ``tracks``: track ids;
    ``propagator``: the engine; ``locked``: tracks never changed anywhere. The reference at the
    gap's far end (``find_references``) is used too, and the gap stops there; with none (after the
    last reference) the frames go in chained chunks of ``ONE_SIDED_CHUNK``, as dense propagation
    does. Returns a :class:`TrackReport`. Raises ``InputError`` for a read-only video, a bad
    frame, direction or track, and ``Cancelled`` (nothing written: one transaction) on a cancel.
    """
    if video.readonly:
        raise InputError(video.lock_message or f"video {video.id!r} is open read-only; cannot propagate")
    if not 0 <= frame < video.num_frames:
        raise InputError(f"frame {shown_frame(frame)} is outside video {video.id!r} (1-{video.num_frames})")
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    chosen = tuple(sorted({int(t) for t in tracks}))
    if not chosen:
        raise InputError("re-propagation needs at least one track")
    unknown = [t for t in chosen if t not in video.tracks]
    if unknown:
        raise InputError(f"track(s) {unknown} are not tracks of video {video.id!r}")
    lock = {int(t) for t in locked}
    if set(chosen) & lock:
        raise InputError(f"track(s) {sorted(set(chosen) & lock)} are locked; unlock them to re-propagate")
    refs, _partial = find_references(video)
    by_index = {r.index: r for r in refs}
    jobs = _jobs(frame, direction, by_index, video.num_frames)
    report = TrackReport(frame, chosen, propagator.name)
    total = sum(len(ts) for ts, _ in jobs)
    if not total:
        return report
    own = by_index.get(frame)
    start = Reference(frame, video.read_label(frame), own.fixed_tracks if own is not None else frozenset())
    with video.transaction("re-propagate tracks", {"frame": frame, "tracks": list(chosen),
                                                   "direction": direction}):
        for ts, far in jobs:
            if far is not None:
                chunks, chained = [ts], False
            else:  # one-sided: bounded chunks moving away from the fixed frame, each from the last
                away = ts if ts[0] > frame else ts[::-1]
                chunks = [away[i:i + ONE_SIDED_CHUNK] for i in range(0, len(away), ONE_SIDED_CHUNK)]
                chained = True
            ref = start
            for chunk in chunks:
                check_cancel(cancel)
                engine_refs = [ref] + ([by_index[far]] if far is not None else [])
                res = propagator.propagate(video, engine_refs, sorted(chunk), cancel=cancel)
                for t in sorted(chunk):
                    check_cancel(cancel)
                    _write_frame(video, t, res, chosen, lock, report)
                    if progress:
                        progress(len(report.written) + len(report.unchanged), total,
                                 f"frame {shown_frame(t)}")
                if chained:
                    ref = Reference(chunk[-1], np.asarray(res.labels[chunk[-1]]))
        video.log_event("repropagate_tracks", {"frame": frame, "tracks": list(chosen), "direction": direction,
                                               "backend": propagator.name, "frames": len(report.written),
                                               "pixels": report.pixels})
    video.save()
    return report


def _write_frame(video: Any, t: int, res: Any, chosen: tuple[int, ...], lock: set[int],
                 report: TrackReport) -> None:
    """Merge the chosen tracks of the engine's result into frame ``t`` and write what changed."""
    old = video.read_label(t)
    new = merge_tracks(old, np.asarray(res.labels[t]), chosen, human_tracks(video, t) | lock)
    moved = new != old
    if not moved.any():
        report.unchanged.append(t)
        return
    prov = video.provenance(t)
    present = [int(i) for i in np.unique(new) if i]
    new_prov = {i: (FrameState.PROPAGATED if i in chosen or i not in prov else prov[i]) for i in present}
    state = video.frame_state(t)
    video.write_label(t, new, state=FrameState.PROPAGATED if state == FrameState.UNLABELLED else state,
                      provenance=new_prov)
    conf_old = load_confidence(video, t)
    fresh = np.asarray(res.confidence[t], np.float32)
    conf = fresh if conf_old is None else np.where(moved | np.isin(new, chosen), fresh, conf_old)
    store_confidence(video, t, conf)
    flags = [f for f in load_flags(video, t) if f.track not in chosen]
    events = (getattr(res, "events", {}) or {}).get(t, [])
    mine = guard_flags(t, new, conf, [e for e in events if e.track in chosen])
    caught = {f.track for f in mine}
    mine += [f for f in review_flags(t, new, conf) if f.track in chosen and f.track not in caught]
    video.save_array(FLAGS_ARRAY, t, np.array([f.to_row() for f in flags + mine], FLAG_DTYPE))
    report.written.append(t)
    report.pixels += int(np.count_nonzero(moved))


def run_repropagate(video: Any, options: PropagateOptions, progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> TrackReport:
    """The per-track face: ``options.tracks`` re-propagated from ``options.from_frame`` in
    ``options.direction`` with the engine the options name (:meth:`PropagateOptions.with_engine`),
    after the same writable/intact checks as :func:`~annotator.stages.propagate.run_propagate`."""
    if options.tracks is None or options.from_frame is None:
        raise InputError("per-track re-propagation needs the tracks and the frame to carry them from")
    engine = options.with_engine().engine
    assert engine is not None
    if video.readonly:
        raise InputError(video.lock_message or f"video {video.id!r} is open elsewhere; close it there and retry")
    require_intact(check_open_video(video), f"re-propagation in video {video.id!r}")
    return repropagate_tracks(video, options.from_frame, options.tracks, engine, options.direction,
                              options.locked, progress, cancel)


def repropagate_track(video: Any, frame: int, track: int, propagator: Propagator, direction: str = "forward",
                      locked: Collection[int] = (), progress: ProgressFn | None = None,
                      cancel: CancelToken | None = None) -> TrackReport:
    """:func:`repropagate_tracks` for one track (the window's Ctrl+T, the robot's repair)."""
    return repropagate_tracks(video, frame, [track], propagator, direction, locked, progress, cancel)
