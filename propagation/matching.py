"""The matching core of association: overlap tables, Hungarian rounds, motion gate (no video, no I/O).

Why a module of its own: this is the part benchmarked against the 20 ms budget and unit-tested on
synthetic maps; it works on label maps and id -> category tables only, so it never touches a
:class:`~annotator.project.Video`. :mod:`annotator.stages.association` drives it over a video.

1. :func:`overlap`: every intersection between the tracks of a carried map and the segments of a
   keyframe in one ``bincount`` (carried ids compacted through a lookup table, combined with the
   segment ids into one key per pixel). Pixels the keyframe leaves void do not count against a
   carried track (the keyframe may be partly labelled).
2. :func:`match_segments`: things by Hungarian (``scipy.optimize.linear_sum_assignment``) over
   same-category pairs, in rounds - IoU >= threshold, then *containment* (intersection / smaller
   area, a half-hidden object), then *proximity* (the segment lies within a few object radii of
   where the track's own motion puts it) - and cascade stages (the propagator first, a
   constant-velocity guess second). A weak pair contradicting a track's measured velocity by more
   than ``gate`` radii is vetoed (crossings). Stuff is associated by class.
3. Motion helpers: :func:`segment_centroids` (for :class:`Prediction`) and :func:`extrapolate`
   (a lost track's last mask moved at its last velocity).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import find_objects
from scipy.optimize import linear_sum_assignment

from annotator import panoptic
from annotator.errors import InputError


@dataclass
class CarriedMap:
    """A label map carried to the keyframe being associated, with the frame it came from."""

    label: np.ndarray
    source: int
    lost: bool = False  # carried from the last keyframe a vanished track was seen on
    stage: int = 0  # cascade position: 0 = the propagator, 1 = constant-velocity guess
    #: the track ids the map can hold (those of its reference), when known: saves a pass over the
    #: map; ids outside it count as void, ids absent from the map are dropped
    ids: np.ndarray | None = None


@dataclass
class Overlap:
    """Intersections and areas between the tracks of a carried map and the segments of a keyframe."""

    rows: np.ndarray  # track ids (carried)
    cols: np.ndarray  # segment ids
    inter: np.ndarray  # (rows, cols) int64 pixel counts
    row_area: np.ndarray  # carried area on pixels the keyframe labels (void excluded)
    col_area: np.ndarray  # segment areas

    @property
    def iou(self) -> np.ndarray:
        union = self.row_area[:, None] + self.col_area[None, :] - self.inter
        return np.where(union > 0, self.inter / np.maximum(union, 1), 0.0)


def present_ids(label: np.ndarray) -> np.ndarray:
    ids = np.flatnonzero(np.bincount(label.ravel(), minlength=1))
    return ids[ids != panoptic.VOID]


def compact_lut(ids: np.ndarray, size: int) -> np.ndarray:
    lut = np.zeros(size, np.intp)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.intp)
    return lut


#: largest joint table (rows x raw segment ids) built directly, without compacting segment ids
_DIRECT_BINS = 4_000_000


def overlap(carried: np.ndarray, segments: np.ndarray, seg_ids: np.ndarray | None = None,
            rows: np.ndarray | None = None) -> Overlap:
    """All intersections of ``carried`` ids with ``segments`` ids in one ``bincount`` (void = 0).

    Carried ids are compacted through a lookup table and combined with the raw segment id into
    one key per pixel; when the segment ids are small enough the joint table is indexed by them
    directly, which also yields the segments present (non-empty columns) without another pass.
    ``rows`` (the carried ids, if known) and ``seg_ids`` (the segments to report) skip passes too.

    ``carried`` and ``segments`` are HxW integer id maps of one size (``InputError`` otherwise).
    Returns an ``Overlap``: ``rows`` (carried ids), ``cols`` (segment ids), ``inter`` (rows x cols
    int64 pixel counts) and both areas; ``Overlap.iou`` is the rows x cols float IoU table.
    """
    if carried.shape != segments.shape:
        raise InputError(f"keyframes of different sizes: carried map is {carried.shape[1]}x{carried.shape[0]}, "
                         f"keyframe is {segments.shape[1]}x{segments.shape[0]}")
    rows = present_ids(carried) if rows is None else np.asarray(rows, np.intp)
    rows = rows[rows != panoptic.VOID]
    nr = len(rows)
    top = int(segments.max(initial=0))
    lut_r = compact_lut(rows, max(int(carried.max(initial=0)), int(rows.max(initial=0))) + 1)
    direct = (nr + 1) * (top + 1) <= _DIRECT_BINS
    # 32-bit keys halve the memory traffic of the per-pixel passes whenever the table fits
    small = direct or (nr + 1) * (len(seg_ids) if seg_ids is not None else top + 1) < 2**31
    key = lut_r.astype(np.int32 if small else np.intp)[carried]
    if direct:
        key *= top + 1
        key += segments
        joint = np.bincount(key.ravel(), minlength=(nr + 1) * (top + 1)).reshape(nr + 1, top + 1)
        if seg_ids is None:
            seg_ids = np.flatnonzero(joint.sum(axis=0))
            seg_ids = seg_ids[seg_ids != panoptic.VOID]
        sub = joint[:, seg_ids]
    else:
        cols = present_ids(segments) if seg_ids is None else seg_ids
        lut_c = compact_lut(cols, top + 1)
        key *= len(cols) + 1
        key += lut_c[segments]
        joint = np.bincount(key.ravel(), minlength=(nr + 1) * (len(cols) + 1)).reshape(nr + 1, len(cols) + 1)
        seg_ids, sub = cols, joint[:, 1:]
    keep = joint[1:].sum(axis=1) > 0  # ids hinted by ``rows`` but absent from the map
    inter = sub[1:][keep]
    return Overlap(rows[keep], np.asarray(seg_ids), inter, inter.sum(axis=1), sub.sum(axis=0))


@dataclass(frozen=True)
class SegmentMatch:
    """Association of one keyframe segment: ``track`` None means no match (a new track)."""

    segment: int
    category: int
    track: int | None
    iou: float
    source: int = -1
    reidentified: bool = False
    stuff: bool = False
    criterion: str = "iou"  # iou | containment | proximity | class (stuff) | none


@dataclass(frozen=True)
class Prediction:
    """Where a thing track is expected on the keyframe being associated (for the proximity round).

    Why: a propagator loses objects that are heavily occluded during the gap (optical flow follows
    the occluder), so their carried mask has no overlap left; the track's own motion (last
    centroid + constant velocity) still says where it should be.
    """

    cy: float
    cx: float
    area: float
    source: int  # keyframe the track was last seen on
    lost: bool = False  # not on the previous keyframe
    moving: bool = False  # from a measured velocity (two sightings), so it may veto weak matches


def segment_centroids(segments: np.ndarray, seg_ids: np.ndarray, step: int = 1
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cy, cx, area) of every id in ``seg_ids``, visiting only those segments' pixels.

    ``segments`` is an HxW integer id map, ``seg_ids`` a 1-D integer array; returns three float64
    arrays of ``len(seg_ids)`` (row, column in pixels; area in pixels; 0 for an absent id).

    ``step`` > 1 samples every step-th row and column (``step`` squared times fewer pixels; the
    centroids move by under a pixel, areas are scaled back); segments too small to be sampled
    are measured at full resolution. Motion gating works in object radii, so this is plenty.
    """
    if step > 1:
        cy, cx, area = segment_centroids(segments[::step, ::step], seg_ids)
        cy, cx, area = cy * step, cx * step, area * step * step
        small = np.flatnonzero(area == 0)
        if len(small):
            cy[small], cx[small], area[small] = segment_centroids(segments, seg_ids[small])
        return cy, cx, area
    lut = compact_lut(seg_ids, max(int(segments.max(initial=0)), int(seg_ids.max(initial=0))) + 1)
    flat = np.flatnonzero((lut > 0)[segments])  # a bool mask: far faster to scan than ids
    ys, xs = np.divmod(flat, segments.shape[1])
    idx = lut[segments.ravel()[flat]] - 1
    n = len(seg_ids)
    cnt = np.bincount(idx, minlength=n).astype(np.float64)
    c = np.maximum(cnt, 1)
    return (np.bincount(idx, weights=ys, minlength=n) / c, np.bincount(idx, weights=xs, minlength=n) / c, cnt)


