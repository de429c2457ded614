"""Video Panoptic Quality exactly as VIPSeg's ``eval_vpq_vspw.py``, from per-frame tables.

Definition (official): for a window length L, every window s = 0..T-L (stride 1) of a video forms
tubes of L frames. A GT tube and a predicted tube of the same category match when
``IoU = I / (A_pred + A_gt - I - I_void_pred) > 0.5`` (strict), where ``I_void_pred`` is the
prediction's overlap with GT void, ``A_gt`` is the sum of the JSON ``area`` fields and ``A_pred`` the
predicted pixel count. Unmatched GT tubes (not crowd) are FN; an unmatched prediction is FP unless
more than half of it lies on GT void or on a crowd region of its class. IoU/TP/FP/FN are summed per
class over all windows of all videos; ``PQ_c = IoU / (TP + FP/2 + FN/2)``; all/things/stuff average
over classes with TP+FP+FN > 0; the final VPQ is the mean over window lengths, x100.

Speed: the window sums of intersections, areas and void overlaps are differences of cumulative
sums over the per-frame tables of :mod:`annotator.metrics.tables`, so no frame is re-read or
re-stacked, and matching is vectorised over all windows and pairs at once.

Where the official script divides by zero (no window of a length fits any video, or a group has no
class) the length/group is left out of the mean and ``notes`` says so.

Modes: ``official`` reproduces the script, including the use of the JSON ``area`` of GT segments
(a wrong area changes the score, vector T12). ``clean`` uses the true pixel count instead.
Crowd handling (not used by VIPSeg): the official script counts an FP's overlap with one crowd
region of its class per window; here every crowd region of the class present in the window counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from annotator.metrics.tables import VideoTable
from annotator.metrics.types import Categories

DEFAULT_WINDOWS: tuple[int, ...] = (1, 2, 4, 6, 8)
_MAX_CHUNK = 4_000_000  # elements of a (windows x G x P) block processed at once (bounds memory)


@dataclass
class ClassStats:
    """Per-class sums of one window length: arrays indexed by position in ``Categories.ids``."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    windows: int = 0

    @classmethod
    def zeros(cls, n: int) -> ClassStats:
        return cls(np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))

    def __iadd__(self, other: ClassStats) -> ClassStats:
        self.iou = self.iou + other.iou
        self.tp = self.tp + other.tp
        self.fp = self.fp + other.fp
        self.fn = self.fn + other.fn
        self.windows += other.windows
        return self


@dataclass
class VPQStats:
    """Sums for every window length (``by_length[L]``) of one video or of a whole set."""

    by_length: dict[int, ClassStats] = field(default_factory=dict)

    def __iadd__(self, other: VPQStats) -> VPQStats:
        for L, st in other.by_length.items():
            if L in self.by_length:
                self.by_length[L] += st
            else:
                self.by_length[L] = ClassStats(st.iou.copy(), st.tp.copy(), st.fp.copy(), st.fn.copy(), st.windows)
        return self


