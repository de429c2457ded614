"""Small widgets the pipeline dialogs share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


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


class JobDialog(QDialog):
    """A form whose button runs one background job and shows its summary lines (export, import).

    Subclasses build the form, implement ``run`` (validate, then :meth:`start`) and may extend
    :meth:`finished`.
    """

    def __init__(self, window: Any, title: str, verb: str) -> None:
        super().__init__(window)
        self.window = window
        self.verb = verb
        self.setWindowTitle(title)
        self.run_button = QPushButton(verb.capitalize())
        self.run_button.clicked.connect(lambda: self.run())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.job: Any = None
        self.lines: list[str] = []
        window.job_runner.job_finished.connect(lambda job: job is self.job and self.run_button.setEnabled(True))

    def set_form(self, form: QFormLayout) -> None:
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        lay.addWidget(self.summary, 1)

    def run(self) -> Any:
        raise NotImplementedError

    def start(self, what: str, fn: Any) -> Any:
        """Submit ``fn(progress, cancel) -> summary lines`` as the job ``<verb> <what>``."""
        self.run_button.setEnabled(False)
        self.status.setText(f"{self.verb}ing {what}...")
        self.job = self.window.job_runner.submit(
            f"{self.verb} {what}", fn, on_done=self.finished,
            on_error=lambda e: self.status.setText(f"{self.verb} failed: {e}"))
        return self.job

    def finished(self, lines: list[str]) -> None:
        self.lines = lines
        self.summary.setPlainText("\n".join(lines))
        self.status.setText(f"{self.verb} finished")
