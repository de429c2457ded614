"""Benchmark of the memory (STCN) propagator: seconds per frame at 480p with 1, 3 and 10 objects.

    .venv/bin/python bench/bench_memory.py [--objects 1,3,10] [--targets 3] [--size 854x480]

Random weights (the cost does not depend on the values), CPU unless a GPU is present. One
reference frame is encoded, then ``--targets`` frames are segmented; the memory is the reference
plus every 5th frame, as in dense propagation. Printed per object count: the cost of encoding a
reference (key + value encoder, paid once per reference of a gap), of one propagated frame (key
encoder + readout + decoder per object) in wall and process-CPU seconds, and the resulting wall
seconds per propagated frame over a typical 5-frame gap of dense propagation (4 targets and one
newly encoded reference: the keyframe shared with the previous gap comes from the cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.stcn import build_stcn, default_device, load_stcn  # noqa: E402
from propagation.base import Reference  # noqa: E402
from propagation.memory import MemoryConfig, MemoryPropagator  # noqa: E402


class _Frames:
    """A FrameSource of textured random frames (content does not change the cost)."""

    def __init__(self, n: int, h: int, w: int) -> None:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        self.frames = [np.roll(base, 3 * i, axis=1) for i in range(n)]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def read_frame(self, i: int) -> np.ndarray:
        return self.frames[i]

    def read_source_frames(self, a: int, b: int) -> list[np.ndarray]:
        return self.frames[a:b + 1]


def _label(h: int, w: int, k: int) -> np.ndarray:
    """``k`` objects as vertical bands over the lower 2/3 of the frame, background above."""
    lab = np.zeros((h, w), np.uint16)
    edges = np.linspace(0, w, k + 1).astype(int)
    for i in range(k):
        lab[h // 3:, edges[i]:edges[i + 1]] = i + 1
    return lab


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run(objects: list[int], targets: int, h: int, w: int, max_objects: int,
        checkpoint: str | None = None) -> list[dict[str, float]]:
    """Per object count: wall and CPU seconds of a reference encoding and of a propagated frame."""
    net = load_stcn(checkpoint, default_device()) if checkpoint else build_stcn(seed=0)
    prop = MemoryPropagator(net, config=MemoryConfig(max_objects=max_objects))
    frames = _Frames(targets + 1, h, w)
    prop.propagate(frames, [Reference(0, _label(h, w, 1))], [1])  # warm-up at full size (oneDNN kernels)
    rows = []
    for k in objects:
        label = _label(h, w, k)
        size = prop.working_size(h, w)
        objects_ids = np.arange(1, k + 1)
        chunks = [slice(a, min(a + max_objects, k)) for a in range(0, k, max_objects)]
        with torch.inference_mode():  # a reference: key + value encoding of every object
            w0, c0 = _clock()
            enc = prop._encode(frames.read_frame(0), size)
            prop._values(enc, prop._masks(label, objects_ids, size), chunks)
            w1, c1 = _clock()
        stamps: list[tuple[float, float]] = [_clock()]
        prop.propagate(frames, [Reference(0, label)], list(range(1, targets + 1)),
                       progress=lambda *_, s=stamps: s.append(_clock()))
        # the first step also encodes the reference: use the later steps when there are some
        first = 1 if len(stamps) > 2 else 0
        n = len(stamps) - 1 - first
        wall = (stamps[-1][0] - stamps[first][0]) / n if n else stamps[1][0] - stamps[0][0] - (w1 - w0)
        cpu = (stamps[-1][1] - stamps[first][1]) / n if n else stamps[1][1] - stamps[0][1] - (c1 - c0)
        rows.append({"k": k, "ref_wall": w1 - w0, "ref_cpu": c1 - c0, "wall": wall, "cpu": cpu})
        print(f"  {k} objects done", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", default="1,3,10", help="object counts, comma separated")
    ap.add_argument("--targets", type=int, default=3, help="frames segmented per object count")
    ap.add_argument("--size", default="854x480", help="frame size WxH (short side is resized to 480)")
    ap.add_argument("--max-objects", type=int, default=8, help="objects per network call")
    ap.add_argument("--checkpoint", help="time a real STCN checkpoint instead of random weights (same cost)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    objects = [int(v) for v in args.objects.split(",")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    weights = args.checkpoint or "random weights"
    print(f"memory propagator (STCN, {weights}), {w}x{h}, device {device}, "
          f"{torch.get_num_threads()} threads, max {args.max_objects} objects per call")
    load0 = os.getloadavg()[0]
    rows = run(objects, args.targets, h, w, args.max_objects, args.checkpoint)
    print(f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end (other processes slow the wall "
          "times; CPU s = process CPU time summed over threads)")
    print(f"{'objects':>7} | {'reference wall s':>16} | {'frame wall s':>12} | {'frame CPU s':>11} | "
          f"{'5-frame gap wall s/frame':>24}")
    print("-" * 84)
    for r in rows:
        gap = (r["ref_wall"] + 4 * r["wall"]) / 4  # per gap: 1 new reference (the other is cached), 4 frames
        print(f"{r['k']:>7} | {r['ref_wall']:>16.2f} | {r['wall']:>12.2f} | {r['cpu']:>11.2f} | {gap:>24.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