def centroid_step(shape: tuple[int, ...]) -> int:
    """Sampling step for motion centroids: full resolution up to ~0.25 Mpx, then every 2nd pixel."""
    return 2 if shape[0] * shape[1] > 250_000 else 1


def match_segments(carried: list[CarriedMap], segments: np.ndarray, categories: Mapping[int, int],
                   is_thing: Callable[[int], bool], threshold: float = 0.3,
                   stuff_tracks: Mapping[int, int] | None = None, containment: float = 0.0,
                   predictions: Mapping[int, Prediction] | None = None, proximity: float = 0.0,
                   gate: float = 0.0, gate_below: float = 0.5) -> list[SegmentMatch]:
    """Match the segments of one keyframe to carried tracks (no I/O: the benchmarked core).

    ``categories`` maps every id of ``segments`` and of the carried maps to its category. Carried
    maps form a cascade by ``stage``: a track may appear once per stage, and a later stage (a
    cheaper motion guess) only sees the tracks and segments earlier stages left unmatched. Things
    are matched by Hungarian over same-category pairs with IoU >= ``threshold``, stage by stage;
    with ``containment`` > 0 a second round scores the pairs still left by intersection / smaller
    area (an object half hidden behind another keeps its track although its IoU collapses); with
    ``proximity`` > 0 a last round matches the remaining segments to the remaining ``predictions``
    whose predicted centroid lies within ``proximity`` object radii (Hungarian on distance).
    With ``gate`` > 0, a weak pair (IoU < ``gate_below``) whose segment lies more than ``gate``
    radii from where the track's measured velocity puts it is vetoed in the first two rounds: when
    two objects cross, the propagator tends to follow the nearer one and hand each track the
    other's segment with a middling overlap, while their own motion still tells them apart.
    Stuff segments go to ``stuff_tracks[category]`` (None if the video has no track of that class
    yet); their IoU is that of the whole class region in the first stage.

    Args:
        carried: ``CarriedMap`` s (HxW integer track-id maps, the size of ``segments``).
        segments: HxW integer segment ids of the keyframe (0 = void).
        categories: id -> category id, for every segment and carried track id.
        is_thing: category id -> thing (True) or stuff.

    Returns:
        One ``SegmentMatch`` per segment of the keyframe (``track`` None: unmatched, a new track),
        each with its IoU, the frame its track came from and the round that matched it
        (``criterion``). Raises ``InputError`` for a segment without a class.
    """
    tables: list[Overlap] = []
    seg_ids = None
    for c in carried:
        tables.append(overlap(c.label, segments, seg_ids, c.ids))
        seg_ids = tables[-1].cols
    if seg_ids is None:
        seg_ids = present_ids(segments)
    unknown = [int(i) for i in seg_ids if int(i) not in categories]
    if unknown:
        raise InputError(f"segments {unknown[:10]} have no class (not tracks of the video)")
    seg_cat = np.array([categories[int(i)] for i in seg_ids], np.int64)
    seg_thing = np.array([is_thing(int(c)) for c in seg_cat], bool)
    stages = []
    for st in sorted({c.stage for c in carried}):
        group = [(c, t) for c, t in zip(carried, tables, strict=True) if c.stage == st]
        stages.append(_StageTable.build([c for c, _ in group], [t for _, t in group], seg_ids, categories,
                                        is_thing))
    out: dict[int, SegmentMatch] = {}
    done: set[int] = set()  # matched tracks
    tc_all = np.flatnonzero(seg_thing)
    rounds = [("iou", threshold)] + ([("containment", containment)] if containment > 0 else [])
    centroids: dict[int, tuple[float, float, float]] = {}

    def centroid(ci: int) -> tuple[float, float, float]:
        """(cy, cx, area) of segment column ``ci``; one pass over the map gives every thing's."""
        if not centroids:
            cy, cx, ca = segment_centroids(segments, seg_ids[tc_all], centroid_step(segments.shape))
            centroids.update({int(c): (y, x, a) for c, y, x, a in zip(tc_all, cy, cx, ca, strict=True)})
        return centroids[ci]

    def veto(st: _StageTable, tr: np.ndarray, tc: np.ndarray, score: np.ndarray) -> np.ndarray:
        if gate <= 0 or not predictions:
            return score
        weak = (score > 0) & (st.iou[np.ix_(tr, tc)] < gate_below)
        if not weak.any():
            return score
        score = score.copy()
        for r, c in zip(*np.nonzero(weak), strict=True):
            p = predictions.get(int(st.rows[tr[r]]))
            if p is None or not p.moving:
                continue
            y, x, a = centroid(int(tc[c]))
            if np.hypot(p.cy - y, p.cx - x) > gate * max(np.sqrt(max(p.area, a) / np.pi), 1.0):
                score[r, c] = 0.0
        return score

    for criterion, limit in rounds:
        for st in stages:
            tr = np.flatnonzero(st.thing & ~np.isin(st.rows, list(done)))
            tc = np.array([c for c in tc_all if int(seg_ids[c]) not in out], int)
            if not len(tr) or not len(tc):
                continue
            if criterion == "iou":
                score = st.iou[np.ix_(tr, tc)]
            else:
                small = np.minimum(st.row_area[tr][:, None], st.col_area[tc][None, :])
                score = np.where(small > 0, st.inter[np.ix_(tr, tc)] / np.maximum(small, 1), 0.0)
            score = np.where((st.cat[tr][:, None] == seg_cat[tc][None, :]) & (score >= limit), score, 0.0)
            score = veto(st, tr, tc, score)
            for r, c in zip(*linear_sum_assignment(score, maximize=True), strict=True):
                if score[r, c] > 0:
                    ri, ci = tr[r], tc[c]
                    done.add(int(st.rows[ri]))
                    out[int(seg_ids[ci])] = SegmentMatch(int(seg_ids[ci]), int(seg_cat[ci]), int(st.rows[ri]),
                                                         float(st.iou[ri, ci]), int(st.src[ri]), bool(st.lost[ri]),
                                                         criterion=criterion)
    if proximity > 0 and predictions:
        _proximity_round(seg_ids, seg_cat, tc_all, predictions, categories, proximity, stages, done, out, centroid)
    for ci in tc_all:
        s = int(seg_ids[ci])
        if s not in out:  # a new track; keep the best same-class IoU it had, for the review message
            best = max((float(st.iou[st.cat == seg_cat[ci], ci].max(initial=0.0)) for st in stages), default=0.0)
            out[s] = SegmentMatch(s, int(seg_cat[ci]), None, best, criterion="none")
    # stuff: by class; IoU of the carried class track with the keyframe's whole class region
    stuff_tracks = stuff_tracks or {}
    first = stages[0] if stages else None
    for cat in np.unique(seg_cat[~seg_thing]):
        cols = np.flatnonzero((seg_cat == cat) & ~seg_thing)
        track = stuff_tracks.get(int(cat))
        value, src = 0.0, -1
        if first is not None and track is not None and track in first.index:
            r = first.index[track]
            i = first.inter[r, cols].sum()
            union = first.row_area[r] + first.col_area[cols].sum() - i
            value, src = (float(i / union) if union else 0.0), int(first.src[r])
        for ci in cols:
            s = int(seg_ids[ci])
            out[s] = SegmentMatch(s, int(cat), track, value, src, stuff=True, criterion="class")
    return [out[int(s)] for s in seg_ids]


