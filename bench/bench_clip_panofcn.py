"""Benchmark of the Clip-PanoFCN R50 pre-annotator on CPU: seconds per 720p frame, random weights.

    .venv/bin/python bench/bench_clip_panofcn.py [--size 1280x720] [--clip 3] [--clips 2] [--threads N]

The cost does not depend on the weight values, so the released architecture is built with random
weights (never used for annotation). Printed: the dense network (backbone + FPN + heads, with the
grid_sample DCNv2 of the position head) and the post-processing (candidates, kernel fusion, masks,
panoptic merge) per clip, in wall and process-CPU seconds, and wall seconds per frame, plus the
peak resident memory. The tracking pass between clips is negligible (a few small assignments).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.clip_panofcn.inference import InferenceConfig, infer_clip  # noqa: E402
from models.clip_panofcn.network import build_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="WxH of the frames (default 1280x720)")
    ap.add_argument("--clip", type=int, default=3, help="frames per clip (released: 3)")
    ap.add_argument("--clips", type=int, default=2, help="clips to time (the first is a warm-up)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    model = build_model(seed=0)
    rng = np.random.default_rng(0)
    # smooth random images: the post-processing work depends a little on the content
    base = rng.integers(0, 255, (args.clip, h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    frames = [np.repeat(np.repeat(b, 16, 0), 16, 1)[:h, :w].copy() for b in base]
    cfg = InferenceConfig(clip=args.clip)
    print(f"Clip-PanoFCN R50 (random weights), {w}x{h}, clip {args.clip}, {args.threads} torch threads, "
          f"{os.cpu_count()} cores")
    for n in range(args.clips):
        batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            model(model.preprocess(batch))
        t1, c1 = time.perf_counter(), time.process_time()
        res = infer_clip(model, frames, cfg)
        t2, c2 = time.perf_counter(), time.process_time()
        post = (c2 - c1) - (c1 - c0)  # infer_clip runs the network again, then post-processes
        tag = "warm-up" if n == 0 and args.clips > 1 else f"clip {n}"
        print(f"{tag}: network {t1 - t0:.2f} s wall / {c1 - c0:.2f} s CPU; whole clip {t2 - t1:.2f} s wall / "
              f"{c2 - c1:.2f} s CPU (post-processing ~{max(post, 0):.2f} s CPU); per frame "
              f"{(t2 - t1) / args.clip:.2f} s wall / {(c2 - c1) / args.clip:.2f} s CPU; {len(res.segments)} segments")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
