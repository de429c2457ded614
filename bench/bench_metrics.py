"""Benchmark: VPQ and STQ throughput (frames/s) vs a re-implementation of the official algorithm.

Data: N generated videos of T frames at 1280x720 with about 20 segments each (half things), the
prediction a perturbed copy (shifted boundaries, an id swap from mid-video, a wrong class, a few
void pixels). Frames are stored as .npy in a temporary folder and every run loads them from there,
so single-process and pooled runs pay the same I/O.

Baseline: ``annotator.metrics.reference`` - the official scripts' algorithm (re-stack every window
of every length, ``np.unique`` on uint64 keys; STQ with one full-frame mask per segment). It gets
already decoded id maps, so it is *faster* than the real scripts (which also re-decode RGB and
deep-copy all frames per length). It runs on ``--baseline-videos`` videos and its frames/s is
compared with ours.

    .venv/bin/python bench/bench_metrics.py [--videos 10] [--frames 24] [--baseline-videos 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.metrics import Categories, Segment, VideoPair, make_frame  # noqa: E402
from annotator.metrics.engine import score_source  # noqa: E402
from annotator.metrics.reference import reference_stq, reference_vpq_stats  # noqa: E402
from annotator.taxonomy import vipseg_taxonomy  # noqa: E402

H, W = 720, 1280
CATS = Categories.from_taxonomy(vipseg_taxonomy())
THINGS = [c for c in CATS.ids if CATS.isthing[c]]
STUFF = [c for c in CATS.ids if not CATS.isthing[c]]


def make_video(seed: int, T: int, nseg: int = 20) -> tuple[list[np.ndarray], list[np.ndarray], dict, dict]:
    """GT and prediction uint16 maps plus ``id -> category`` tables (Voronoi cells drifting in time)."""
    rng = np.random.default_rng(seed)
    cats = {i + 1: (int(rng.choice(STUFF)) if i < nseg // 2 else int(rng.choice(THINGS))) for i in range(nseg)}
    pts = rng.random((nseg, 2)) * [H / 8, W / 8]
    vel = rng.normal(0, 0.6, (nseg, 2))
    yy, xx = np.mgrid[0:H // 8, 0:W // 8]
    pred_cats = dict(cats)
    pred_cats[nseg] = int(rng.choice([c for c in THINGS if c != cats[nseg]]))  # one wrong class
    a, b = nseg // 2 + 1, nseg // 2 + 2  # swapped from mid-video
    gts, preds = [], []
    for t in range(T):
        pts = pts + vel
        d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
        small = (np.argmin(d, axis=2) + 1).astype(np.uint16)
        gt = np.repeat(np.repeat(small, 8, 0), 8, 1)
        gt[rng.random((H, W)) < 0.002] = 0  # a little GT void
        d2 = d + rng.normal(0, 3.0, d.shape)
        psmall = (np.argmin(d2, axis=2) + 1).astype(np.uint16)
        pred = np.repeat(np.repeat(psmall, 8, 0), 8, 1)
        pred = np.roll(pred, 3, axis=1)
        if t >= T // 2:
            ma, mb = pred == a, pred == b
            pred[ma], pred[mb] = b, a
        pred[:4, :] = 0
        gts.append(gt)
        preds.append(pred)
    return gts, preds, cats, pred_cats


def frames(maps, cats):
    out = []
    for t, m in enumerate(maps):
        present = set(np.flatnonzero(np.bincount(m.ravel())).tolist())
        out.append(make_frame(m, {i: Segment(cats[i]) for i in sorted(cats) if i in present}, name=f"{t:05d}"))
    return out


class NpySource:
    """A pair source reading generated videos from .npy files (picklable, workers load their own)."""

    strict_gt = False

    def __init__(self, folder: Path, ids: list[str], cats: dict) -> None:
        self.folder, self.video_ids, self.cats = folder, ids, cats

    def load(self, vid: str) -> VideoPair:
        gt = np.load(self.folder / f"{vid}_gt.npy", mmap_mode=None)
        pr = np.load(self.folder / f"{vid}_pred.npy")
        c, pc = self.cats[vid]
        return VideoPair(vid, frames(list(gt), c), frames(list(pr), pc))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--baseline-videos", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ids, cats = [], {}
        for v in range(args.videos):
            gt, pr, c, pc = make_video(v, args.frames)
            vid = f"video{v:03d}"
            np.save(folder / f"{vid}_gt.npy", np.stack(gt))
            np.save(folder / f"{vid}_pred.npy", np.stack(pr))
            ids.append(vid)
            cats[vid] = (c, pc)
        src = NpySource(folder, ids, cats)
        nfr = args.videos * args.frames
        print(f"{args.videos} videos x {args.frames} frames at {W}x{H}, ~20 segments each ({nfr} frames)")

        [src.load(v) for v in ids]  # warm the page cache so every run below reads the same way
        t_load, _ = timed(lambda: [src.load(v) for v in ids])
        print(f"loading alone: {nfr / t_load:7.1f} frames/s (included in every figure below)")
        res = {}
        for metric in ("vpq", "stq"):
            for workers in (1, 2):
                t, rep = timed(lambda m=metric, w=workers: score_source(src, CATS, workers=w, metrics=(m,)))
                res[(metric, workers)] = (t, rep)
                print(f"{metric.upper()} ours, {workers} worker(s): {nfr / t:7.1f} frames/s ({t:.2f} s)")
        t_both, rep = timed(lambda: score_source(src, CATS, workers=2))
        print(f"VPQ+STQ ours, 2 workers (one pass): {nfr / t_both:7.1f} frames/s ({t_both:.2f} s)")
        print(f"  VPQ {rep.vpq.vpq['all']:.4f} (things {rep.vpq.vpq['things']:.4f}, stuff {rep.vpq.vpq['stuff']:.4f})"
              f"  STQ {rep.stq.stq:.5f} AQ {rep.stq.aq:.5f} SQ {rep.stq.sq:.5f}")

        nb = min(args.baseline_videos, args.videos)
        if nb:
            sub = [src.load(v) for v in ids[:nb]]
            vids = [(p.gt, p.pred) for p in sub]
            bfr = nb * args.frames
            t_v, _ = timed(lambda: [reference_vpq_stats(vids, CATS, L) for L in (1, 2, 4, 6, 8)])
            t_s, ref = timed(lambda: reference_stq(vids, CATS))
            # our own figures on the same subset, single process, frames already loaded
            from annotator.metrics.engine import InMemoryPairs
            t_ov, _ = timed(lambda: score_source(InMemoryPairs(sub), CATS, metrics=("vpq",)))
            t_os, ours = timed(lambda: score_source(InMemoryPairs(sub), CATS, metrics=("stq",)))
            print(f"baseline (official algorithm) on {nb} videos, frames in memory:")
            print(f"  VPQ {bfr / t_v:7.2f} frames/s vs ours {bfr / t_ov:7.1f} frames/s -> {t_v / t_ov:5.1f}x")
            print(f"  STQ {bfr / t_s:7.2f} frames/s vs ours {bfr / t_os:7.1f} frames/s -> {t_s / t_os:5.1f}x")
            same = abs(ref["stq"] - ours.stq.stq) < 1e-9
            print(f"  STQ equal to baseline: {same} ({ref['stq']:.9f} vs {ours.stq.stq:.9f})")


if __name__ == "__main__":
    main()