def _proximity_round(seg_ids: np.ndarray, seg_cat: np.ndarray, tc_all: np.ndarray,
                     predictions: Mapping[int, Prediction], categories: Mapping[int, int], proximity: float,
                     stages: list[_StageTable], done: set[int], out: dict[int, SegmentMatch],
                     centroid: Callable[[int], tuple[float, float, float]]) -> None:
    """Match left-over thing segments to left-over predicted tracks by centroid distance."""
    tc = np.array([c for c in tc_all if int(seg_ids[c]) not in out], int)
    tracks = [t for t in predictions if t not in done and t in categories]
    if not len(tc) or not tracks:
        return
    cats = {int(categories[t]) for t in tracks}
    tc = tc[np.isin(seg_cat[tc], list(cats))]
    if not len(tc):
        return
    cy, cx, area = (np.array(v) for v in zip(*(centroid(int(c)) for c in tc), strict=True))
    pr = [predictions[t] for t in tracks]
    py = np.array([p.cy for p in pr])
    px = np.array([p.cx for p in pr])
    pa = np.array([p.area for p in pr])
    radius = np.sqrt(np.maximum(pa[:, None], area[None, :]) / np.pi)
    dist = np.hypot(py[:, None] - cy[None, :], px[:, None] - cx[None, :]) / np.maximum(radius, 1.0)
    same = np.array([categories[t] for t in tracks])[:, None] == seg_cat[tc][None, :]
    ok = same & (dist <= proximity)
    if not ok.any():
        return
    cost = np.where(ok, dist, 1e6)
    for r, c in zip(*linear_sum_assignment(cost), strict=True):
        if ok[r, c]:
            t, ci = tracks[r], tc[c]
            done.add(t)
            iou = max((float(st.iou[st.index[t], ci]) for st in stages if t in st.index), default=0.0)
            out[int(seg_ids[ci])] = SegmentMatch(int(seg_ids[ci]), int(seg_cat[ci]), t, iou, pr[r].source,
                                                 pr[r].lost, criterion="proximity")


