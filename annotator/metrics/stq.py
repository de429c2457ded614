"""Segmentation and Tracking Quality as VIPSeg's ``eval_stq_vspw.py`` (deeplab2's numpy STQ).

Official encoding: semantic = the segment's category, instance = index of the segment id's first
appearance in the video's ``segments_info`` lists (stuff and things share the numbering, from 0);
ids not listed -> 255 (void). ``STQ = sqrt(AQ * SQ)`` with

* SQ: mean IoU over a (num_classes + 1) confusion matrix whose last class is void; the GT-void row
  is zeroed; classes with an empty union are left out of the mean.
* AQ: for every GT thing tube g (instance != 0), ``1/|g| * sum_p |g ∩ p| * IoU(g, p)`` over predicted
  thing tubes p, summed over tubes of all videos and divided by their number (pooled). GT pixels of
  instance 0 of a thing class are "crowd": ignored in GT and prediction.

Modes (every report names the mode):

* ``official``: bit-for-bit the script, quirks included. (1) Predicted void on labelled GT is the
  column of the void class, so void enters the mean IoU as a class with IoU 0 (vector T6).
  (2) The first segment listed in the video gets instance 0; if it is a thing it is treated as
  crowd and ignored (vectors T9, T10). With no GT thing tube at all, AQ = 0 and STQ = 0 (T10).
* ``clean``: the void class is left out of the mean IoU (predicted void still costs the GT class
  its pixels), only ``iscrowd`` segments are crowd, and with no GT thing tube AQ is undefined
  (None) and STQ = SQ, noted in the result.

Speed: everything comes from the per-frame (gt, pred) intersection tables shared with VPQ: the
confusion matrix and the tube intersections are contractions of the video's summed table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from annotator.metrics.tables import VideoTable, build_table
from annotator.metrics.types import Categories, Frame, Segment

MODES = ("official", "clean")
_EPS = 1e-15


@dataclass
class STQStats:
    """Poolable STQ sums of one video (or a set): confusion matrix, AQ numerator, tube count."""

    confusion: np.ndarray  # (K+1, K+1) rows GT, columns prediction, index K = void
    aq_sum: float = 0.0
    tubes: int = 0
    frames: int = 0

    def __iadd__(self, other: STQStats) -> STQStats:
        self.confusion = self.confusion + other.confusion
        self.aq_sum += other.aq_sum
        self.tubes += other.tubes
        self.frames += other.frames
        return self


def stq_video_stats(table: VideoTable, cats: Categories, mode: str = "official",
                    crowd_from_flags: bool | None = None) -> STQStats:
    """STQ sums of one video. ``crowd_from_flags`` overrides the mode's crowd rule (deeplab2 encoding)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    K = cats.num_classes
    G, P = table.gt_ids.size, table.pred_ids.size
    S = table.counts.sum(axis=0)  # (G+2, P+1)
    void = K

    def sem(c: np.ndarray) -> np.ndarray:
        # categories outside 0..K-1 would crash/mislabel the official script; treat them as void
        return np.where((c >= 0) & (c < K), c, void)

    g_sem = np.concatenate([[void], sem(table.gt_cat), [void]]).astype(np.int64)
    p_sem = np.concatenate([[void], sem(table.pred_cat)]).astype(np.int64)
    conf = np.zeros((K + 1, K + 1), dtype=np.int64)
    np.add.at(conf, (np.repeat(g_sem, P + 1), np.tile(p_sem, G + 2)), S.ravel())
    conf[void, :] = 0

    thing = cats.thing_mask(K + 1)
    g_thing = thing[g_sem[1:G + 1]]
    p_thing = thing[p_sem[1:]]
    if crowd_from_flags is None:
        crowd_from_flags = mode != "official"
    if not crowd_from_flags:
        crowd = np.zeros(G, dtype=bool)
        if G:
            crowd[0] = g_thing[0]  # instance 0 = first listed id of the video
    else:
        crowd = table.gt_crowd & g_thing
    tube = g_thing & ~crowd
    rows = np.ones(G + 2, dtype=bool)
    rows[1:G + 1] = ~crowd
    pr_size = S[rows].sum(axis=0)[1:].astype(np.float64)   # predicted thing pixels outside GT crowd
    inter = S[1:G + 1, 1:][tube][:, p_thing].astype(np.float64)
    gsize = S[1:G + 1][tube].sum(axis=1).astype(np.float64)
    present = gsize > 0
    inter, gsize = inter[present], gsize[present]
    psize = pr_size[p_thing]
    with np.errstate(divide="ignore", invalid="ignore"):
        union = gsize[:, None] + psize[None, :] - inter
        inner = np.where(inter > 0, inter * inter / np.where(union > 0, union, 1), 0.0).sum(axis=1)
        aq_sum = float((inner / gsize).sum()) if gsize.size else 0.0
    return STQStats(conf, aq_sum, int(gsize.size), table.num_frames)


