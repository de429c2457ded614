"""Dense propagation of a project video: fill every frame between references, keep human work.

Why it is organised this way:

* References are the labelled keyframes (unless a machine filled them), every frame a human
  labelled or accepted as a whole (state manual/reviewed), and every frame with human tracks
  (provenance manual/refined/reviewed). Re-running after a refinement therefore uses the refined
  frame as an extra reference.
* Propagation runs gap by gap (between consecutive references) and writes and saves each gap
  before the next one starts, so a cancel keeps every finished gap. Before the first and after
  the last reference the frames go in chunks of ``ONE_SIDED_CHUNK``, each chained from the last
  frame of the previous chunk, so memory does not grow with the length of the video.
* Human tracks are never overwritten: a frame with human tracks is not a target. When such a frame
  also has machine-made tracks, those are re-propagated first from the neighbouring references
  and composed around the human pixels, which survive bit for bit; the refreshed frame then
  serves as a reference for its neighbours.
* The per-pixel confidence is stored (uint8, quarter size: a 720p video of 3,000 frames stays near
  200 MB) for the review tools, and tracks with a large low-confidence share are flagged.
* Tracks the propagator's shape guard caught (``propagation.shape_guard``: a mask that collapsed
  or exploded against what the keyframes and the object's motion say, and what replaced it) are
  flagged with their kind and reason, before the low-confidence flags of the same frame: an
  annotator has to look there even where the fallback looks confident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from annotator.errors import InputError, ProjectError
from annotator.jobs import Cancelled, CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, check_open_video, require_intact
from annotator.project.array_names import CONFIDENCE_ARRAY, FLAGS_ARRAY
from annotator.review import on_new_reference, shown_frame
from propagation.base import Propagator, Reference
from propagation.factory import make_propagator

CONFIDENCE_SCALE = 4  # confidence maps are stored at 1/4 of the frame size
LOW_CONFIDENCE = 0.5
FLAG_MIN_SHARE = 0.1  # flag a track when this share of its pixels is below LOW_CONFIDENCE...
FLAG_MIN_PIXELS = 64  # ...and at least this many pixels
ONE_SIDED_CHUNK = 5  # frames per propagate call before the first / after the last reference


#: kind of a flag from the confidence map (the shape guard's kinds: shape_guard.COLLAPSE / EXPLOSION)
LOW_CONFIDENCE_KIND = "low_confidence"
#: stored flags: a structured array (strings without pickle), one row per flag
FLAG_DTYPE = np.dtype([("track", "<i4"), ("low_share", "<i4"), ("x0", "<i4"), ("y0", "<i4"), ("x1", "<i4"),
                       ("y1", "<i4"), ("kind", "<U16"), ("reason", "<U240")])


@dataclass
class ReviewFlag:
    """A track on a propagated frame that a person should look at, and why."""

    frame: int
    track: int
    low_share: float  # share of the track's pixels with confidence < LOW_CONFIDENCE
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of those pixels
    kind: str = LOW_CONFIDENCE_KIND  # low_confidence | collapse | explosion
    reason: str = ""  # one line for the flags panel

    def to_row(self) -> tuple:
        return (self.track, int(round(self.low_share * 1000)), *self.bbox, self.kind, self.reason[:240])


@dataclass
class DenseReport:
    """What a dense run did (the CLI prints it, the GUI shows it)."""

    backend: str
    references: list[int] = field(default_factory=list)
    written: list[int] = field(default_factory=list)  # frames rewritten with state propagated
    recomposed: list[int] = field(default_factory=list)  # frames with human tracks kept, the rest updated
    flags: list[ReviewFlag] = field(default_factory=list)

    def summary(self) -> str:
        if not self.written and not self.recomposed:
            return (f"{self.backend}: nothing to propagate - all frames in range are references "
                    f"({len(self.references)} references)")
        shape = sum(f.kind != LOW_CONFIDENCE_KIND for f in self.flags)
        return (f"{self.backend}: {len(self.written)} frames propagated from {len(self.references)} references, "
                f"{len(self.recomposed)} frames with human tracks updated around them, "
                f"{len(self.flags)} review flags ({shape} collapsed/exploded masks replaced or kept)")


def human_tracks(video: Any, index: int) -> set[int]:
    """Tracks a human drew, refined or reviewed on a frame (never overwritten by propagation)."""
    return {t for t, s in video.provenance(index).items() if s.is_human}


def find_references(video: Any) -> tuple[list[Reference], set[int]]:
    """References of a video and the subset of them that also carry machine-made tracks.

    A reference is a labelled keyframe (unless it was itself filled by propagation), a frame a
    human labelled or accepted as a whole (state manual/reviewed, or refined with no human track
    left: an erasure), or any frame with human tracks.
    Frames whose only labels came from a machine (propagated, pre-annotated) are targets.
    """
    machine = {FrameState.UNLABELLED, FrameState.PROPAGATED}
    refs: list[Reference] = []
    partial: set[int] = set()
    keys = set(video.keyframes)
    for i in range(video.num_frames):
        state = video.frame_state(i)
        if state == FrameState.UNLABELLED or not video.has_label(i):
            continue
        human = human_tracks(video, i)
        machine_tracks = set(video.frame_tracks(i)) - human
        # a refined frame without any human track: the human's edit removed pixels (e.g. deleted a
        # wrongly propagated track on this frame); re-propagating it would bring them back
        erased = state == FrameState.REFINED and not human
        whole = (state == FrameState.REVIEWED or (i in keys and state not in machine)
                 or (state == FrameState.MANUAL and not machine_tracks) or erased)
        if whole:
            # trusted as a whole; its human tracks are still marked for the propagator
            refs.append(Reference(i, video.read_label(i), frozenset(human)))
        elif human:
            refs.append(Reference(i, video.read_label(i), frozenset(human)))
            if machine_tracks:
                partial.add(i)
    return refs, partial


def store_confidence(video: Any, index: int, conf: np.ndarray) -> None:
    """Save a confidence map as uint8 at quarter size."""
    h, w = conf.shape
    small = cv2.resize(conf.astype(np.float32), (max(1, w // CONFIDENCE_SCALE), max(1, h // CONFIDENCE_SCALE)),
                       interpolation=cv2.INTER_AREA)
    video.save_array(CONFIDENCE_ARRAY, index, np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8))


def load_confidence(video: Any, index: int) -> np.ndarray | None:
    """The stored confidence of a propagated frame, float32 in [0, 1] at full size (None if absent)."""
    arr = video.load_array(CONFIDENCE_ARRAY, index)
    if arr is None:
        return None
    return cv2.resize(arr.astype(np.float32) / 255, (video.width, video.height), interpolation=cv2.INTER_LINEAR)


def load_flags(video: Any, index: int) -> list[ReviewFlag]:
    """Review flags stored for a frame by the last dense run (also the older plain N x 6 int rows)."""
    arr = video.load_array(FLAGS_ARRAY, index)
    if arr is None:
        return []
    arr = np.asarray(arr)
    if arr.dtype.names is None:
        return [ReviewFlag(index, int(r[0]), r[1] / 1000, (int(r[2]), int(r[3]), int(r[4]), int(r[5])))
                for r in arr.reshape(-1, 6)]
    return [ReviewFlag(index, int(r["track"]), int(r["low_share"]) / 1000,
                       (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"])), str(r["kind"]), str(r["reason"]))
            for r in arr.reshape(-1)]


def guard_flags(index: int, label: np.ndarray, conf: np.ndarray, events: list[Any]) -> list[ReviewFlag]:
    """Review flags for the shape guard's events on a frame (kind and reason from the event)."""
    flags: list[ReviewFlag] = []
    low = conf < LOW_CONFIDENCE
    for e in events:
        mask = label == e.track
        share = float(np.count_nonzero(low & mask) / max(np.count_nonzero(mask), 1))
        flags.append(ReviewFlag(index, int(e.track), share, tuple(int(v) for v in e.bbox), str(e.kind),
                                str(e.reason)))
    return flags


