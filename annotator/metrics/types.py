"""Plain data the metrics work on: frames of segment-id maps with their segment lists.

The metric code never touches the project store or image files: sources (``sources.py``) turn a
project video, a VIPSeg export or a prediction folder into these objects, and tests build them
directly. A frame mirrors one entry of the official COCO-style video JSON: an id map plus the
``segments_info`` list (order matters: the official STQ numbers instances by first appearance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from annotator.errors import InputError


@dataclass(frozen=True)
class Segment:
    """One ``segments_info`` entry. ``area`` None means "the pixel count" (the usual case)."""

    category_id: int
    area: int | None = None
    iscrowd: bool = False


@dataclass
class Frame:
    """One frame: an HxW integer id map (0 = void) and its segments ``{id: Segment}`` in JSON order."""

    ids: np.ndarray
    segments: dict[int, Segment]
    name: str = ""


@dataclass
class VideoPair:
    """Ground truth and prediction of one video, frame lists of equal length and matching sizes."""

    video_id: str
    gt: list[Frame]
    pred: list[Frame]


@dataclass(frozen=True)
class Categories:
    """The evaluated categories (``id -> isthing``); classes outside it are never averaged."""

    isthing: Mapping[int, bool] = field(default_factory=dict)

    @classmethod
    def from_taxonomy(cls, taxonomy) -> Categories:  # annotator.taxonomy.Taxonomy
        return cls({c.id: bool(c.isthing) for c in taxonomy})

    @classmethod
    def from_json_list(cls, items: Iterable[Mapping]) -> Categories:
        return cls({int(c["id"]): bool(int(c["isthing"])) for c in items})

    @property
    def ids(self) -> list[int]:
        return sorted(self.isthing)

    @property
    def num_classes(self) -> int:
        """Size of the semantic label space (max id + 1), as STQ's ``n_classes`` (124 for VIPSeg)."""
        return max(self.isthing) + 1 if self.isthing else 0

    def thing_mask(self, size: int) -> np.ndarray:
        """Boolean array ``m[c]`` = category c is a thing, for c < size."""
        m = np.zeros(size, dtype=bool)
        for c, t in self.isthing.items():
            if t and c < size:
                m[c] = True
        return m


SegmentsLike = Mapping[int, "int | Segment"]


def make_frame(ids: np.ndarray, segments: SegmentsLike, name: str = "") -> Frame:
    """A :class:`Frame` from an id map and ``{id: category_id | Segment}`` (id 0 is void, never a segment)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"frame {name or '?'}: an id map must be a 2-D integer array, got "
                         f"{ids.dtype} {ids.shape}")
    segs: dict[int, Segment] = {}
    for sid, val in segments.items():
        sid = int(sid)
        if sid == 0:
            raise InputError(f"frame {name or '?'}: segment id 0 is reserved for void")
        segs[sid] = val if isinstance(val, Segment) else Segment(int(val))
    return Frame(ids, segs, name)


def as_frames(frames: Iterable[Frame | tuple[np.ndarray, SegmentsLike]]) -> list[Frame]:
    """Accept frames or ``(id_map, {id: category})`` tuples."""
    out = []
    for i, f in enumerate(frames):
        out.append(f if isinstance(f, Frame) else make_frame(f[0], f[1], name=str(i)))
    return out