@dataclass
class STQResult:
    stq: float | None
    aq: float | None
    sq: float
    class_iou: dict[int, float]   # category -> IoU (void class under key -1 in official mode)
    mode: str
    notes: list[str] = field(default_factory=list)


def stq_result(stats: STQStats, cats: Categories, mode: str = "official") -> STQResult:
    """Scores from pooled (or one video's) sums."""
    conf = stats.confusion
    K = conf.shape[0] - 1
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - np.diag(conf)
    if mode == "clean":
        union = union.copy()
        union[K] = 0  # predicted void is a miss of the GT class, not a class of its own
    used = union > 0
    ious = inter / np.maximum(union, _EPS)
    notes: list[str] = []
    sq = float(ious[used].sum() / used.sum()) if used.any() else 0.0
    if not used.any():
        notes.append("no labelled pixel: SQ undefined, reported as 0")
    class_iou = {(-1 if c == K else int(c)): float(ious[c]) for c in np.flatnonzero(used)}
    if mode == "official":
        aq = stats.aq_sum / max(stats.tubes, _EPS)
        stq: float | None = float(np.sqrt(aq * sq))
        if stats.tubes == 0:
            notes.append("no ground-truth thing tube: official AQ = 0, so STQ = 0")
        return STQResult(stq, float(aq), sq, class_iou, mode, notes)
    if stats.tubes == 0:
        notes.append("no ground-truth thing tube: AQ undefined and left out, STQ = SQ")
        return STQResult(sq, None, sq, class_iou, mode, notes)
    aq = stats.aq_sum / stats.tubes
    return STQResult(float(np.sqrt(aq * sq)), float(aq), sq, class_iou, mode, notes)


def empty_stats(cats: Categories) -> STQStats:
    K = cats.num_classes
    return STQStats(np.zeros((K + 1, K + 1), dtype=np.int64))


def stq_encoded(gt: list[np.ndarray], pred: list[np.ndarray], num_classes: int, things: list[int],
                ignore_label: int = 255, bit_shift: int = 16) -> STQResult:
    """deeplab2's ``STQuality`` on maps already encoded as ``(semantic << bit_shift) + instance``.

    One sequence; instance 0 of a thing class is crowd; ``ignore_label`` is void and counts as a
    predicted class in the mean IoU (deeplab2 behaviour, i.e. the ``official`` SQ rule).
    """
    cats = Categories({c: c in things for c in range(num_classes)})

    def frame(y: np.ndarray, name: str) -> Frame:
        y = np.asarray(y, dtype=np.int64)
        sem = y >> bit_shift
        ids = np.where(sem == ignore_label, 0, y + 1)
        segs = {}
        for v in np.unique(ids[ids > 0]):
            c = int((v - 1) >> bit_shift)
            inst = int((v - 1) & ((1 << bit_shift) - 1))
            segs[int(v)] = Segment(c, iscrowd=bool(c in things and inst == 0))
        return Frame(ids, segs, name)

    table = build_table("encoded", [frame(y, str(i)) for i, y in enumerate(gt)],
                        [frame(y, str(i)) for i, y in enumerate(pred)])
    stats = stq_video_stats(table, cats, "official", crowd_from_flags=True)
    return stq_result(stats, cats, "official")
