"""Frame view: image plus semi-transparent panoptic overlay and outlines, wheel zoom, drag pan."""

from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage, QPainter, QPixmap
from PyQt5.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from annotator import panoptic


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class Canvas(QGraphicsView):
    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self.scene().addItem(self._item)
        self.setRenderHint(QPainter.SmoothPixmapTransform, False)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setBackgroundBrush(Qt.darkGray)
        self.alpha = 0.5
        self.show_overlay = True
        self.rendered: np.ndarray | None = None
        self._fitted = False

    def show_frame(self, image: np.ndarray, label: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> None:
        if self.show_overlay:
            self.rendered = panoptic.blend_overlay(image, label, colors, alpha=self.alpha)
        else:
            self.rendered = np.ascontiguousarray(image)
        self._item.setPixmap(QPixmap.fromImage(to_qimage(self.rendered)))
        self.scene().setSceneRect(self._item.boundingRect())
        if not self._fitted:
            self.fit()

    def fit(self) -> None:
        self.fitInView(self._item, Qt.KeepAspectRatio)
        self._fitted = True

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.fit()
