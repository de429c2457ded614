"""Frame view: image item, one RGBA overlay item, one preview layer; zoom, pan, pointer events.

The canvas is a view (QGraphicsView, as ISAT): it shows the frame, the panoptic overlay rendered
by ``overlay.OverlayRenderer`` and whatever :class:`~annotator.gui.tools.Preview` the active tool
asks for, and reports pointer events in image coordinates through ``pointer``. It never calls an
engine. A brush stroke re-renders only the changed box of the overlay (``update_labels``).

Coordinates: scene units are image pixels with pixel (col, row) covering [col, col+1); tools use
OpenCV's convention (pixel centres on integers), hence the 0.5 shifts in ``to_image`` /
``image_to_widget``.
"""

from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QPoint, QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt5.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QStyleOptionGraphicsItem,
)

from annotator import panoptic
from annotator.gui.overlay import OverlayRenderer, OverlayStyle, composite
from annotator.gui.tools import PointerEvent, Preview

PREVIEW_ALPHA = 140
LINE_COLOR = (255, 225, 40)
BAD_COLOR = (235, 40, 40)  # edges a tool refuses (a polygon's crossing edges)
PROBLEM_STYLE = "background: rgba(176, 58, 46, 230); color: white; padding: 6px; border-radius: 3px;"
BUTTONS = {Qt.LeftButton: "left", Qt.RightButton: "right", Qt.MiddleButton: "middle"}


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class OverlayItem(QGraphicsItem):
    """Paints a premultiplied RGBA numpy buffer (kept alive here) without copying it to a pixmap."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer: np.ndarray | None = None
        self._image: QImage | None = None
        self._rect = QRectF()
        self.setFlag(QGraphicsItem.ItemUsesExtendedStyleOption, True)

    def set_buffer(self, rgba: np.ndarray) -> None:
        h, w, _ = rgba.shape
        self.prepareGeometryChange()
        self.buffer = rgba
        self._image = QImage(rgba.data, w, h, 4 * w, QImage.Format_RGBA8888_Premultiplied)
        self._rect = QRectF(0, 0, w, h)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._image is not None:
            r = option.exposedRect.intersected(self._rect).toAlignedRect()
            painter.drawImage(r, self._image, r)


class Canvas(QGraphicsView):
    pointer = pyqtSignal(str, object)  # "press" | "move" | "release" | "double", PointerEvent
    left_canvas = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.image_item = QGraphicsPixmapItem()
        self.overlay_item = OverlayItem()
        self.preview_mask = QGraphicsPixmapItem()
        self.preview_path = QGraphicsPathItem()
        self.preview_bad = QGraphicsPathItem()
        self.preview_clicks = [QGraphicsPathItem(), QGraphicsPathItem()]  # positive, negative
        self.cursor_item = QGraphicsEllipseItem()
        for z, item in enumerate([self.image_item, self.overlay_item, self.preview_mask, self.preview_path,
                                  self.preview_bad, *self.preview_clicks, self.cursor_item]):
            item.setZValue(z)
            self.scene().addItem(item)
        bad = QPen(QColor(*BAD_COLOR), 3)
        bad.setCosmetic(True)
        self.preview_bad.setPen(bad)
        # a tool's problem (Preview.error): over the frame's top edge, above any status bar text
        self.problem_label = QLabel(self)
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(PROBLEM_STYLE)
        self.problem_label.setAttribute(Qt.WA_TransparentForMouseEvents, True)
        self.problem_label.hide()
        self._problem_y: float | None = None  # image row of what the problem is about (crossing edges)
        pen = QPen(QColor(255, 255, 255), 1.5)
        pen.setCosmetic(True)
        self.cursor_item.setPen(pen)
        self.cursor_item.hide()
        for item, col in zip(self.preview_clicks, (QColor(40, 220, 60), QColor(230, 40, 40)), strict=True):
            p = QPen(QColor(255, 255, 255), 1)
            p.setCosmetic(True)
            item.setPen(p)
            item.setBrush(QBrush(col))
        self.setRenderHint(QPainter.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.MinimalViewportUpdate)
        self.setBackgroundBrush(QColor(60, 60, 60))
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.renderer = OverlayRenderer()
        self.style = OverlayStyle()
        self.label: np.ndarray | None = None
        self.image: np.ndarray | None = None
        self.rgba: np.ndarray | None = None
        self.cursor_radius: float | None = None
        self._fit_mode = True
        self._pan: QPoint | None = None

    # ------------------------------------------------------------------ content
    def set_frame(self, image: np.ndarray, label: np.ndarray) -> None:
        """Show a new frame and its label map (full overlay render)."""
        new_size = self.image is None or self.image.shape[:2] != image.shape[:2]
        self.image = image
        h, w = image.shape[:2]
        self.image_item.setPixmap(QPixmap.fromImage(QImage(np.ascontiguousarray(image).data, w, h, 3 * w,
                                                           QImage.Format_RGB888)))
        self.set_labels(label)
        if new_size:
            self.scene().setSceneRect(QRectF(0, 0, w, h))
            self.fit()

    def set_tracks(self, colors: dict[int, tuple[int, int, int]], things: set[int]) -> None:
        self.renderer.configure(colors, things)

    def set_labels(self, label: np.ndarray) -> None:
        self.label = label
        self.rgba = self.renderer.render(label)
        self.overlay_item.set_buffer(self.rgba)

    def update_labels(self, label: np.ndarray, box: tuple[int, int, int, int] | None) -> None:
        """Re-render only ``box`` (y0, x0, y1, x1) of the overlay after an edit."""
        if box is None or self.rgba is None or self.rgba.shape[:2] != label.shape:
            self.set_labels(label)
            return
        self.label = label
        self.renderer.render(label, out=self.rgba, box=box)
        y0, x0, y1, x1 = box
        self.overlay_item.update(QRectF(x0 - 1, y0 - 1, x1 - x0 + 2, y1 - y0 + 2))

    def set_style(self, **changes: object) -> None:
        for k, v in changes.items():
            setattr(self.style, k, v)
        self.renderer.set_style(self.style)
        if self.label is not None:
            self.set_labels(self.label)

    def set_view_option(self, name: str, value: object) -> None:
        """The View menu's options: overlay, outline_only, opacity (0..1), only_selected, hide_stuff."""
        if name not in ("overlay", "outline_only", "opacity", "only_selected", "hide_stuff"):
            raise KeyError(f"unknown view option {name!r}")
        self.set_style(**{name: float(value) if name == "opacity" else bool(value)})

    def composite(self) -> np.ndarray:
        """The frame as shown (image + overlay), for tests and screenshots."""
        assert self.image is not None and self.rgba is not None
        return composite(self.image, self.rgba)

    # ------------------------------------------------------------------ preview
    def set_preview(self, preview: Preview | None) -> None:
        if preview is None or preview.mask is None or preview.mask.empty:
            self.preview_mask.hide()
        else:
            r = preview.mask
            h, w = r.mask.shape
            buf = np.zeros((h, w, 4), np.uint8)
            a = PREVIEW_ALPHA
            buf[r.mask] = [c * a // 255 for c in preview.color] + [a]
            edge = panoptic.boundaries(np.pad(r.mask, 1).astype(np.uint8))[1:-1, 1:-1] & r.mask
            buf[edge] = [*LINE_COLOR, 255]  # a bright rim: the candidate stands out whatever its colour
            self._preview_buf = buf
            self.preview_mask.setPixmap(QPixmap.fromImage(
                QImage(buf.data, w, h, 4 * w, QImage.Format_RGBA8888_Premultiplied)))
            self.preview_mask.setOffset(r.x0, r.y0)
            self.preview_mask.show()
        path = QPainterPath()
        clicks = [QPainterPath(), QPainterPath()]
        if preview is not None:
            for pts, closed in preview.lines:
                if not pts:
                    continue
                path.moveTo(pts[0][0] + 0.5, pts[0][1] + 0.5)
                for x, y in pts[1:]:
                    path.lineTo(x + 0.5, y + 0.5)
                if closed:
                    path.closeSubpath()
            if preview.rect is not None:
                x0, y0, x1, y1 = preview.rect
                path.addRect(QRectF(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0))
            scale = max(self.transform().m11(), 1e-6)
            rad = 4.0 / scale
            for x, y, positive in preview.clicks:
                clicks[0 if positive else 1].addEllipse(QPointF(x + 0.5, y + 0.5), rad, rad)
        pen = QPen(QColor(*LINE_COLOR), 2)  # one bright colour for outlines in progress (as CVAT)
        pen.setCosmetic(True)
        if preview is not None and preview.vertices:  # vertices as small squares, so a polygon's points are visible
            side = 3.0 / max(self.transform().m11(), 1e-6)
            for pts, _closed in preview.lines:
                for x, y in pts:
                    path.addRect(QRectF(x + 0.5 - side / 2, y + 0.5 - side / 2, side, side))
        self.preview_path.setPen(pen)
        self.preview_path.setPath(path)
        for item, p in zip(self.preview_clicks, clicks, strict=True):
            item.setPath(p)
        bad = QPainterPath()
        for (x0, y0), (x1, y1) in preview.bad_lines if preview is not None else []:
            bad.moveTo(x0 + 0.5, y0 + 0.5)
            bad.lineTo(x1 + 0.5, y1 + 0.5)
        self.preview_bad.setPath(bad)
        ys = [y for seg in (preview.bad_lines if preview is not None else []) for _x, y in seg]
        self._problem_y = sum(ys) / len(ys) if ys else None
        self._show_problem(preview.error if preview is not None else "")

    def _show_problem(self, text: str) -> None:
        lab = self.problem_label
        if lab.text() != text:
            lab.setText(text)
            lab.setToolTip(text)
        lab.setVisible(bool(text))
        if text:
            self._place_problem()

    def _place_problem(self) -> None:
        """Along the top of the view, or along the bottom when what it is about is in the top half."""
        vp = self.viewport().geometry()
        width = max(120, vp.width() - 16)
        height = self.problem_label.heightForWidth(width)
        y = vp.y() + 8
        if self._problem_y is not None and self.mapFromScene(QPointF(0, self._problem_y)).y() < vp.height() / 2:
            y = vp.y() + vp.height() - height - 8
        self.problem_label.setGeometry(vp.x() + 8, y, width, height)
        self.problem_label.raise_()

    @property
    def problem_text(self) -> str:
        """The tool's problem shown over the frame ("" when none is shown)."""
        return "" if self.problem_label.isHidden() else self.problem_label.text()

    def set_cursor_radius(self, radius: float | None) -> None:
        self.cursor_radius = radius
        if radius is None:
            self.cursor_item.hide()

    def _move_cursor(self, x: float, y: float) -> None:
        r = self.cursor_radius
        if r is None:
            return
        self.cursor_item.setRect(QRectF(x + 0.5 - r, y + 0.5 - r, 2 * r, 2 * r))
        self.cursor_item.show()

    # ------------------------------------------------------------------ zoom
    def fit(self) -> None:
        self._fit_mode = True
        if not self.image_item.pixmap().isNull():
            self.fitInView(self.image_item, Qt.KeepAspectRatio)

    def actual_size(self) -> None:
        self._fit_mode = False
        self.resetTransform()
        self.centerOn(self.image_item)

    def zoom(self, factor: float) -> None:
        self._fit_mode = False
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()
        if self.problem_label.isVisible():
            self._place_problem()

    # ------------------------------------------------------------------ coordinates and events
    def to_image(self, pos: QPoint) -> tuple[float, float]:
        p = self.mapToScene(pos)
        return p.x() - 0.5, p.y() - 0.5

    def image_to_widget(self, x: float, y: float) -> QPoint:
        """Viewport coordinates of image point (x, y) - what tests click at."""
        return self.mapFromScene(QPointF(x + 0.5, y + 0.5))

    def _event(self, event, button: str = "") -> PointerEvent:
        x, y = self.to_image(event.pos())
        held = frozenset(name for b, name in BUTTONS.items() if event.buttons() & b)
        mods = event.modifiers()
        return PointerEvent(x, y, button, held, bool(mods & Qt.ShiftModifier), bool(mods & Qt.ControlModifier),
                            scale=max(abs(self.transform().m11()), 1e-6))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MiddleButton:
            self._pan = event.pos()
            return
        self.setFocus(Qt.MouseFocusReason)
        self.pointer.emit("press", self._event(event, BUTTONS.get(event.button(), "")))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._pan is not None:
            d = event.pos() - self._pan
            self._pan = event.pos()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - d.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - d.y())
            return
        ev = self._event(event)
        self._move_cursor(ev.x, ev.y)
        self.pointer.emit("move", ev)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MiddleButton:
            self._pan = None
            return
        self.pointer.emit("release", self._event(event, BUTTONS.get(event.button(), "")))

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.LeftButton:
            self.pointer.emit("double", self._event(event, "left"))

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.cursor_item.hide()
        self.left_canvas.emit()
        super().leaveEvent(event)