@dataclass
class _StageTable:
    """The overlap tables of one cascade stage, stacked over its carried maps."""

    rows: np.ndarray
    inter: np.ndarray
    row_area: np.ndarray
    col_area: np.ndarray
    src: np.ndarray
    lost: np.ndarray
    cat: np.ndarray
    thing: np.ndarray
    iou: np.ndarray
    index: dict[int, int]

    @classmethod
    def build(cls, maps: list[CarriedMap], tables: list[Overlap], seg_ids: np.ndarray,
              categories: Mapping[int, int], is_thing: Callable[[int], bool]) -> _StageTable:
        rows = np.concatenate([t.rows for t in tables])
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a track appears twice in one stage of carried maps")
        unknown = [int(i) for i in rows if int(i) not in categories]
        if unknown:
            raise InputError(f"carried tracks {unknown[:10]} have no class (not tracks of the video)")
        inter = np.concatenate([t.inter for t in tables])
        row_area = np.concatenate([t.row_area for t in tables])
        col_area = tables[0].col_area
        cat = np.array([categories[int(i)] for i in rows], np.int64)
        return cls(rows, inter, row_area, col_area,
                   np.concatenate([np.full(len(t.rows), c.source) for t, c in zip(tables, maps, strict=True)]),
                   np.concatenate([np.full(len(t.rows), c.lost) for t, c in zip(tables, maps, strict=True)]),
                   cat, np.array([is_thing(int(c)) for c in cat], bool),
                   Overlap(rows, seg_ids, inter, row_area, col_area).iou,
                   {int(t): n for n, t in enumerate(rows)})