def review_flags(index: int, label: np.ndarray, conf: np.ndarray, low: float = LOW_CONFIDENCE) -> list[ReviewFlag]:
    """Tracks with a large share of low-confidence pixels on a frame (vectorised per frame)."""
    lowmask = conf < low
    ids = label.ravel()
    n = int(ids.max()) + 1 if ids.size else 1
    area = np.bincount(ids, minlength=n)
    low_area = np.bincount(ids[lowmask.ravel()], minlength=n)
    flags: list[ReviewFlag] = []
    for tid in np.nonzero((low_area >= FLAG_MIN_PIXELS) & (low_area >= FLAG_MIN_SHARE * np.maximum(area, 1)))[0]:
        if tid == 0:
            continue
        ys, xs = np.nonzero(lowmask & (label == tid))
        flags.append(ReviewFlag(index, int(tid), float(low_area[tid] / area[tid]),
                                (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return flags


def _gaps(ref_idx: list[int], targets: list[int]) -> list[tuple[int | None, int | None, list[int]]]:
    """Targets grouped by their (left, right) references, in time order."""
    out: dict[tuple[int | None, int | None], list[int]] = {}
    for t in targets:
        left = max((r for r in ref_idx if r < t), default=None)
        right = min((r for r in ref_idx if r > t), default=None)
        out.setdefault((left, right), []).append(t)
    return [(a, b, ts) for (a, b), ts in out.items()]


def propagate_video(video: Any, propagator: Propagator, frame_range: tuple[int, int] | None = None,
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> DenseReport:
    """Fill every non-reference frame (within ``frame_range``, inclusive) of an open, writable video."""
    if video.readonly:
        raise ProjectError(video.lock_message or f"video {video.id!r} is open read-only; cannot propagate")
    refs, partial = find_references(video)
    if not refs:
        raise InputError(f"video {video.id!r} has no labelled keyframe: annotate at least one keyframe, "
                         "then propagate")
    lo, hi = frame_range if frame_range is not None else (0, video.num_frames - 1)
    if hi < lo or lo >= video.num_frames or hi < 0:
        # else the run would report "all frames in range are references" for a range it never saw
        raise InputError(f"frame range {lo}-{hi} is outside video {video.id!r}, whose dense frames are "
                         f"0-{video.num_frames - 1}")
    by_index = {r.index: r for r in refs}
    ref_idx = sorted(by_index)
    targets = [i for i in range(max(0, lo), min(video.num_frames - 1, hi) + 1) if i not in by_index]
    redo = sorted(i for i in partial if lo <= i <= hi)
    report = DenseReport(propagator.name, ref_idx)
    total = len(targets) + len(redo)

    def gap_progress(base: int, chunk: list[int]) -> ProgressFn:
        what = f"frames {shown_frame(chunk[0])}-{shown_frame(chunk[-1])}"  # the window's numbering

        def fn(d: int, t: int, _msg: str) -> None:
            if progress:  # the count is of frames written: computed ones are not kept by a cancel yet
                progress(base, total, f"{what}: computing {d}/{t}")
        return fn

    try:
        _fill(video, propagator, report, by_index, ref_idx, targets, redo, total, progress, gap_progress, cancel)
    except Cancelled:
        # every frame written so far is whole (label, state, confidence, flags): keep it
        kept = len(report.written) + len(report.recomposed)
        video.log_event("propagation", {"backend": propagator.name, "frames": len(report.written),
                                        "recomposed": len(report.recomposed), "flags": len(report.flags),
                                        "cancelled": True})
        video.save()
        raise Cancelled(f"{kept} of {total} frames propagated and kept") from None
    video.log_event("propagation", {"backend": propagator.name, "frames": len(report.written),
                                    "recomposed": len(report.recomposed), "flags": len(report.flags)})
    video.save()
    return report


def _fill(video: Any, propagator: Propagator, report: DenseReport, by_index: dict[int, Reference],
          ref_idx: list[int], targets: list[int], redo: list[int], total: int, progress: ProgressFn | None,
          gap_progress: Any, cancel: CancelToken | None) -> None:
    """The frames of :func:`propagate_video`, written one by one; cancel is checked before each
    frame is written (and by the engine between its frames and chain steps), so a cancel keeps
    exactly the frames written before it."""
    done = 0

    # frames that mix human and machine tracks first: their refreshed machine tracks then serve as
    # references of the neighbouring gaps
    for f in redo:
        check_cancel(cancel)
        others = [r for r in ref_idx if r != f]
        left = max((r for r in others if r < f), default=None)
        right = min((r for r in others if r > f), default=None)
        gap_refs = [by_index[i] for i in (left, right) if i is not None]
        if gap_refs:
            res = propagator.propagate(video, gap_refs, [f], cancel=cancel)
            check_cancel(cancel)
            new = _recompose(video, f, res.labels[f], res.confidence[f], report,
                             (getattr(res, "events", {}) or {}).get(f, []))
            by_index[f] = Reference(f, new, by_index[f].fixed_tracks)
        done += 1
        if progress:
            progress(done, total, f"frame {shown_frame(f)} (around human tracks)")

    for left, right, ts in _gaps(ref_idx, targets):
        gap_refs = [by_index[i] for i in (left, right) if i is not None]
        if left is not None and right is not None:
            chunks = [ts]
        else:
            # one-sided (before the first / after the last reference): bounded chunks, each chained
            # from the previous chunk's last frame, so memory does not grow with the video length
            step = ts if right is None else ts[::-1]
            chunks = [step[i:i + ONE_SIDED_CHUNK] for i in range(0, len(step), ONE_SIDED_CHUNK)]
        carry: tuple[int, np.ndarray, np.ndarray] | None = None
        for chunk in chunks:
            check_cancel(cancel)
            chunk = sorted(chunk)
            written_before = len(report.written)
            refs_now = gap_refs if carry is None else [Reference(carry[0], carry[1])]
            res = propagator.propagate(video, refs_now, chunk, progress=gap_progress(done, chunk), cancel=cancel)
            events = getattr(res, "events", {}) or {}
            for t in chunk:
                check_cancel(cancel)  # between every frame written: a cancel keeps the frames before
                lab = res.labels[t]
                conf = res.confidence[t] if carry is None else res.confidence[t] * carry[2]
                present = [int(i) for i in np.unique(lab) if i]
                video.write_label(t, lab, state=FrameState.PROPAGATED,
                                  provenance={i: FrameState.PROPAGATED for i in present})
                _store_extras(video, t, lab, conf, report, events.get(t, []))
                report.written.append(t)
                if progress:
                    progress(done + len(report.written) - written_before, total, f"frame {shown_frame(t)} written")
            if len(chunks) > 1:
                last = chunk[-1] if right is None else chunk[0]
                prev = res.confidence[last] if carry is None else res.confidence[last] * carry[2]
                carry = (last, res.labels[last], prev)
            done += len(chunk)
            if progress:
                progress(done, total, f"frames {shown_frame(chunk[0])}-{shown_frame(chunk[-1])}")
            video.save()  # a crash later keeps every finished gap


def _store_extras(video: Any, index: int, label: np.ndarray, conf: np.ndarray, report: DenseReport,
                  events: list[Any] | None = None) -> None:
    store_confidence(video, index, conf)
    guarded = guard_flags(index, label, conf, events or [])
    caught = {f.track for f in guarded}
    flags = guarded + [f for f in review_flags(index, label, conf) if f.track not in caught]
    video.save_array(FLAGS_ARRAY, index, np.array([f.to_row() for f in flags], FLAG_DTYPE))
    report.flags.extend(flags)


def _recompose(video: Any, index: int, proposal: np.ndarray, conf: np.ndarray, report: DenseReport,
               events: list[Any] | None = None) -> np.ndarray:
    """Keep the human tracks of a frame bit for bit and take the rest from a fresh propagation.

    Pixels the proposal gives to a human track outside the human's mask get the nearest machine
    label instead (the human decided the track is not there; what is behind it is unknown).
    """
    old = video.read_label(index)
    prov = video.provenance(index)
    human = sorted(t for t, s in prov.items() if s.is_human)
    keep = np.isin(old, human)
    out = proposal.copy()
    holes = np.isin(out, human) & ~keep
    valid = ~holes & ~keep
    if holes.any() and valid.any():
        _, (iy, ix) = distance_transform_edt(~valid, return_indices=True)
        out[holes] = out[iy[holes], ix[holes]]
    elif holes.any():
        out[holes] = 0
    out[keep] = old[keep]
    conf = np.where(keep, 1.0, conf).astype(np.float32)
    present = [int(i) for i in np.unique(out) if i]
    new_prov = {i: (prov[i] if i in human else FrameState.PROPAGATED) for i in present}
    video.write_label(index, out, state=video.frame_state(index), provenance=new_prov)
    _store_extras(video, index, out, conf, report, [e for e in events or [] if e.track not in human])
    report.recomposed.append(index)
    return out


# ----------------------------------------------------------------- the stage's face
@dataclass(frozen=True)
class PropagateOptions:
    """What a dense propagation run is asked for (the ``propagate`` command's flags, the window's job).

    The engine comes from :func:`propagation.factory.make_propagator` (``backend``, ``checkpoint``,
    ``preset``, ``speed``, ``settings``: the effective settings, defaults < user < project) unless
    ``engine`` is given; :meth:`with_engine` builds it ahead, so a bad backend or checkpoint fails
    before the video is opened and a caller can name the engine in its progress bar.
    """

    backend: str | None = None  # None: the settings' propagation_backend (propagation.factory.dense_backend)
    checkpoint: str | None = None
    preset: str | None = None
    speed: str | None = None
    settings: Mapping[str, Any] | None = None
    frame_range: tuple[int, int] | None = None  # inclusive dense indices; None = the whole video
    engine: Propagator | None = None
    #: frames that became references (refined, accepted) lose the confidence maps and flags of their
    #: machine-labelled past first, so no heat-map or flag doubts what a person now vouches for
    drop_stale_evidence: bool = True
    #: per-track re-propagation (``annotator.stages.repropagate.run_repropagate``): only these
    #: tracks, carried from ``from_frame`` through its gap in ``direction`` (forward | backward |
    #: both), ``locked`` tracks never changed; None = every track (:func:`run_propagate`)
    tracks: frozenset[int] | None = None
    from_frame: int | None = None
    direction: str = "forward"
    locked: frozenset[int] = frozenset()

    def with_engine(self) -> PropagateOptions:
        """These options with ``engine`` built (unchanged when it already is)."""
        if self.engine is not None:
            return self
        return replace(self, engine=make_propagator(self.backend, self.checkpoint, self.preset, self.speed,
                                                    self.settings))


def run_propagate(video: Any, options: PropagateOptions, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> DenseReport:
    """Dense propagation of an open video (the stage's face): :func:`propagate_video` with the
    engine the options name, after checking the video is writable and intact.

    A human-labelled frame whose PNG was deleted reads as empty, and propagation would silently
    refill it with machine labels: missing files stop the run here, named (checked on the video
    opened for writing, i.e. after its crash recovery ran). Raises ``InputError`` for a read-only
    video or a damaged one, and what :func:`propagate_video` raises.
    """
    if options.tracks is not None:  # else a caller would believe only those tracks were rewritten
        raise InputError("options name tracks: per-track re-propagation runs through "
                         "annotator.stages.repropagate.run_repropagate")
    engine = options.with_engine().engine
    assert engine is not None
    if video.readonly:
        raise InputError(video.lock_message or f"video {video.id!r} is open elsewhere; close it there and retry")
    require_intact(check_open_video(video), f"propagation of video {video.id!r}")
    if options.drop_stale_evidence:
        refs, _partial = find_references(video)
        stale = [r.index for r in refs if video.has_array(CONFIDENCE_ARRAY, r.index)]
        if stale:
            on_new_reference(video, stale)
    return propagate_video(video, engine, options.frame_range, progress=progress, cancel=cancel)
