"""Import-dataset dialog: a dataset of one of the registry's formats into the open project, as a
background job with progress and a summary (what ``import-dataset`` does: the same functions).

A failed import leaves the project unchanged (the formats module's guarantee); a finished one adds
its videos to the window's video list.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
)

from annotator.formats.options import ImportOptions
from annotator.formats.registry import IMPORT_FORMATS
from annotator.gui.pipeline.widgets import JobDialog, beside_project, path_row
from annotator.stages.import_dataset import import_dataset


def run_import(fmt: str, dataset: str, project: str, videos: list[str] | None, on_invalid: str,
               images: str | None, progress: Any = None, cancel: Any = None) -> list[str]:
    """The ``import-dataset`` command's work; returns the summary lines."""
    opts = ImportOptions(videos=videos, on_invalid=on_invalid, images=images)
    return import_dataset(fmt, dataset, project, opts, progress=progress, cancel=cancel).lines()


class ImportDatasetDialog(JobDialog):
    def __init__(self, window: Any) -> None:
        super().__init__(window, "Import dataset into this project", "import")
        self.resize(640, 380)
        self.format = QComboBox()
        self.format.addItems(list(IMPORT_FORMATS))
        self.dataset = QLineEdit()
        row = path_row(self.dataset, self._browse)
        self.videos = QLineEdit()
        self.videos.setPlaceholderText("all videos (or comma-separated ids)")
        self.images = QLineEdit()
        self.images.setPlaceholderText("YouTube-VIS: JPEGImages/ next to the JSON")
        self.on_invalid = QComboBox()
        self.on_invalid.addItems(["error", "void"])
        self.on_invalid.setToolTip("VIPSeg: undecodable mask values stop the import (error) or become void")
        form = QFormLayout()
        for text, w in (("format", self.format), ("dataset", row), ("videos", self.videos),
                        ("images folder", self.images), ("invalid mask values", self.on_invalid)):
            form.addRow(text, w)
        self.set_form(form)

    def _browse(self) -> None:
        start = self.dataset.text().strip() or beside_project(self.window.project)
        path = QFileDialog.getExistingDirectory(self, "Dataset folder", start)
        if path:
            self.dataset.setText(path)

    def run(self) -> Any:
        w = self.window
        if w.project is None:
            self.status.setText("open or create a project first")
            return None
        dataset = self.dataset.text().strip()
        if not dataset:
            self.status.setText("choose the dataset folder (or YouTube-VIS JSON)")
            return None
        fmt, project = self.format.currentText(), str(w.project.path)
        videos = [v.strip() for v in self.videos.text().split(",") if v.strip()] or None
        images = self.images.text().strip() or None
        on_invalid = self.on_invalid.currentText()
        return self.start(fmt, lambda progress, cancel: run_import(fmt, dataset, project, videos, on_invalid,
                                                                   images, progress, cancel))

    def finished(self, lines: list[str]) -> None:
        super().finished(lines)
        self.window.refresh_videos()