def relabel(label: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Apply ``segment -> track`` to a keyframe in one lookup (ids not in ``mapping`` keep theirs).

    ``label``: HxW integer ids; returns a new map of the same shape (``panoptic.remap``)."""
    return panoptic.remap(label, mapping)


def extrapolate(label: np.ndarray, shifts: Mapping[int, tuple[int, int]]) -> np.ndarray:
    """The masks of ``shifts``' tracks moved by their (dy, dx), one bounding box each.

    ``label``: HxW integer track ids; ``shifts``: track id -> integer (dy, dx) in pixels. Returns a
    new map of ``label``'s shape and dtype holding only the shifted tracks (0 elsewhere; parts
    moved out of the frame are dropped)."""
    out = np.zeros_like(label)
    if not shifts:
        return out
    h, w = label.shape
    boxes = find_objects(label, max_label=max(shifts))
    for t, (dy, dx) in shifts.items():
        box = boxes[t - 1] if t - 1 < len(boxes) else None
        if box is None:
            continue
        ys, xs = box
        y0, y1, x0, x1 = ys.start + dy, ys.stop + dy, xs.start + dx, xs.stop + dx
        cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if cy0 >= cy1 or cx0 >= cx1:
            continue  # moved out of the frame
        mask = label[ys, xs][cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] == t
        out[cy0:cy1, cx0:cx1][mask] = t
    return out
