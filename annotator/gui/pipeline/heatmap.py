"""Confidence heat-map overlay: where propagation was unsure, shown over the frame.

Why its own scene item (not part of the panoptic overlay): it is toggled independently and drawn
from a different source - the quarter-size uint8 confidence map ``annotator.stages.propagate`` stores per
propagated frame - so switching it on never re-renders the label overlay. Low confidence is red
and opaque, high confidence transparent, so the eye goes to where the doubts are.
"""

from __future__ import annotations

import cv2
import numpy as np
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import QGraphicsPixmapItem

MAX_ALPHA = 140


def heat_rgba(conf: np.ndarray, height: int, width: int) -> np.ndarray:
    """Premultiplied RGBA (H, W, 4) of a confidence map in 0..1 (any size: resized to the frame)."""
    c = np.clip(conf.astype(np.float32), 0.0, 1.0)
    if c.shape != (height, width):
        c = cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR)
    doubt = 1.0 - c
    alpha = (doubt * MAX_ALPHA).astype(np.uint8)
    rgba = np.zeros((height, width, 4), np.uint8)
    # red where unsure, shading to yellow where half sure; premultiplied by alpha
    rgba[..., 0] = alpha
    rgba[..., 1] = (alpha.astype(np.float32) * np.clip(c * 1.6, 0, 1)).astype(np.uint8)
    rgba[..., 3] = alpha
    return rgba


class HeatmapItem(QGraphicsPixmapItem):
    """The heat-map as a scene item above the label overlay (z between overlay and previews)."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(1.5)
        self.rgba: np.ndarray | None = None
        self.hide()

    def show_confidence(self, conf: np.ndarray | None, height: int, width: int) -> bool:
        """Show ``conf`` (None: the frame has no confidence map - nothing to show); True if shown."""
        if conf is None:
            self.rgba = None
            self.setPixmap(QPixmap())
            return False
        self.rgba = heat_rgba(conf, height, width)
        img = QImage(self.rgba.data, width, height, 4 * width, QImage.Format_RGBA8888_Premultiplied)
        self.setPixmap(QPixmap.fromImage(img))
        return True
