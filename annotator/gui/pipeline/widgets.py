"""Small widgets the pipeline dialogs share."""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget


def path_row(edit: QLineEdit, on_browse: Callable[[], None]) -> QWidget:
    """A path field with a "..." button beside it (the button opens the caller's file dialog)."""
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    browse = QPushButton("...")
    browse.clicked.connect(on_browse)
    lay.addWidget(browse)
    return row
