"""Timeline: one cell per dense frame coloured by frame state, keyframe marks, click to jump.

The cells are drawn once into a pixmap (1,000 frames are 1,000 rectangles) and reused until the
states or the size change; a frame switch only repaints the current-frame marker on top.

Two kinds of marks come from the review queue (``annotator.review.queue``, issue 25): suggested
keyframes (a magenta triangle above the cell: where a new human reference would save most; K makes
the current frame a keyframe) and sure gaps (a light band under the cells: runs of frames where
propagation is sure; Shift+K accepts the one under the current frame). They are drawn into the
same pixmap, in their own colours and rows, so they never hide the state colours or the white
keyframe marks; the tooltip of a cell names its reason and gain, or the gap it lies in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PyQt5.QtCore import QEvent, QPoint, QRect, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter, QPixmap, QPolygon
from PyQt5.QtWidgets import QToolTip, QWidget

from annotator.project import FrameState

STATE_COLORS = {
    FrameState.UNLABELLED: QColor(70, 70, 70), FrameState.MANUAL: QColor(70, 140, 255),
    FrameState.PROPAGATED: QColor(240, 180, 40), FrameState.PREANNOTATED: QColor(180, 110, 230),
    FrameState.REFINED: QColor(60, 200, 200), FrameState.REVIEWED: QColor(60, 190, 80),
}


#: keyframes in these states are not association evidence ("keyframe not annotated")
NOT_ANNOTATED = (FrameState.UNLABELLED, FrameState.PROPAGATED)
SUGGESTED_COLOR = QColor(255, 70, 210)  # magenta: no frame state uses it
SURE_GAP_COLOR = QColor(200, 255, 200)  # pale green band under the cells
MARK_H = 8  # rows 0..7: keyframe marks and suggestion triangles
BAND_H = 5  # bottom rows: the sure-gap band
SUGGESTION_HALF_W = 4  # a suggestion triangle is at least this wide either side of its cell's centre


class Timeline(QWidget):
    clicked = pyqtSignal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(40)
        self.states: list[FrameState] = []
        self.keyframes: set[int] = set()
        self.suggestions: dict[int, tuple[float, str]] = {}  # frame -> (gain, reason)
        self.gaps: list[tuple[int, int]] = []  # sure gaps, inclusive (first, last)
        self.current = 0
        self._cells: QPixmap | None = None
        self.setToolTip("frame states: grey unlabelled, blue manual, orange propagated, purple pre-annotated, "
                        "cyan refined, green reviewed; white marks = keyframes, hollow marks = keyframes not "
                "annotated (unlabelled or only propagated: association skips them); magenta triangles = "
                "suggested keyframes (K), pale green band = sure gaps (Shift+K accepts)")

    def set_video(self, states: list[FrameState], keyframes: list[int]) -> None:
        if states == self.states and set(keyframes) == self.keyframes:
            return
        self.states, self.keyframes = list(states), set(keyframes)
        self._cells = None
        self.update()

    def set_marks(self, suggestions: Iterable[Any], gaps: Iterable[tuple[int, int]]) -> None:
        """Suggested keyframes (objects with ``frame``, ``gain``, ``reason``, as
        ``annotator.review.KeyframeSuggestion``) and sure gaps (inclusive ``(first, last)`` runs)."""
        marks = {int(s.frame): (float(s.gain), str(s.reason)) for s in suggestions}
        runs = sorted((int(a), int(b)) for a, b in gaps)
        if marks == self.suggestions and runs == self.gaps:
            return
        self.suggestions, self.gaps = marks, runs
        self._cells = None
        self.update()

    def gap_at(self, index: int) -> tuple[int, int] | None:
        """The sure gap holding frame ``index``, or ``None``."""
        return next(((a, b) for a, b in self.gaps if a <= index <= b), None)

    def shown_suggestions(self) -> list[int]:
        """Suggested frames drawn as a triangle (one that is a keyframe already has its white mark)."""
        return sorted(f for f in self.suggestions if f not in self.keyframes and f < len(self.states))

    def suggestion_rect(self, index: int) -> QRect:
        """Where the triangle of suggested frame ``index`` is drawn (also its tooltip's hit area)."""
        cell = self._marker(index)
        cx = cell.center().x()
        half = max(SUGGESTION_HALF_W, cell.width() // 2)
        return QRect(cx - half, 0, 2 * half + 1, MARK_H)

    def suggestion_at(self, x: int, y: int) -> int | None:
        """The suggestion whose triangle is under (x, y): on a long video a cell is narrower than
        its triangle, so the triangle (not the cell) is the hit area; the nearest wins."""
        hits = [f for f in self.shown_suggestions() if self.suggestion_rect(f).contains(x, y)]
        return min(hits, key=lambda f: abs(self.suggestion_rect(f).center().x() - x), default=None)

    def keyframe_annotated(self, index: int) -> bool:
        """A keyframe counts as annotated unless it is unlabelled or holds only propagated labels
        (docs/architecture.md, keyframe rules; annotator.stages.association.keyframe_evidence decides per track)."""
        return self.states[index] not in NOT_ANNOTATED

    def describe(self, index: int) -> str:
        """Tooltip text of one cell."""
        text = f"frame {index + 1}: {self.states[index].value}"
        if index in self.keyframes:
            text += ", keyframe" + ("" if self.keyframe_annotated(index) else " not annotated")
        if index in self.suggestions and index not in self.keyframes:
            gain, reason = self.suggestions[index]
            text += f"; suggested keyframe (gain {gain:.2f}): {reason} - K makes it a keyframe"
        gap = self.gap_at(index)
        if gap is not None:
            text += (f"; sure gap, frames {gap[0] + 1}-{gap[1] + 1}: propagation is confident there, "
                     "Shift+K accepts the gap")
        return text

    def event(self, event) -> bool:  # noqa: D401 - Qt override: per-cell tooltips
        if event.type() == QEvent.ToolTip and self.states:
            pos = event.pos()
            hit = self.suggestion_at(pos.x(), pos.y()) if pos.y() < MARK_H else None
            QToolTip.showText(event.globalPos(), self.describe(hit if hit is not None else self.index_at(pos.x())),
                              self)
            return True
        return super().event(event)

    def set_current(self, index: int) -> None:
        if index == self.current:
            return
        old = self._marker(self.current)
        self.current = index
        self.update(old.adjusted(-2, -2, 2, 2))
        self.update(self._marker(index).adjusted(-2, -2, 2, 2))

    def _marker(self, index: int) -> QRect:
        n = max(1, len(self.states))
        w, h = self.width(), self.height()
        x0, x1 = index * w // n, (index + 1) * w // n
        return QRect(x0, 0, max(2, x1 - x0 - 1), h - 1)

    def index_at(self, x: int) -> int:
        n = max(1, len(self.states))
        return max(0, min(n - 1, int(x * n / max(1, self.width()))))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.states:
            self.clicked.emit(self.index_at(event.pos().x()))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._cells = None
        super().resizeEvent(event)

    def _draw_cells(self) -> QPixmap:
        pm = QPixmap(self.size())
        pm.fill(QColor(30, 30, 30))
        p = QPainter(pm)
        n = len(self.states)
        w, h = self.width(), self.height()
        band = BAND_H + 1 if self.gaps else 0  # the cells leave the band's rows free when there are gaps
        for i, state in enumerate(self.states):
            x0, x1 = i * w // n, (i + 1) * w // n
            p.fillRect(QRect(x0, 10, max(1, x1 - x0 - 1), h - 10 - band), STATE_COLORS[state])
            if i in self.keyframes:
                mark = QRect(x0, 0, max(2, x1 - x0 - 1), 8)
                if self.keyframe_annotated(i):
                    p.fillRect(mark, Qt.white)
                else:  # hollow: association skips it until a person labels it
                    p.setPen(Qt.white)
                    p.drawRect(mark.adjusted(0, 0, -1, -1))
        for a, b in self.gaps:  # one band per sure gap, from the first cell's left to the last's right
            a, b = max(0, a), min(n - 1, b)
            if a <= b:
                p.fillRect(QRect(a * w // n, h - BAND_H, max(1, (b + 1) * w // n - a * w // n - 1), BAND_H),
                           SURE_GAP_COLOR)
        p.setPen(Qt.black)
        p.setBrush(SUGGESTED_COLOR)
        for f in self.shown_suggestions():  # a downward triangle pointing at the cell
            r = self.suggestion_rect(f)
            p.drawPolygon(QPolygon([QPoint(r.left(), 0), QPoint(r.right(), 0), QPoint(r.center().x(), MARK_H)]))
        p.end()
        return pm

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        if not self.states:
            p.fillRect(self.rect(), QColor(30, 30, 30))
            return
        if self._cells is None or self._cells.size() != self.size():
            self._cells = self._draw_cells()
        p.drawPixmap(event.rect(), self._cells, event.rect())
        p.setPen(QColor(255, 60, 60))
        p.drawRect(self._marker(self.current))
