"""Automatic review flags: where in a labelled video a reviewer should look first (Qt-free).

Why it works this way:

* Every flag comes from comparing a track on a frame with what its previous frame predicts. The
  previous mask is shifted by candidate motions (none, and the track's velocity before - or
  after, where there is no before; never both: after a switch the velocity after is the other
  object's) and the best match is kept, so objects moving fast between 5 fps samples are not
  mistaken for errors, and a single corrupted frame cannot fool the check (its own position is
  never used to predict it). Shape checks also try shifts that align a bounding-box edge, which
  follow objects entering or leaving the frame.
* The same comparison, against *other* tracks, separates the error kinds: a track whose predicted
  mask lands on another track of the same class is an identity switch, of another class a class
  flip; a track that is missing for a few frames without being covered by a moving thing is a
  dropped mask; an area spike that no occluding thing explains is an area jump.
* Each pair of frames is also compared backwards (frame f's masks carried back to f-1): a switch
  in the first frames of a track, where no velocity before exists, shows only that way, and a
  mask that grows because it comes out from behind an occluder is explained by it.
* Legitimate events stay quiet: entering or leaving through the frame border, occlusion by a
  thing that moved there itself (its pixels are also left out when comparing with another
  track, so a handover while partly hidden still shows), scripted appearances and void that
  persists over frames (kept as low-score hints). The score is in [0, 1]; flags under
  ``FlagConfig.min_score`` are hints that a list can show on demand.
* Low propagation confidence alone is a hint: on the demo bench fewer than a third of the tracks
  with mostly low confidence were wrong (the dense flags' precision was 0.53 at a lower bar).
* Flags are deduplicated (one event seen by several checks, or on both of its frames, becomes one
  flag with the most specific kind) and ranked by score.
* Confidence maps stored by ``annotator.stages.propagate`` are only read for tracks a machine made on that
  frame; :func:`on_new_reference` deletes the map and the dense flags of a frame that became a
  reference, so stale evidence cannot flag human work.

Cost: one pass over the label maps (each read once), vectorised per frame with ``np.bincount`` and
``scipy.ndimage.find_objects``; per track only its bounding box is touched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from annotator.jobs import CancelToken, ProgressFn, check_cancel

#: flag kinds, most specific first (dedup keeps the earliest kind of a merged group)
KINDS = ("class_flip", "identity_switch", "dropped", "area_jump", "low_iou", "vanish", "appear",
         "low_confidence", "fragment", "unlabelled", "split_instances")
#: flags made once by an import step (not by :func:`compute_flags`): a fresh flag run keeps them
PERSISTENT_KINDS = ("split_instances",)
_PRIORITY = {k: n for n, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Flag:
    """One place a reviewer should look: ``frame`` (jump target), ``track`` (0: the whole frame)."""

    kind: str
    frame: int
    track: int
    score: float  # 0..1, higher = more likely a real error
    reason: str  # one line for the flags panel
    frames: tuple[int, ...] = ()  # every frame concerned, sorted
    other: int = 0  # the second track of a switch / flip

    @property
    def key(self) -> str:
        """Stable id of the flag (for review decisions and the GUI's selection)."""
        return f"{self.kind}:{self.frame}:{self.track}:{self.other}"

    @property
    def tracks(self) -> tuple[int, ...]:
        return tuple(t for t in (self.track, self.other) if t)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames"] = list(self.frames)
        d["score"] = round(float(self.score), 4)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flag:
        return cls(str(d["kind"]), int(d["frame"]), int(d["track"]), float(d["score"]), str(d.get("reason", "")),
                   tuple(int(f) for f in d.get("frames", ())), int(d.get("other", 0)))


@dataclass
class FlagConfig:
    """Thresholds of the checks (defaults measured by bench/bench_review.py over many seeds)."""

    low_iou: float = 0.5  # motion-compensated IoU with the previous frame under this: suspicious
    handover_iou: float = 0.5  # the predicted mask covers another track at least this well...
    handover_margin: float = 0.15  # ...and better than its own track by this much: switch / flip
    area_spike: float = math.log(1.4)  # |log area - mean log area of the neighbours| over this
    max_gap: int = 5  # a track missing for at most this many frames is a dropped mask
    occluder_iou: float = 0.6  # a thing explains an occlusion when it matches its own prediction this well
    low_confidence: float = 0.5  # confidence under this is low (as annotator.stages.propagate)
    low_conf_share: float = 0.35  # share of a machine track's pixels with low confidence to flag it
    min_pixels: int = 64  # ignore evidence smaller than this (pixels at full size)
    fragment_share: float = 0.05  # a component under this share of its track's area is a fragment...
    fragment_pixels: int = 16  # ...and at least this large (smaller specks are ignored)
    void_share: float = 0.002  # unlabelled pixels on a labelled frame above this share of the frame
    min_score: float = 0.5  # flags under this score are hints (shown on demand)
    work_side: int = 640  # label maps are subsampled (nearest) to at most this longest side: the
    #                       checks look at objects, not single pixels, and run 4x faster at 720p


# ----------------------------------------------------------------- per-frame statistics
@dataclass
class _Stats:
    area: np.ndarray  # int64 [n_ids]
    cx: np.ndarray  # float64 [n_ids] (nan where absent)
    cy: np.ndarray
    slices: list[tuple[slice, slice] | None]  # by id (index 0 unused)
    border: np.ndarray  # bool [n_ids]: bbox touches the frame border
    void: int
    labelled: bool

    def present(self, t: int) -> bool:
        return t < len(self.area) and self.area[t] > 0


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened pixel coordinates of an h x w frame (cached: every frame of a video shares them)."""
    if (h, w) not in _GRIDS:
        ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
        _GRIDS.clear()
        _GRIDS[(h, w)] = (ys.astype(np.float64), xs.astype(np.float64))
    return _GRIDS[(h, w)]


def _stats(label: np.ndarray, n_ids: int, labelled: bool) -> _Stats:
    h, w = label.shape
    flat = label.ravel()
    area = np.bincount(flat, minlength=n_ids)[:n_ids].astype(np.int64)
    ys, xs = _grid(h, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(flat, weights=xs, minlength=n_ids)[:n_ids] / area
        cy = np.bincount(flat, weights=ys, minlength=n_ids)[:n_ids] / area
    objs = ndimage.find_objects(label.astype(np.int32), max_label=n_ids - 1)
    slices: list[tuple[slice, slice] | None] = [None, *objs]
    border = np.zeros(n_ids, bool)
    for t, sl in enumerate(slices):
        if sl is not None:
            border[t] = sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == h or sl[1].stop == w
    return _Stats(area, cx, cy, slices, border, int(area[0]), labelled)


@dataclass
class _Match:
    """How track ``t`` of frame p continues on frame f.

    ``motion_iou``: best IoU with its own mask over the motion candidates (no motion, velocity
    before, velocity after), the evidence for switches; ``shape_iou``: best over those and the
    shifts that align a bounding-box edge or the centroid (objects entering or leaving the frame
    move their centroid slower than themselves), the evidence for shape errors.
    """

    motion_iou: float = 0.0
    shape_iou: float = 0.0
    other: int = 0
    other_iou: float = 0.0
    occluded: float = 0.0  # share of the predicted mask covered by other things (filled in later)
    in_frame: float = 1.0  # share of the predicted mask inside frame f
    counts: np.ndarray | None = None  # ids under the predicted mask (at the best shape shift)
    size: int = 0  # predicted in-frame pixels
    motion_counts: list[tuple[np.ndarray, int]] = field(default_factory=list)  # per motion candidate


def _shift_counts(lp: np.ndarray, lf: np.ndarray, t: int, sl: tuple[slice, slice], dy: int, dx: int,
                  n_ids: int) -> tuple[np.ndarray, int, int]:
    """Ids of frame f under track t's frame-p mask shifted by (dy, dx): counts, in-frame size, size."""
    h, w = lf.shape
    m = lp[sl] == t
    y0, y1, x0, x1 = sl[0].start + dy, sl[0].stop + dy, sl[1].start + dx, sl[1].stop + dx
    cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    total = int(m.sum())
    if cy0 >= cy1 or cx0 >= cx1:
        return np.zeros(n_ids, np.int64), 0, total
    sub = m[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    vals = lf[cy0:cy1, cx0:cx1][sub]
    return np.bincount(vals, minlength=n_ids)[:n_ids], int(sub.sum()), total


def _velocity(stats: Sequence[_Stats | None], t: int, a: int, b: int) -> tuple[float, float] | None:
    """Centroid motion of track t from frame a to frame b (None if unknown)."""
    if a < 0 or b < 0 or a >= len(stats) or b >= len(stats):
        return None
    sa, sb = stats[a], stats[b]
    if sa is None or sb is None or not sa.present(t) or not sb.present(t):
        return None
    return float(sb.cy[t] - sa.cy[t]), float(sb.cx[t] - sa.cx[t])


def _shape_shifts(sp: _Stats, sf: _Stats, t: int) -> set[tuple[int, int]]:
    """Shifts aligning a bbox edge (or the centroid) of track t from frame p to frame f."""
    a, b = sp.slices[t], sf.slices[t] if t < len(sf.slices) else None
    if a is None or b is None:
        return set()
    dys = {b[0].start - a[0].start, b[0].stop - a[0].stop, int(round(sf.cy[t] - sp.cy[t]))}
    dxs = {b[1].start - a[1].start, b[1].stop - a[1].stop, int(round(sf.cx[t] - sp.cx[t]))}
    return {(dy, dx) for dy in dys for dx in dxs}


def _match_pair(la: np.ndarray, lb: np.ndarray, sa: _Stats, sb: _Stats, n_ids: int,
                motion_of: Callable[[int], set[tuple[int, int]]]) -> dict[int, _Match]:
    """Continuation of every track of frame a on frame b (a before or after b)."""
    out: dict[int, _Match] = {}
    for t in np.nonzero(sa.area[1:])[0] + 1:
        t = int(t)
        sl = sa.slices[t] if t < len(sa.slices) else None
        if sl is None:
            continue
        motion = motion_of(t) | {(0, 0)}
        shape = _shape_shifts(sa, sb, t) - motion if sb.present(t) else set()
        m = _Match(motion_iou=0.0, shape_iou=-1.0, in_frame=0.0)
        for (dy, dx), is_motion in [(c, True) for c in motion] + [(c, False) for c in shape]:
            counts, size, total = _shift_counts(la, lb, t, sl, dy, dx, n_ids)
            if size == 0:
                continue
            union = size + sb.area - counts
            iou = np.where(union > 0, counts / np.maximum(union, 1), 0.0)
            iou[0] = 0.0
            own = float(iou[t]) if sb.present(t) else 0.0
            if own > m.shape_iou:
                m.shape_iou, m.counts, m.size, m.in_frame = own, counts, size, size / max(total, 1)
            if is_motion:
                m.motion_iou = max(m.motion_iou, own)
                m.motion_counts.append((counts, size))
        m.shape_iou = max(m.shape_iou, 0.0)
        out[t] = m
    return out


def _pair(labels: dict[int, np.ndarray], stats: Sequence[_Stats | None], f: int, n_ids: int,
          is_thing: Callable[[int], bool], occluder_iou: float, low_iou: float
          ) -> tuple[dict[int, _Match], dict[int, _Match]]:
    """Forward (f-1 -> f) and backward (f -> f-1) matches of the pair ending at frame f.

    Motion candidates never use frame f's own position: velocity f-2 -> f-1 or f+1 -> f+2.
    """
    p = f - 1
    sp, sf = stats[p], stats[f]
    assert sp is not None and sf is not None

    def motions(t: int, sign: int) -> set[tuple[int, int]]:
        # forward: the velocity before (the identity the track had until f-1), the one after only
        # when there is none; backward the other way round. Never both: after an identity switch
        # the velocity after is the other object's, which would make the switch look consistent.
        first, second = (p - 1, p), (f + 1, f + 2)
        order = (first, second) if sign > 0 else (second, first)
        for a, b in order:
            v = _velocity(stats, t, a, b)
            if v is not None:
                return {(sign * int(round(v[0])), sign * int(round(v[1])))}
        return set()

    fwd = _match_pair(labels[p], labels[f], sp, sf, n_ids, lambda t: motions(t, 1))
    bwd = _match_pair(labels[f], labels[p], sf, sp, n_ids, lambda t: motions(t, -1))
    explained = {t for t, m in fwd.items() if m.motion_iou >= low_iou}  # continue as themselves
    _finish(fwd, sf.area, is_thing, occluder_iou, explained)
    _finish(bwd, sp.area, is_thing, occluder_iou, explained)
    return fwd, bwd


def _finish(matches: dict[int, _Match], area_b: np.ndarray, is_thing: Callable[[int], bool], occluder_iou: float,
            explained: set[int]) -> None:
    """Occlusion shares and the best other track of every match (second pass over a pair).

    Occluders are things that match their own prediction well (they moved there themselves).
    ``other`` is the track the prediction lands on best, by IoU without the part hidden behind
    occluders (a track handed over while partly hidden still shows the handover), among tracks
    not ``explained`` (those continue as themselves: an occluder is not a handover).
    """
    good = np.array([t for t, m in matches.items() if is_thing(t) and m.shape_iou >= occluder_iou], np.int64)
    n = len(area_b)
    good_mask = np.zeros(n, bool)
    good_mask[good[good < n]] = True
    skip = np.zeros(n, bool)
    skip[[u for u in explained if u < n]] = True
    skip[0] = True
    for t, m in matches.items():
        if m.counts is not None and m.size:
            occ = good_mask.copy()
            occ[t] = False
            m.occluded = float(m.counts[occ].sum()) / m.size
        for counts, size in m.motion_counts:
            occ = good_mask.copy()
            occ[t] = False
            hidden_all = int(counts[occ].sum())
            hidden = hidden_all - np.where(occ, counts, 0)  # hidden pixels excluding u itself
            union = size - hidden + area_b - counts
            iou = np.where(union > 0, counts / np.maximum(union, 1), 0.0)
            iou[skip] = 0.0
            iou[t] = 0.0
            u = int(np.argmax(iou))
            if iou[u] > m.other_iou:
                m.other_iou, m.other = float(iou[u]), u
        m.motion_counts, m.counts = [], None  # not needed any more: a long video keeps only scalars


# ----------------------------------------------------------------- detection
@dataclass
class VideoLabels:
    """What the checks read from a video; :func:`video_labels` builds it from a project ``Video``.

    ``label(i)`` returns frame i's track ids; ``labelled(i)`` whether the frame has labels at all;
    ``machine(i)`` the tracks a machine made on frame i (for confidence checks); ``confidence(i)``
    the stored confidence (any size: labels are resized to it) or None.
    """

    num_frames: int
    categories: dict[int, int]
    is_thing: Callable[[int], bool]
    label: Callable[[int], np.ndarray]
    labelled: Callable[[int], bool] = lambda i: True
    machine: Callable[[int], set[int]] = lambda i: set()
    confidence: Callable[[int], np.ndarray | None] = lambda i: None
    names: Callable[[int], str] = field(default=lambda c: str(c))


def video_labels(video: Any) -> VideoLabels:
    """Adapter from an open ``annotator.project.Video`` (read-only use)."""
    from annotator.project import FrameState
    from annotator.stages.propagate import CONFIDENCE_ARRAY

    machine_states = {FrameState.PROPAGATED, FrameState.PREANNOTATED}
    cats = video.track_category()
    tax = video.taxonomy

    def is_thing(t: int) -> bool:
        c = cats.get(t)
        return c is not None and c in tax and tax.is_thing(c)

    def name(c: int) -> str:
        return tax.get(c).name if c in tax else str(c)

    return VideoLabels(
        num_frames=video.num_frames, categories=cats, is_thing=is_thing,
        label=video.read_label,
        labelled=lambda i: video.frame_state(i) != FrameState.UNLABELLED and video.has_label(i),
        machine=lambda i: {t for t, s in video.provenance(i).items() if s in machine_states},
        confidence=lambda i: _load_conf(video, CONFIDENCE_ARRAY, i), names=name)


def _load_conf(video: Any, name: str, i: int) -> np.ndarray | None:
    arr = video.load_array(name, i)
    return None if arr is None else arr.astype(np.float32) / 255


def compute_flags(video: Any, config: FlagConfig | None = None, frame_range: tuple[int, int] | None = None,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> list[Flag]:
    """All flags of an open project video (every score; filter with ``min_score``), ranked."""
    return detect_flags(video_labels(video), config, frame_range, progress, cancel)


def detect_flags(src: VideoLabels, config: FlagConfig | None = None, frame_range: tuple[int, int] | None = None,
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> list[Flag]:
    """Run every check over ``src`` (frames in ``frame_range`` inclusive); deduplicated and ranked."""
    cfg = config or FlagConfig()
    n = src.num_frames
    lo, hi = frame_range if frame_range is not None else (0, n - 1)
    lo, hi = max(0, lo), min(n - 1, hi)
    frames = list(range(lo, hi + 1))
    labelled = {i: bool(src.labelled(i)) for i in frames}
    first = next((i for i in frames if labelled[i]), None)
    stride = 1
    if first is not None and cfg.work_side > 0:
        shape = src.label(first).shape
        stride = max(1, -(-max(shape) // cfg.work_side))
    if stride > 1:  # pixel thresholds are in full-size pixels
        cfg = replace(cfg, min_pixels=max(1, cfg.min_pixels // stride**2),
                      fragment_pixels=max(1, cfg.fragment_pixels // stride**2))
    ids = list(src.categories)
    n_ids = (max(ids) if ids else 0) + 1
    stats: list[_Stats | None] = [None] * n
    labels: dict[int, np.ndarray] = {}
    flags: list[Flag] = []
    matches: dict[int, dict[int, _Match]] = {}  # f -> matches of frame f-1's tracks on frame f
    back: dict[int, dict[int, _Match]] = {}  # f -> matches of frame f's tracks on frame f-1

    def load(i: int) -> None:
        lab = src.label(i) if labelled[i] else np.zeros((1, 1), np.uint16)
        if labelled[i] and stride > 1:
            lab = np.ascontiguousarray(lab[::stride, ::stride])
        top = int(lab.max()) if lab.size else 0
        nonlocal n_ids
        if top >= n_ids:  # ids not in the track table (should not happen in a project)
            n_ids = top + 1
            for s in stats:
                pad(s)
        labels[i] = lab
        stats[i] = _stats(lab, n_ids, labelled[i]) if labelled[i] else None

    def pad(s: _Stats | None) -> None:
        if s is not None and len(s.area) < n_ids:
            k = n_ids - len(s.area)
            s.area = np.concatenate([s.area, np.zeros(k, np.int64)])
            s.cx = np.concatenate([s.cx, np.full(k, np.nan)])
            s.cy = np.concatenate([s.cy, np.full(k, np.nan)])
            s.border = np.concatenate([s.border, np.zeros(k, bool)])
            s.slices = s.slices + [None] * k

    # pass with a lag of two frames: pair (f-1, f) needs the velocities of f+1 -> f+2
    for step, i in enumerate(frames):
        check_cancel(cancel)
        load(i)
        f = i - 2
        if f - 1 >= lo and labelled[f] and labelled[f - 1]:
            matches[f], back[f] = _pair(labels, stats, f, n_ids, src.is_thing, cfg.occluder_iou, cfg.low_iou)
        flags.extend(_frame_flags(src, i, labels[i], stats[i], cfg))
        if i - 1 >= lo and labelled[i - 1]:
            flags.extend(_void_flags(i - 1, labels.get(i - 2), labels[i - 1], labels[i], cfg))
        labels.pop(i - 3, None)
        if progress:
            progress(step + 1, len(frames), f"frame {i}")
    for f in (hi - 1, hi):
        if f == hi and labelled[f]:
            flags.extend(_void_flags(f, labels.get(f - 1), labels[f], None, cfg))
        if f - 1 >= lo and f >= lo and labelled[f] and labelled[f - 1] and f not in matches:
            matches[f], back[f] = _pair(labels, stats, f, n_ids, src.is_thing, cfg.occluder_iou, cfg.low_iou)
    flags.extend(_temporal_flags(src, stats, matches, back, lo, hi, cfg))
    return rank(dedupe(flags))


def _frame_flags(src: VideoLabels, i: int, label: np.ndarray, st: _Stats | None, cfg: FlagConfig) -> list[Flag]:
    """Per-frame checks: tiny fragments, low confidence of machine-made tracks."""
    if st is None:
        return []
    out: list[Flag] = []
    h, w = label.shape
    machine = src.machine(i)
    for t in np.nonzero(st.area[1:])[0] + 1:
        t = int(t)
        sl = st.slices[t]
        if sl is None:
            continue
        ncomp, comp = cv2.connectedComponents((label[sl] == t).astype(np.uint8), connectivity=8)
        if ncomp <= 2:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        small = sizes[(sizes < cfg.fragment_share * st.area[t]) & (sizes >= cfg.fragment_pixels)]
        if small.size:
            score = min(0.45, 0.25 + 0.05 * small.size)
            out.append(Flag("fragment", i, t, score,
                            f"track {t} has {small.size} tiny fragment(s) apart from its main body", (i,)))
    if machine:
        conf = src.confidence(i)
        if conf is not None:
            small_lab = label if conf.shape == label.shape else cv2.resize(
                label, (conf.shape[1], conf.shape[0]), interpolation=cv2.INTER_NEAREST)
            scale = (h * w) / max(conf.size, 1)
            ids = small_lab.ravel()
            nb = max(int(ids.max()) + 1, 1)
            area = np.bincount(ids, minlength=nb)
            low = np.bincount(ids[(conf < cfg.low_confidence).ravel()], minlength=nb)
            for t in sorted(machine):
                if t <= 0 or t >= nb or area[t] == 0:
                    continue
                share = low[t] / area[t]
                if share >= cfg.low_conf_share and low[t] * scale >= cfg.min_pixels:
                    # alone, low confidence is a hint (on the demo bench fewer than a third of such
                    # tracks were wrong); the temporal checks catch the real errors among them
                    out.append(Flag("low_confidence", i, t, float(min(0.45, 0.2 + share * 0.3)),
                                    f"track {t}: {share:.0%} of its propagated pixels have low confidence", (i,)))
    return out


def _void_flags(i: int, prev: np.ndarray | None, label: np.ndarray, nxt: np.ndarray | None,
                cfg: FlagConfig) -> list[Flag]:
    """Unlabelled pixels on a labelled frame; void that its neighbours label is a likely error.

    Void that persists over frames is usually deliberate (an ambiguous region left out, as in
    VIPSeg) and only a hint; void that appears on one frame where both neighbours (or the one
    there is) have labels is what a dropped or erased mask leaves.
    """
    void = label == 0
    n_void = int(np.count_nonzero(void))
    h, w = label.shape
    if n_void < max(cfg.min_pixels, cfg.void_share * h * w):
        return []
    fresh = void.copy()
    sides = [x for x in (prev, nxt) if x is not None and x.shape == label.shape and x.any()]
    for x in sides:
        fresh &= x != 0
    n_fresh = int(np.count_nonzero(fresh)) if sides else 0
    share = n_void / (h * w)
    if n_fresh >= max(cfg.min_pixels, 0.5 * cfg.void_share * h * w):
        score = min(1.0, 0.6 + 0.4 * n_fresh / n_void)
        reason = f"{share:.1%} of the frame is unlabelled, labelled on the neighbouring frame(s)"
    else:
        score = 0.35
        reason = f"{share:.1%} of the frame is unlabelled (also on the neighbouring frames)"
    return [Flag("unlabelled", i, 0, score, reason, (i,))]


def _temporal_flags(src: VideoLabels, stats: list[_Stats | None], matches: dict[int, dict[int, _Match]],
                    back: dict[int, dict[int, _Match]], lo: int, hi: int, cfg: FlagConfig) -> list[Flag]:
    out: list[Flag] = []
    cat = src.categories

    def cname(t: int) -> str:
        c = cat.get(t)
        return src.names(c) if c is not None else "?"

    handed: set[tuple[int, int]] = set()  # (frame, track) that received a handover

    def handover(f: int, src_t: int, dst_t: int, iou: float, own: float) -> Flag:
        same = cat.get(src_t) == cat.get(dst_t)
        score = min(1.0, 0.5 + iou - own * 0.5)
        if same:
            reason = f"track {src_t} ({cname(src_t)}) continues as track {dst_t} at frame {f}: identity switch?"
        else:
            reason = (f"track {src_t} ({cname(src_t)}) continues as track {dst_t} ({cname(dst_t)}) at frame {f}: "
                      "class flip?")
        handed.add((f, dst_t))
        return Flag("identity_switch" if same else "class_flip", f, src_t, score, reason, (f - 1, f), dst_t)

    for f in sorted(back):
        sp, sf = stats[f - 1], stats[f]
        assert sp is not None and sf is not None
        # backward: track t of frame f, carried back, lands on track u of frame f-1 that does not
        # continue as itself (the first frames of a switch have no velocity before: only this sees them)
        for t, b in back[f].items():
            if b.other and b.other_iou >= cfg.handover_iou and b.other_iou > b.motion_iou + cfg.handover_margin:
                out.append(handover(f, b.other, t, b.other_iou, b.motion_iou))
    for f in sorted(matches):
        sp, sf = stats[f - 1], stats[f]
        assert sp is not None and sf is not None
        for t, m in matches[f].items():
            present_f = sf.present(t)
            if m.other and m.other_iou >= cfg.handover_iou and m.other_iou > m.motion_iou + cfg.handover_margin:
                out.append(handover(f, t, m.other, m.other_iou, m.motion_iou))
                continue
            if present_f:
                b = back[f].get(t, m)
                iou = max(m.shape_iou, b.shape_iou)
                if iou < cfg.low_iou and sp.area[t] >= cfg.min_pixels:
                    # occlusion, disocclusion, entering or leaving through the border explain it
                    explained = max(m.occluded, 1.0 - m.in_frame, b.occluded, 1.0 - b.in_frame)
                    score = (1 - iou) * (1 - explained)
                    if score > 0.05:
                        out.append(Flag("low_iou", f, t, float(score),
                                        f"track {t} overlaps its motion-compensated mask of frame {f - 1} "
                                        f"only {iou:.0%}", (f - 1, f)))
                continue
            # t present on f-1, missing on f
            ret = next((g for g in range(f + 1, min(hi, f + cfg.max_gap) + 1)
                         if stats[g] is not None and stats[g].present(t)), None)  # type: ignore[union-attr]
            explained = max(m.occluded, 1.0 - m.in_frame)
            if sp.area[t] < cfg.min_pixels:
                continue
            if ret is not None:
                prior = [s.area[t] for s in stats[max(lo, f - 4):f] + stats[ret:ret + 3]
                         if s is not None and s.present(t)]
                typical = float(np.median(prior)) if prior else float(sp.area[t])
                shrinking = min(1.0, sp.area[t] / max(typical, 1.0))
                score = (1 - explained) * (0.4 + 0.6 * shrinking)
                gap = tuple(range(f, ret))
                out.append(Flag("dropped", f, t, float(score),
                                f"track {t} ({cname(t)}) is missing on frame(s) {f}-{ret - 1} but present "
                                f"before and after", gap))
            else:
                later = any(s is not None and s.present(t) for s in stats[f + 1:hi + 1])
                if later:
                    continue  # long absence: an occlusion or a re-entry, not an error by itself
                if sp.border[t] or m.in_frame < 0.9:
                    continue  # leaves through the frame border
                score = 0.45 * (1 - explained)
                out.append(Flag("vanish", f, t, float(score),
                                f"track {t} ({cname(t)}) vanishes at frame {f} away from the frame border", (f,)))
    # appearances (first frame of a track after the start), not explained by a handover or the border
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in range(lo, hi + 1):
        s = stats[i]
        if s is None:
            continue
        for t in np.nonzero(s.area[1:])[0] + 1:
            first.setdefault(int(t), i)
            last[int(t)] = i
    for t, i in first.items():
        s = stats[i]
        if i == lo or s is None or (i, t) in handed or s.border[t] or s.area[t] < cfg.min_pixels:
            continue
        short = last[t] - i + 1 <= 2 and last[t] < hi
        score = 0.7 if short else 0.35
        out.append(Flag("appear", i, t, score,
                        f"track {t} ({cname(t)}) appears at frame {i} away from the frame border"
                        + (f" and is gone after frame {last[t]}" if short else ""), (i,)))
    out.extend(_area_spikes(stats, matches, back, lo, hi, cfg, cname))
    return out


def _area_spikes(stats: list[_Stats | None], matches: dict[int, dict[int, _Match]],
                 back: dict[int, dict[int, _Match]], lo: int, hi: int, cfg: FlagConfig,
                 cname: Callable[[int], str]) -> list[Flag]:
    """A track whose area on frame f departs from both neighbours in the same direction.

    Occlusion explains a spike: a shrink when the neighbours' masks, carried to frame f, land on
    things that moved there; a growth when frame f's mask, carried to the neighbours, does.
    """
    out: list[Flag] = []
    for f in range(lo + 1, hi):
        sa, sf, sb = stats[f - 1], stats[f], stats[f + 1]
        if sa is None or sf is None or sb is None:
            continue
        both = (sa.area > 0) & (sf.area > 0) & (sb.area > 0)
        both[0] = False
        for t in np.nonzero(both)[0]:
            t = int(t)
            a0, a1, a2 = float(sa.area[t]), float(sf.area[t]), float(sb.area[t])
            if max(a0, a1, a2) < 4 * cfg.min_pixels:
                continue
            r0, r2 = math.log(a1 / a0), math.log(a1 / a2)
            if (r0 > 0) != (r2 > 0):
                continue  # a step or a trend, not a spike
            d = math.copysign(min(abs(r0), abs(r2)), r0)
            if abs(d) < cfg.area_spike:
                continue
            if d < 0:  # the neighbours carried onto f: covered by moving things, or out of the frame?
                near = [matches.get(f, {}).get(t), back.get(f + 1, {}).get(t)]
                lost = 1 - a1 / max(a0, a2)
            else:  # frame f carried onto the neighbours
                near = [back.get(f, {}).get(t), matches.get(f + 1, {}).get(t)]
                lost = 1 - max(a0, a2) / a1
            explained = 0.0
            for m in near:
                if m is not None:
                    explained = max(explained, min(1.0, m.occluded / max(lost, 1e-6)), 1.0 - m.in_frame)
            if d < 0 and sf.border[t] and sa.border[t]:
                explained = max(explained, 0.5)
            strength = min(1.0, abs(d) / (2 * cfg.area_spike))
            score = (0.4 + 0.6 * strength) * (1 - explained)
            if score <= 0.05:
                continue
            verb = "grows" if d > 0 else "shrinks"
            out.append(Flag("area_jump", f, t, float(score),
                            f"track {t} ({cname(t)}) {verb} to {a1 / a0:.1f}x its area on frame {f} and back",
                            (f - 1, f, f + 1)))
    return out


# ----------------------------------------------------------------- dedup, ranking, navigation
def dedupe(flags: list[Flag]) -> list[Flag]:
    """Merge flags that describe one event: same track(s) and touching frames; the most specific kind wins.

    A switch or flip between tracks A and B absorbs the flags of both tracks on its frames; two
    flags of the same kind on the same tracks within one frame of each other become one.
    """
    order = sorted(flags, key=lambda fl: (_PRIORITY.get(fl.kind, 99), -fl.score, fl.frame))
    kept: list[Flag] = []
    for fl in order:
        span = set(fl.frames or (fl.frame,))
        merged = False
        for n, k in enumerate(kept):
            kspan = set(k.frames or (k.frame,))
            near = any(abs(a - b) <= 1 for a in span for b in kspan)
            if not near:
                continue
            if fl.track == 0 or k.track == 0:
                same = fl.track == k.track and fl.frame == k.frame
            else:
                same = bool(set(fl.tracks) & set(k.tracks))
                if same and fl.kind == k.kind and fl.kind in ("identity_switch", "class_flip"):
                    same = set(fl.tracks) == set(k.tracks) or fl.frame == k.frame
            if same and (fl.kind == k.kind or fl.score <= k.score or _PRIORITY[fl.kind] <= _PRIORITY["low_iou"]):
                kept[n] = replace(k, score=max(k.score, fl.score),
                                  frames=tuple(sorted(kspan | span)) if fl.kind == k.kind else k.frames)
                merged = True
                break
        if not merged:
            kept.append(fl)
    return kept


def rank(flags: list[Flag]) -> list[Flag]:
    """Highest score first; ties by frame, then kind."""
    return sorted(flags, key=lambda fl: (-round(fl.score, 6), fl.frame, _PRIORITY.get(fl.kind, 99), fl.track))


def visible(flags: list[Flag], min_score: float | None = None) -> list[Flag]:
    """Flags at or over ``min_score`` (default: the config's)."""
    thr = FlagConfig().min_score if min_score is None else min_score
    return [fl for fl in flags if fl.score >= thr]


def next_flag(flags: list[Flag], frame: int, track: int | None = None, forward: bool = True) -> Flag | None:
    """The next (or previous) flag in time order after ``frame`` (for the next/previous flag keys).

    With ``track`` only flags involving that track count. Wraps around the video.
    """
    pool = [fl for fl in flags if track is None or track in fl.tracks]
    if not pool:
        return None
    pool.sort(key=lambda fl: (fl.frame, _PRIORITY.get(fl.kind, 99), fl.track))
    if forward:
        return next((fl for fl in pool if fl.frame > frame), pool[0])
    return next((fl for fl in reversed(pool) if fl.frame < frame), pool[-1])


# ----------------------------------------------------------------- references
def on_new_reference(video: Any, frames: int | Sequence[int]) -> list[str]:
    """Frames became references (refined, accepted, re-annotated): drop their stale machine evidence.

    Deletes each frame's stored confidence map and dense low-confidence flags (the
    ``annotator.stages.propagate`` arrays) and the cached review flags that concern it
    (``annotator.review.store``), so the heat-map and the flags panel never show doubts about work
    a person now vouches for. Returns what was removed (for a status line). Needs the video open
    for writing (it holds the lock, so nobody else writes these files meanwhile).
    """
    from annotator.errors import ReadOnlyError
    from annotator.review.store import ReviewStore, review_path
    from annotator.stages.propagate import CONFIDENCE_ARRAY, FLAGS_ARRAY

    if video.readonly:
        raise ReadOnlyError(video.lock_message or f"video {video.id!r} is open read-only")
    frames = [int(frames)] if isinstance(frames, (int, np.integer)) else [int(f) for f in frames]
    names = video.frame_names
    removed: list[str] = []
    for array in (CONFIDENCE_ARRAY, FLAGS_ARRAY):
        n = 0
        for f in frames:
            path = Path(video.path) / "arrays" / array / f"{names[f]}.npy"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                n += 1
        if n:
            removed.append(f"{n} {array} map(s)")
    dropped = ReviewStore(video).drop_flags_on(frames) if review_path(video).exists() else 0
    if dropped:
        removed.append(f"{dropped} review flag(s)")
    return removed


# ----------------------------------------------------------------- tube view
@dataclass
class TubeFrame:
    """One cell of a track's filmstrip: the crop around the track on one frame."""

    frame: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in frame pixels, same size on every frame
    image: np.ndarray  # HxWx3 uint8 RGB crop, resized to the tube's cell size
    mask: np.ndarray  # HxW bool: the track's pixels in the crop


def track_tube(video: Any, track: int, frames: Sequence[int] | None = None, cell: int = 96,
               margin: float = 0.25, cancel: CancelToken | None = None) -> list[TubeFrame]:
    """The filmstrip of a track for the review tube view: a square crop per frame where it exists.

    The crop is centred on the track's box on each frame with a side fixed for the whole tube
    (the largest box plus ``margin``), so a sudden growth, shrink or jump is visible as such
    instead of being normalised away. Frames default to those where the track has pixels.
    """
    frames = list(video.track_frames(track) if frames is None else frames)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    labels: dict[int, np.ndarray] = {}
    for i in frames:
        check_cancel(cancel)
        lab = video.read_label(i)
        ys, xs = np.nonzero(lab == track)
        if ys.size:
            boxes[i] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            labels[i] = lab
    if not boxes:
        return []
    h, w = video.height, video.width
    side = max(max(b[2] - b[0], b[3] - b[1]) for b in boxes.values())
    side = min(max(h, w), max(8, int(round(side * (1 + 2 * margin)))))
    out = []
    for i, (x0, y0, x1, y1) in boxes.items():
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        bx0 = int(np.clip(cx - side // 2, 0, max(w - side, 0)))
        by0 = int(np.clip(cy - side // 2, 0, max(h - side, 0)))
        bx1, by1 = min(w, bx0 + side), min(h, by0 + side)
        img = video.read_frame(i)[by0:by1, bx0:bx1]
        mask = labels[i][by0:by1, bx0:bx1] == track
        scale = cell / max(by1 - by0, bx1 - bx0)
        size = (max(1, int(round((bx1 - bx0) * scale))), max(1, int(round((by1 - by0) * scale))))
        img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        out.append(TubeFrame(i, (bx0, by0, bx1, by1), img, mask))
    return out
