"""The data model: projects, videos, frames, label maps, tracks and their journaled document.

This package is the ground floor of the application (``docs/architecture.md``): nothing in it
imports formats, stages, editing, review or the GUI. Callers import the public names from here;
the modules behind this face are private to the package.
"""

from annotator.project.video import (
    COMPACT_EVERY,
    DEFAULT_SETTINGS,
    MAIN_LAYER,
    PROJECT_FILE,
    TXN_DIR,
    VIDEO_FILE,
    FrameState,
    Project,
    SourceInfo,
    Track,
    Transaction,
    Video,
    _check_video_id,
)

__all__ = [
    "COMPACT_EVERY",
    "DEFAULT_SETTINGS",
    "MAIN_LAYER",
    "PROJECT_FILE",
    "TXN_DIR",
    "VIDEO_FILE",
    "FrameState",
    "Project",
    "SourceInfo",
    "Track",
    "Transaction",
    "Video",
    "_check_video_id",
]
