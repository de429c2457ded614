"""What association reports per keyframe: the match table stored with the video, and review flags.

Why separate from the driver: ``annotator.review`` reads these records back (:func:`stored_matches`,
:func:`stored_flags`) without running association, and the flags are a pure function of the
matches (:func:`review_flags`), so a reopened project shows the same flags as the run did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from annotator.project import Video

ARRAY_NAME = "association"
KINDS = ("initial", "matched", "reidentified", "new", "stuff", "vanished", "fixed", "disputed")
_KIND_CODE = {k: n for n, k in enumerate(KINDS)}
CRITERIA = ("", "iou", "containment", "proximity")


@dataclass(frozen=True)
class Match:
    """How one segment of a keyframe got its track (or, kind ``vanished``, a track that left)."""

    keyframe: int
    segment: int  # id the segment carried on the keyframe before association (0 for vanished)
    #: video-wide track id it carries now; for ``disputed`` (confirmed keyframes only) the carried
    #: track that would have matched the segment, which keeps its confirmed id ``segment``
    track: int
    category: int
    kind: str  # one of KINDS
    iou: float  # IoU of the carried mask with the segment (0 when nothing was carried)
    source: int = -1  # keyframe the matched mask was carried from
    criterion: str = ""  # how a thing was matched: iou | containment | proximity ("" otherwise)


@dataclass(frozen=True)
class ReviewFlag:
    """Something a reviewer should look at (``annotator.review`` lists them)."""

    kind: str  # low_iou | new_track | vanished | reappeared | disputed (on a confirmed keyframe)
    frame: int
    track: int
    iou: float
    message: str


def store_matches(video: Video, k: int, matches: list[Match]) -> None:
    """Save keyframe ``k``'s match table (one float row per match) for :func:`stored_matches`."""
    rows = np.array([[m.segment, m.track, m.category, _KIND_CODE[m.kind], m.iou, m.source,
                      CRITERIA.index(m.criterion) if m.criterion in CRITERIA else 0] for m in matches],
                    np.float64).reshape(-1, 7)
    video.save_array(ARRAY_NAME, k, rows)


def stored_matches(video: Video, keyframe: int) -> list[Match]:
    """The match table the last association run stored for ``keyframe`` (empty if none)."""
    rows = video.load_array(ARRAY_NAME, keyframe)
    if rows is None or rows.ndim != 2 or rows.shape[1] not in (6, 7):
        return []
    return [Match(keyframe, int(r[0]), int(r[1]), int(r[2]), KINDS[int(r[3])], float(r[4]), int(r[5]),
                  CRITERIA[int(r[6])] if len(r) > 6 and 0 <= int(r[6]) < len(CRITERIA) else "")
            for r in rows if 0 <= int(r[3]) < len(KINDS)]


def stored_flags(video: Video, review_threshold: float = 0.5) -> list[ReviewFlag]:
    """Review flags rebuilt from the match tables of the last association run (for ``annotator.review``)."""
    matches = [m for k in video.keyframes for m in stored_matches(video, k)]
    first = min((m.keyframe for m in matches), default=None)
    tax = video.taxonomy
    return review_flags(matches, lambda c: c in tax and tax.get(c).isthing, review_threshold, first)


def review_flags(matches: Iterable[Match], is_thing: Callable[[int], bool], review_threshold: float = 0.5,
                 first_keyframe: int | None = None) -> list[ReviewFlag]:
    """Flags for a reviewer: low-IoU matches, things new after the first keyframe, vanished, reappeared,
    and on confirmed keyframes the carried tracks that disagree with the confirmed ids."""
    flags: list[ReviewFlag] = []
    for m in matches:
        if m.kind == "disputed":  # stuff too: two tracks of one stuff class on a confirmed keyframe
            flags.append(_disputed_flag(m))
            continue
        if not is_thing(m.category):
            continue
        if m.kind in ("matched", "reidentified") and m.iou < review_threshold:
            flags.append(ReviewFlag("low_iou", m.keyframe, m.track, m.iou,
                                    f"track {m.track} matched with IoU {m.iou:.2f} < {review_threshold:g}"))
        if m.kind == "reidentified":
            flags.append(ReviewFlag("reappeared", m.keyframe, m.track, m.iou,
                                    f"track {m.track} reappears (last seen on the keyframe at frame {m.source + 1})"))
        if m.kind == "new" and (first_keyframe is None or m.keyframe != first_keyframe):
            flags.append(ReviewFlag("new_track", m.keyframe, m.track, m.iou,
                                    f"new track {m.track} appears mid-video"
                                    + (f" (best IoU {m.iou:.2f} below threshold)" if m.iou > 0 else "")))
        if m.kind == "vanished":
            flags.append(ReviewFlag("vanished", m.keyframe, m.track, 0.0,
                                    f"track {m.track} (on the keyframe at frame {m.source + 1}) is absent"))
    return flags


def _disputed_flag(m: Match) -> ReviewFlag:
    how = f" by {m.criterion}" if m.criterion and m.criterion != "iou" else ""
    return ReviewFlag("disputed", m.keyframe, m.segment, m.iou,
                      f"confirmed keyframe at frame {m.keyframe + 1}: track {m.track} carried from frame {m.source + 1} would "
                      f"have matched the segment of track {m.segment}{how} (IoU {m.iou:.2f}); kept {m.segment}")
