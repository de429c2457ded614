"""Score a set of videos: one table per video, VPQ and STQ sums pooled, videos in parallel.

Work is split by video because the official metrics pool per-class sums over videos: each worker
returns a few small arrays per video, never pixels, so a process pool scales with the cores.
Inputs come from a *pair source* (anything with ``video_ids`` and ``load(video_id) -> VideoPair``,
picklable when ``workers > 1``), so workers read their own frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Protocol

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics.stq import MODES, STQResult, STQStats, empty_stats, stq_result, stq_video_stats
from annotator.metrics.tables import build_table
from annotator.metrics.types import Categories, VideoPair
from annotator.metrics.vpq import DEFAULT_WINDOWS, VPQResult, VPQStats, vpq_result, vpq_video_stats


class PairSource(Protocol):
    video_ids: list[str]

    def load(self, video_id: str) -> VideoPair: ...


class InMemoryPairs:
    """A pair source over already loaded :class:`VideoPair` objects."""

    def __init__(self, pairs: Sequence[VideoPair]) -> None:
        self._pairs = {p.video_id: p for p in pairs}
        if len(self._pairs) != len(pairs):
            raise InputError("two videos share the same video id")
        self.video_ids = [p.video_id for p in pairs]

    def load(self, video_id: str) -> VideoPair:
        return self._pairs[video_id]


@dataclass
class VideoScore:
    video_id: str
    num_frames: int
    vpq: VPQResult | None
    stq: STQResult | None


@dataclass
class ScoreReport:
    """Everything a report shows: pooled scores, per-video scores, the mode and any notes."""

    mode: str
    windows: list[int]
    categories: Categories
    vpq: VPQResult | None
    stq: STQResult | None
    videos: list[VideoScore]
    gt_name: str = ""
    pred_name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return sum(v.num_frames for v in self.videos)


def _video_job(source: PairSource, video_id: str, cats: Categories, windows: tuple[int, ...], mode: str,
               metrics: tuple[str, ...]) -> tuple[str, int, VPQStats | None, STQStats | None]:
    pair = source.load(video_id)
    table = build_table(pair.video_id, pair.gt, pair.pred, strict_gt=getattr(source, "strict_gt", False))
    _check_categories(table.video_id, "ground truth", table.gt_ids, table.gt_cat, cats)
    _check_categories(table.video_id, "prediction", table.pred_ids, table.pred_cat, cats)
    v = vpq_video_stats(table, cats, windows, mode) if "vpq" in metrics else None
    s = stq_video_stats(table, cats, mode) if "stq" in metrics else None
    return video_id, table.num_frames, v, s


def _check_categories(video_id: str, what: str, ids, cat_ids, cats: Categories) -> None:
    """Refuse segments whose category is not an evaluated class (the official VPQ raises KeyError).

    Silently scoring them as void would hide the usual mistake of a prediction with 1-based or
    otherwise remapped category ids behind plausible but wrong numbers.
    """
    bad = sorted({(int(c), int(i)) for i, c in zip(ids.tolist(), cat_ids.tolist(), strict=True)
                  if int(c) not in cats.isthing})
    if bad:
        shown = ", ".join(f"segment {i} category {c}" for c, i in bad[:5])
        raise InputError(f"{what} of video {video_id!r}: unknown category id(s) ({shown}); the ground truth "
                         f"classes are {min(cats.isthing, default=0)}..{max(cats.isthing, default=-1)}. "
                         "Map the categories to the ground-truth ids (0-based, as in the VIPSeg JSON)")


_WORKER: dict = {}


def _init_worker(source, cats, windows, mode, metrics) -> None:
    _WORKER.update(args=(source, cats, windows, mode, metrics))


def _worker_job(video_id: str):
    source, cats, windows, mode, metrics = _WORKER["args"]
    return _video_job(source, video_id, cats, windows, mode, metrics)


def score_source(source: PairSource, cats: Categories, windows: Sequence[int] = DEFAULT_WINDOWS,
                 mode: str = "official", workers: int = 1, metrics: Sequence[str] = ("vpq", "stq"),
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> ScoreReport:
    """VPQ and/or STQ of every video of ``source``, pooled as the official scripts pool them."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    # a repeated length would count twice in VPQ = mean over L (1,1,8 gave 87.9 instead of 81.9)
    windows = tuple(dict.fromkeys(int(w) for w in windows))
    if not windows or any(w < 1 for w in windows):
        raise InputError(f"window lengths must be positive integers, got {list(windows)}")
    metrics = tuple(metrics)
    ids = list(source.video_ids)
    if not ids:
        raise InputError("nothing to score: the sources have no video in common")
    results = {}
    total = len(ids)
    if workers <= 1 or total == 1:
        for i, vid in enumerate(ids):
            check_cancel(cancel)
            results[vid] = _video_job(source, vid, cats, windows, mode, metrics)
            if progress:
                progress(i + 1, total, vid)
    else:
        # the source (possibly holding a large parsed JSON) is sent once per worker, not per video
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 initargs=(source, cats, windows, mode, metrics)) as pool:
            futs = {pool.submit(_worker_job, vid): vid for vid in ids}
            try:
                for i, fut in enumerate(as_completed(futs)):
                    check_cancel(cancel)
                    vid, *rest = fut.result()
                    results[vid] = (vid, *rest)
                    if progress:
                        progress(i + 1, total, vid)
            except BaseException:
                for f in futs:
                    f.cancel()
                raise
    return _assemble(ids, results, cats, windows, mode, metrics)



def _assemble(ids, results, cats, windows, mode, metrics) -> ScoreReport:
    vpq_tot, stq_tot = VPQStats(), empty_stats(cats)
    videos = []
    for vid in ids:  # fixed order: pooled sums do not depend on completion order
        _, n, v, s = results[vid]
        vr = sr = None
        if v is not None:
            vpq_tot += v
            vr = vpq_result(v, cats, windows)
        if s is not None:
            stq_tot += s
            sr = stq_result(s, cats, mode)
        videos.append(VideoScore(vid, n, vr, sr))
    vpq = vpq_result(vpq_tot, cats, windows) if "vpq" in metrics else None
    stq = stq_result(stq_tot, cats, mode) if "stq" in metrics else None
    return ScoreReport(mode, list(windows), cats, vpq, stq, videos)


def score_pairs(pairs: Sequence[VideoPair], cats: Categories, windows: Sequence[int] = DEFAULT_WINDOWS,
                mode: str = "official", workers: int = 1, **kw) -> ScoreReport:
    """Convenience wrapper over :func:`score_source` for in-memory videos."""
    return score_source(InMemoryPairs(pairs), cats, windows, mode, workers, **kw)
