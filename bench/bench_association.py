"""Benchmark of association (docs/architecture.md budgets: 100 x 100 segments at 720p <= 20 ms per keyframe pair).

    .venv/bin/python bench/bench_association.py [--repeat 20] [--keyframes 20] [--height 720]
                                                [--propagator flow|copy] [--scenario mixed]
                                                [--skip-pair] [--skip-video]

1. Two 720p keyframes with 100 thing instances each (plus stuff): the matching core
   (``match_segments``: one-bincount IoU table, Hungarian, stuff by class) and the relabel of the
   keyframe, on an already carried map - the propagator is excluded, as the budget says.
2. A whole demo video with ``--keyframes`` keyframes (ids shuffled per keyframe), associated
   end to end through a project; propagator time is measured separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.project import Project  # noqa: E402
from annotator.stages.association import (  # noqa: E402
    CarriedMap,
    Prediction,
    associate_video,
    identity_metrics,
    match_segments,
    relabel,
    segment_centroids,
    write_shuffled_keyframes,
)
from annotator.taxonomy import vipseg_taxonomy  # noqa: E402
from propagation.base import PropagationResult, Propagator  # noqa: E402
from propagation.factory import association_propagator  # noqa: E402
from resources.demo import STUFF_TRACKS, generate_demo_video  # noqa: E402


def synthetic_pair(h: int, w: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """A carried map and a keyframe with ``n`` thing instances each (moved, shuffled ids) + 4 stuff."""
    rng = np.random.default_rng(seed)
    tax = vipseg_taxonomy()
    things = tax.thing_ids
    carried = np.zeros((h, w), np.uint16)
    carried[: h // 3], carried[h // 3: 2 * h // 3], carried[2 * h // 3:] = 1, 2, 3
    carried[:, : w // 8] = 4
    cats = {1: 28, 2: 0, 3: 18, 4: 15}
    seg = carried + 1000  # the keyframe's stuff under other ids
    cats.update({1001: 28, 1002: 0, 1003: 18, 1004: 15})
    seg_ids = rng.permutation(n) + 2000
    for i in range(n):
        t, s = 10 + i, int(seg_ids[i])
        c = int(things[i % 12])
        cats[t] = cats[s] = c
        rh, rw = int(rng.integers(h // 40, h // 10)), int(rng.integers(w // 60, w // 14))
        y, x = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
        dy, dx = (int(v) for v in rng.integers(-rh // 4, rh // 4 + 1, 2))
        carried[y:y + rh, x:x + rw] = t
        y2, x2 = min(max(y + dy, 0), h - rh), min(max(x + dx, 0), w - rw)
        seg[y2:y2 + rh, x2:x2 + rw] = s
    return carried, seg, cats


def bench_pair(h: int, w: int, n: int, repeat: int) -> None:
    tax = vipseg_taxonomy()
    carried, seg, cats = synthetic_pair(h, w, n)
    ids = np.array(sorted(set(np.unique(carried).tolist()) - {0}))
    n_c = len(ids)
    n_s = len(set(np.unique(seg).tolist()) - {0})
    stuff = {28: 1, 0: 2, 18: 3, 15: 4}
    # every thing track has a measured velocity that puts it where it was carried
    thing_ids = np.array([t for t in ids if t >= 10])
    cy, cx, area = segment_centroids(carried, thing_ids)
    preds = {int(t): Prediction(float(y), float(x), float(a), 0, moving=True)
             for t, y, x, a in zip(thing_ids, cy, cx, area, strict=True)}

    def is_thing(c: int) -> bool:
        return tax.get(c).isthing

    times, times_relabel, cpu = [], [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        # the carried ids are known from the reference keyframe's metadata, as in associate_video
        pairs = match_segments([CarriedMap(carried, 0, ids=ids)], seg, cats, is_thing, 0.3, stuff, 0.5, preds, 2.0,
                               2.5, 0.5)
        t1 = time.perf_counter()
        cpu.append((time.process_time() - c0) * 1000)
        relabel(seg, {p.segment: p.track if p.track is not None else p.segment for p in pairs})
        t2 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        times_relabel.append((t2 - t0) * 1000)
    matched = sum(p.track is not None for p in pairs)
    print(f"keyframe pair {w}x{h}, {n_c} carried x {n_s} keyframe segments: "
          f"match median {statistics.median(times):.1f} ms (min {min(times):.1f}, median CPU time "
          f"{statistics.median(cpu):.1f}), "
          f"match + relabel median {statistics.median(times_relabel):.1f} ms; {matched}/{len(pairs)} matched "
          f"[budget 20 ms, propagator excluded]")


class _Timed(Propagator):
    """Wraps a propagator to measure the time spent in it."""

    def __init__(self, inner: Propagator) -> None:
        self.inner, self.name, self.seconds, self.calls = inner, inner.name, 0.0, 0

    def propagate(self, frames, references, targets, progress=None, cancel=None) -> PropagationResult:
        t0 = time.perf_counter()
        try:
            return self.inner.propagate(frames, references, targets, progress, cancel)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def bench_video(h: int, keyframes: int, propagator: str, scenario: str) -> None:
    w = int(round(h * 16 / 9))
    n = keyframes * 5  # dense frames at 5 fps, keyframes every 5th
    t0 = time.perf_counter()
    demo = generate_demo_video(0, n, h, w, scenario, fps=5.0)
    with tempfile.TemporaryDirectory() as tmp:
        proj = Project.create(Path(tmp) / "b.vpsproj")
        with proj.create_video("v", [f"{i:05d}" for i in range(n)], h, w) as video:
            for i in range(n):
                video.write_frame_image(i, demo.frames[i])
            gt = {k: demo.labels[k] for k in video.keyframes}
            write_shuffled_keyframes(video, gt, demo.tracks)
            setup = time.perf_counter() - t0
            prop = _Timed(association_propagator(propagator))
            t1 = time.perf_counter()
            res = associate_video(video, prop)
            total = time.perf_counter() - t1
            things = [t for t in demo.tracks if t not in STUFF_TRACKS]
            m = identity_metrics(gt, {k: video.read_label(k) for k in gt}, things)
    print(f"whole video {w}x{h} '{scenario}', {len(gt)} keyframes ({n} dense frames), propagator {prop.name}: "
          f"associate {total:.2f} s = propagator {prop.seconds:.2f} s ({prop.calls} calls) + association "
          f"{total - prop.seconds:.2f} s ({1000 * (total - prop.seconds) / max(len(gt) - 1, 1):.0f} ms per "
          f"keyframe pair incl. label I/O); {m['switches']} ID switches, "
          f"{100 * m['fraction_correct']:.1f}% correct; {len(res.flags)} flags (setup {setup:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--keyframes", type=int, default=20)
    ap.add_argument("--propagator", choices=("flow", "copy"), default="flow")
    ap.add_argument("--scenario", default="mixed")
    ap.add_argument("--skip-pair", action="store_true")
    ap.add_argument("--skip-video", action="store_true")
    args = ap.parse_args()
    if not args.skip_pair:
        bench_pair(args.height, int(round(args.height * 16 / 9)), args.instances, args.repeat)
    if not args.skip_video:
        bench_video(args.height, args.keyframes, args.propagator, args.scenario)


if __name__ == "__main__":
    main()
