"""A whole video through Clip-PanoFCN: non-overlapping clips (optionally in a process pool), then tracking.

Clips are independent (the released evaluation runs them one after another with no state but the
tracking memory), so they may run in worker processes; each worker loads the checkpoint once.
Tracking (:class:`~models.clip_panofcn.tracking.ClipTracker`) is a cheap sequential pass over the
clip results in temporal order. Output: per frame an int32 map of *video keys* indices plus the
list of keys ``("thing"|"stuff", channel, instance)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from models.clip_panofcn.checkpoint import load_clip_panofcn
from models.clip_panofcn.inference import ClipResult, InferenceConfig, infer_clip
from models.clip_panofcn.network import ClipPanoFCN
from models.clip_panofcn.tracking import ClipTracker

FrameReader = Callable[[int], np.ndarray]
Key = tuple[str, int, int]


def clip_ranges(num_frames: int, clip: int) -> list[list[int]]:
    """Non-overlapping clips of ``clip`` frames; the last one may be shorter (as released)."""
    if clip < 1:
        raise ValueError("clip length must be at least 1")
    return [list(range(s, min(s + clip, num_frames))) for s in range(0, num_frames, clip)]


@dataclass
class VideoPrediction:
    """Tracked output: ``labels[i]`` (H, W) int32 with 0 = void, k = ``keys[k - 1]``; scores per key."""

    keys: list[Key] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    scores: dict[Key, float] = field(default_factory=dict)
    seconds: float = 0.0


# ----------------------------------------------------------------------------- worker processes

_WORKER: dict[str, object] = {}


def _init_worker(checkpoint: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["model"] = load_clip_panofcn(checkpoint)


def _worker_clip(frames: list[np.ndarray], indices: list[int], cfg: InferenceConfig) -> ClipResult:
    model = _WORKER["model"]
    assert isinstance(model, ClipPanoFCN)
    return infer_clip(model, frames, cfg, indices)


def _clip_results(read: FrameReader, clips: Sequence[list[int]], cfg: InferenceConfig,
                  model: ClipPanoFCN | None, checkpoint: str | None, workers: int,
                  cancel: CancelToken | None) -> Iterator[ClipResult]:
    """Clip results in temporal order (a bounded number of clips in flight with a pool)."""
    if workers <= 1 or checkpoint is None:
        if model is None:
            raise ValueError("a model (or a checkpoint with workers > 1) is required")
        for idx in clips:
            check_cancel(cancel)
            yield infer_clip(model, [read(i) for i in idx], cfg, idx)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(checkpoint, threads)) as pool:
        pending = []
        it = iter(clips)
        try:
            for idx in it:
                pending.append(pool.submit(_worker_clip, [read(i) for i in idx], idx, cfg))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                check_cancel(cancel)
                res = pending.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(_worker_clip, [read(i) for i in nxt], nxt, cfg))
                yield res
        finally:
            for f in pending:
                f.cancel()


def predict_video(read: FrameReader, num_frames: int, cfg: InferenceConfig | None = None,
                  model: ClipPanoFCN | None = None, checkpoint: str | None = None, workers: int = 1,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> VideoPrediction:
    """Run the model over frames ``0..num_frames-1`` and track segments across clips."""
    cfg = cfg or InferenceConfig()
    clips = clip_ranges(num_frames, cfg.clip)
    tracker = ClipTracker(cfg.cost_limit, cfg.mem_weight)
    out = VideoPrediction(labels=[np.zeros(0, np.int32)] * num_frames)
    index: dict[Key, int] = {}
    start = time.perf_counter()
    done = 0
    for res in _clip_results(read, clips, cfg, model, checkpoint, workers, cancel):
        keys = tracker.assign(res)
        lut = np.zeros(len(res.segments) + 1, np.int32)
        for seg in res.segments:
            key = keys[seg.index]
            if key not in index:
                out.keys.append(key)
                index[key] = len(out.keys)
            lut[seg.index] = index[key]
            out.scores[key] = max(out.scores.get(key, 0.0), seg.score)
        for n, f in enumerate(res.frames):
            out.labels[f] = lut[res.panoptic[n]]
        done += len(res.frames)
        if progress is not None:
            progress(done, num_frames, f"clip {res.frames[0]}-{res.frames[-1]}")
    out.seconds = time.perf_counter() - start
    return out
