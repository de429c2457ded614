"""New project / add video: choose a video file or frame folder and the import options.

The dialog only collects :class:`ImportOptions`; :func:`run_import` (no Qt) does the work and is
what the window hands to its job runner, so the import runs in the background with progress and
cancel, and the same code path is testable without a dialog. A failed or cancelled new-project
import removes the project folder it created, so no half project is left behind.

A frame folder carries no frame rate, so the dialog asks for it ("Source frame rate", the CLI's
``--source-fps``): left at "each image is a dense frame", every image becomes a dense frame (a
folder that is already sampled at the dense rate); set to the footage's rate (24 for DAVIS), the
folder is sampled like a video of that rate. The "Gives:" line under the rates previews the dense
frames and keyframes with :func:`annotator.project.plan_dense`, the rule the import itself applies.
File choosers start beside the current source or the project, never in the working directory.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotator.errors import AnnotatorError, InputError
from annotator.gui.pipeline.widgets import beside_project, project_folder
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import (
    PROJECT_FILE,
    VIDEO_EXTS,
    Project,
    SourceInfo,
    import_source,
    plan_dense,
    probe_source,
)

PROJECT_SUFFIX = ".vpsproj"
#: the source-fps box at 0: a folder's images are taken as dense frames (the CLI without --source-fps)
FOLDER_EVERY_IMAGE = "each image is a dense frame"


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how; ``project_path`` is the project to create (new) or to add to."""

    source: Path
    project_path: Path
    create: bool
    name: str = ""
    dense_fps: float = 5.0
    key_every: int = 5
    resize_height: int | None = 720
    source_fps: float | None = None  # None: a video's own rate; a folder's images are dense frames

    @property
    def title(self) -> str:
        return f"import {self.source.name}" + (f" into new project {self.project_path.name}" if self.create else "")


def default_project_path(source: Path) -> Path:
    """``<folder of the source>/<source stem>.vpsproj``, numbered if that exists already."""
    base = source.parent / f"{source.stem if source.is_file() else source.name}{PROJECT_SUFFIX}"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name.removesuffix(PROJECT_SUFFIX)}_{n}{PROJECT_SUFFIX}")
        n += 1
    return candidate


