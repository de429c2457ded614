"""Benchmark of project I/O: open time of a long 720p video, peak RSS, frame fetch latency, import speed.

Usage: ``.venv/bin/python bench/bench_io.py [--frames 3000] [--size 1280x720] [--keep DIR]``

Builds a temporary project with one video of ``--frames`` dense 720p frames (JPEG q95) and a label
map on every frame (demo scenes, 100 distinct renders cycled), then measures in a fresh process so
generation does not pollute the memory figures:
  * time to ``Project.open`` + ``open_video`` (the video.json of 3,000 frames is parsed),
  * frame fetch latency uncached (first read: JPEG decode) and cached (LRU hit),
  * peak RSS after reading every frame once (the byte-bounded LRU must keep it flat),
and, separately, import throughput from an mp4 and ``SourceReader`` seek/sequential latency.
The page cache is warm (files were just written): uncached means "not in the LRU", not cold disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DISTINCT = 100


def build_project(path: Path, frames: int, height: int, width: int) -> None:
    from annotator.project import FrameState, Project, SourceInfo
    from resources.demo import DemoScene

    scene = DemoScene(seed=0, num_frames=DISTINCT, height=height, width=width, scenario="mixed")
    renders = [scene.render(t) for t in range(DISTINCT)]
    proj = Project.create(path)
    src = SourceInfo(kind="none", fps=25.0, num_source_frames=frames * 5,
                     source_indices=[5 * i for i in range(frames)], original_size=(height, width))
    video = proj.create_video("long", [f"{5 * i:06d}" for i in range(frames)], height, width, source=src)
    for tid, cat in scene.tracks.items():
        video.add_track(tid, cat)
    t0 = time.perf_counter()
    for i in range(frames):
        img, lab = renders[i % DISTINCT]
        video.write_frame_image(i, img)
        video.write_label(i, lab, state=FrameState.REVIEWED)
        if i % 500 == 499:
            print(f"  wrote {i + 1}/{frames} frames ({time.perf_counter() - t0:.0f} s)", flush=True)
    video.close()


def measure(path: Path) -> dict:
    """Run in a fresh process: open, fetch latencies, peak RSS."""
    import resource

    import psutil

    from annotator.project import Project

    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    proj = Project.open(path)
    video = proj.open_video("long")
    t_open = time.perf_counter() - t0

    def peak_mb() -> float:
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (big) parent process
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    peak_open = peak_mb()
    n = video.num_frames
    rng = np.random.default_rng(0)
    idx = rng.choice(n, size=min(50, n), replace=False)
    t = time.perf_counter()
    for i in idx:
        video.read_frame(int(i))
    uncached = (time.perf_counter() - t) / len(idx)
    t = time.perf_counter()
    for _ in range(5):
        for i in idx:
            video.read_frame(int(i))
    cached = (time.perf_counter() - t) / (5 * len(idx))
    t = time.perf_counter()
    for i in idx[:20]:
        video.read_label(int(i))
    label = (time.perf_counter() - t) / min(20, len(idx))
    peak_mb_before_all = peak_mb()
    t = time.perf_counter()
    for i in range(n):  # every frame once: memory must stay bounded by the LRU
        video.read_frame(i)
    t_all = time.perf_counter() - t
    peak_before_all = peak_mb_before_all
    rss_after = psutil.Process().memory_info().rss
    peak = peak_mb() * 2**20
    t = time.perf_counter()
    video.close()
    t_close = time.perf_counter() - t
    return {"frames": n, "open_s": t_open, "uncached_ms": uncached * 1e3, "cached_ms": cached * 1e3,
            "label_ms": label * 1e3, "read_all_s": t_all, "rss_start_mb": rss0 / 2**20,
            "rss_after_mb": rss_after / 2**20, "peak_rss_mb": peak / 2**20, "close_s": t_close,
            "peak_after_open_mb": peak_open, "peak_before_read_all_mb": peak_before_all}


def bench_import(tmp: Path, height: int, width: int, seconds: int = 20) -> dict:
    from annotator.project import Project, SourceReader, import_source
    from resources.demo import DemoScene, DemoVideo, write_demo_source

    n = 25 * seconds
    scene = DemoScene(seed=1, num_frames=DISTINCT, height=height, width=width, scenario="crossing")
    renders = [scene.render(t)[0] for t in range(DISTINCT)]
    clip = DemoVideo(frames=[renders[t % DISTINCT] for t in range(n)], labels=[], tracks={}, fps=25.0)
    mp4 = write_demo_source(clip, tmp / "clip.mp4", "mp4")
    proj = Project.create(tmp / "imp.vpsproj")
    t = time.perf_counter()
    vid = import_source(proj, mp4)
    t_import = time.perf_counter() - t
    with proj.open_video(vid, readonly=True) as video:
        dense = video.num_frames
        src = video.source
    with SourceReader(src, (height, width)) as reader:
        rng = np.random.default_rng(1)
        t = time.perf_counter()
        for i in rng.integers(0, n, 10):
            reader.read(int(i))
        seek = (time.perf_counter() - t) / 10
        t = time.perf_counter()
        frames = reader.read_range(100, 150)
        seq = (time.perf_counter() - t) / len(frames)
    return {"source_frames": n, "dense_frames": dense, "import_s": t_import,
            "import_fps": n / t_import, "seek_read_ms": seek * 1e3, "sequential_read_ms": seq * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--keep", help="build the project here and keep it (reused if it exists)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--skip-import", action="store_true")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return 0
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmpdir:
        tmp = Path(tmpdir)
        path = Path(args.keep) if args.keep else tmp / "long.vpsproj"
        if not (path / "project.json").exists():
            print(f"building a {args.frames}-frame {width}x{height} project in {path} ...", flush=True)
            t = time.perf_counter()
            build_project(path, args.frames, height, width)
            print(f"  built in {time.perf_counter() - t:.1f} s "
                  f"({sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) / 2**20:.0f} MB)")
        out = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"open project + video ({r['frames']} frames): {r['open_s']:.3f} s")
        print(f"frame fetch uncached (JPEG decode): {r['uncached_ms']:.1f} ms; cached (LRU): {r['cached_ms']:.4f} ms")
        print(f"label map read: {r['label_ms']:.1f} ms; read every frame once: {r['read_all_s']:.1f} s")
        print(f"RSS at start {r['rss_start_mb']:.0f} MB, after reading all frames {r['rss_after_mb']:.0f} MB, "
              f"peak {r['peak_rss_mb']:.0f} MB (after open {r['peak_after_open_mb']:.0f} MB, before reading all "
              f"{r['peak_before_read_all_mb']:.0f} MB); close {r['close_s']:.3f} s")
        if not args.skip_import:
            r = bench_import(tmp, height, width)
            print(f"import mp4 {width}x{height}: {r['source_frames']} source frames -> {r['dense_frames']} dense "
                  f"in {r['import_s']:.1f} s ({r['import_fps']:.0f} source frames/s)")
            print(f"SourceReader: random read (seek) {r['seek_read_ms']:.1f} ms, "
                  f"sequential {r['sequential_read_ms']:.1f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
