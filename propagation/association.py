"""Association of keyframe masks into video-wide tracks: the sparse tracking loop (DESIGN 3, step 3).

Where the annotator's keyframe drawings live: directly on the **main label layer** of each
keyframe, under *provisional* tracks. The annotator draws every instance of a keyframe without
caring about identity (the GUI gives each new instance a fresh track, or any track it likes);
association then relabels the keyframe in place so each segment carries its video-wide track id.
A provisional track that ends up merged into an earlier track and owns no pixel anywhere any more
is deleted (its id stays retired). Only the *partition* of a keyframe into segments and each
segment's class matter to association, never the ids drawn, so running it again - for instance
after a correction - is well defined: an already associated keyframe is just a keyframe whose
segments happen to carry good ids. There is no second "raw" layer to keep in sync.

For consecutive labelled keyframes k0 < k1:

1. carry k0's label map to k1 with a :class:`~propagation.base.Propagator` (optical flow by default,
   the copy propagator when flow is unavailable); tracks missing on k0 but seen on one of the
   ``max_gap`` keyframes before are carried too: their last seen mask moved at their last
   velocity (re-identification after an occlusion or a short exit);
2. build the IoU matrix between carried tracks and k1's segments in one vectorised pass: compact
   the carried ids through a lookup table, combine them with the segment ids into one key per
   pixel, one ``bincount`` gives every intersection and, by row and column sums, every area.
   Pixels the annotator left void on k1 do not count against a carried track (k1 may be partly
   labelled);
3. things: ``scipy.optimize.linear_sum_assignment`` maximising the IoU over same-category pairs
   with IoU >= ``threshold`` (never across categories). What is left goes through two fallback
   rounds, each Hungarian too: *containment* (intersection / smaller area, for a half-hidden
   object whose IoU collapsed) and *proximity* (the segment lies within a few object radii of
   where the track's own constant-velocity motion puts it: an object the propagator lost behind
   an occluder). Such matches have a low IoU and so are flagged for review. When the propagator
   lost a track, a constant-velocity guess of its mask joins as a second cascade stage. A weak
   pair (IoU below the review threshold) that contradicts the track's measured velocity by more
   than ``gate`` object radii is vetoed: in a crossing the propagator tends to follow the nearer
   object and hand each track the other's segment.
   Unmatched segments become new tracks;
4. stuff: one track per stuff class per video, associated by class (no Hungarian); the IoU of the
   carried class region with the keyframe's region of that class is still stored.

Every match keeps its IoU; review flags list matches below ``review_threshold``, thing tracks that
appear after the first keyframe, thing tracks that vanish and tracks re-identified after a gap.
Per keyframe the match table is stored as the array ``association`` (see :func:`stored_matches`),
which ``annotator.review`` reads; each run is logged in ``video.json`` with an undo record
(``propagation.corrections.undo_last`` reverts it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import find_objects
from scipy.optimize import linear_sum_assignment

from annotator import panoptic
from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, Video
from propagation import corrections
from propagation.base import CopyPropagator, Propagator, Reference
from propagation.corrections import EditRecorder

ARRAY_NAME = "association"
KINDS = ("initial", "matched", "reidentified", "new", "stuff", "vanished", "fixed")
_KIND_CODE = {k: n for n, k in enumerate(KINDS)}
CRITERIA = ("", "iou", "containment", "proximity")


@dataclass(frozen=True)
class AssociationConfig:
    """Tunables of association (defaults from the issue / VIPSeg practice)."""

    threshold: float = 0.3  # accept a thing match at IoU >= threshold
    review_threshold: float = 0.5  # flag matches below this IoU for review
    max_gap: int = 3  # a vanished track can be re-identified after missing up to this many keyframes
    min_confidence: float = 0.0  # carried pixels below this propagation confidence count as void
    #: second pass for pairs left unmatched by IoU: accept when this fraction of the smaller of the two
    #: masks lies inside the other (partial occlusion shrinks a segment far below IoU 0.3); 0 = off
    containment: float = 0.5
    #: last round for what is still unmatched: a segment within this many object radii of where a
    #: track's own motion puts it (occluded objects the propagator lost); 0 = off
    proximity: float = 2.0
    #: a match with IoU below ``review_threshold`` is vetoed when its segment lies further than this
    #: many object radii from where the track's measured velocity puts it (crossings); 0 = off
    gate: float = 2.5

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"association threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.containment <= 1.0:
            raise InputError(f"containment must be in [0, 1], got {self.containment}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise InputError(f"review threshold must be in [0, 1], got {self.review_threshold}")
        if self.proximity < 0 or self.gate < 0:
            raise InputError(f"proximity and gate must be >= 0 object radii, got {self.proximity}, {self.gate}")
        if self.max_gap < 0:
            raise InputError(f"max gap must be >= 0 keyframes, got {self.max_gap}")


@dataclass(frozen=True)
class Match:
    """How one segment of a keyframe got its track (or, kind ``vanished``, a track that left)."""

    keyframe: int
    segment: int  # id the segment carried on the keyframe before association (0 for vanished)
    track: int  # video-wide track id it carries now
    category: int
    kind: str  # one of KINDS
    iou: float  # IoU of the carried mask with the segment (0 when nothing was carried)
    source: int = -1  # keyframe the matched mask was carried from
    criterion: str = ""  # how a thing was matched: iou | containment | proximity ("" otherwise)


@dataclass(frozen=True)
class ReviewFlag:
    """Something a reviewer should look at (``annotator.review`` lists them)."""

    kind: str  # low_iou | new_track | vanished | reappeared
    frame: int
    track: int
    iou: float
    message: str


@dataclass
class AssociationResult:
    matches: list[Match] = field(default_factory=list)
    flags: list[ReviewFlag] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)  # keyframes associated (or kept fixed)
    skipped: list[int] = field(default_factory=list)  # keyframes without any label (not annotated yet)
    new_tracks: list[int] = field(default_factory=list)  # tracks created by this run
    deleted_tracks: list[int] = field(default_factory=list)  # provisional tracks merged away
    undo_id: str | None = None
    propagator: str = ""


# ----------------------------------------------------------------- pure core (no video)
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


def _present(label: np.ndarray) -> np.ndarray:
    ids = np.flatnonzero(np.bincount(label.ravel(), minlength=1))
    return ids[ids != panoptic.VOID]


def _compact_lut(ids: np.ndarray, size: int) -> np.ndarray:
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
    """
    if carried.shape != segments.shape:
        raise InputError(f"keyframes of different sizes: carried map is {carried.shape[1]}x{carried.shape[0]}, "
                         f"keyframe is {segments.shape[1]}x{segments.shape[0]}")
    rows = _present(carried) if rows is None else np.asarray(rows, np.intp)
    rows = rows[rows != panoptic.VOID]
    nr = len(rows)
    top = int(segments.max(initial=0))
    lut_r = _compact_lut(rows, max(int(carried.max(initial=0)), int(rows.max(initial=0))) + 1)
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
        cols = _present(segments) if seg_ids is None else seg_ids
        lut_c = _compact_lut(cols, top + 1)
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
    lut = _compact_lut(seg_ids, max(int(segments.max(initial=0)), int(seg_ids.max(initial=0))) + 1)
    flat = np.flatnonzero((lut > 0)[segments])  # a bool mask: far faster to scan than ids
    ys, xs = np.divmod(flat, segments.shape[1])
    idx = lut[segments.ravel()[flat]] - 1
    n = len(seg_ids)
    cnt = np.bincount(idx, minlength=n).astype(np.float64)
    c = np.maximum(cnt, 1)
    return (np.bincount(idx, weights=ys, minlength=n) / c, np.bincount(idx, weights=xs, minlength=n) / c, cnt)


