"""Small widgets the pipeline dialogs share, and where their file dialogs start.

File dialogs start in the project's folder (sources, datasets) or beside it (new outputs: an
export, a score report, a CSV), never in the program's working directory, which is where Qt
starts a dialog given no folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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

from annotator.project import settings as user_settings


def _last_project() -> Path | None:
    recent = user_settings.recent_projects()
    return Path(recent[0]) if recent else None


def project_folder(project: Any = None) -> str:
    """Where a dialog choosing a file of the project starts: the open project's folder, else the
    last project's parent, else the home folder."""
    if project is not None:
        return str(Path(project.path))
    last = _last_project()
    return str(last.parent if last is not None else Path.home())


def beside_project(project: Any = None, name: str = "") -> str:
    """Where a folder chooser or a dialog choosing a new output starts: beside the open (else the
    last) project, so the project and its siblings (exports, datasets, other projects) are in
    view and outputs stay outside it (``score --out`` refuses a folder inside a project), else
    the home folder; ``name`` proposes a file or folder name there."""
    base = Path(project.path) if project is not None else _last_project()
    folder = base.parent if base is not None else Path.home()
    return str(folder / name) if name else str(folder)


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