def run_import(options: ImportOptions, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> tuple[Path, str]:
    """Create the project if asked, import the source; returns ``(project path, video id)``."""
    path = options.project_path
    created = False
    if options.create:
        if (path / PROJECT_FILE).exists():
            raise InputError(f"a project already exists at {path}; open it or choose another folder")
        project = Project.create(path, name=options.name or None,
                                 settings={"dense_fps": float(options.dense_fps), "key_every": int(options.key_every),
                                           "resize_height": options.resize_height})
        created = True
    else:
        project = Project.open(path)  # an instance of its own: the window's one stays on the GUI thread
    try:
        check_cancel(cancel)
        video_id = import_source(project, options.source, dense_fps=options.dense_fps, key_every=options.key_every,
                                 resize_height=options.resize_height, source_fps=options.source_fps,
                                 progress=progress, cancel=cancel)
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return project.path, video_id


def describe_source(path: Path, dense_fps: float, key_every: int, source_fps: float | None = None,
                    probed: SourceInfo | None = None) -> str:
    """One line about what an import of ``path`` would give (or why it cannot be imported).

    ``source_fps`` is the CLI's ``--source-fps`` (a folder's frame rate; None: every image is a
    dense frame); ``probed`` is ``probe_source(path)`` when the caller has it already. The counts
    come from :func:`plan_dense`, as the import's.
    """
    try:
        src = probed if probed is not None else probe_source(path)
        fps = source_fps or src.fps or dense_fps
        dense, keys = plan_dense(src.num_source_frames, fps, dense_fps, key_every)
    except (AnnotatorError, OSError, ValueError) as exc:
        return f"cannot import: {exc}"
    h, w = src.original_size
    if src.kind == "video":
        what = f"video, {src.num_source_frames} frames at {src.fps:.3g} fps"
        if source_fps:
            what += f" (read as {source_fps:.3g} fps)"
    elif source_fps:
        what = f"folder of {src.num_source_frames} images at {source_fps:.3g} fps"
    else:
        what = (f"folder of {src.num_source_frames} images (each one a dense frame; give the source frame "
                "rate to sample real-time footage)")
    return f"{what}, {w}x{h} -> {len(dense)} dense frames, {len(keys)} keyframes"


class ImportDialog(QDialog):
    """New project from a video / frame folder (``project=None``), or add a video to ``project``."""

    def __init__(self, project: Any = None, source: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.create = project is None
        self.setWindowTitle("New project" if self.create else f"Add video to {project.name}")
        settings = dict(project.settings) if project is not None else {}

        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText("a video file (.mp4, .avi, .mov, ...) or a folder of frames")
        file_button = QPushButton("File...")
        folder_button = QPushButton("Folder...")
        file_button.clicked.connect(self._browse_file)
        folder_button.clicked.connect(self._browse_folder)
        src_row = QHBoxLayout()
        src_row.addWidget(self.source_edit, 1)
        src_row.addWidget(file_button)
        src_row.addWidget(folder_button)
        self.source_info = QLabel(" ")
        self.source_info.setStyleSheet("color:#555;")
        self.source_info.setWordWrap(True)
        self.source_info.setMinimumHeight(2 * self.source_info.fontMetrics().lineSpacing() + 4)  # never clipped

        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText(f"new folder NAME{PROJECT_SUFFIX}")
        project_button = QPushButton("Browse...")
        project_button.clicked.connect(self._browse_project)
        proj_row = QHBoxLayout()
        proj_row.addWidget(self.project_edit, 1)
        proj_row.addWidget(project_button)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("default: the folder name")

        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(0.1, 120.0)
        self.fps_spin.setDecimals(2)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setValue(float(settings.get("dense_fps", 5.0)))
        self.fps_spin.setToolTip("dense frames per second sampled from the video (VIPSeg: 5)")
        self.key_spin = QSpinBox()
        self.key_spin.setRange(1, 1000)
        self.key_spin.setValue(int(settings.get("key_every", 5)))
        self.key_spin.setToolTip("a keyframe every N dense frames (VIPSeg: 5, i.e. 1 fps)")
        self.source_fps_spin = QDoubleSpinBox()
        self.source_fps_spin.setRange(0.0, 240.0)
        self.source_fps_spin.setDecimals(2)
        self.source_fps_spin.setSuffix(" fps")
        self.source_fps_spin.setValue(0.0)
        self.source_fps_spin.setSpecialValueText(FOLDER_EVERY_IMAGE)
        self.source_fps_spin.setToolTip("the frame rate of the footage (CLI: --source-fps). A frame folder has "
                                        "none: give it (e.g. 24 for DAVIS) to sample it like a video, or leave "
                                        "it at 'each image is a dense frame'. For a video file it overrides the "
                                        "rate the file declares.")
        self._probed: tuple[str, SourceInfo | None] = ("", None)
        self.downscale = QCheckBox("Downscale frames taller than 720 px to 720p (VIPSeg protocol)")
        self.downscale.setChecked(settings.get("resize_height", 720) is not None)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color:#b03a2e;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        form = QFormLayout()
        form.addRow("Source:", src_row)
        if self.create:
            form.addRow("Project folder:", proj_row)
            form.addRow("Project name:", self.name_edit)
        form.addRow("Source frame rate:", self.source_fps_spin)
        form.addRow("Dense frame rate:", self.fps_spin)
        form.addRow("Keyframe every:", self.key_spin)
        form.addRow("Gives:", self.source_info)  # under the rates it depends on: a live preview
        form.addRow("", self.downscale)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button = buttons.button(QDialogButtonBox.Ok)
        self.ok_button.setText("Create and import" if self.create else "Import")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error_label)
        lay.addWidget(buttons)

        self._probe = QTimer(self)  # look at the source once typing pauses (probing opens the file)
        self._probe.setSingleShot(True)
        self._probe.setInterval(300)
        self._probe.timeout.connect(self._source_changed)
        self.source_edit.textChanged.connect(lambda _t: self._probe.start())
        self.source_edit.editingFinished.connect(self._source_changed)
        self.fps_spin.valueChanged.connect(self._update_info)
        self.key_spin.valueChanged.connect(self._update_info)
        self.source_fps_spin.valueChanged.connect(self._update_info)
        if source:
            self.set_source(source)
        self.resize(max(640, self.sizeHint().width()), self.sizeHint().height())

    # ------------------------------------------------------------------ choosing paths
    def set_source(self, path: str | Path) -> None:
        self.source_edit.setText(str(path))
        self._source_changed()

    def _source_changed(self) -> None:
        self._probe.stop()
        text = self.source_edit.text().strip()
        if self.create and text and not self.project_edit.text().strip():
            self.project_edit.setText(str(default_project_path(Path(text).expanduser())))
        self._update_info()

    def source_fps(self) -> float | None:
        """The source frame rate asked for, None at the spin box's special value (0)."""
        value = float(self.source_fps_spin.value())
        return value if value > 0 else None

    def _probe_source(self, path: Path) -> SourceInfo | None:
        """``probe_source`` once per path (a video probe opens the file; spin boxes change often)."""
        key = str(path)
        if self._probed[0] != key:
            try:
                self._probed = (key, probe_source(path))
            except (AnnotatorError, OSError, ValueError):
                self._probed = (key, None)
            src = self._probed[1]
            self.source_fps_spin.setSpecialValueText(
                f"the file's ({src.fps:.3g} fps)" if src is not None and src.kind == "video" else FOLDER_EVERY_IMAGE)
        return self._probed[1]

    def _update_info(self) -> None:
        text = self.source_edit.text().strip()
        if not text:
            self.source_info.setText(" ")
            return
        path = Path(text).expanduser()
        self.source_info.setText(describe_source(path, self.fps_spin.value(), self.key_spin.value(),
                                                 self.source_fps(), self._probe_source(path)))

    def _start_folder(self) -> str:
        """Where the source choosers start: beside the current source, else by the project."""
        text = self.source_edit.text().strip()
        if text and Path(text).expanduser().exists():
            return str(Path(text).expanduser().parent)
        return beside_project(self.project) if self.project is not None else project_folder(None)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", self._start_folder(), "Videos (" + " ".join(
            f"*{e}" for e in VIDEO_EXTS) + ");;All files (*)")
        if path:
            self.set_source(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of frames", self._start_folder())
        if path:
            self.set_source(path)

    def _browse_project(self) -> None:
        start = self.project_edit.text().strip() or self._start_folder()
        path, _ = QFileDialog.getSaveFileName(self, "New project folder", start)
        if path:
            self.project_edit.setText(path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX)

    # ------------------------------------------------------------------ result
    def options(self) -> ImportOptions:
        """The chosen options; raises :class:`InputError` naming what is wrong."""
        text = self.source_edit.text().strip()
        if not text:
            raise InputError("choose a video file or a folder of frames to import")
        source = Path(text).expanduser()
        if not source.exists():
            raise InputError(f"{source} does not exist")
        info = describe_source(source, self.fps_spin.value(), self.key_spin.value(), self.source_fps())
        if info.startswith("cannot import"):
            raise InputError(info.removeprefix("cannot import: "))
        if self.create:
            ptext = self.project_edit.text().strip()
            if not ptext:
                raise InputError("choose the folder of the new project")
            project_path = Path(ptext).expanduser()
            if project_path.exists() and (not project_path.is_dir() or any(project_path.iterdir())):
                raise InputError(f"{project_path} exists and is not an empty folder; choose a new folder")
        else:
            project_path = Path(self.project.path)
        return ImportOptions(source=source.resolve(), project_path=project_path.resolve(), create=self.create,
                             name=self.name_edit.text().strip(), dense_fps=float(self.fps_spin.value()),
                             key_every=int(self.key_spin.value()),
                             resize_height=720 if self.downscale.isChecked() else None,
                             source_fps=self.source_fps())

    def accept(self) -> None:
        try:
            self.chosen = self.options()
        except InputError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        super().accept()
