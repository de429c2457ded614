"""The jobs panel: every background job with its progress, its state and a cancel button.

A view only: it listens to a :class:`~annotator.gui.job_runner.JobRunner` and calls ``job.cancel()``;
it never runs work itself. Failed jobs keep their one-line reason visible until cleared, so an
import that failed while the user looked elsewhere is not lost. Job names get the room they need
(all rows one width, so the bars line up) as long as the status line keeps room; only a name
longer than that is shortened.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from annotator.gui.job_runner import CANCELLED, DONE, FAILED, RUNNING, Job, JobRunner

MIN_TITLE_WIDTH = 160  # a job name never gets less than this...
MIN_STATUS_WIDTH = 220  # ...nor so much that the status line gets less than this
BAR_WIDTH = 200
ROW_EXTRA = 110  # the cancel button, margins and spacing of a row
_STATUS_STYLE = {RUNNING: "", DONE: "color:#1e7b34;", FAILED: "color:#b03a2e;", CANCELLED: "color:#7a7a7a;"}


class JobRow(QWidget):
    """One job: title, progress bar, status line, cancel button."""

    def __init__(self, job: Job, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.title = QLabel()
        bold = self.title.font()
        bold.setBold(True)
        self.title.setFont(bold)
        self.title.setToolTip(job.title)
        self.set_title_width(MIN_TITLE_WIDTH)
        self.bar = QProgressBar()
        self.bar.setFixedWidth(BAR_WIDTH)
        self.bar.setMaximumHeight(16)
        self.bar.setTextVisible(True)
        policy = self.bar.sizePolicy()  # a hidden bar keeps its place: statuses stay aligned
        policy.setRetainSizeWhenHidden(True)
        self.bar.setSizePolicy(policy)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip(f"stop '{job.title}'")
        self.cancel_button.clicked.connect(job.cancel)
        lay = QHBoxLayout(self)  # one line per job: many fit in a low dock
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.bar)
        lay.addWidget(self.status, 1)
        lay.addWidget(self.cancel_button)
        self.refresh()

    def title_width(self) -> int:
        """Pixels the whole job name needs."""
        return self.title.fontMetrics().horizontalAdvance(self.job.title) + 12

    def set_title_width(self, width: int) -> None:
        """The name's column width (the panel gives every row the same); elided only if it does not fit."""
        self.title.setFixedWidth(width)
        fits = self.title_width() <= width
        self.title.setText(self.job.title if fits else
                           self.title.fontMetrics().elidedText(self.job.title, Qt.ElideMiddle, width - 12))

    def refresh(self) -> None:
        job = self.job
        if job.total > 0:
            self.bar.setRange(0, job.total)
            self.bar.setValue(min(job.done, job.total))
            self.bar.setFormat(f"{job.done}/{job.total}")
        elif job.status == RUNNING:
            self.bar.setRange(0, 0)  # busy indicator: total unknown
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if job.status == DONE else 0)
            self.bar.setFormat("")
        self.bar.setVisible(job.status == RUNNING or job.total > 0)
        self.status.setToolTip(job.error or job.text)
        text = job.text if job.status == RUNNING else (job.error or job.text or job.status)
        self.status.setText(text if job.status in (RUNNING, FAILED) else f"{job.status}: {text}"
                            if text != job.status else text)
        self.status.setStyleSheet(_STATUS_STYLE.get(job.status, ""))
        self.cancel_button.setEnabled(job.status == RUNNING and not job.token.cancelled)
        self.cancel_button.setVisible(job.status == RUNNING)


class JobsPanel(QWidget):
    """The list of jobs, newest at the top, bound to one runner."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.rows: dict[Job, JobRow] = {}
        self.summary = QLabel("no background jobs")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        head = QHBoxLayout()
        head.addWidget(self.summary, 1)
        head.addWidget(self.clear_button)
        self._list = QVBoxLayout()
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.setSpacing(0)
        self._list.addStretch(1)
        inner = QWidget()
        inner.setLayout(self._list)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(scroll, 1)
        runner.job_added.connect(self._add)
        runner.job_changed.connect(self._changed)
        runner.job_finished.connect(self._changed)
        for job in runner.jobs:
            self._add(job)

    def _add(self, job: Job) -> None:
        if job in self.rows:
            return
        row = JobRow(job)
        self.rows[job] = row
        self._list.insertWidget(0, row)
        self._fit_titles()
        self._update_summary()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_titles()

    def _fit_titles(self) -> None:
        """One name width for every row (the bars line up): the longest name's, within the bounds."""
        if not self.rows:
            return
        want = max(row.title_width() for row in self.rows.values())
        room = self.width() - BAR_WIDTH - ROW_EXTRA - MIN_STATUS_WIDTH
        width = max(MIN_TITLE_WIDTH, min(want, room))
        for row in self.rows.values():
            row.set_title_width(width)

    def _changed(self, job: Job) -> None:
        row = self.rows.get(job)
        if row is None:
            self._add(job)
        else:
            row.refresh()
        self._update_summary()

    def _update_summary(self) -> None:
        running = sum(j.status == RUNNING for j in self.rows)
        failed = sum(j.status == FAILED for j in self.rows)
        parts = [f"{running} running" if running else "no job running"]
        if failed:
            parts.append(f"{failed} failed")
        self.summary.setText(", ".join(parts))
        self.clear_button.setEnabled(any(j.status != RUNNING for j in self.rows))

    def clear_finished(self) -> None:
        self.runner.clear_finished()
        for job in [j for j in self.rows if j.status != RUNNING]:
            row = self.rows.pop(job)
            self._list.removeWidget(row)
            row.deleteLater()
        self._fit_titles()
        self._update_summary()
