"""The checks' view of an open project ``Video``: :func:`video_labels` and :func:`compute_flags`.

Kept apart from :mod:`annotator.review.detect` so detection stays pure numpy over callables:
this adapter is the only part of flag detection that knows the data model (frame states,
provenance, the stored confidence maps, read through ``Video.load_array``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annotator.jobs import CancelToken, ProgressFn
from annotator.project import FrameState
from annotator.project.array_names import CONFIDENCE_ARRAY
from annotator.review.detect import VideoLabels, detect_flags
from annotator.review.flags import Flag, FlagConfig


def video_labels(video: Any) -> VideoLabels:
    """Adapter from an open ``annotator.project.Video`` (read-only use)."""
    machine_states = {FrameState.PROPAGATED, FrameState.PREANNOTATED}
    cats = video.track_category()
    tax = video.taxonomy

    def is_thing(t: int) -> bool:
        c = cats.get(t)
        return c is not None and c in tax and tax.is_thing(c)

    def name(c: int) -> str:
        return tax.get(c).name if c in tax else str(c)

    return VideoLabels(
        num_frames=video.num_frames, categories=cats, is_thing=is_thing,
        label=video.read_label,
        labelled=lambda i: video.frame_state(i) != FrameState.UNLABELLED and video.has_label(i),
        machine=lambda i: {t for t, s in video.provenance(i).items() if s in machine_states},
        confidence=lambda i: _load_conf(video, CONFIDENCE_ARRAY, i), names=name)


def _load_conf(video: Any, name: str, i: int) -> np.ndarray | None:
    arr = video.load_array(name, i)
    return None if arr is None else arr.astype(np.float32) / 255


def compute_flags(video: Any, config: FlagConfig | None = None, frame_range: tuple[int, int] | None = None,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> list[Flag]:
    """All flags of an open project video (every score; filter with ``min_score``), ranked."""
    return detect_flags(video_labels(video), config, frame_range, progress, cancel)

