"""Status bar: frame and state, cursor read-out (class and track under the pointer), SAM activity,
active backends (the propagator and its optical-flow speed profile, ``annotator.backends``), and the
latest message (tool hints, errors, "embedding 3/20")."""

from __future__ import annotations

from PyQt5.QtWidgets import QLabel, QSizePolicy, QStatusBar

from annotator.backends import BackendStatus

_SEP = "padding: 0 8px; border-left: 1px solid #999;"


class StatusWidgets:
    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.frame_label = QLabel()  # shown next to the video picker (the window places it)
        self.frame_label.setStyleSheet("padding-left: 8px;")
        self.frame_label.setMinimumWidth(360)
        self.message = QLabel()
        self.message.setMinimumWidth(200)
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

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setToolTip(text)
