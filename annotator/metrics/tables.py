"""Per-frame intersection tables: the one pass over pixels that both VPQ and STQ share.

The official scripts re-stack every window of L frames and run ``np.unique`` on it, once per
window length, and STQ loops over segments with one full-frame mask each. Here every frame is read
once: ids are mapped to small per-video indices, each (gt, pred) pixel pair becomes one integer key,
and ``np.bincount`` counts all intersections of the frame at once. Window statistics are then
differences of cumulative sums of these small tables, and STQ is a contraction of their total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotator.errors import InputError
from annotator.metrics.types import Frame

_LUT_LIMIT = 1 << 20  # id maps whose max id is below this are compacted by a direct lookup table


@dataclass
class VideoTable:
    """Everything the metrics need from one video, without pixels.

    ``counts[t, r, c]``: pixels of frame t with GT row r and prediction column c, where row 0 is GT
    void, rows 1..G the GT ids (``gt_ids`` order), row G+1 GT pixels whose id is not listed in that
    frame; column 0 is predicted void and columns 1..P the predicted ids.
    """

    video_id: str
    gt_ids: np.ndarray        # (G,) ids in order of first appearance in the segment lists
    gt_cat: np.ndarray        # (G,) category ids
    gt_crowd: np.ndarray      # (G,) iscrowd flags
    gt_area: np.ndarray       # (T, G) JSON area (pixel count when the JSON gives none)
    gt_listed: np.ndarray     # (T, G) listed in that frame's segments
    pred_ids: np.ndarray      # (P,)
    pred_cat: np.ndarray      # (P,)
    pred_listed: np.ndarray   # (T, P)
    counts: np.ndarray        # (T, G+2, P+1) int64

    @property
    def num_frames(self) -> int:
        return int(self.counts.shape[0])

    @property
    def gt_pixel_area(self) -> np.ndarray:
        """(T, G) true pixel counts of the GT ids."""
        return self.counts[:, 1:-1, :].sum(axis=2)


def _collect(frames: list[Frame], what: str, video_id: str) -> tuple[list[int], dict[int, int], dict[int, bool]]:
    order: list[int] = []
    cat: dict[int, int] = {}
    crowd: dict[int, bool] = {}
    for f in frames:
        for sid, seg in f.segments.items():
            if sid not in cat:
                order.append(sid)
                cat[sid] = seg.category_id
                crowd[sid] = seg.iscrowd
            elif cat[sid] != seg.category_id:
                raise InputError(f"{what} of video {video_id!r}, frame {f.name!r}: segment {sid} has category "
                                 f"{seg.category_id} but {cat[sid]} in an earlier frame; a segment keeps its "
                                 f"category through the video")
    return order, cat, crowd


def _compactor(known: np.ndarray, unknown: int):
    """A function mapping an id map to indices: 0 -> 0, known[i] -> i + 1, anything else -> ``unknown``."""
    keys = np.concatenate([[0], known]).astype(np.int64)
    if keys.size and keys.max() < _LUT_LIMIT:
        lut_cache: dict[int, np.ndarray] = {}

        def compact(a: np.ndarray) -> np.ndarray:
            top = int(a.max(initial=0))
            size = max(top, int(keys.max())) + 1
            lut = lut_cache.get(size)
            if lut is None:
                lut = np.full(size, unknown, dtype=np.int32)
                lut[keys] = np.arange(keys.size, dtype=np.int32)
                lut_cache.clear()
                lut_cache[size] = lut
            return lut[a]
        return compact
    # Large ids (RGB-encoded, up to 2^24): hash by a modulus under which the known ids are distinct,
    # then verify the hit, so the mapping stays one vectorised pass.
    mod = max(1021, 2 * keys.size + 1)
    while np.unique(keys % mod).size != keys.size:
        mod += 1
    lut = np.zeros(mod, dtype=np.int32)
    lut[keys % mod] = np.arange(keys.size, dtype=np.int32)

    def compact_hash(a: np.ndarray) -> np.ndarray:
        a64 = a.astype(np.int64, copy=False)
        cand = lut[a64 % mod]
        return np.where(keys[cand] == a64, cand, unknown).astype(np.int32)
    return compact_hash


_DIRECT_LIMIT = 1 << 22  # max bins of the direct (raw id x raw id) count matrix


def _direct_counts(g: np.ndarray, p: np.ndarray, g_ids: np.ndarray, p_ids: np.ndarray) -> np.ndarray | None:
    """Counts with the raw ids as key (no lookup pass) when ids are small, else None.

    Small ids are the common case (project track ids, raw panomasks): counting raw pairs into a
    dense matrix and then picking the rows/columns of the known ids skips two per-pixel remaps.
    Returns the (G+2, P+2) layout of :func:`build_table` (last column: unlisted predicted ids).
    """
    if g.dtype.kind not in "ui" or p.dtype.kind not in "ui":
        return None
    mg, mp = int(g.max(initial=0)), int(p.max(initial=0))
    if (mg + 1) * (mp + 1) > _DIRECT_LIMIT or g.min(initial=0) < 0 or p.min(initial=0) < 0:
        return None
    key = g.ravel().astype(np.int64) * (mp + 1)
    key += p.ravel()
    dense = np.bincount(key, minlength=(mg + 1) * (mp + 1)).reshape(mg + 1, mp + 1)
    G, P = g_ids.size, p_ids.size
    gk = g_ids[g_ids <= mg]
    pk = p_ids[p_ids <= mp]
    rows = np.zeros((G + 2, mp + 1), dtype=np.int64)
    rows[0] = dense[0]
    gpos = np.flatnonzero(g_ids <= mg)
    rows[1 + gpos] = dense[gk]
    rows[G + 1] = dense.sum(axis=0) - rows[: G + 1].sum(axis=0)
    out = np.zeros((G + 2, P + 2), dtype=np.int64)
    out[:, 0] = rows[:, 0]
    ppos = np.flatnonzero(p_ids <= mp)
    out[:, 1 + ppos] = rows[:, pk]
    out[:, P + 1] = rows.sum(axis=1) - out[:, : P + 1].sum(axis=1)
    return out


def build_table(video_id: str, gt: list[Frame], pred: list[Frame], strict_gt: bool = False) -> VideoTable:
    """Count every (gt, pred) intersection of every frame; validate predictions like the official script.

    With ``strict_gt`` (file sources) the ground truth is validated the same way: every id in a PNG
    must be listed in that frame's JSON entry and every listed id must have pixels. Without it GT
    pixels of unlisted ids are neither segment nor void, as in the official script.
    """
    if len(gt) != len(pred):
        raise InputError(f"video {video_id!r}: ground truth has {len(gt)} frames, prediction {len(pred)}")
    g_order, g_cat, g_crowd = _collect(gt, "ground truth", video_id)
    p_order, p_cat, _ = _collect(pred, "prediction", video_id)
    G, P, T = len(g_order), len(p_order), len(gt)
    g_ids = np.array(g_order, dtype=np.int64)
    p_ids = np.array(p_order, dtype=np.int64)
    g_index = {sid: i for i, sid in enumerate(g_order)}
    p_index = {sid: i for i, sid in enumerate(p_order)}
    gt_area = np.zeros((T, G), dtype=np.int64)
    gt_listed = np.zeros((T, G), dtype=bool)
    pred_listed = np.zeros((T, P), dtype=bool)
    has_json_area = np.zeros((T, G), dtype=bool)
    counts = np.zeros((T, G + 2, P + 1), dtype=np.int64)
    g_comp = _compactor(g_ids, G + 1)
    p_comp = _compactor(p_ids, P + 1)
    ncol = P + 2  # one spare column catches unlisted predicted ids
    for t, (fg, fp) in enumerate(zip(gt, pred, strict=True)):
        if fg.ids.shape != fp.ids.shape:
            raise InputError(f"video {video_id!r}, frame {fg.name or t!r}: ground truth is "
                             f"{fg.ids.shape[1]}x{fg.ids.shape[0]}, prediction {fp.ids.shape[1]}x{fp.ids.shape[0]}")
        c = _direct_counts(fg.ids, fp.ids, g_ids, p_ids)
        if c is None:
            key = g_comp(fg.ids).astype(np.int64).ravel() * ncol + p_comp(fp.ids).ravel()
            c = np.bincount(key, minlength=(G + 2) * ncol).reshape(G + 2, ncol)
        if c[:, P + 1].any():
            bad = np.setdiff1d(np.unique(fp.ids), np.concatenate([[0], p_ids]))
            raise InputError(f"prediction of video {video_id!r}, frame {fp.name or t!r}: segment ids "
                             f"{bad[:5].tolist()} are in the PNG but not in the JSON")
        c = c[:, : P + 1]
        for sid, seg in fg.segments.items():
            i = g_index[sid]
            gt_listed[t, i] = True
            if seg.area is not None:
                gt_area[t, i] = seg.area
                has_json_area[t, i] = True
        if strict_gt:
            _check_gt_frame(video_id, fg, t, c, gt_listed[t], g_ids)
        # GT ids present elsewhere in the video but not listed in this frame count as unknown here.
        unlisted = np.flatnonzero(~gt_listed[t]) + 1
        if unlisted.size:
            c[G + 1] += c[unlisted].sum(axis=0)
            c[unlisted] = 0
        col = c.sum(axis=0)[1:]
        for sid in fp.segments:
            pred_listed[t, p_index[sid]] = True
        present = col > 0
        if (present & ~pred_listed[t]).any():
            bad = p_ids[present & ~pred_listed[t]]
            raise InputError(f"prediction of video {video_id!r}, frame {fp.name or t!r}: segment ids "
                             f"{bad[:5].tolist()} are in the PNG but not in this frame's JSON entry")
        if (pred_listed[t] & ~present).any():
            bad = p_ids[pred_listed[t] & ~present]
            raise InputError(f"prediction of video {video_id!r}, frame {fp.name or t!r}: segment ids "
                             f"{bad[:5].tolist()} are in the JSON but not in the PNG")
        counts[t] = c
    pix = counts[:, 1:-1, :].sum(axis=2)
    gt_area = np.where(has_json_area, gt_area, pix)
    return VideoTable(
        video_id=video_id,
        gt_ids=g_ids, gt_cat=np.array([g_cat[s] for s in g_order], dtype=np.int64),
        gt_crowd=np.array([g_crowd[s] for s in g_order], dtype=bool),
        gt_area=gt_area, gt_listed=gt_listed,
        pred_ids=p_ids, pred_cat=np.array([p_cat[s] for s in p_order], dtype=np.int64),
        pred_listed=pred_listed, counts=counts,
    )


def _check_gt_frame(video_id: str, fg: Frame, t: int, c: np.ndarray, listed: np.ndarray, g_ids: np.ndarray) -> None:
    rows = c.sum(axis=1)
    present = rows[1:-1] > 0
    where = f"ground truth of video {video_id!r}, frame {fg.name or t!r}"
    if rows[-1] > 0 or (present & ~listed).any():
        bad = np.setdiff1d(np.unique(fg.ids), np.concatenate([[0], np.array(sorted(fg.segments), np.int64)]))
        raise InputError(f"{where}: segment ids {bad[:5].tolist()} are in the PNG but not in the JSON")
    if (listed & ~present).any():
        bad = g_ids[listed & ~present]
        raise InputError(f"{where}: segment ids {bad[:5].tolist()} are in the JSON but not in the PNG")
