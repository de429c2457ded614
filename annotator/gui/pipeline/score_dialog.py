"""Scoring dialog: VPQ and STQ between two label sources as a background job, the same numbers as
the ``score`` command (it calls the same functions: :mod:`annotator.metrics.scoring` open_pair,
compute_score, cityscapes_vps_text; :mod:`annotator.metrics.report` summary_text, class_rows,
write_report).

Typical pairs: this project's main layer vs a pre-annotation layer, vs a reviewer-corrected project,
or vs an imported prediction folder (pred.json + pan_pred/) or a VIPSeg export.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from annotator.errors import AnnotatorError, InputError
from annotator.gui.pipeline.widgets import beside_project
from annotator.metrics.report import class_rows, summary_text, write_figure, write_report
from annotator.metrics.scoring import (
    PROTOCOLS,
    check_report_dir,
    cityscapes_vps_text,
    compute_score,
    open_pair,
    parse_windows,
)
from annotator.metrics.stq import MODES
from annotator.metrics.vpq import DEFAULT_WINDOWS


class SourceRow(QWidget):
    """One label source: a folder (project, VIPSeg export or prediction folder) and a project layer."""

    def __init__(self, path: str = "", layer: str = "", start: str = "") -> None:
        super().__init__()
        self.start = start  # where the folder chooser starts while the field is empty
        self.path = QLineEdit(path)
        self.layer = QLineEdit(layer)
        self.layer.setPlaceholderText("labels")
        self.layer.setToolTip("label layer when the source is a project (empty: the main layer)")
        self.layer.setMaximumWidth(110)
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.path, 1)
        lay.addWidget(QLabel("layer"))
        lay.addWidget(self.layer)
        lay.addWidget(browse)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Label source folder", self.path.text().strip() or self.start)
        if path:
            self.path.setText(path)

    def spec(self) -> tuple[str, str | None]:
        return self.path.text().strip(), (self.layer.text().strip() or None)


def run_scoring(gt: tuple[str, str | None], pred: tuple[str, str | None], windows: list[int], mode: str,
                metrics: tuple[str, ...], progress: Any = None, cancel: Any = None,
                resize: bool = True) -> dict[str, Any]:
    """What ``score`` does, minus printing: integrity check, sources, score, names, summary, figure.
    ``resize``: ``score`` without ``--no-resize`` (a rescaled prediction, e.g. a 720p export of a
    480p project, is compared at the ground truth's size after a nearest-neighbour resize)."""
    for spec, _layer in (gt, pred):
        if not spec:
            raise InputError("choose both label sources (ground truth and prediction)")
    pairs = open_pair(gt[0], pred[0], gt_layer=gt[1], pred_layer=pred[1], resize=resize)
    report, names = compute_score(pairs, windows, mode, metrics, progress=progress, cancel=cancel)
    figure = Path(tempfile.mkdtemp(prefix="vps_score_")) / "scores.png"
    try:
        write_figure(report, figure, names)
    except Exception:  # noqa: BLE001 - the plot is a bonus; the numbers are what matters
        figure = None
    return {"report": report, "names": names, "summary": summary_text(report, names),
            "classes": class_rows(report, names), "figure": figure}


class ScoreDialog(QDialog):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.setWindowTitle("Score: VPQ and STQ")
        self.resize(900, 800)
        here = str(window.project.path) if window.project is not None else ""
        self.gt = SourceRow("", "", start=beside_project(window.project))
        self.pred = SourceRow(here, "", start=beside_project(window.project))
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.windows = QLineEdit(",".join(map(str, DEFAULT_WINDOWS)))
        self.metrics = QComboBox()
        self.metrics.addItems(["vpq,stq", "vpq", "stq"])
        form = QFormLayout()
        form.addRow("ground truth", self.gt)
        form.addRow("prediction", self.pred)
        self.protocol = QComboBox()
        self.protocol.addItems(list(PROTOCOLS))
        self.protocol.setToolTip("vipseg: VIPSeg's VPQ/STQ scripts; cityscapes-vps: VPSNet's eval_vpq.py "
                                 "(every 5th source frame annotated, windows k = 0, 5, 10, 15)")
        form.addRow("protocol", self.protocol)
        form.addRow("mode", self.mode)
        form.addRow("VPQ windows", self.windows)
        form.addRow("metrics", self.metrics)
        self.resize_pred = QCheckBox("resize the prediction to the ground truth's size (nearest neighbour)")
        self.resize_pred.setChecked(True)
        self.resize_pred.setToolTip("e.g. a 720p VIPSeg export against its 480p project; the report says which "
                                    "videos were resized. Off: sizes must be equal, as in the official scripts "
                                    "(score --no-resize)")
        form.addRow("sizes", self.resize_pred)
        self.run_button = QPushButton("Score")
        self.run_button.clicked.connect(self.run)
        self.save_button = QPushButton("Save report...")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: self.save_report())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMinimumHeight(60)
        self.table = QTableWidget()
        self.figure = QLabel()
        # the plots at the size they were drawn at (a scaled-down copy made the class names a few
        # pixels high): in a tab next to the table, scrolled where the dialog is narrower
        self.figure_scroll = QScrollArea()
        self.figure_scroll.setWidget(self.figure)
        self.results = QTabWidget()
        self.results.addTab(self.table, "Per class")
        self.results.addTab(self.figure_scroll, "Plots")
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        # summary above the table / plots; the Plots tab takes the summary's room (the plots keep
        # their drawn size, so the room is what shows more of them), a drag gives it back
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(self.summary)
        self.split.addWidget(self.results)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)
        self.results.currentChanged.connect(self._tab_changed)
        lay.addWidget(self.split, 1)
        self.result: dict[str, Any] | None = None
        self.job: Any = None
        window.job_runner.job_finished.connect(self._finished)

    def run(self) -> Any:
        try:
            windows = parse_windows(self.windows.text())
        except AnnotatorError as e:
            self.status.setText(str(e))
            return None
        self.window.controller.flush()  # the open video's strokes are part of the scored labels
        gt, pred = self.gt.spec(), self.pred.spec()
        mode = self.mode.currentText()
        metrics = tuple(self.metrics.currentText().split(","))
        self.run_button.setEnabled(False)
        self.status.setText("scoring...")
        if self.protocol.currentText() == "cityscapes-vps":
            self.job = self.window.job_runner.submit(
                "score (cityscapes-vps)",
                lambda progress, cancel: cityscapes_vps_text(gt[0], pred[0], gt_layer=gt[1], pred_layer=pred[1],
                                                             mode=mode, progress=progress),
                on_done=self._done_protocol, on_error=self._failed)
            return self.job
        resize = self.resize_pred.isChecked()
        self.job = self.window.job_runner.submit(
            "score", lambda progress, cancel: run_scoring(gt, pred, windows, mode, metrics, progress, cancel,
                                                          resize),
            on_done=self._done, on_error=self._failed)
        return self.job

    def _tab_changed(self, index: int) -> None:
        if self.results.widget(index) is self.figure_scroll:
            self.split.setSizes([self.summary.minimumSizeHint().height(), 10_000])

    def _finished(self, job: Any) -> None:
        if job is self.job:
            self.run_button.setEnabled(True)
            if job.status == "cancelled":
                self.status.setText("cancelled")

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"scoring failed: {exc}")

    def _done(self, result: dict[str, Any]) -> None:
        self.result = result
        self.summary.setPlainText(result["summary"])
        rows = result["classes"]
        keys: list[str] = ["name"]
        for r in rows:
            keys += [k for k in r if k not in keys and k not in ("category_id", "isthing")]
        self.table.clear()
        self.table.setColumnCount(len(keys))
        self.table.setHorizontalHeaderLabels(keys)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, k in enumerate(keys):
                v = r.get(k)
                text = "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if result["figure"] is not None:
            pm = QPixmap(str(result["figure"]))
            self.figure.setPixmap(pm)
            self.figure.resize(pm.size())
        self.save_button.setEnabled(True)
        self.status.setText(f"{len(result['report'].videos)} video(s) scored")

    def _done_protocol(self, text: str) -> None:
        """A protocol with a report of its own (VPSNet's per-k table): shown as text, no plots."""
        self.result = None
        self.summary.setPlainText(text)
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.figure.clear()
        self.figure.resize(0, 0)
        self.save_button.setEnabled(False)
        self.status.setText("scored with the Cityscapes-VPS protocol")

    def save_report(self, out: str | None = None) -> list[Path]:
        if self.result is None:
            return []
        if out is None:
            out = QFileDialog.getExistingDirectory(self, "Report folder", beside_project(self.window.project))
            if not out:
                return []
        try:
            check_report_dir(out, [self.gt.spec()[0], self.pred.spec()[0]])
            paths = write_report(self.result["report"], out, self.result["names"])
        except AnnotatorError as e:
            self.status.setText(str(e))
            return []
        self.status.setText(f"report written to {out}")
        return paths
