"""Export dialog: VIPSeg, YouTube-VIS / LV-VIS or labelme with the formats module's options, as a
background job with progress and a summary (videos, frames, tracks, warnings) at the end.

It calls exactly what ``export`` calls (``prepare_output`` then ``export_vipseg`` / ``export_ytvis``
/ ``export_labelme``), so the GUI and the CLI write the same dataset.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QSpinBox,
)

from annotator.formats import FORMATS
from annotator.gui.pipeline.widgets import JobDialog, path_row

#: formats that have no export (VSPW's semantic labels hold no instances)
IMPORT_ONLY = ("vspw",)


def run_export(project: str, fmt: str, out: str, options: dict[str, Any], progress: Any = None) -> list[str]:
    """The ``export`` command's work; returns the summary lines."""
    from pathlib import Path

    from annotator.formats.common import DEFAULT_SPLIT_RATIOS, parse_name_list, prepare_output

    notes: list[str] = []
    prepare_output(out, options["overwrite"], Path(project), notes)
    videos = parse_name_list(options.get("videos") or None)
    ratios = options.get("split_ratios") or DEFAULT_SPLIT_RATIOS
    from argparse import Namespace

    from annotator.commands.protocols import run_export_format

    extra = run_export_format(Namespace(format=fmt, project=project, out=out, videos=videos, split=None,
                                        split_name=None, overwrite=options["overwrite"], layer=options["layer"]),
                              progress)
    if extra is not None:  # the neighbouring protocols' formats (Cityscapes-VPS)
        return [f"note: {n}" for n in notes] + extra.lines()
    if fmt == "vipseg":
        from annotator.formats.vipseg import export_vipseg

        summary = export_vipseg(project, out, videos=videos, splits=None, split_ratios=ratios, seed=options["seed"],
                                resize_height=None if options["no_resize"] else 720,
                                include_unlabelled=options["include_unlabelled"], overwrite=options["overwrite"],
                                layer=options["layer"], workers=None, split_crowded=options["split_crowded"],
                                progress=progress)
    elif fmt == "ytvis":
        from annotator.formats.ytvis import export_ytvis

        # as the CLI: YouTube-VIS splits only when asked for (a ratio other than the default)
        asked = options.get("split_ratios")
        asked = None if asked is None or tuple(asked) == tuple(DEFAULT_SPLIT_RATIOS) else asked
        summary = export_ytvis(project, out, videos=videos, splits=None, split_ratios=asked,
                               seed=options["seed"], overwrite=options["overwrite"], layer=options["layer"],
                               progress=progress)
    else:
        from annotator.formats.labelme_json import export_labelme

        summary = export_labelme(project, out, videos=videos, overwrite=options["overwrite"], layer=options["layer"],
                                 shapes=options["shapes"], include_unlabelled=options["include_unlabelled"],
                                 progress=progress)
    return [f"note: {n}" for n in notes] + summary.lines()


class ExportDialog(JobDialog):
    def __init__(self, window: Any) -> None:
        super().__init__(window, "Export dataset", "export")
        self.resize(640, 480)
        self.format = QComboBox()
        self.format.addItems([f for f in FORMATS if f not in IMPORT_ONLY])
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
        path = QFileDialog.getExistingDirectory(self, "Export into")
        if path:
            self.out.setText(path)

    def options(self) -> dict[str, Any]:
        from annotator.commands.argtypes import ratio_triple

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
