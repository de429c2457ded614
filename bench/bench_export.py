"""Benchmark: VIPSeg export frames/s of a 720p demo video (docs/architecture.md budget: >= 20 frames/s).

Usage: ``.venv/bin/python bench/bench_export.py [--frames 150] [--workers N] [--repeat 3]``.
Prints the best of ``--repeat`` runs for the VIPSeg export (at 720p no resize is needed, so the
project JPEGs are copied; masks go through lookup tables and PNG encoding on a thread pool), and
for reference the resize path (a 640x360 project scaled to 720p: JPEG decode, bilinear resize,
JPEG encode, nearest mask resize) and, with --all-formats, the YouTube-VIS and labelme exports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.formats.vipseg import export_vipseg  # noqa: E402
from resources.demo import write_demo_project  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=150, help="source frames at 25 fps (dense = frames / 5)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--all-formats", action="store_true", help="also time the ytvis and labelme exports")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        t0 = time.perf_counter()
        proj = write_demo_project(tmp / "demo.vpsproj", scenarios=("mixed",), num_frames=args.frames,
                                  height=720, width=1280, source=None)
        print(f"demo project 1280x720, {args.frames // 5} dense frames written in {time.perf_counter() - t0:.1f} s")
        best = None
        for r in range(args.repeat):
            out = tmp / f"vipseg_{r}"
            t0 = time.perf_counter()
            summary = export_vipseg(proj, out, workers=args.workers)
            dt = time.perf_counter() - t0
            fps = summary.frames / dt
            best = fps if best is None else max(best, fps)
            print(f"run {r + 1}: {summary.frames} frames in {dt:.2f} s = {fps:.1f} frames/s")
            shutil.rmtree(out)
        print(f"VIPSeg export 720p: {best:.1f} frames/s (best of {args.repeat}; target >= 20)")
        small = write_demo_project(tmp / "small.vpsproj", scenarios=("mixed",), num_frames=args.frames,
                                   height=360, width=640, source=None)
        t0 = time.perf_counter()
        summary = export_vipseg(small, tmp / "resized", workers=args.workers)
        dt = time.perf_counter() - t0
        print(f"VIPSeg export with resize 640x360 -> 1280x720: {summary.frames / dt:.1f} frames/s")
        if args.all_formats:
            from annotator.formats.labelme_json import export_labelme
            from annotator.formats.ytvis import export_ytvis

            for name, fn in (("ytvis", export_ytvis), ("labelme", export_labelme)):
                t0 = time.perf_counter()
                summary = fn(proj, tmp / name)
                dt = time.perf_counter() - t0
                print(f"{name} export 720p: {summary.frames / dt:.1f} frames/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
