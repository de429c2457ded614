"""Track tubes: a track's filmstrip (one fixed-size crop per frame) for the review tube view.

Qt-free so the GUI's tube view (``annotator.gui.pipeline.tube_view``) only paints what this gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from annotator.jobs import CancelToken, check_cancel


@dataclass
class TubeFrame:
    """One cell of a track's filmstrip: the crop around the track on one frame."""

    frame: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in frame pixels, same size on every frame
    image: np.ndarray  # HxWx3 uint8 RGB crop, resized to the tube's cell size
    mask: np.ndarray  # HxW bool: the track's pixels in the crop


def track_tube(video: Any, track: int, frames: Sequence[int] | None = None, cell: int = 96,
               margin: float = 0.25, cancel: CancelToken | None = None) -> list[TubeFrame]:
    """The filmstrip of a track for the review tube view: a square crop per frame where it exists.

    The crop is centred on the track's box on each frame with a side fixed for the whole tube
    (the largest box plus ``margin``), so a sudden growth, shrink or jump is visible as such
    instead of being normalised away. Frames default to those where the track has pixels.
    """
    frames = list(video.track_frames(track) if frames is None else frames)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    labels: dict[int, np.ndarray] = {}
    for i in frames:
        check_cancel(cancel)
        lab = video.read_label(i)
        ys, xs = np.nonzero(lab == track)
        if ys.size:
            boxes[i] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            labels[i] = lab
    if not boxes:
        return []
    h, w = video.height, video.width
    side = max(max(b[2] - b[0], b[3] - b[1]) for b in boxes.values())
    side = min(max(h, w), max(8, int(round(side * (1 + 2 * margin)))))
    out = []
    for i, (x0, y0, x1, y1) in boxes.items():
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        bx0 = int(np.clip(cx - side // 2, 0, max(w - side, 0)))
        by0 = int(np.clip(cy - side // 2, 0, max(h - side, 0)))
        bx1, by1 = min(w, bx0 + side), min(h, by0 + side)
        img = video.read_frame(i)[by0:by1, bx0:bx1]
        mask = labels[i][by0:by1, bx0:bx1] == track
        scale = cell / max(by1 - by0, bx1 - bx0)
        size = (max(1, int(round((bx1 - bx0) * scale))), max(1, int(round((by1 - by0) * scale))))
        img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        out.append(TubeFrame(i, (bx0, by0, bx1, by1), img, mask))
    return out
