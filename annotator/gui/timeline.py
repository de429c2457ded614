"""Timeline: one cell per dense frame coloured by frame state, keyframe marks, click to jump."""

from __future__ import annotations

from PyQt5.QtCore import QRect, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import QWidget

from annotator.project import FrameState

STATE_COLORS = {
    FrameState.UNLABELLED: QColor(70, 70, 70), FrameState.MANUAL: QColor(70, 140, 255),
    FrameState.PROPAGATED: QColor(240, 180, 40), FrameState.PREANNOTATED: QColor(180, 110, 230),
    FrameState.REFINED: QColor(60, 200, 200), FrameState.REVIEWED: QColor(60, 190, 80),
}


class Timeline(QWidget):
    clicked = pyqtSignal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(34)
        self.states: list[FrameState] = []
        self.keyframes: set[int] = set()
        self.current = 0

    def set_video(self, states: list[FrameState], keyframes: list[int]) -> None:
        self.states, self.keyframes = states, set(keyframes)
        self.update()

    def set_current(self, index: int) -> None:
        self.current = index
        self.update()

    def index_at(self, x: int) -> int:
        n = max(1, len(self.states))
        return max(0, min(n - 1, int(x * n / max(1, self.width()))))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.states:
            self.clicked.emit(self.index_at(event.pos().x()))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        n = len(self.states)
        p.fillRect(self.rect(), QColor(30, 30, 30))
        if not n:
            return
        w, h = self.width(), self.height()
        for i, state in enumerate(self.states):
            x0, x1 = i * w // n, (i + 1) * w // n
            p.fillRect(QRect(x0, 10, max(1, x1 - x0 - 1), h - 10), STATE_COLORS[state])
            if i in self.keyframes:
                p.fillRect(QRect(x0, 0, max(2, x1 - x0 - 1), 8), Qt.white)
        x0, x1 = self.current * w // n, (self.current + 1) * w // n
        p.setPen(QColor(255, 60, 60))
        p.drawRect(QRect(x0, 0, max(2, x1 - x0 - 1), h - 1))
