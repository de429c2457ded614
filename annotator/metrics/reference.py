"""A straightforward re-implementation of the official scripts' algorithms (slow, for checks).

It follows ``eval_vpq_vspw.py`` (re-stack every window of L frames, ``np.unique`` on combined
uint64 keys, dict-based tube matching) and ``eval_stq_vspw.py`` + deeplab2 numpy STQ (one
full-frame mask per segment to encode semantic/instance maps, ``np.unique`` per frame). Tests
compare the fast engine with it on random clips and ``bench/bench_metrics.py`` times it as the
baseline. Not used for real scoring.
"""

from __future__ import annotations

import numpy as np

from annotator.metrics.types import Categories, Frame

_OFFSET = 1 << 24


def reference_vpq_stats(videos: list[tuple[list[Frame], list[Frame]]], cats: Categories,
                        L: int) -> dict[int, list[float]]:
    """``{category: [iou, tp, fp, fn]}`` summed over all windows of length L of all videos."""
    stat: dict[int, list[float]] = {}

    def acc(c: int, k: int, v: float) -> None:
        stat.setdefault(c, [0.0, 0, 0, 0])[k] += v

    for gt, pred in videos:
        for s in range(0, len(gt) - L + 1):
            win_g, win_p = gt[s:s + L], pred[s:s + L]
            gsegs: dict[int, dict] = {}
            psegs: dict[int, dict] = {}
            for fg, fp in zip(win_g, win_p, strict=True):
                for sid, seg in fg.segments.items():
                    area = seg.area if seg.area is not None else int((fg.ids == sid).sum())
                    d = gsegs.setdefault(sid, {"cat": seg.category_id, "crowd": seg.iscrowd, "area": 0})
                    d["area"] += area
                ids, cnt = np.unique(fp.ids, return_counts=True)
                for sid, n in zip(ids.tolist(), cnt.tolist(), strict=True):
                    if sid == 0:
                        continue
                    d = psegs.setdefault(sid, {"cat": fp.segments[sid].category_id, "area": 0})
                    d["area"] += n
            g = np.stack([f.ids for f in win_g]).astype(np.uint64)
            p = np.stack([f.ids for f in win_p]).astype(np.uint64)
            keys, cnt = np.unique(g * _OFFSET + p, return_counts=True)
            pairs = {(int(k // _OFFSET), int(k % _OFFSET)): int(n) for k, n in zip(keys, cnt, strict=True)}
            gm, pm = set(), set()
            for (gl, pl), inter in pairs.items():
                if gl not in gsegs or pl not in psegs or gsegs[gl]["crowd"]:
                    continue
                if gsegs[gl]["cat"] != psegs[pl]["cat"]:
                    continue
                union = psegs[pl]["area"] + gsegs[gl]["area"] - inter - pairs.get((0, pl), 0)
                iou = inter / union
                if iou > 0.5:
                    acc(gsegs[gl]["cat"], 0, iou)
                    acc(gsegs[gl]["cat"], 1, 1)
                    gm.add(gl)
                    pm.add(pl)
            crowd = {}
            for gl, d in gsegs.items():
                if gl in gm:
                    continue
                if d["crowd"]:
                    crowd[d["cat"]] = gl
                    continue
                acc(d["cat"], 3, 1)
            for pl, d in psegs.items():
                if pl in pm:
                    continue
                inter = pairs.get((0, pl), 0)
                if d["cat"] in crowd:
                    inter += pairs.get((crowd[d["cat"]], pl), 0)
                if inter / d["area"] > 0.5:
                    continue
                acc(d["cat"], 2, 1)
    return stat


def reference_vpq(videos, cats: Categories, windows=(1, 2, 4, 6, 8)) -> dict[str, float]:
    """Final VPQ x100 (all/things/stuff) like the official ``main`` (crashes where it crashes)."""
    out = {"all": [], "things": [], "stuff": []}
    for L in windows:
        stat = reference_vpq_stats(videos, cats, L)
        for name, flag in (("all", None), ("things", True), ("stuff", False)):
            pqs = []
            for c in cats.ids:
                if flag is not None and cats.isthing[c] != flag:
                    continue
                iou, tp, fp, fn = stat.get(c, [0.0, 0, 0, 0])
                if tp + fp + fn == 0:
                    continue
                pqs.append(iou / (tp + 0.5 * fp + 0.5 * fn))
            out[name].append(100 * sum(pqs) / len(pqs))
    return {k: sum(v) / len(v) for k, v in out.items()}


def reference_stq(videos, cats: Categories) -> dict[str, float]:
    """Official STQ (VIPSeg encoding + deeplab2 numpy accumulation), per-segment masks per frame."""
    K = cats.num_classes
    things = [c for c in cats.ids if cats.isthing[c]]
    conf_total = np.zeros((K + 1, K + 1), np.int64)
    aq_total, tubes_total = 0.0, 0
    for gt, pred in videos:
        def numbering(frames):
            order: list[int] = []
            for f in frames:
                for sid in f.segments:
                    if sid not in order:
                        order.append(sid)
            return {sid: i for i, sid in enumerate(order)}
        g_ins, p_ins = numbering(gt), numbering(pred)
        preds: dict[int, int] = {}
        gts: dict[int, int] = {}
        inters: dict[int, int] = {}
        for fg, fp in zip(gt, pred, strict=True):
            def encode(f, ins):
                sem = np.full(f.ids.shape, 255, np.int64)
                inst = np.full(f.ids.shape, 255, np.int64)
                for sid, seg in f.segments.items():
                    sem[f.ids == sid] = seg.category_id
                    inst[f.ids == sid] = ins[sid]
                return (sem << 16) + inst
            y_t, y_p = encode(fg, g_ins), encode(fp, p_ins)
            s_t, s_p = y_t >> 16, y_p >> 16
            s_t = np.where(s_t == 255, K, s_t)
            s_p = np.where(s_p == 255, K, s_p)
            np.add.at(conf_total, (s_t.ravel(), s_p.ravel()), 1)
            inst_t = y_t & 0xFFFF
            lm = np.isin(s_t, things)
            pm = np.isin(s_p, things)
            crowd = (inst_t == 0) & lm
            lm &= ~crowd
            pm &= ~crowd
            for d, arr in ((preds, y_p[pm]), (gts, y_t[lm]), (inters, y_t[lm & pm] * _OFFSET + y_p[lm & pm])):
                u, c = np.unique(arr, return_counts=True)
                for k, n in zip(u.tolist(), c.tolist(), strict=True):
                    d[k] = d.get(k, 0) + n
        for gid, gs in gts.items():
            inner = 0.0
            for pid, ps in preds.items():
                tpa = inters.get(gid * _OFFSET + pid)
                if tpa:
                    inner += tpa * tpa / (gs + ps - tpa)
            aq_total += inner / gs
        tubes_total += len(gts)
    conf_total[K, :] = 0
    inter = np.diag(conf_total).astype(float)
    union = conf_total.sum(0) + conf_total.sum(1) - np.diag(conf_total)
    iou = float((inter / np.maximum(union, 1e-15)).sum() / np.count_nonzero(union))
    aq = aq_total / max(tubes_total, 1e-15)
    return {"stq": float(np.sqrt(aq * iou)), "aq": aq, "iou": iou}