def _centroid_step(shape: tuple[int, ...]) -> int:
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
    """
    tables: list[Overlap] = []
    seg_ids = None
    for c in carried:
        tables.append(overlap(c.label, segments, seg_ids, c.ids))
        seg_ids = tables[-1].cols
    if seg_ids is None:
        seg_ids = _present(segments)
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
            cy, cx, ca = segment_centroids(segments, seg_ids[tc_all], _centroid_step(segments.shape))
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
    """Apply ``segment -> track`` to a keyframe in one lookup (ids not in ``mapping`` keep theirs)."""
    return panoptic.remap(label, mapping)


# ----------------------------------------------------------------- propagator choice
def make_propagator(name: str | None = None) -> Propagator:
    """``flow`` (default when it imports), ``copy``; None = flow, falling back to copy.

    Association only needs each track roughly where it lands on the next keyframe, so the
    no-weights optical-flow propagator is the default; the copy propagator (no motion model)
    keeps association usable when flow is unavailable.
    """
    if name not in (None, "flow", "copy"):
        raise InputError(f"unknown propagator {name!r} for association; choose flow or copy")
    if name != "copy":
        try:
            from propagation.flow import FlowPropagator

            return FlowPropagator()
        except Exception as exc:  # noqa: BLE001 - any failure to build flow means: use copy
            if name == "flow":
                raise InputError(f"the flow propagator is not available ({exc}); use --propagator copy") from None
    return CopyPropagator()


def default_propagator(video: Video | None = None) -> Propagator:
    backend = video.project.settings.get("propagation_backend") if video is not None else None
    return make_propagator("copy" if backend == "copy" else None)


# ----------------------------------------------------------------- video driver
def _track_classes(video: Video) -> dict[int, int]:
    cats = video.track_category()
    bad = {t: c for t, c in cats.items() if c not in video.taxonomy}
    if bad:
        t, c = next(iter(bad.items()))
        raise InputError(f"video {video.id!r}: track {t} has category {c}, unknown to taxonomy "
                         f"{video.taxonomy.name!r}; fix it with `correct ... set-class`")
    return cats


def _read_keyframe(video: Video, k: int, cats: Mapping[int, int]) -> np.ndarray:
    label = video.read_label(k)
    unknown = [int(i) for i in _present(label) if int(i) not in cats]
    if unknown:
        raise InputError(f"keyframe {k} of video {video.id!r} has pixels with ids {unknown[:10]} that are not "
                         "tracks, so their class is unknown; give them a class or erase them")
    return label


def _carry(propagator: Propagator, video: Video, ref: Reference, target: int, cfg: AssociationConfig,
           cancel: CancelToken | None) -> np.ndarray:
    res = propagator.propagate(video, [ref], [target], cancel=cancel)
    label = res.labels.get(target)
    if label is None or label.shape != ref.label.shape:
        got = "nothing" if label is None else f"{label.shape[1]}x{label.shape[0]}"
        raise InputError(f"propagator {propagator.name!r} returned {got} for frame {target}, "
                         f"expected {ref.label.shape[1]}x{ref.label.shape[0]}")
    label = np.asarray(label)
    if cfg.min_confidence > 0 and target in res.confidence:
        label = np.where(res.confidence[target] >= cfg.min_confidence, label, panoptic.VOID)
    return label.astype(panoptic.LABEL_DTYPE, copy=False)


def _store(video: Video, k: int, matches: list[Match]) -> None:
    rows = np.array([[m.segment, m.track, m.category, _KIND_CODE[m.kind], m.iou, m.source,
                      CRITERIA.index(m.criterion) if m.criterion in CRITERIA else 0] for m in matches],
                    np.float64).reshape(-1, 7)
    video.save_array(ARRAY_NAME, k, rows)


def stored_matches(video: Video, keyframe: int) -> list[Match]:
    """The match table the last association run stored for ``keyframe`` (empty if none)."""
    rows = video.load_array(ARRAY_NAME, keyframe)
    if rows is None or rows.ndim != 2 or rows.shape[1] not in (6, 7):
        return []
    return [Match(keyframe, int(r[0]), int(r[1]), int(r[2]), KINDS[int(r[3])], float(r[4]), int(r[5]),
                  CRITERIA[int(r[6])] if len(r) > 6 and 0 <= int(r[6]) < len(CRITERIA) else "")
            for r in rows if 0 <= int(r[3]) < len(KINDS)]


def stored_flags(video: Video, review_threshold: float = 0.5) -> list[ReviewFlag]:
    """Review flags rebuilt from the match tables of the last association run (for ``annotator.review``)."""
    matches = [m for k in video.keyframes for m in stored_matches(video, k)]
    first = min((m.keyframe for m in matches), default=None)
    tax = video.taxonomy
    return review_flags(matches, lambda c: c in tax and tax.get(c).isthing, review_threshold, first)


def review_flags(matches: Iterable[Match], is_thing: Callable[[int], bool], review_threshold: float = 0.5,
                 first_keyframe: int | None = None) -> list[ReviewFlag]:
    """Flags for a reviewer: low-IoU matches, things new after the first keyframe, vanished, reappeared."""
    flags: list[ReviewFlag] = []
    for m in matches:
        if not is_thing(m.category):
            continue
        if m.kind in ("matched", "reidentified") and m.iou < review_threshold:
            flags.append(ReviewFlag("low_iou", m.keyframe, m.track, m.iou,
                                    f"track {m.track} matched with IoU {m.iou:.2f} < {review_threshold:g}"))
        if m.kind == "reidentified":
            flags.append(ReviewFlag("reappeared", m.keyframe, m.track, m.iou,
                                    f"track {m.track} reappears (last seen on keyframe {m.source})"))
        if m.kind == "new" and (first_keyframe is None or m.keyframe != first_keyframe):
            flags.append(ReviewFlag("new_track", m.keyframe, m.track, m.iou,
                                    f"new track {m.track} appears mid-video"
                                    + (f" (best IoU {m.iou:.2f} below threshold)" if m.iou > 0 else "")))
        if m.kind == "vanished":
            flags.append(ReviewFlag("vanished", m.keyframe, m.track, 0.0,
                                    f"track {m.track} (on keyframe {m.source}) is absent"))
    return flags


class _State:
    """What the loop knows about tracks so far: last sighting, stuff tracks, ids already used."""

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.last_seen: dict[int, int] = {}  # track -> keyframe it was last on
        self.missed: dict[int, int] = {}  # track -> labelled keyframes since (0 = on the previous one)
        self.seen: set[int] = set()
        self.stuff: dict[int, int] = {}  # stuff category -> its track
        self.labels: dict[int, np.ndarray] = {}
        self.history: dict[int, list[tuple[int, float, float]]] = {}  # track -> last 2 (k, cy, cx)
        self.area: dict[int, float] = {}  # thing track -> area on the keyframe it was last seen on

    def observe(self, k: int, present: Iterable[int], cats: Mapping[int, int], is_thing: Callable[[int], bool],
                label: np.ndarray | None = None) -> None:
        present = {int(t) for t in present}
        for t in list(self.missed):
            if t not in present:
                self.missed[t] += 1
                if self.missed[t] > self.max_gap:
                    del self.missed[t], self.last_seen[t]
        for t in present:
            self.last_seen[t], self.missed[t] = k, 0
            self.seen.add(t)
            c = cats.get(t)
            if c is not None and not is_thing(c):
                self.stuff.setdefault(c, t)
        if label is not None:
            self.labels[k] = label
            self._record_centroids(k, label, [t for t in present if t in cats and is_thing(cats[t])])
        needed = set(self.last_seen.values())
        for old in [key for key in self.labels if key not in needed]:
            del self.labels[old]

    def _record_centroids(self, k: int, label: np.ndarray, ids: list[int]) -> None:
        if not ids:
            return
        cy, cx, cnt = segment_centroids(label, np.array(sorted(ids), np.intp), _centroid_step(label.shape))
        for t, y, x, a in zip(sorted(ids), cy, cx, cnt, strict=True):
            if a:
                self.history[t] = (self.history.get(t, []) + [(k, float(y), float(x))])[-2:]
                # the larger of the last two sightings: a partly hidden object is smaller than it is
                prior = self.area.get(t, 0.0) if len(self.history[t]) == 2 else 0.0
                self.area[t] = max(float(a), prior)

    def restart_motion(self, ids: Iterable[int]) -> None:
        for t in ids:
            if t in self.history:
                self.history[t] = self.history[t][-1:]

    def predict(self, t: int, target: int) -> Prediction | None:
        """Centroid of track ``t`` on frame ``target`` by constant velocity from its last sightings."""
        h = self.history.get(t)
        if not h or t not in self.last_seen or h[-1][0] != self.last_seen[t]:
            return None
        k1, y1, x1 = h[-1]
        dy, dx = 0.0, 0.0
        if len(h) == 2 and h[1][0] != h[0][0]:
            k0, y0, x0 = h[0]
            f = (target - k1) / (k1 - k0)
            dy, dx = (y1 - y0) * f, (x1 - x0) * f
        lost = self.missed.get(t, 0) > 0
        return Prediction(y1 + dy, x1 + dx, self.area.get(t, 0.0), k1, lost=lost, moving=len(h) == 2 and not lost)

    def shift(self, t: int, target: int) -> tuple[int, int]:
        """Constant-velocity displacement of track ``t`` from its last sighting to frame ``target``."""
        h = self.history.get(t, [])
        if len(h) < 2 or h[1][0] == h[0][0]:
            return 0, 0
        (k0, y0, x0), (k1, y1, x1) = h
        f = (target - k1) / (k1 - k0)
        return int(round((y1 - y0) * f)), int(round((x1 - x0) * f))

    def predictions(self, target: int, cats: Mapping[int, int], is_thing: Callable[[int], bool],
                    carried: np.ndarray | None = None) -> dict[int, Prediction]:
        """Predicted centroids of the thing tracks still followed (seen within the gap).

        A track seen only once has no velocity yet; if the propagator still carried a fair part
        of it (``carried``, the map carried from the previous keyframe), the carried mask's
        centroid is its prediction - the propagator's own motion estimate.
        """
        out: dict[int, Prediction] = {}
        for t in self.last_seen:
            c = cats.get(t)
            if c is not None and is_thing(c):
                p = self.predict(t, target)
                if p is not None:
                    out[t] = p
        once = np.array([t for t, p in out.items() if len(self.history.get(t, [])) == 1 and not p.lost], np.intp)
        if carried is not None and len(once):
            cy, cx, area = segment_centroids(carried, once, _centroid_step(carried.shape))
            for t, y, x, a in zip(once.tolist(), cy, cx, area, strict=True):
                p = out[t]
                if a >= 0.25 * p.area:
                    out[t] = Prediction(float(y), float(x), p.area, p.source)
        return out

    def lost_groups(self) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for t, m in self.missed.items():
            if 1 <= m <= self.max_gap:
                groups.setdefault(self.last_seen[t], []).append(t)
        return groups


def associate_video(video: Video, propagator: Propagator | None = None, config: AssociationConfig | None = None,
                    start: int | None = None, fixed: Iterable[int] = (), recorder: EditRecorder | None = None,
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> AssociationResult:
    """Give every segment of the labelled keyframes from ``start`` on its video-wide track.

    Keyframes before ``start`` are trusted as they are; keyframes in ``fixed`` keep their ids (a
    corrected keyframe) and serve as input for the next one. Keyframes with no label at all are
    skipped (not annotated yet) and do not count in the re-identification gap. Changes go through
    ``recorder`` (a new one, logged as an ``association`` event with its undo record, by default).
    """
    cfg = config or AssociationConfig()
    prop = propagator or default_propagator(video)
    fixed = {int(k) for k in fixed}
    tax = video.taxonomy
    cats = _track_classes(video)

    def is_thing(c: int) -> bool:
        return tax.get(c).isthing

    keys = video.keyframes
    first = 0 if start is None else int(start)
    labelled = [k for k in keys if video.frame_tracks(k)]
    before = [k for k in labelled if k < first]
    run = [k for k in labelled if k >= first]
    result = AssociationResult(skipped=[k for k in keys if k >= first and k not in labelled], propagator=prop.name)
    own = recorder is None
    rec = recorder or EditRecorder(video, "associate", {"start": first, "fixed": sorted(fixed),
                                                        "threshold": cfg.threshold, "propagator": prop.name},
                                   kind="association")
    state = _State(cfg.max_gap)
    for n_b, k in enumerate(before):  # the last few prefix keyframes give sightings and velocities
        recent = n_b >= len(before) - cfg.max_gap - 2
        state.observe(k, video.frame_tracks(k), cats, is_thing, _read_keyframe(video, k, cats) if recent else None)
    first_labelled = labelled[0] if labelled else None
    replaced: set[int] = set()
    prev: int | None = before[-1] if before else None
    try:
        for n, k in enumerate(run):
            check_cancel(cancel)
            if progress:
                progress(n, len(run), f"keyframe {k}")
            segs = _read_keyframe(video, k, cats)
            if prev is None or k in fixed:
                mapping = _initial_mapping(segs, cats, is_thing, state, fixed=k in fixed)
                kind = "fixed" if k in fixed else "initial"
                matches = [Match(k, s, t, cats[s], kind, 1.0 if kind == "fixed" else 0.0)
                           for s, t in mapping.items()]
            else:
                prev_label = state.labels.get(prev)
                if prev_label is None:
                    prev_label = _read_keyframe(video, prev, cats)
                human = frozenset(t for t, s in video.provenance(prev).items() if s.is_human)
                prev_ids = np.array(video.frame_tracks(prev), np.intp)
                carried = [CarriedMap(_carry(prop, video, Reference(prev, prev_label, human), k, cfg, cancel), prev,
                                      ids=prev_ids)]
                # tracks that vanished: their last mask moved at their last velocity. Not through the
                # propagator - over an occlusion it follows the occluder, and it would recompute the
                # whole gap's motion once per group - and a velocity guess is what a hidden object has.
                for k_last, ids in sorted(state.lost_groups().items()):
                    ref_label = state.labels.get(k_last)
                    if ref_label is None:
                        ref_label = _read_keyframe(video, k_last, cats)
                    guess = _extrapolate(ref_label, {t: state.shift(t, k) for t in ids})
                    carried.append(CarriedMap(guess, k_last, lost=True, ids=np.array(ids, np.intp)))
                preds = state.predictions(k, cats, is_thing, carried[0].label) if cfg.proximity > 0 else {}
                pairs = match_segments(carried, segs, cats, is_thing, cfg.threshold, state.stuff, cfg.containment,
                                       preds, cfg.proximity, cfg.gate, cfg.review_threshold)
                if _worth_second_stage(pairs, carried, cats, is_thing):
                    # the propagator lost someone: add constant-velocity guesses of the last masks
                    ids = [t for t in video.frame_tracks(prev) if is_thing(cats[t])]
                    guess = _extrapolate(prev_label, {t: state.shift(t, k) for t in ids})
                    carried.append(CarriedMap(guess, prev, stage=1, ids=np.array(ids, np.intp)))
                    pairs = match_segments(carried, segs, cats, is_thing, cfg.threshold, state.stuff,
                                           cfg.containment, preds, cfg.proximity, cfg.gate,
                                           cfg.review_threshold)
                mapping, matches = _assign(video, k, pairs, state, rec, cats, result)
                prev_tracks = set(video.frame_tracks(prev))
                gone = sorted(prev_tracks - set(mapping.values()))
                matches += [Match(k, 0, t, cats[t], "vanished", 0.0, prev) for t in gone]
            new_label = relabel(segs, mapping) if any(s != t for s, t in mapping.items()) else segs
            if new_label is not segs:
                old_prov = video.provenance(k)
                prov: dict[int, FrameState] = {}
                for s, t in mapping.items():
                    p = old_prov.get(s, FrameState.MANUAL)
                    if t not in prov or (p.is_human and not prov[t].is_human):
                        prov[t] = p
                rec.write_label(k, new_label, old=segs, provenance=prov)
                replaced.update(s for s, t in mapping.items() if s != t)
            _store(video, k, matches)
            result.matches += matches
            result.keyframes.append(k)
            state.observe(k, mapping.values(), cats, is_thing, new_label)
            if k in fixed:
                # a corrected keyframe may give a track another object's position: the motion
                # measured across it is meaningless, so velocities restart from here
                state.restart_motion(mapping.values())
            prev = k
        for s in sorted(replaced):
            if s in video.tracks and not video.track_frames(s):
                rec.delete_track(s)
                result.deleted_tracks.append(s)
        if progress:
            progress(len(run), len(run), "done")
    except BaseException:
        # cancelled, or bad input found on a later keyframe: leave no partial output behind
        # (a caller's recorder is rolled back by that caller, with its own changes)
        if own:
            rec.rollback()
        raise
    result.flags = review_flags(result.matches, is_thing, cfg.review_threshold, first_labelled)
    if own:
        result.undo_id = rec.finish({"keyframes": len(result.keyframes), "new_tracks": len(result.new_tracks),
                                     "flags": len(result.flags)})
    return result


def _worth_second_stage(pairs: list[SegmentMatch], carried: list[CarriedMap], cats: Mapping[int, int],
                        is_thing: Callable[[int], bool]) -> bool:
    """True when a thing segment is unmatched while a carried thing track of its class is too."""
    new_cats = {p.category for p in pairs if p.track is None and not p.stuff}
    if not new_cats:
        return False
    matched = {p.track for p in pairs if p.track is not None}
    for c in carried:
        for t in _present(c.label):
            if int(t) not in matched and cats.get(int(t)) in new_cats:
                return True
    return False


def _extrapolate(label: np.ndarray, shifts: Mapping[int, tuple[int, int]]) -> np.ndarray:
    """The masks of ``shifts``' tracks moved by their (dy, dx), one bounding box each."""
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


