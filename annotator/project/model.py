"""The data model's plain types and names: frame states, tracks, source links, file names.

Why a module of its own: every other module of ``annotator.project`` (the document, the video,
importing, integrity) needs these types, and none of them needs anything else from the package,
so putting them at the bottom keeps the package free of import circles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from annotator.errors import InputError

PROJECT_FILE = "project.json"
VIDEO_FILE = "video.json"
JOURNAL_FILE = "journal.jsonl"
MAIN_LAYER = "labels"
#: backups of the files an unfinished transaction replaced, under the video folder
TXN_DIR = ".txn"
#: the journal is folded into video.json once it holds this many operations
COMPACT_EVERY = 500

#: video ids, layer names and array names: safe as one path component
NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


class FrameState(str, Enum):
    """How a frame (or one track on a frame) got its labels; propagation never overwrites human work."""

    UNLABELLED = "unlabelled"
    MANUAL = "manual"
    PROPAGATED = "propagated"
    PREANNOTATED = "preannotated"
    REFINED = "refined"
    REVIEWED = "reviewed"

    @property
    def is_human(self) -> bool:
        return self in (FrameState.MANUAL, FrameState.REFINED, FrameState.REVIEWED)


@dataclass
class Track:
    """A segment id living through the video: one thing instance, or one stuff class."""

    id: int
    category_id: int
    note: str = ""


@dataclass
class SourceInfo:
    """Where the dense frames came from, so flow can read the source frames between them."""

    kind: str = "none"  # "video" | "folder" | "none"
    path: str = ""
    fps: float = 0.0
    num_source_frames: int = 0
    source_indices: list[int] = field(default_factory=list)  # source index of every dense frame
    original_size: tuple[int, int] = (0, 0)  # (height, width) before any resize
    files: list[str] = field(default_factory=list)  # frame folders: file names in natural order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceInfo:
        data = dict(data)
        data["original_size"] = tuple(data.get("original_size", (0, 0)))
        return cls(**data)


def is_valid_name(name: object) -> bool:
    """Whether ``name`` is a usable video id (one safe path component, not ``.`` or ``..``)."""
    return isinstance(name, str) and bool(NAME_RE.match(name)) and name not in (".", "..")


def _check_video_id(video_id: str) -> str:
    if not is_valid_name(video_id):
        raise InputError(f"invalid video id {video_id!r}: use letters, digits, '_', '-' and '.'")
    return video_id
