"""Per-frame track statistics and the motion-compensated matching of consecutive frames
(pure numpy; the evidence :mod:`annotator.review.detect` turns into flags).

Every check compares a track on a frame with what its previous frame predicts: the previous
mask is shifted by candidate motions (none, and the track's velocity before - or after, where
there is no before; never both: after a switch the velocity after is the other object's) and
the best match is kept, so fast objects between 5 fps samples are not mistaken for errors and a
single corrupted frame cannot fool the check (its own position is never used to predict it).
Shape matches also try shifts that align a bounding-box edge, which follow objects entering or
leaving the frame. Each pair is matched both ways (frame f's masks carried back to f-1 too).

Cost: per frame one ``np.bincount`` and one ``scipy.ndimage.find_objects``; per track only its
bounding box is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


@dataclass
class FrameStats:
    """Per-track statistics of one label map, indexed by track id (0: void)."""

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


def frame_stats(label: np.ndarray, n_ids: int, labelled: bool) -> FrameStats:
    """Statistics of ``label`` (HxW unsigned ints, every id < ``n_ids``) for ids 0..n_ids-1."""
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
    return FrameStats(area, cx, cy, slices, border, int(area[0]), labelled)


@dataclass
class Match:
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


def _velocity(stats: Sequence[FrameStats | None], t: int, a: int, b: int) -> tuple[float, float] | None:
    """Centroid motion of track t from frame a to frame b (None if unknown)."""
    if a < 0 or b < 0 or a >= len(stats) or b >= len(stats):
        return None
    sa, sb = stats[a], stats[b]
    if sa is None or sb is None or not sa.present(t) or not sb.present(t):
        return None
    return float(sb.cy[t] - sa.cy[t]), float(sb.cx[t] - sa.cx[t])


def _shape_shifts(sp: FrameStats, sf: FrameStats, t: int) -> set[tuple[int, int]]:
    """Shifts aligning a bbox edge (or the centroid) of track t from frame p to frame f."""
    a, b = sp.slices[t], sf.slices[t] if t < len(sf.slices) else None
    if a is None or b is None:
        return set()
    dys = {b[0].start - a[0].start, b[0].stop - a[0].stop, int(round(sf.cy[t] - sp.cy[t]))}
    dxs = {b[1].start - a[1].start, b[1].stop - a[1].stop, int(round(sf.cx[t] - sp.cx[t]))}
    return {(dy, dx) for dy in dys for dx in dxs}


def _match_pair(la: np.ndarray, lb: np.ndarray, sa: FrameStats, sb: FrameStats, n_ids: int,
                motion_of: Callable[[int], set[tuple[int, int]]]) -> dict[int, Match]:
    """Continuation of every track of frame a on frame b (a before or after b)."""
    out: dict[int, Match] = {}
    for t in np.nonzero(sa.area[1:])[0] + 1:
        t = int(t)
        sl = sa.slices[t] if t < len(sa.slices) else None
        if sl is None:
            continue
        motion = motion_of(t) | {(0, 0)}
        shape = _shape_shifts(sa, sb, t) - motion if sb.present(t) else set()
        m = Match(motion_iou=0.0, shape_iou=-1.0, in_frame=0.0)
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


def pair_matches(labels: dict[int, np.ndarray], stats: Sequence[FrameStats | None], f: int, n_ids: int,
                 is_thing: Callable[[int], bool], occluder_iou: float, low_iou: float
                 ) -> tuple[dict[int, Match], dict[int, Match]]:
    """Forward (f-1 -> f) and backward (f -> f-1) matches of the pair ending at frame f.

    ``labels`` must hold frames f-1 and f, ``stats`` frames f-1 and f (and f-2, f+1, f+2 where
    known, for the velocities). Returns two dicts by track id of the source frame. Motion
    candidates never use frame f's own position: velocity f-2 -> f-1 or f+1 -> f+2.
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


def _finish(matches: dict[int, Match], area_b: np.ndarray, is_thing: Callable[[int], bool], occluder_iou: float,
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