def _initial_mapping(segs: np.ndarray, cats: Mapping[int, int], is_thing: Callable[[int], bool],
                     state: _State, fixed: bool) -> dict[int, int]:
    """First (or fixed) keyframe: ids kept; stuff merged into the video's one track per class."""
    mapping: dict[int, int] = {}
    for s in (int(i) for i in _present(segs)):
        c = cats[s]
        if fixed or is_thing(c):
            mapping[s] = s
        else:
            mapping[s] = state.stuff.setdefault(c, s)
    return mapping


def _assign(video: Video, k: int, pairs: list[SegmentMatch], state: _State, rec: EditRecorder,
            cats: dict[int, int], result: AssociationResult) -> tuple[dict[int, int], list[Match]]:
    """Turn matches into ``segment -> track``: unmatched segments keep their id when it is unused."""
    mapping: dict[int, int] = {}
    matches: list[Match] = []
    targets = {p.track for p in pairs if p.track is not None}
    used = state.seen | targets

    def fresh(s: int, c: int) -> int:
        if s not in used:
            used.add(s)
            return s
        t = rec.new_track(c)
        cats[t] = c
        result.new_tracks.append(t)
        used.add(t)
        return t

    for p in pairs:
        if p.stuff:
            t = p.track if p.track is not None else state.stuff.get(p.category)
            kind = "stuff"
            if t is None:  # first region of this class in the video
                state.stuff[p.category] = t = fresh(p.segment, p.category)
                kind = "new"
            mapping[p.segment] = t
            matches.append(Match(k, p.segment, t, p.category, kind, p.iou, p.source))
    for p in pairs:
        if p.stuff:
            continue
        if p.track is not None:
            mapping[p.segment] = p.track
            matches.append(Match(k, p.segment, p.track, p.category,
                                 "reidentified" if p.reidentified else "matched", p.iou, p.source, p.criterion))
        else:
            t = fresh(p.segment, p.category)
            mapping[p.segment] = t
            matches.append(Match(k, p.segment, t, p.category, "new", p.iou))
    return mapping, matches


