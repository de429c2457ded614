"""Batch throughput: videos per minute of ``batch propagate`` and ``batch export`` (VIPSeg) with 1
and 2 pool workers over a synthetic demo project, and the scaling ratio (2 workers / 1 worker).

    nice -n 10 .venv/bin/python bench/bench_batch.py [--videos 6] [--frames 50] [--size 180x320]

Each run starts from a fresh copy of the project (propagation is redone, the export goes to a new
folder), so the figures include pool start-up (spawned workers import the project modules).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make(path: Path, videos: int, frames: int, h: int, w: int) -> Path:
    import numpy as np

    from annotator.project import FrameState, Project
    from resources.demo import SCENARIOS, write_demo_project

    scen = [SCENARIOS[i % len(SCENARIOS)] for i in range(videos)]
    # demo ids are demo_<scenario>: one project per scenario would clash, so build and rename
    root = write_demo_project(path, scenarios=scen[:len(SCENARIOS)], num_frames=frames, height=h, width=w, source=None)
    for n in range(len(SCENARIOS), videos):
        src = root / "videos" / f"demo_{scen[n]}"
        dst = root / "videos" / f"demo_{scen[n]}_{n}"
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock*"))
    proj = Project.open(root)
    for vid in proj.video_ids:  # keep the keyframes only: propagation has work to do
        with proj.open_video(vid) as v:
            for i in range(v.num_frames):
                if not v.is_keyframe(i):
                    v.write_label(i, np.zeros((h, w), np.uint16), state=FrameState.UNLABELLED, provenance={})
            v.save()
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=50, help="source frames per video (25 fps -> 5 fps dense)")
    ap.add_argument("--size", default="180x320")
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.split("x"))
    from annotator.batch.driver import run_batch
    from annotator.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        base = make(Path(tmp) / "base.vpsproj", args.videos, args.frames, h, w)
        nvid = len(Project.open(base).video_ids)
        with Project.open(base).open_video(Project.open(base).video_ids[0], readonly=True) as v:
            dense = v.num_frames
        print(f"project: {nvid} videos x {dense} dense frames of {h}x{w}")
        rates: dict[tuple[str, int], float] = {}
        for workers in (1, 2):
            p = Path(tmp) / f"p{workers}.vpsproj"
            shutil.copytree(base, p)
            t0 = time.perf_counter()
            s = run_batch(p, "propagate", workers=workers)
            dt = time.perf_counter() - t0
            assert s.ok, s.lines()
            rates[("propagate", workers)] = nvid / dt * 60
            t0 = time.perf_counter()
            s = run_batch(p, "export", options={"format": "vipseg", "out": str(Path(tmp) / f"out{workers}"),
                                                "resize_height": 720}, workers=workers)
            dt = time.perf_counter() - t0
            assert s.ok, s.lines()
            rates[("export", workers)] = nvid / dt * 60
        for stage in ("propagate", "export"):
            one, two = rates[(stage, 1)], rates[(stage, 2)]
            print(f"{stage:9s}: 1 worker {one:7.1f} videos/min, 2 workers {two:7.1f} videos/min, "
                  f"scaling x{two / one:.2f}")


if __name__ == "__main__":
    main()
