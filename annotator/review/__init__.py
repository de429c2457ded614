"""Review: the flag model, flag detection (pure numpy), the review store (``review.json``) and
track tubes. Callers import from here; the modules behind this face are private to the package.

Inside, the layers run one way: ``flags`` (the model) <- ``matching`` <- ``detect`` (pure numpy)
<- ``source`` (the checks over an open ``Video``); ``flags`` <- ``store`` (decisions, cached
flags, progress, report CSV, stale-evidence cleanup); ``source`` + ``store`` <- ``refresh`` (the
cached flags of the tracks a correction touched, recomputed); ``estimate`` (signals per (frame,
track) and pixel) <- ``error_model`` (the fitted model) <- ``queue`` (review queue, sample,
suggested keyframes, sure gaps, error map, bulk accept; uses ``store``); ``tubes`` stands alone. How the checks
work and what they were measured at: ``docs/review.md``.
"""

from annotator.review.detect import VideoLabels, detect_flags
from annotator.review.error_model import ErrorModel, load_model
from annotator.review.flags import (
    FRAME_BASE,
    KINDS,
    PERSISTENT_KINDS,
    Flag,
    FlagConfig,
    dedupe,
    next_flag,
    rank,
    shown_frame,
    visible,
)
from annotator.review.queue import (
    KeyframeSuggestion,
    QueueItem,
    ReviewQueue,
    VideoEstimate,
    accept_rest,
    build_queue,
    estimate_video,
    extend_queue,
    pixel_error_map,
    sample_size,
    suggest_keyframes,
    sure_gaps,
)
from annotator.review.refresh import refresh_flags
from annotator.review.schema import check_review_doc, check_review_file
from annotator.review.source import compute_flags, video_labels
from annotator.review.store import (
    REPORT_FIELDS,
    REVIEW_FILE,
    Decision,
    ReviewProgress,
    ReviewStore,
    flag_report_row,
    on_new_reference,
    project_review_rows,
    review_path,
    write_report_csv,
)
from annotator.review.tubes import TubeFrame, track_tube

__all__ = [
    "FRAME_BASE",
    "KINDS",
    "PERSISTENT_KINDS",
    "REPORT_FIELDS",
    "REVIEW_FILE",
    "Decision",
    "ErrorModel",
    "KeyframeSuggestion",
    "QueueItem",
    "ReviewQueue",
    "VideoEstimate",
    "accept_rest",
    "build_queue",
    "estimate_video",
    "extend_queue",
    "load_model",
    "pixel_error_map",
    "sample_size",
    "suggest_keyframes",
    "sure_gaps",
    "Flag",
    "FlagConfig",
    "ReviewProgress",
    "ReviewStore",
    "TubeFrame",
    "VideoLabels",
    "check_review_doc",
    "check_review_file",
    "compute_flags",
    "dedupe",
    "detect_flags",
    "flag_report_row",
    "next_flag",
    "on_new_reference",
    "project_review_rows",
    "rank",
    "refresh_flags",
    "review_path",
    "shown_frame",
    "track_tube",
    "video_labels",
    "visible",
    "write_report_csv",
]