def reassociate_from(video: Video, keyframe: int, propagator: Propagator | None = None,
                     config: AssociationConfig | None = None, recorder: EditRecorder | None = None,
                     progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> AssociationResult:
    """After a correction on ``keyframe``: keep that frame as it is and re-associate the ones after.

    The paper's loop ("the corrected instances are inputs of the tracker"). A frame that is not a
    keyframe is accepted: the first keyframe at or after it is the fixed one.
    """
    later = [k for k in video.keyframes if k >= keyframe]
    if not later:
        raise InputError(f"no keyframe at or after frame {keyframe} in video {video.id!r}")
    return associate_video(video, propagator, config, start=later[0], fixed={later[0]}, recorder=recorder,
                           progress=progress, cancel=cancel)


# ----------------------------------------------------------------- corrections + re-association
#: correction operations: name -> (function, name of its frame parameter or None)
CORRECTIONS: dict[str, tuple[Callable[..., corrections.CorrectionResult], str | None]] = {
    "reassign": (corrections.reassign, "from_frame"),
    "swap": (corrections.swap, "from_frame"),
    "merge": (corrections.merge, None),
    "split": (corrections.split, "at_frame"),
    "set-class": (corrections.set_class, None),
    "delete": (corrections.delete, None),
}


def apply_correction(video: Video, op: str, reassociate: bool = True, propagator: Propagator | None = None,
                     config: AssociationConfig | None = None, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None, **params: Any
                     ) -> tuple[corrections.CorrectionResult, AssociationResult | None]:
    """Apply one correction and, for the frame-based ones, re-associate the keyframes after it.

    The paper's loop: "the corrected instances are inputs of the tracker" - the first keyframe at
    or after the correction's frame is kept fixed and association re-runs from there, so the
    fix propagates to later keyframes. Correction and re-association are one undo step (one
    ``correction`` event in ``video.json``). ``params`` are those of the operation's function in
    :mod:`propagation.corrections` (e.g. ``track_a``, ``track_b``, ``from_frame`` for ``swap``).
    """
    if op not in CORRECTIONS:
        raise InputError(f"unknown correction {op!r}; choose one of {', '.join(CORRECTIONS)}")
    fn, frame_param = CORRECTIONS[op]
    rec = EditRecorder(video, op, {"reassociate": bool(reassociate and frame_param)})
    try:
        inspect.signature(fn).bind(video, recorder=rec, **params)
    except TypeError as exc:
        raise InputError(f"correction {op}: bad parameters {sorted(params)} ({exc})") from None
    assoc = None
    try:
        res = fn(video, recorder=rec, **params)
        if reassociate and frame_param is not None:
            frame = int(params.get(frame_param, 0))
            later = [k for k in video.keyframes if k >= frame and video.frame_tracks(k)]
            if later:
                rec.params["reassociated_from"] = later[0]
                assoc = associate_video(video, propagator, config, start=later[0], fixed={later[0]},
                                        recorder=rec, progress=progress, cancel=cancel)
    except BaseException:
        rec.rollback()  # the correction and a partial re-association: all or nothing
        raise
    frames = rec.changed_frames()
    undo_id = rec.finish({"frames": len(frames)})
    return corrections.CorrectionResult(op, undo_id, frames, res.new_track), assoc


# ----------------------------------------------------------------- evaluation against ground truth
def write_shuffled_keyframes(video: Video, labels: Mapping[int, np.ndarray], categories: Mapping[int, int],
                             seed: int = 0) -> None:
    """Write ground-truth keyframe masks as an annotator would draw them: identity-free.

    Every segment of every keyframe becomes a fresh provisional track, created in an order
    shuffled independently per keyframe, so ids carry no information across keyframes; this is
    the input association is evaluated on (tests, benchmark, ``identity_metrics``).
    """
    rng = np.random.default_rng(seed)
    for k in sorted(labels):
        ids = [int(i) for i in _present(labels[k])]
        rng.shuffle(ids)
        mapping = {g: video.new_track(categories[g]).id for g in ids}
        video.write_label(k, relabel(labels[k], mapping), state=FrameState.MANUAL)


def identity_metrics(gt: Mapping[int, np.ndarray], pred: Mapping[int, np.ndarray],
                     things: Iterable[int] | None = None) -> dict[str, Any]:
    """CLEAR-MOT identity switches and the fraction of keyframe instances with the right track.

    For every frame each ground-truth segment gets the predicted track covering most of its pixels.
    A switch is counted when a ground-truth object's track differs from the one it had the last
    time it was present. "Correct" maps each ground-truth object to one track (Hungarian over
    co-occurrence counts, one-to-one) and counts the instances carrying that track. ``things``
    restricts the count to those ground-truth ids (e.g. the thing instances).
    """
    keep = None if things is None else {int(t) for t in things}
    assigned: dict[int, list[int]] = {}
    for k in sorted(gt):
        g, p = gt[k], pred[k]
        if g.shape != p.shape:
            raise InputError(f"frame {k}: ground truth {g.shape} and prediction {p.shape} differ in size")
        ov = overlap(g, p)
        for r, gid in enumerate(ov.rows):
            if keep is not None and int(gid) not in keep:
                continue
            row = ov.inter[r]
            assigned.setdefault(int(gid), []).append(int(ov.cols[int(row.argmax())]) if row.sum() else 0)
    switches = sum(int(a != b) for seq in assigned.values() for a, b in zip(seq, seq[1:], strict=False))
    gids = sorted(assigned)
    tids = sorted({t for seq in assigned.values() for t in seq if t})
    total = sum(len(seq) for seq in assigned.values())
    correct = 0
    if gids and tids:
        col = {t: j for j, t in enumerate(tids)}
        counts = np.zeros((len(gids), len(tids)), np.int64)
        for i, g in enumerate(gids):
            for t in assigned[g]:
                if t:
                    counts[i, col[t]] += 1
        r, c = linear_sum_assignment(counts, maximize=True)
        correct = int(counts[r, c].sum())
    return {"switches": switches, "correct": correct, "instances": total,
            "fraction_correct": correct / total if total else 1.0, "objects": len(gids)}
