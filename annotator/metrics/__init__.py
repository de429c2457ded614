"""Scoring: VPQ and STQ equal to the official VIPSeg scripts, fast, with reports.

Array-level entry points (no project store needed): build :class:`VideoPair` objects from id maps
and ``{id: category}`` dicts and call :func:`score_pairs`; sources for projects, VIPSeg exports and
prediction folders live in :mod:`annotator.metrics.sources`, reports in :mod:`annotator.metrics.report`;
the one entry that the ``score`` command, the scoring dialog and batch call (open two sources,
score them under a protocol, name the classes) is :mod:`annotator.metrics.scoring`.
"""

from annotator.metrics.engine import InMemoryPairs, ScoreReport, VideoScore, score_pairs, score_source
from annotator.metrics.stq import MODES, STQResult, stq_result, stq_video_stats
from annotator.metrics.tables import VideoTable, build_table
from annotator.metrics.types import Categories, Frame, Segment, VideoPair, as_frames, make_frame
from annotator.metrics.vpq import DEFAULT_WINDOWS, VPQResult, vpq_result, vpq_video_stats

__all__ = [
    "DEFAULT_WINDOWS", "MODES", "Categories", "Frame", "InMemoryPairs", "STQResult", "ScoreReport", "Segment",
    "VPQResult", "VideoPair", "VideoScore", "VideoTable", "as_frames", "build_table", "make_frame",
    "score_pairs", "score_source", "stq_result", "stq_video_stats", "vpq_result", "vpq_video_stats",
]
