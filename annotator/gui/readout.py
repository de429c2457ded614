"""What the views show about tracks and pixels, computed from the video and its edit session."""

from __future__ import annotations

import numpy as np

from annotator import panoptic
from annotator.editing import EditSession
from annotator.project import Video


def track_frame_counts(video: Video | None, session: EditSession | None) -> dict[int, int]:
    """Frames each track has pixels on, pending (unflushed) edits included; metadata elsewhere."""
    counts: dict[int, int] = {}
    if video is None or session is None:
        return counts
    dirty = set(session.dirty)
    for i in range(video.num_frames):
        ids = panoptic.present_ids(session.label(i)) if i in dirty else video.frame_tracks(i)
        for t in ids:
            counts[int(t)] = counts.get(int(t), 0) + 1
    return counts


def describe_pixel(video: Video, label: np.ndarray, locked: set[int], x: float, y: float) -> str:
    """Cursor read-out: position, then track id and class (thing/stuff) under the pointer, or void."""
    xi, yi = int(round(x)), int(round(y))
    if not (0 <= xi < video.width and 0 <= yi < video.height):
        return ""
    tid = int(label[yi, xi])
    tracks = video.tracks
    if tid == panoptic.VOID or tid not in tracks:
        return f"({xi}, {yi})  void"
    cat = video.taxonomy.get(tracks[tid].category_id)
    lock = " [locked]" if tid in locked else ""
    return f"({xi}, {yi})  #{tid} {cat.name} ({'thing' if cat.isthing else 'stuff'}){lock}"
