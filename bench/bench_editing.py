"""Benchmark of the mask editing engine on 1280x720 demo frames.

Usage: ``.venv/bin/python bench/bench_editing.py [--checkpoint sam_vit_b.pth] [--no-sam] [--clicks 20]``

Prints:
  * SAM click-to-mask latency with a cached embedding (median/p90; budget <= 150 ms), measured as
    the GUI does it: embedding from the cache (memory) + decoder + masks at frame size,
  * loading a cached embedding from disk (budget < 50 ms) and SAM embedding time per frame (CPU),
  * GrabCut box latency (box around an object, 3 iterations) and one +/- refinement,
  * brush stroke apply latency (stroke footprint + apply to the label map + undo patch; budget
    <= 16 ms) in the default write-behind mode, plus the write-through and flush figures,
  * undo / redo latency, and history memory per 100 undo steps.
Without ``--checkpoint`` SAM runs on random-initialised vit_b weights saved to a temp file (same
cost as the real ones; masks are meaningless). No network.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

H, W = 720, 1280


def _ms(samples: list[float]) -> str:
    s = sorted(samples)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return f"median {1e3 * statistics.median(s):7.1f} ms  p90 {1e3 * p90:7.1f} ms  (n={len(s)})"


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench_tools(tmp: Path, strokes: int) -> None:
    from annotator.editing import EditSession, Erase, Paint, grabcut, stroke_mask
    from annotator.editing.operations import bbox_of
    from annotator.project import Project
    from resources.demo import write_demo_project

    path = write_demo_project(tmp / "bench", seed=0, num_frames=20, height=H, width=W, source=None)
    video = Project.open(path).open_video("demo_mixed")
    frame = video.read_frame(2)
    label = video.read_label(2)

    # GrabCut: a box around each thing on the frame
    times, refine = [], []
    for tid in [int(t) for t in np.unique(label) if t >= 5]:
        box = bbox_of(label == tid)
        if box is None or (box[2] - box[0]) < 10:
            continue
        y0, x0, y1, x1 = box
        (region, state), dt = _timed(grabcut, frame, (x0 - 8, y0 - 8, x1 + 8, y1 + 8))
        times.append(dt)
        bg = stroke_mask((H, W), [(x0 - 2, y0 - 2), (x0 + 10, y0)], 4)
        _, dt = _timed(grabcut, frame, state=state, bg_strokes=bg)
        refine.append(dt)
    print(f"{'GrabCut box (' + str(len(times)) + ' objects)':36s}{_ms(times)}")
    print(f"GrabCut +/- stroke refinement       {_ms(refine)}")

    rng = np.random.default_rng(0)

    def random_stroke(radius: float) -> list[tuple[float, float]]:
        x, y = rng.uniform(100, W - 100), rng.uniform(100, H - 100)
        steps = rng.normal(0, 6, (30, 2)).cumsum(axis=0)  # a 30-sample mouse drag
        return [(float(x + dx), float(y + dy)) for dx, dy in steps]

    for mode, kwargs in (("write-behind", {}), ("write-through", {"write_through": True})):
        s = EditSession(video, persist=True, **kwargs)
        s.label(2)
        apply_t, mask_t = [], []
        for k in range(strokes if not kwargs else max(10, strokes // 5)):
            t0 = time.perf_counter()
            region = stroke_mask((H, W), random_stroke(12), 12)
            t1 = time.perf_counter()
            s.apply(2, Paint(region, 5 + k % 3) if k % 4 else Erase(region))
            t2 = time.perf_counter()
            mask_t.append(t1 - t0)
            apply_t.append(t2 - t0)
        print(f"{'brush stroke r=12, ' + mode:35s} {_ms(apply_t)}   (footprint alone {_ms(mask_t)[:17]})")
        if not kwargs:
            nbytes = s.history.nbytes
            steps = len(s.history)
            undo_t = [_timed(s.undo)[1] for _ in range(min(steps, 100))]
            redo_t = [_timed(s.redo)[1] for _ in range(min(steps, 100))]
            print(f"undo                                {_ms(undo_t)}")
            print(f"redo                                {_ms(redo_t)}")
            print(f"history memory per 100 undo steps   {100 * nbytes / steps / 1024:7.1f} kB "
                  f"(brush strokes r=12; a 720p label map is {H * W * 2 / 1024:.0f} kB)")
            _, dt = _timed(s.flush)
            print(f"flush one edited 720p frame         {1e3 * dt:7.1f} ms (PNG encode + atomic write)")
        while s.can_undo:
            s.undo()
        s.close()
    # a big polygon-sized edit
    s = EditSession(video, persist=False)
    region = stroke_mask((H, W), [(200, 200), (1000, 500)], 60)
    _, dt = _timed(s.apply, 2, Paint(region, 6))
    print(f"large stroke r=60 across the frame  {1e3 * dt:7.1f} ms")
    s.undo()
    s.close()
    video.close()


def bench_sam(tmp: Path, checkpoint: str | None, clicks: int, embed_frames: int) -> None:
    import torch

    from annotator.editing.sam_tool import SamPrompt
    from models.sam import SamEngine, SamModel
    from resources.demo import generate_demo_video

    if checkpoint is None:
        from segment_anything import sam_model_registry

        torch.manual_seed(0)
        checkpoint = str(tmp / "sam_vit_b_random.pth")
        torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), checkpoint)
        print("SAM: random-initialised vit_b weights (pass --checkpoint for real ones)")
    model, dt = _timed(SamModel, checkpoint, "sam_vit_b")
    print(f"SAM model load (incl. sha256)       {1e3 * dt:7.0f} ms   torch threads {torch.get_num_threads()}")
    demo = generate_demo_video(seed=0, num_frames=max(2, embed_frames), height=H, width=W)
    cache_dir = tmp / "emb"
    engine = SamEngine(model, cache_dir)
    emb_t = []
    for i in range(embed_frames):
        emb, dt = _timed(engine.embedding, demo.frames[i])
        emb_t.append(dt)
    if embed_frames:
        print(f"SAM embedding per 720p frame (CPU)  {_ms(emb_t)}")
    else:  # decoder figures only: synthetic features cost the decoder exactly as much as real ones
        from models.sam import Embedding

        feats = np.random.default_rng(0).normal(0, 0.5, (1, 256, 64, 64)).astype(np.float16)
        engine.cache.put(engine.key(demo.frames[0]), Embedding(feats, (H, W), (576, 1024)))
        print("SAM embedding skipped (--embed-frames 0): synthetic features")
    disk_t = []
    for _ in range(5):
        fresh = SamEngine(model, cache_dir)
        e2, dt = _timed(fresh.cached, demo.frames[0])
        assert e2 is not None
        disk_t.append(dt)
    print(f"cached embedding load from disk     {_ms(disk_t)}  (incl. frame hash)")
    emb = engine.cached(demo.frames[0])
    engine.predict(emb, points=[(640, 360)], labels=[1])  # warm-up
    for threads in ("auto", 1):
        model.decoder_threads = threads
        rng = np.random.default_rng(0)
        tool = SamPrompt()
        lat = []
        for k in range(clicks):
            if k % 4 == 0:
                tool.reset()
            x, y = rng.uniform(0, W - 1), rng.uniform(0, H - 1)
            t = time.perf_counter()
            e = engine.cached(demo.frames[0])  # memory LRU hit (incl. frame hash), as in the GUI
            tool.add_click(x, y, positive=bool(k % 3))
            tool.run(engine, e)
            tool.region()
            lat.append(time.perf_counter() - t)
        label = f"SAM click, decoder threads {threads}"
        print(f"{label:36s}{_ms(lat)}   budget <= 150 ms")
    model.decoder_threads = SamModel.DECODER_THREADS
    # the GUI case: the background worker embeds other frames while the user clicks
    from models.sam import EmbeddingWorker

    busy_engine = SamEngine(model, None)
    for nice in (10, 0):
        worker = EmbeddingWorker(busy_engine, lambda i: demo.frames[1], nice=nice)
        worker.schedule(current=1)
        time.sleep(1.0)
        lat = []
        for _ in range(max(5, clicks // 2)):
            x, y = rng.uniform(0, W - 1), rng.uniform(0, H - 1)
            t = time.perf_counter()
            pred = engine.predict(emb, points=[(x, y)], labels=[1])
            pred.mask(pred.best())
            lat.append(time.perf_counter() - t)
        busy = worker._running is not None
        worker.stop(timeout=120)
        label = f"SAM click, encoder busy (nice {nice})"
        print(f"{label:36s}{_ms(lat)}   {'(encoder was running)' if busy else '(encoder finished early)'}")
    box_t = [_timed(engine.predict, emb, box=(300, 200, 700, 600))[1] for _ in range(5)]
    print(f"SAM box-to-mask (cached emb.)       {_ms(box_t)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a real SAM vit_b checkpoint (default: random weights)")
    ap.add_argument("--no-sam", action="store_true", help="skip the SAM figures (they need ~1 min on 2 cores)")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--strokes", type=int, default=120)
    ap.add_argument("--embed-frames", type=int, default=1,
                    help="frames to embed for the encoder figure (0: skip it, ~1 min per frame on 2 busy cores)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"mask editing benchmark, {W}x{H}; load average at start {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        bench_tools(tmp, args.strokes)
        if not args.no_sam:
            bench_sam(tmp, args.checkpoint, args.clicks, args.embed_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
