"""Export dialog: a dataset format of the registry with its options, as a background job with
progress and a summary (videos, frames, tracks, warnings) at the end.

It calls exactly what ``export`` calls (``prepare_output``, then the format registry's
``export_dataset`` with typed options), so the GUI and the CLI write the same dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QSpinBox,
)

from annotator.formats.options import DEFAULT_SPLIT_RATIOS, ExportOptions, parse_name_list, ratio_triple
from annotator.formats.output import prepare_output
from annotator.formats.registry import EXPORT_FORMATS, FORMATS, export_dataset
from annotator.gui.pipeline.widgets import JobDialog, beside_project, path_row

#: formats that have no export (VSPW's semantic labels hold no instances)
IMPORT_ONLY = tuple(f for f in FORMATS if f not in EXPORT_FORMATS)


def run_export(project: str, fmt: str, out: str, options: dict[str, Any], progress: Any = None) -> list[str]:
    """The ``export`` command's work from the dialog's option values; returns the summary lines."""
    notes: list[str] = []
    prepare_output(out, options["overwrite"], Path(project), notes)
    # as the CLI: split ratios count as asked for only when they differ from the default
    asked = options.get("split_ratios")
    asked = None if asked is None or tuple(asked) == tuple(DEFAULT_SPLIT_RATIOS) else tuple(asked)
    opts = ExportOptions(videos=parse_name_list(options.get("videos") or None), split_ratios=asked,
                         seed=options["seed"], resize_height=None if options["no_resize"] else 720,
                         include_unlabelled=options["include_unlabelled"], overwrite=options["overwrite"],
                         layer=options["layer"], split_crowded=options["split_crowded"], shapes=options["shapes"])
    summary = export_dataset(fmt, project, out, opts, progress=progress)
    return [f"note: {n}" for n in notes] + summary.lines()


class ExportDialog(JobDialog):
    def __init__(self, window: Any) -> None:
        super().__init__(window, "Export dataset", "export")
        self.resize(640, 480)
        self.format = QComboBox()
        self.format.addItems(list(EXPORT_FORMATS))
        self.out = QLineEdit()
        out_row = path_row(self.out, self._browse)
        self.videos = QLineEdit()
        self.videos.setPlaceholderText("all videos (or comma-separated ids)")
        self.ratios = QLineEdit("0.8,0.1,0.1")
        self.seed = QSpinBox()
        self.seed.setRange(0, 10**6)
        self.layer = QLineEdit("labels")
        self.no_resize = QCheckBox("keep the original size (VIPSeg: default height 720)")
        self.unlabelled = QCheckBox("include unlabelled frames (images only)")
        self.overwrite = QCheckBox("overwrite a previous export of this tool")
        self.crowded = QCheckBox("VIPSeg: split videos with > 100 instances of a class")
        self.shapes = QComboBox()
        self.shapes.addItems(["polygon", "mask"])
        form = QFormLayout()
        for text, w in (("format", self.format), ("output folder", out_row), ("videos", self.videos),
                        ("split ratio train,val,test", self.ratios), ("seed", self.seed), ("layer", self.layer),
                        ("labelme shapes", self.shapes)):
            form.addRow(text, w)
        for box in (self.no_resize, self.unlabelled, self.overwrite, self.crowded):
            form.addRow("", box)
        self.set_form(form)

    def _browse(self) -> None:
        text = self.out.text().strip()
        # an existing folder, else the one it would be made in: Qt starts a missing folder in the cwd
        start = (text if Path(text).is_dir() else str(Path(text).parent)) if text else beside_project(self.window.project)
        path = QFileDialog.getExistingDirectory(self, "Export into", start)
        if path:
            self.out.setText(path)

    def options(self) -> dict[str, Any]:
        text = self.ratios.text().strip()
        return {"videos": [v.strip() for v in self.videos.text().split(",") if v.strip()],
                "split_ratios": ratio_triple(text) if text else None, "seed": self.seed.value(),
                "layer": self.layer.text().strip() or "labels", "no_resize": self.no_resize.isChecked(),
                "include_unlabelled": self.unlabelled.isChecked(), "overwrite": self.overwrite.isChecked(),
                "split_crowded": self.crowded.isChecked(), "shapes": self.shapes.currentText()}

    def run(self) -> Any:
        w = self.window
        if w.project is None:
            self.status.setText("no project open")
            return None
        out = self.out.text().strip()
        if not out:
            self.status.setText("choose an output folder")
            return None
        try:
            options = self.options()
        except Exception as e:  # noqa: BLE001 - a bad ratio text: say why
            self.status.setText(f"split ratio: {e}")
            return None
        w.controller.flush()  # the export reads the label files: pending strokes first
        if w.controller.video is not None and not w.controller.video.readonly:
            w.controller.video.save()
        project, fmt = str(w.project.path), self.format.currentText()
        return self.start(fmt, lambda progress, cancel: run_export(project, fmt, out, options, progress))
