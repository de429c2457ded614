"""Status bar: frame and state, cursor read-out (class and track under the pointer), SAM activity,
active backends (the propagator and its optical-flow speed profile, ``annotator.backends``), and the
latest message (tool hints, errors, "embedding 3/20").

A message belongs to the state it describes (its *scope*, narrowest first: ``hint`` - the active
tool's preview, ``tool`` - the tool's gesture and its result, ``frame``, ``video``, ``project``);
when that state ends the window calls :meth:`StatusWidgets.clear_messages` and the message goes, so
no "polygon closed" outlives its commit and no "review report written" its project. A long message
is elided with "..." and kept whole in the tool tip (it is never cut off silently).
"""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPainter
from PyQt5.QtWidgets import QLabel, QSizePolicy, QStatusBar, QStyle, QStyleOption

from annotator.backends import BackendStatus

_SEP = "padding: 0 8px; border-left: 1px solid #999;"

#: message scopes, narrowest first: ending a state clears the messages of it and of narrower ones
SCOPES = ("hint", "tool", "frame", "video", "project")


class ElidedLabel(QLabel):
    """A one-line label that ends a text too long for it with "..." (``text()`` stays whole)."""

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        opt = QStyleOption()
        opt.initFrom(self)
        self.style().drawPrimitive(QStyle.PE_Widget, opt, painter, self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.ElideRight, rect.width())
        painter.drawText(rect, int(Qt.AlignLeft | Qt.AlignVCenter), text)


class StatusWidgets:
    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.frame_label = QLabel()  # shown next to the video picker (the window places it)
        self.frame_label.setStyleSheet("padding-left: 8px;")
        self.frame_label.setMinimumWidth(360)
        self.message = ElidedLabel()
        self.message.setMinimumWidth(200)
        self.message_scope = ""
        self.cursor = QLabel()
        self.cursor.setFixedWidth(260)
        # texts that change on every frame or mouse move must not re-layout the window
        for label in (self.frame_label, self.message):
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.cursor.setStyleSheet(_SEP)
        self.sam = QLabel("SAM: off")
        self.sam.setStyleSheet(_SEP)
        self.backend = QLabel()
        self.backend.setStyleSheet(_SEP)
        bar.addWidget(self.message, 1)
        bar.addPermanentWidget(self.cursor)
        bar.addPermanentWidget(self.sam)
        bar.addPermanentWidget(self.backend)

    def set_backends(self, status: BackendStatus, sam_reason: str = "") -> None:
        self.backend.setText(status.propagator_text)
        self.backend.setToolTip(status.details)
        self.sam.setToolTip(sam_reason or status.details)
        if not status.sam_ready:
            self.sam.setText(status.sam_text)

    def show_message(self, text: str, scope: str = "frame") -> None:
        """Show ``text`` until a newer message, or until the state ``scope`` names ends."""
        if scope not in SCOPES:
            raise ValueError(f"unknown message scope {scope!r} (one of {', '.join(SCOPES)})")
        self.message_scope = scope if text else ""
        self.message.setText(text)
        self.message.setToolTip(text)
        self.message.update()

    def clear_messages(self, scope: str) -> None:
        """The state ``scope`` ended: drop the message if it belongs to it or to a narrower state
        (a video switch also drops the shell's timed message)."""
        end = SCOPES.index(scope)
        if self.message_scope and SCOPES.index(self.message_scope) <= end:
            self.show_message("", "hint")
        if end >= SCOPES.index("video"):
            self.bar.clearMessage()

    def show_cursor(self, text: str) -> None:
        self.cursor.setText(text)