def _category_index(cats: Categories, values: np.ndarray) -> np.ndarray:
    """Position of each category id in ``cats.ids``; -1 for categories not evaluated."""
    ids = np.array(cats.ids, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(ids, values)
    pos = np.clip(pos, 0, max(ids.size - 1, 0))
    return np.where(ids[pos] == values, pos, -1) if ids.size else np.full(values.shape, -1)


def _window_sums(a: np.ndarray, L: int) -> np.ndarray:
    cum = np.concatenate([np.zeros((1,) + a.shape[1:], dtype=a.dtype), np.cumsum(a, axis=0)])
    return cum[L:] - cum[:-L]


def _bin(idx: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    keep = idx >= 0
    return np.bincount(idx[keep], weights=weights[keep], minlength=n)[:n]


def vpq_video_stats(table: VideoTable, cats: Categories, windows=DEFAULT_WINDOWS,
                    mode: str = "official") -> VPQStats:
    """Per-class IoU/TP/FP/FN sums of one video for every window length."""
    n = len(cats.ids)
    G = table.gt_ids.size
    g_ci = _category_index(cats, table.gt_cat)
    p_ci = _category_index(cats, table.pred_cat)
    same = (table.gt_cat[:, None] == table.pred_cat[None, :]) & ~table.gt_crowd[:, None]  # (G, P)
    crowd_same = (table.gt_cat[:, None] == table.pred_cat[None, :]) & table.gt_crowd[:, None]
    gt_area = table.gt_area if mode == "official" else table.gt_pixel_area
    out = VPQStats()
    T = table.num_frames
    for L in windows:
        st = ClassStats.zeros(n)
        nw = T - L + 1
        if nw <= 0:
            out.by_length[L] = st
            continue
        W_all = _window_sums(table.counts, L)  # (nw, G+2, P+1)
        Ag_all = _window_sums(gt_area, L)
        presG_all = _window_sums(table.gt_listed.astype(np.int32), L) > 0
        presP_all = _window_sums(table.pred_listed.astype(np.int32), L) > 0
        step = max(1, _MAX_CHUNK // max(1, W_all[0].size))
        for a in range(0, nw, step):
            W = W_all[a:a + step]
            Ag, presG, presP = Ag_all[a:a + step], presG_all[a:a + step], presP_all[a:a + step]
            Ap = W.sum(axis=1)[:, 1:].astype(np.float64)     # predicted pixels per window
            Iv = W[:, 0, 1:]                                   # overlap with GT void
            inter = W[:, 1:G + 1, 1:]                              # (w, G, P)
            union = Ap[:, None, :] + Ag[:, :, None] - inter - Iv[:, None, :]
            valid = same[None] & (inter > 0) & presG[:, :, None] & presP[:, None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = np.where(valid & (union > 0), inter / np.where(union > 0, union, 1), 0.0)
            tp = iou > 0.5
            g_tp = tp.sum(axis=(0, 2))
            g_iou = np.where(tp, iou, 0.0).sum(axis=(0, 2))
            st.tp += _bin(g_ci, g_tp, n).astype(np.int64)
            st.iou += _bin(g_ci, g_iou, n)
            matched_g = tp.any(axis=2)
            matched_p = tp.any(axis=1)
            fn = presG & ~matched_g & ~table.gt_crowd[None, :]
            st.fn += _bin(g_ci, fn.sum(axis=0).astype(np.float64), n).astype(np.int64)
            ign = Iv.astype(np.float64)
            if table.gt_crowd.any():
                crowd_present = presG & table.gt_crowd[None, :]
                ign = ign + np.einsum("wgp,wg,gp->wp", inter, crowd_present, crowd_same)
            with np.errstate(divide="ignore", invalid="ignore"):
                ignored = ign / np.where(Ap > 0, Ap, 1) > 0.5
            fp = presP & ~matched_p & ~ignored
            st.fp += _bin(p_ci, fp.sum(axis=0).astype(np.float64), n).astype(np.int64)
        st.windows = nw
        out.by_length[L] = st
    return out


@dataclass
class GroupScore:
    pq: float
    sq: float
    rq: float
    n: int


def pq_average(st: ClassStats, cats: Categories, isthing: bool | None) -> tuple[GroupScore | None, dict]:
    """Official ``pq_average``: mean over classes with TP+FP+FN > 0; None where the script divides by zero."""
    ids = cats.ids
    things = np.array([cats.isthing[c] for c in ids], dtype=bool)
    sel = np.ones(len(ids), bool) if isthing is None else (things == isthing)
    denom = st.tp + 0.5 * st.fp + 0.5 * st.fn
    occ = sel & ((st.tp + st.fp + st.fn) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pq = np.where(occ, st.iou / np.where(denom > 0, denom, 1), 0.0)
        sq = np.where(occ & (st.tp > 0), st.iou / np.where(st.tp > 0, st.tp, 1), 0.0)
        rq = np.where(occ, st.tp / np.where(denom > 0, denom, 1), 0.0)
    per_class = {int(ids[i]): {"pq": float(pq[i]), "sq": float(sq[i]), "rq": float(rq[i]), "iou": float(st.iou[i]),
                               "tp": int(st.tp[i]), "fp": int(st.fp[i]), "fn": int(st.fn[i])}
                 for i in np.flatnonzero(occ)}
    k = int(occ.sum())
    if k == 0:
        return None, per_class
    return GroupScore(float(pq[occ].sum() / k), float(sq[occ].sum() / k), float(rq[occ].sum() / k), k), per_class


@dataclass
class VPQResult:
    """VPQ of a set (or one video) on the 0-100 scale, with the per-length and per-class details."""

    windows: list[int]
    per_length: dict[int, dict[str, GroupScore | None]]   # L -> {"all", "things", "stuff"}
    per_class: dict[int, dict[int, dict]]                  # L -> category -> pq/sq/rq/iou/tp/fp/fn
    vpq: dict[str, float | None]                           # "all"/"things"/"stuff", x100, mean over L
    notes: list[str]

    def class_vpq(self) -> dict[int, float]:
        """Per-class VPQ x100: mean of the class's PQ over the lengths where it occurs."""
        acc: dict[int, list[float]] = {}
        for L in self.windows:
            for c, d in self.per_class.get(L, {}).items():
                acc.setdefault(c, []).append(d["pq"])
        return {c: 100.0 * float(np.mean(v)) for c, v in sorted(acc.items())}


def vpq_result(stats: VPQStats, cats: Categories, windows=DEFAULT_WINDOWS) -> VPQResult:
    """Turn summed stats into scores; empty lengths and groups are left out of the means (noted)."""
    notes: list[str] = []
    per_length: dict[int, dict[str, GroupScore | None]] = {}
    per_class: dict[int, dict[int, dict]] = {}
    finals: dict[str, list[float]] = {"all": [], "things": [], "stuff": []}
    for L in windows:
        st = stats.by_length.get(L) or ClassStats.zeros(len(cats.ids))
        if st.windows == 0:
            notes.append(f"L={L}: no video has {L} frames; left out of the mean (the official script divides by zero)")
            continue
        groups = {}
        for name, flag in (("all", None), ("things", True), ("stuff", False)):
            score, pc = pq_average(st, cats, flag)
            groups[name] = score
            if name == "all":
                per_class[L] = pc
            if score is None:
                notes.append(f"L={L}: no {name if name != 'all' else ''} class occurs; "
                             f"left out of the {name} mean (the official script divides by zero)".replace("  ", " "))
            else:
                finals[name].append(100.0 * score.pq)
        per_length[L] = groups
    vpq = {k: (float(np.mean(v)) if v else None) for k, v in finals.items()}
    return VPQResult(list(windows), per_length, per_class, vpq, notes)
