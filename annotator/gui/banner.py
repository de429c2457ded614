"""The message strip above the canvas (crash recovery, a read-only video, a video that cannot be
opened), with a close button: a person who has read it can give the room back to the canvas.

A view only: the window sets its text and style; the strip hides itself when closed and shows
again with the next message.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import QLabel, QToolButton, QWidget

BUTTON_ROOM = 28  # pixels kept free on the right for the close button (the text never runs under it)


class Banner(QLabel):
    """A word-wrapped label with a close button in its top right corner."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setContentsMargins(0, 0, BUTTON_ROOM, 0)
        self.close_button = QToolButton(self)
        self.close_button.setObjectName("banner_close")
        self.close_button.setText("\u2715")
        self.close_button.setAutoRaise(True)
        self.close_button.setCursor(Qt.PointingHandCursor)
        self.close_button.setToolTip("dismiss this message")
        self.close_button.clicked.connect(self.hide)
        self._place()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        size = self.close_button.sizeHint()
        self.close_button.setGeometry(self.width() - size.width() - 2, 2, size.width(), size.height())
