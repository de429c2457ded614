"""Tube view: the filmstrip of one track - its crop with the mask on every frame where it exists.

Crops come from ``annotator.review.track_tube`` (one crop size for the whole tube, so a jump or a
sudden growth shows as such); here they are only tinted and shown as a horizontal strip. A click
on a cell leaves as ``frame_clicked(frame)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PyQt5.QtCore import QSize, Qt, pyqtSignal
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import QListView, QListWidget, QListWidgetItem

from annotator import panoptic

CELL = 96
MAX_CELLS = 40  # a long track is sampled evenly: the strip is for looking, the timeline for jumping


def tinted(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The crop with the mask blended in the track's colour and its outline drawn solid."""
    out = image.astype(np.float32)
    col = np.asarray(color, np.float32)
    out[mask] = out[mask] * 0.55 + col * 0.45
    edge = panoptic.boundaries(mask.astype(np.uint8)) & mask
    out[edge] = col
    return np.clip(out, 0, 255).astype(np.uint8)


def sample(frames: Sequence[int], limit: int = MAX_CELLS) -> list[int]:
    frames = list(frames)
    if len(frames) <= limit:
        return frames
    idx = np.linspace(0, len(frames) - 1, limit).round().astype(int)
    return [frames[i] for i in sorted(set(idx.tolist()))]


class TubeView(QListWidget):
    frame_clicked = pyqtSignal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListView.IconMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Static)
        self.setIconSize(QSize(CELL, CELL))
        self.setFixedHeight(CELL + 44)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        self.frames: list[int] = []
        self.track: int | None = None
        self.itemClicked.connect(lambda it: self.frame_clicked.emit(int(it.data(Qt.UserRole))))

    def show_tube(self, track: int | None, cells: list[Any], color: tuple[int, int, int]) -> None:
        """``cells``: ``annotator.review.TubeFrame`` list (empty: nothing to show)."""
        self.clear()
        self.track = track
        self.frames = [c.frame for c in cells]
        for c in cells:
            rgb = np.ascontiguousarray(tinted(c.image, c.mask, color))
            h, w, _ = rgb.shape
            pm = QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy())
            item = QListWidgetItem(QIcon(pm), str(c.frame + 1))
            item.setData(Qt.UserRole, c.frame)
            item.setToolTip(f"frame {c.frame + 1}")
            self.addItem(item)

    def mark(self, frame: int) -> None:
        """Highlight the current frame's cell (if the track is there)."""
        self.blockSignals(True)
        self.clearSelection()
        if frame in self.frames:
            item = self.item(self.frames.index(frame))
            item.setSelected(True)
            self.scrollToItem(item)
        self.blockSignals(False)
