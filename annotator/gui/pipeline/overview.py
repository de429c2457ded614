"""Project overview: one row per video (``annotator.overview.overview_rows``); double click opens it.

The rows are computed in a background job (every video is opened read-only and, for the pixel
shares, its label maps are read); the open video's pending strokes are flushed first so its row
is current. "Save CSV" writes the table next to the review report (``write_overview_csv``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from annotator.gui.pipeline.host import PipelineHost
from annotator.gui.pipeline.widgets import beside_project
from annotator.overview import overview_rows, write_overview_csv

COLUMNS = [("video", "video"), ("frames", "frames"), ("keyframes annotated", None), ("propagated", "propagated"),
           ("refined", "refined"), ("reviewed", "reviewed"), ("tracks", "tracks"), ("open flags", "open_flags"),
           ("lock", "lock_holder"), ("last edit", "last_edit"), ("active min", "active_minutes"),
           ("edit actions", "edit_actions"), ("human px", "human_pixel_share"),
           ("machine px", "machine_pixel_share")]


def cell_text(row: Any, field: str | None) -> str:
    if field is None:
        return f"{row.keyframes_annotated}/{row.keyframes}"
    v = getattr(row, field)
    if v is None:
        return "-"
    if field == "lock_holder":
        return v.split(" (")[0] if v else ""
    if field == "last_edit":
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(v)) if v else ""
    if field.endswith("_share"):
        return f"{100 * v:.0f}%"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


class OverviewDialog(QDialog):
    def __init__(self, window: PipelineHost) -> None:
        super().__init__(window)  # type: ignore[arg-type] - the host is a QMainWindow
        self.window = window
        self.setWindowTitle("Project overview")
        self.resize(1450, 360)
        self.table = QTableWidget()
        self.table.setColumnCount(len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.cellDoubleClicked.connect(self._open)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        reload = QPushButton("Reload")
        reload.clicked.connect(lambda: self.reload())
        self.csv_button = QPushButton("Save CSV...")
        self.csv_button.clicked.connect(lambda: self.save_csv())
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(reload)
        buttons.addWidget(self.csv_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        self.rows: list[Any] = []
        self.job: Any = None

    def reload(self) -> Any:
        project = self.window.project
        if project is None:
            self.status.setText("no project open")
            return None
        self.window.controller.flush()
        if self.window.controller.video is not None and not self.window.controller.video.readonly:
            self.window.controller.video.save()
        self.status.setText("reading the videos...")
        self.job = self.window.job_runner.submit(
            "project overview", lambda progress, cancel: overview_rows(project, True, progress, cancel),
            on_done=self.set_rows, on_error=lambda e: self.status.setText(f"overview failed: {e}"))
        return self.job

    def set_rows(self, rows: list[Any]) -> None:
        self.rows = list(rows)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, (_title, field) in enumerate(COLUMNS):
                item = QTableWidgetItem(cell_text(r, field))
                if _title == "lock" and r.lock_holder:
                    item.setToolTip(r.lock_holder)
                if j == 0:
                    item.setData(Qt.UserRole, r.video)
                    if r.error:
                        item.setToolTip(r.error)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.status.setText(f"{len(rows)} video(s); active time counts gaps up to 2 minutes between actions; "
                            "double click a row to open the video")

    def _open(self, row: int, _col: int) -> None:
        vid = self.table.item(row, 0).data(Qt.UserRole)
        self.window.open_video(vid)

    def save_csv(self, path: str | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save overview", beside_project(self.window.project,
                                                                                       "overview.csv"), "CSV (*.csv)")
            if not path:
                return None
        out = write_overview_csv(path, self.rows)
        self.status.setText(f"written to {out}")
        return out
