"""Review: the flag model, flag detection (pure numpy), the review store (``review.json``) and
track tubes. Callers import from here; the modules behind this face are private to the package."""

from annotator.review.flags import (
    KINDS,
    PERSISTENT_KINDS,
    Flag,
    FlagConfig,
    TubeFrame,
    VideoLabels,
    compute_flags,
    dedupe,
    detect_flags,
    next_flag,
    on_new_reference,
    rank,
    track_tube,
    video_labels,
    visible,
)

__all__ = [
    "KINDS",
    "PERSISTENT_KINDS",
    "Flag",
    "FlagConfig",
    "TubeFrame",
    "VideoLabels",
    "compute_flags",
    "dedupe",
    "detect_flags",
    "next_flag",
    "on_new_reference",
    "rank",
    "track_tube",
    "video_labels",
    "visible",
]
