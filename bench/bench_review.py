"""Benchmark: recall and precision of the automatic review flags on demo videos with injected errors.

    .venv/bin/python bench/bench_review.py [--seeds 8] [--trials 3] [--prop-seeds 3] [--frames 101]

Bases: every demo scenario (crossing, occlusion, enter_leave, mixed) for several seeds, rendered at
25 fps and sampled at 5 fps like an import (21 dense frames by default). Two kinds of base:

* ``gt``: the exact ground-truth labels (a finished video): every flag not explained by an injected
  error is a false positive (strict precision).
* ``propagated``: keyframes (every 5th dense frame) from the ground truth, the rest filled by the
  flow propagator with its confidence maps, as an annotator would have it before review. Flags
  on real propagation errors (the flagged track's mask has IoU < 0.8 with the ground truth on
  a flagged frame) are counted as correct in the "verified" precision; the strict precision
  counts only injected errors.

Errors injected (one per trial, at seeded random tracks/frames; a trial whose base has no eligible
place is skipped and counted): ``identity_switch`` (two same-class things swap ids from frame f to
the end), ``dropped`` (a thing's mask removed on 1-2 frames, pixels set to void or to the nearest
other label), ``area_jump`` (a thing grown 1.6-2.5x or shrunk to 0.3-0.6x on one frame),
``wrong_class`` (a thing's pixels on a 1-4 frame span given to a new track of another class).
An error is found when a flag at or over the default ``min_score`` names one of its tracks (or is a
whole-frame flag) within one frame of it; precision is over all such flags of the trial.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.review import Flag, FlagConfig, VideoLabels, detect_flags, visible  # noqa: E402

INJECTIONS = ("identity_switch", "dropped", "area_jump", "wrong_class")
THING_CATS = (60, 48, 62, 49, 50, 51)  # person car dog bus + two more VIPSeg thing classes


@dataclass
class Base:
    """A labelled demo video: dense labels, ground truth, categories, optional confidence."""

    name: str
    labels: list[np.ndarray]
    gt: list[np.ndarray]
    categories: dict[int, int]
    confidence: dict[int, np.ndarray]  # propagated frames only (quarter size)
    machine: dict[int, set[int]]


@dataclass
class Injected:
    kind: str
    tracks: tuple[int, ...]
    frames: tuple[int, ...]  # frames where the error shows (a flag within one frame of them finds it)


def _is_thing(cats: dict[int, int]):
    from annotator.taxonomy import vipseg_taxonomy

    tax = vipseg_taxonomy()
    return lambda t: t in cats and tax.is_thing(cats[t])


def make_base(scenario: str, seed: int, frames: int = 101, propagated: bool = False,
              size: tuple[int, int] = (180, 320), pan: float = 0.0) -> Base:
    from resources.demo import generate_demo_video

    demo = generate_demo_video(seed=seed, num_frames=frames, height=size[0], width=size[1], scenario=scenario,
                               pan=pan)
    idx = demo.dense_indices(5.0)
    gt = [demo.labels[s] for s in idx]
    labels = [g.copy() for g in gt]
    conf: dict[int, np.ndarray] = {}
    machine: dict[int, set[int]] = {}
    if propagated:
        from propagation.base import Reference
        from propagation.flow import FlowPropagator

        class Clip:
            num_frames = len(idx)

            def read_frame(self, i: int) -> np.ndarray:
                return demo.frames[idx[i]]

            def read_source_frames(self, a: int, b: int) -> list[np.ndarray]:
                return demo.frames[idx[a]:idx[b] + 1]

        keys = list(range(0, len(idx), 5))
        if keys[-1] != len(idx) - 1:
            keys.append(len(idx) - 1)
        prop = FlowPropagator()
        for a, b in zip(keys, keys[1:], strict=False):
            targets = list(range(a + 1, b))
            if not targets:
                continue
            res = prop.propagate(Clip(), [Reference(a, gt[a]), Reference(b, gt[b])], targets)
            for t in targets:
                labels[t] = res.labels[t]
                c = res.confidence[t]
                h, w = c.shape
                conf[t] = cv2.resize(c, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
                machine[t] = {int(i) for i in np.unique(labels[t]) if i}
    return Base(f"{scenario}/{seed}/{frames}f/pan{pan:g}{'/prop' if propagated else ''}", labels, gt, dict(demo.tracks), conf, machine)


def source(base: Base, labels: list[np.ndarray] | None = None, cats: dict[int, int] | None = None) -> VideoLabels:
    labels = base.labels if labels is None else labels
    cats = base.categories if cats is None else cats
    return VideoLabels(num_frames=len(labels), categories=cats, is_thing=_is_thing(cats),
                       label=lambda i: labels[i], machine=lambda i: base.machine.get(i, set()),
                       confidence=lambda i: base.confidence.get(i))


# ----------------------------------------------------------------- injections
def _things(labels: list[np.ndarray], cats: dict[int, int], is_thing, min_area: int) -> dict[int, np.ndarray]:
    """thing id -> bool array of frames where it has at least ``min_area`` pixels."""
    out = {}
    for t in cats:
        if is_thing(t):
            out[t] = np.array([np.count_nonzero(lab == t) >= min_area for lab in labels])
    return out


def _nearest_fill(label: np.ndarray, hole: np.ndarray) -> None:
    """Give the pixels of ``hole`` the nearest label outside it (what a propagator leaves behind)."""
    from scipy.ndimage import distance_transform_edt

    if not hole.any() or hole.all():
        return
    _, (iy, ix) = distance_transform_edt(hole, return_indices=True)
    label[hole] = label[iy[hole], ix[hole]]


def inject(kind: str, labels: list[np.ndarray], cats: dict[int, int], rng: np.random.Generator
           ) -> tuple[list[np.ndarray], dict[int, int], Injected] | None:
    """Copy of ``labels``/``cats`` with one error of ``kind`` at a random eligible place (None: none)."""
    is_thing = _is_thing(cats)
    n = len(labels)
    pres = _things(labels, cats, is_thing, 150)
    labels = [lab.copy() for lab in labels]
    cats = dict(cats)
    if kind == "identity_switch":
        opts = [(a, b, f) for a in pres for b in pres if a < b and cats[a] == cats[b]
                for f in range(1, n - 1) if pres[a][f - 1:f + 1].all() and pres[b][f - 1:f + 1].all()]
        if not opts:
            return None
        a, b, f = opts[rng.integers(len(opts))]
        for i in range(f, n):
            lab = labels[i]
            ma, mb = lab == a, lab == b
            lab[ma], lab[mb] = b, a
        return labels, cats, Injected(kind, (a, b), (f,))
    if kind == "dropped":
        opts = [(t, f, k) for t in pres for k in (1, 2) for f in range(1, n - k)
                if pres[t][f - 1:f + k + 1].all()]
        if not opts:
            return None
        t, f, k = opts[rng.integers(len(opts))]
        void = rng.random() < 0.5
        for i in range(f, f + k):
            hole = labels[i] == t
            if void:
                labels[i][hole] = 0
            else:
                _nearest_fill(labels[i], hole)
        return labels, cats, Injected(kind, (t,), tuple(range(f, f + k)))
    if kind == "area_jump":
        opts = [(t, f) for t in pres for f in range(1, n - 1) if pres[t][f - 1:f + 2].all()]
        if not opts:
            return None
        t, f = opts[rng.integers(len(opts))]
        lab = labels[f]
        mask = (lab == t).astype(np.uint8)
        area = int(mask.sum())
        k3 = np.ones((3, 3), np.uint8)
        if rng.random() < 0.5:
            target = area * rng.uniform(1.6, 2.5)
            grown = mask
            for _ in range(60):
                grown = cv2.dilate(grown, k3)
                if grown.sum() >= target:
                    break
            lab[grown > 0] = t
        else:
            target = area * rng.uniform(0.3, 0.6)
            shrunk = mask
            for _ in range(60):
                nxt = cv2.erode(shrunk, k3)
                if nxt.sum() == 0:
                    break
                shrunk = nxt
                if shrunk.sum() <= target:
                    break
            _nearest_fill(lab, (mask > 0) & (shrunk == 0))
            lab[(mask > 0) & (shrunk == 0) & (lab == t)] = 0
        return labels, cats, Injected(kind, (t,), (f,))
    if kind == "wrong_class":
        opts = [(t, a, k) for t in pres for k in (1, 2, 3, 4) for a in range(1, n - k)
                if pres[t][a - 1:a + k + 1].all()]
        if not opts:
            return None
        t, a, k = opts[rng.integers(len(opts))]
        w = max(cats) + 1
        cats[w] = int(rng.choice([c for c in THING_CATS if c != cats[t]]))
        for i in range(a, a + k):
            labels[i][labels[i] == t] = w
        return labels, cats, Injected(kind, (t, w), (a, a + k))
    raise ValueError(kind)


# ----------------------------------------------------------------- scoring
def matches(flag: Flag, err: Injected) -> bool:
    frames = flag.frames or (flag.frame,)
    lo, hi = min(err.frames) - 1, max(err.frames) + 1
    if not any(lo <= f <= hi for f in frames):
        return False
    return flag.track == 0 or bool(set(flag.tracks) & set(err.tracks))


def genuine(flag: Flag, labels: list[np.ndarray], gt: list[np.ndarray]) -> bool:
    """The flag points at a real labelling error (IoU < 0.8 with the ground truth, or void)."""
    for f in flag.frames or (flag.frame,):
        if flag.track == 0:
            if np.count_nonzero((labels[f] == 0) & (gt[f] != 0)) >= 64:
                return True
            continue
        for t in flag.tracks:
            a, b = labels[f] == t, gt[f] == t
            union = np.count_nonzero(a | b)
            if union and np.count_nonzero(a & b) / union < 0.8 and np.count_nonzero(a ^ b) >= 64:
                return True
    return False


@dataclass
class Tally:
    errors: int = 0
    found: int = 0
    flags: int = 0
    tp: int = 0  # flags explained by the injected error
    real: int = 0  # other flags on genuine errors (propagated bases)
    skipped: int = 0

    def add(self, o: Tally) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(o, k))

    def row(self, name: str) -> str:
        rec = self.found / max(self.errors, 1)
        strict = self.tp / max(self.flags, 1)
        verified = (self.tp + self.real) / max(self.flags, 1)
        return (f"{name:<18}{self.errors:>7}{rec:>9.3f}{self.flags:>7}{strict:>9.3f}{verified:>10.3f}"
                f"{self.skipped:>8}")


def run_trial(base: Base, kind: str, rng: np.random.Generator, cfg: FlagConfig,
              by_kind: dict[str, list[int]]) -> Tally:
    tally = Tally()
    got = inject(kind, base.labels, base.categories, rng)
    if got is None:
        tally.skipped = 1
        return tally
    labels, cats, err = got
    flags = visible(detect_flags(source(base, labels, cats), cfg), cfg.min_score)
    tally.errors = 1
    tally.found = int(any(matches(fl, err) for fl in flags))
    tally.flags = len(flags)
    for fl in flags:
        ok = matches(fl, err)
        real = not ok and genuine(fl, labels, base.gt)
        tally.tp += ok
        tally.real += real
        s = by_kind.setdefault(fl.kind, [0, 0, 0])
        s[0] += 1
        s[1] += ok
        s[2] += real
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds per scenario for ground-truth bases")
    ap.add_argument("--prop-seeds", type=int, default=3, help="seeds per scenario for propagated bases (slow)")
    ap.add_argument("--trials", type=int, default=3, help="trials per error kind and base")
    ap.add_argument("--frames", type=int, nargs="+", default=[51, 101],
                    help="source frames at 25 fps (51 -> 11 dense frames, 101 -> 21: twice the motion per step "
                         "for the short ones)")
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--speed", action="store_true", help="also time the checks on a 1280x720 clip")
    args = ap.parse_args()
    from resources.demo import SCENARIOS

    cfg = FlagConfig()
    t0 = time.perf_counter()
    for mode, nseeds in (("gt", args.seeds), ("propagated", args.prop_seeds)):
        if nseeds <= 0:
            continue
        per_kind = {k: Tally() for k in INJECTIONS}
        by_flag: dict[str, list[int]] = {}
        clean_flags = []
        nbases = 0
        for scen_n, scenario in enumerate(SCENARIOS):
            for s, frames in [(s, fr) for s in range(nseeds) for fr in args.frames]:
                seed = args.first_seed + s
                pan = 1.5 if s % 2 else 0.0  # every other seed: a panning camera (stuff moves too)
                base = make_base(scenario, seed, frames, propagated=mode == "propagated", pan=pan)
                nbases += 1
                clean = visible(detect_flags(source(base), cfg), cfg.min_score)
                clean_flags.append(sum(not genuine(fl, base.labels, base.gt) for fl in clean))
                for k_n, kind in enumerate(INJECTIONS):
                    for trial in range(args.trials):
                        rng = np.random.default_rng((seed, frames, scen_n, k_n, trial))
                        per_kind[kind].add(run_trial(base, kind, rng, cfg, by_flag))
        total = Tally()
        print(f"\n== {mode} bases: {len(SCENARIOS)} scenarios x {nseeds} seeds x {len(args.frames)} lengths "
              f"({'/'.join(map(str, args.frames))} source frames; odd seeds pan) = {nbases} videos, "
              f"{args.trials} trials per kind and video, min_score {cfg.min_score}")
        print(f"{'injected':<18}{'errors':>7}{'recall':>9}{'flags':>7}{'strict':>9}{'verified':>10}{'skipped':>8}")
        for kind in INJECTIONS:
            print(per_kind[kind].row(kind))
            total.add(per_kind[kind])
        print(total.row("overall"))
        print(f"clean videos: {np.mean(clean_flags):.2f} false flags per video (max {max(clean_flags)}), "
              f"{sum(c == 0 for c in clean_flags)}/{len(clean_flags)} videos with none")
        print("flags by kind (all trials): kind total / on injected error / on a real error")
        for kind, (tot, ok, real) in sorted(by_flag.items(), key=lambda kv: -kv[1][0]):
            print(f"  {kind:<16}{tot:>6}{ok:>6}{real:>6}")
    if args.speed:
        base = make_base("mixed", 0, 51, size=(720, 1280))
        best = float("inf")
        for _ in range(2):
            t1 = time.perf_counter()
            detect_flags(source(base), cfg)
            best = min(best, time.perf_counter() - t1)
        print(f"\nspeed: {len(base.labels) / best:.1f} frames/s at 1280x720 ({len(base.labels)} frames, labels "
              "in memory: add the PNG decoding of a project)")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
