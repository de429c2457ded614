"""Timeline: one cell per dense frame coloured by frame state, keyframe marks, click to jump.

The cells are drawn once into a pixmap (1,000 frames are 1,000 rectangles) and reused until the
states or the size change; a frame switch only repaints the current-frame marker on top.
"""

from __future__ import annotations

from PyQt5.QtCore import QEvent, QRect, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter, QPixmap
from PyQt5.QtWidgets import QToolTip, QWidget

from annotator.project import FrameState

STATE_COLORS = {
    FrameState.UNLABELLED: QColor(70, 70, 70), FrameState.MANUAL: QColor(70, 140, 255),
    FrameState.PROPAGATED: QColor(240, 180, 40), FrameState.PREANNOTATED: QColor(180, 110, 230),
    FrameState.REFINED: QColor(60, 200, 200), FrameState.REVIEWED: QColor(60, 190, 80),
}


#: keyframes in these states are not association evidence ("keyframe not annotated")
NOT_ANNOTATED = (FrameState.UNLABELLED, FrameState.PROPAGATED)


class Timeline(QWidget):
    clicked = pyqtSignal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(34)
        self.states: list[FrameState] = []
        self.keyframes: set[int] = set()
        self.current = 0
        self._cells: QPixmap | None = None
        self.setToolTip("frame states: grey unlabelled, blue manual, orange propagated, purple pre-annotated, "
                        "cyan refined, green reviewed; white marks = keyframes, hollow marks = keyframes not "
                "annotated (unlabelled or only propagated: association skips them)")

    def set_video(self, states: list[FrameState], keyframes: list[int]) -> None:
        if states == self.states and set(keyframes) == self.keyframes:
            return
        self.states, self.keyframes = list(states), set(keyframes)
        self._cells = None
        self.update()

    def keyframe_annotated(self, index: int) -> bool:
        """A keyframe counts as annotated unless it is unlabelled or holds only propagated labels
        (docs/architecture.md, keyframe rules; annotator.stages.association.keyframe_evidence decides per track)."""
        return self.states[index] not in NOT_ANNOTATED

    def describe(self, index: int) -> str:
        """Tooltip text of one cell."""
        text = f"frame {index + 1}: {self.states[index].value}"
        if index in self.keyframes:
            text += ", keyframe" + ("" if self.keyframe_annotated(index) else " not annotated")
        return text

    def event(self, event) -> bool:  # noqa: D401 - Qt override: per-cell tooltips
        if event.type() == QEvent.ToolTip and self.states:
            QToolTip.showText(event.globalPos(), self.describe(self.index_at(event.pos().x())), self)
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
        for i, state in enumerate(self.states):
            x0, x1 = i * w // n, (i + 1) * w // n
            p.fillRect(QRect(x0, 10, max(1, x1 - x0 - 1), h - 10), STATE_COLORS[state])
            if i in self.keyframes:
                mark = QRect(x0, 0, max(2, x1 - x0 - 1), 8)
                if self.keyframe_annotated(i):
                    p.fillRect(mark, Qt.white)
                else:  # hollow: association skips it until a person labels it
                    p.setPen(Qt.white)
                    p.drawRect(mark.adjusted(0, 0, -1, -1))
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
