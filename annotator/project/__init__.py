"""The data model: projects, videos, frames, label maps, tracks and their journaled document.

This package is the ground floor of the application (``docs/architecture.md``): nothing in it
imports formats, stages, editing, review or the GUI. Callers import the public names from here;
the modules behind this face are private to the package:

- ``model``: plain types and names (FrameState, Track, SourceInfo, file names)
- ``project``: Project (the dataset folder and its layout); ``video``: Video (frames, labels,
  tracks, arrays); ``document``: the journaled ``video.json``; ``transaction``: all-or-nothing
  operations and crash recovery
- ``media``: frame cache, source reader, image checks; ``importing``: video files and frame
  folders -> project videos; ``integrity``: quick/deep checks and removal of unfinished videos;
  ``schema``: the schema of every record read from disk (one message shape, one place)
- ``effort_log``: the per-video log of human edit actions; ``array_names``: names of the
  per-frame arrays; ``settings``: user settings
"""

from annotator.project.document import VideoDocument
from annotator.project.effort_log import EFFORT_FILE, read_effort_log, record_edit
from annotator.project.importing import (
    check_declared,
    dense_size,
    dense_source_indices,
    import_source,
    plan_dense,
    probe_source,
)
from annotator.project.integrity import (
    IntegrityError,
    Problem,
    check_effort_file,
    check_open_video,
    check_project,
    check_project_json,
    check_video,
    check_video_doc,
    check_video_json,
    clear_project_stub,
    describe,
    issue_problems,
    remove_video,
    replace_unfinished,
    require_intact,
    require_intact_labels,
    unfinished_reason,
)
from annotator.project.media import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    FrameCache,
    SourceReader,
    image_size,
    image_truncation,
    natural_key,
    project_frame_size,
)
from annotator.project.model import (
    COMPACT_EVERY,
    MAIN_LAYER,
    PROJECT_FILE,
    TXN_DIR,
    VIDEO_FILE,
    FrameState,
    SourceInfo,
    Track,
    _check_video_id,
)
from annotator.project.project import Project
from annotator.project.schema import (
    Issue,
    SchemaError,
    check_effort_record,
    check_export_marker,
    check_journal_record,
    check_project_doc,
    check_settings,
    int_list,
    is_int,
    is_num,
    raise_if,
    show_value,
)
from annotator.project.settings import PROJECT_DEFAULTS as DEFAULT_SETTINGS
from annotator.project.transaction import Transaction
from annotator.project.video import Video

__all__ = [
    "COMPACT_EVERY",
    "DEFAULT_SETTINGS",
    "EFFORT_FILE",
    "IMAGE_EXTS",
    "MAIN_LAYER",
    "PROJECT_FILE",
    "TXN_DIR",
    "VIDEO_EXTS",
    "VIDEO_FILE",
    "FrameCache",
    "FrameState",
    "IntegrityError",
    "Issue",
    "Problem",
    "Project",
    "SchemaError",
    "SourceInfo",
    "SourceReader",
    "Track",
    "Transaction",
    "Video",
    "VideoDocument",
    "_check_video_id",
    "check_declared",
    "check_effort_file",
    "check_effort_record",
    "check_export_marker",
    "check_journal_record",
    "check_open_video",
    "check_project",
    "check_project_doc",
    "check_project_json",
    "check_settings",
    "check_video",
    "check_video_doc",
    "check_video_json",
    "clear_project_stub",
    "dense_size",
    "dense_source_indices",
    "describe",
    "image_size",
    "image_truncation",
    "import_source",
    "issue_problems",
    "natural_key",
    "plan_dense",
    "probe_source",
    "raise_if",
    "project_frame_size",
    "read_effort_log",
    "record_edit",
    "remove_video",
    "replace_unfinished",
    "require_intact",
    "require_intact_labels",
    "int_list",
    "is_int",
    "is_num",
    "show_value",
    "unfinished_reason",
]
