"""Preferences: a checkpoint per model kind and the working defaults, for the user or one project.

Checkpoints are validated the moment they are chosen, through ``models.weights`` (loads the file,
compares every key and shape with the network): an accepted file shows its sha256, a refused one
keeps the previous choice and shows why. Loading a 2.5 GB SAM-H file takes seconds, so with a job
runner the check runs in the background and appears in the jobs panel.

Scope: "me" writes the user's settings file (all projects), "this project" writes only what
differs from the user's level into ``project.json`` (``annotator.project.settings``, the one owner
of every default and of the merge rule). The propagation speed chosen here is the
``propagation_speed`` the window, ``main.py propagate``, batch and ``eval-propagation`` all read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5 import sip
from PyQt5.QtCore import QRect, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotator.errors import AnnotatorError
from annotator.gui.pipeline.widgets import beside_project
from annotator.project import settings as user_settings
from models.weights import REGISTRY, get_kind, validate_checkpoint

OK_STYLE, BAD_STYLE, INFO_STYLE = "color:#1e7b34;", "color:#b03a2e;", "color:#666;"
USER, PROJECT = "user", "project"


def check_checkpoint(path: str, kind: str) -> str:
    """Validate ``path`` as a ``kind`` checkpoint; the accepted line (sha256 ...) or CheckpointError."""
    info = validate_checkpoint(path, kind, "settings")
    return (f"accepted ({info.size / 1e6:.1f} MB, {info.num_tensors} tensors)\n"
            f"sha256 {info.sha256}")


class CheckpointRow:
    """Widgets of one model kind: path, Browse, Clear, and the validation line under them."""

    def __init__(self, dialog: SettingsDialog, kind: str, description: str, grid: QGridLayout, row: int) -> None:
        self.dialog, self.kind = dialog, kind
        self.value = ""  # the accepted path ("" = none at this scope)
        self.pending = ""
        name = QLabel(f"<b>{kind}</b>")
        name.setToolTip(description)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("no checkpoint (" + description + ")")
        self.edit.editingFinished.connect(lambda: self.choose(self.edit.text().strip()))
        self.browse = QPushButton("Browse...")
        self.browse.clicked.connect(self._browse)
        self.clear = QPushButton("Clear")
        self.clear.clicked.connect(lambda: self.choose(""))
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        grid.addWidget(name, 2 * row, 0)
        grid.addWidget(self.edit, 2 * row, 1)
        grid.addWidget(self.browse, 2 * row, 2)
        grid.addWidget(self.clear, 2 * row, 3)
        grid.addWidget(self.status, 2 * row + 1, 1, 1, 3)

    def show_status(self, text: str, style: str) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(style)
        # a wrapped label in a grid does not ask for the height it needs: fix it from the text
        width = self.status.width() if self.status.isVisible() and self.status.width() > 100 else 560
        rect = self.status.fontMetrics().boundingRect(QRect(0, 0, width - 8, 100000),
                                                      int(Qt.TextWordWrap), text)
        self.status.setFixedHeight(rect.height() + 4)
        self.edit.setToolTip(self.edit.text())
        QTimer.singleShot(0, self.dialog.fit_contents)  # once the layout has seen the new height

    def load(self, path: str, inherited: str = "") -> None:
        """Show a stored value without a deep check (cheap: a file that exists is assumed fine)."""
        self.value = path
        self.edit.setText(path)
        override = self.env_override()
        if override:
            self.show_status(override, BAD_STYLE if path else INFO_STYLE)
        elif not path:
            self.show_status(f"inherited from your settings: {inherited}" if inherited else "not set", INFO_STYLE)
        elif Path(path).expanduser().is_file():
            self.show_status("file exists (checked when chosen)", INFO_STYLE)
        else:
            self.show_status(f"file not found: {path}", BAD_STYLE)

    def env_override(self) -> str:
        """Environment variables win over settings (``models.weights``): say so, or the choice
        made here would silently not apply."""
        for var in get_kind(self.kind).env_vars:
            if os.environ.get(var):
                return f"the environment variable {var}={os.environ[var]} overrides this setting"
        return ""

    def _browse(self) -> None:
        path = self.dialog.ask_file(f"{self.kind} checkpoint", self.start_folder())
        if path:
            self.edit.setText(path)
            self.choose(path)

    def start_folder(self) -> str:
        """Where Browse opens: beside the current checkpoint, else beside the open project (else the
        last one), else the home folder - never the program's working directory, where Qt starts
        a dialog given no folder (``gui.pipeline.widgets.beside_project``)."""
        if self.value:
            folder = Path(self.value).expanduser().parent
            if folder.is_dir():
                return str(folder)
        return beside_project(self.dialog.project)

    def choose(self, path: str) -> None:
        """The user picked ``path``: validate it, then accept it or show why not."""
        if path == self.value or path == self.pending:
            return
        if not path:
            self.value = ""
            self.edit.setText("")
            self.show_status("not set", INFO_STYLE)
            self.dialog.changed.emit()
            return
        self.pending = path
        self.show_status(f"checking {path} ...", INFO_STYLE)
        self.dialog.run_check(f"check {self.kind} checkpoint", lambda: check_checkpoint(path, self.kind),
                              lambda text: self._accepted(path, text), lambda exc: self._refused(path, exc))

    def _gone(self) -> bool:
        """The dialog was closed while the check ran in the background: nothing to show it on."""
        return sip.isdeleted(self.status)

    def _accepted(self, path: str, text: str) -> None:
        if self._gone() or self.pending != path:
            return  # a newer choice is being checked
        self.pending = ""
        self.value = path
        self.edit.setText(path)
        override = self.env_override()
        self.show_status(f"{text}\nnote: {override}" if override else text, OK_STYLE)
        self.dialog.changed.emit()

    def _refused(self, path: str, exc: BaseException) -> None:
        if self._gone() or self.pending != path:
            return
        self.pending = ""
        self.edit.setText(self.value)
        name = Path(path).name
        reason = str(exc)
        for form in {str(Path(path).expanduser().resolve()), str(Path(path).expanduser()), path}:
            reason = reason.replace(form, name)  # the full path is in the field above; keep the reason short
        kept = f" Keeping {Path(self.value).name}." if self.value else ""
        self.show_status(f"refused {name}: {reason}{kept}", BAD_STYLE)


class SettingsDialog(QDialog):
    """The preferences dialog; ``saved(dict)`` carries the settings that now apply."""

    saved = pyqtSignal(dict)
    changed = pyqtSignal()

    def __init__(self, project: Any = None, runner: Any = None, parent: QWidget | None = None,
                 ask_file: Callable[[str, str], str] | None = None) -> None:
        super().__init__(parent)
        self.project, self.runner = project, runner
        self._ask_file = ask_file
        self.setWindowTitle("Preferences")
        self.error_label = QLabel()
        self.error_label.setStyleSheet(BAD_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        self.scope_user = QRadioButton("for me (all projects)")
        self.scope_project = QRadioButton(f"for this project only ({project.name})" if project else "for this project only")
        self.scope_project.setEnabled(project is not None)
        self.scope_user.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.scope_user)
        group.addButton(self.scope_project)
        self.scope_user.toggled.connect(lambda _on: self.load_scope())
        scope = QHBoxLayout()
        scope.addWidget(QLabel("Settings"))
        scope.addWidget(self.scope_user)
        scope.addWidget(self.scope_project)
        scope.addStretch(1)

        models = QGroupBox("Model checkpoints (validated when chosen)")
        grid = QGridLayout(models)
        grid.setColumnStretch(1, 1)
        self.rows = {kind: CheckpointRow(self, kind, REGISTRY[kind].description, grid, i)
                     for i, kind in enumerate(REGISTRY)}  # registry order: sam b/l/h, stcn, ...

        defaults = QGroupBox("Defaults")
        form = QFormLayout(defaults)
        self.speed = QComboBox()
        self.speed.addItems(user_settings.PROPAGATION_SPEEDS)
        self.speed.setToolTip("optical-flow profile: fast (coarse, >10 frames/s) ... quality (slow, most accurate)")
        self.backend = QComboBox()
        self.backend.addItems(user_settings.PROPAGATION_BACKENDS)
        self.backend.setToolTip("flow: optical flow, no weights; memory: the STCN network (needs its checkpoint "
                                "above). The window, main.py propagate and batch use the same choice.")
        self.brush = QSpinBox()
        self.brush.setRange(*user_settings.LIMITS["brush_size"])
        self.brush.setSuffix(" px")
        self.autosave = QSpinBox()
        self.autosave.setRange(*user_settings.LIMITS["autosave_s"])
        self.autosave.setSuffix(" s")
        form.addRow("Propagation backend:", self.backend)
        form.addRow("Propagation speed:", self.speed)
        form.addRow("Brush size:", self.brush)
        form.addRow("Autosave every:", self.autosave)

        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.Save)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(scope)
        lay.addWidget(models)
        lay.addWidget(defaults)
        lay.addWidget(self.error_label)
        lay.addWidget(buttons)
        self.load_scope()
        # resize, not setMinimumWidth: an explicit minimum stops the layout from enforcing its own
        # minimum height, and grown status lines would be clipped
        self.resize(max(760, self.sizeHint().width()), self.sizeHint().height())

    def fit_contents(self) -> None:
        """Grow to show a longer status line (word-wrapped labels do not resize their dialog)."""
        layout = self.layout()
        if layout is not None and self.isVisible():
            layout.activate()
            wanted = max(self.sizeHint().height(), self.minimumSizeHint().height())
            if wanted > self.height():
                self.resize(self.width(), wanted)

    # ------------------------------------------------------------------ scope
    @property
    def scope(self) -> str:
        return PROJECT if self.scope_project.isChecked() else USER

    def _user(self) -> dict[str, Any]:
        try:
            return user_settings.load_user()
        except AnnotatorError as exc:
            self.error_label.setText(f"{exc} (saving replaces the broken values)")
            self.error_label.show()
            return {}

    def load_scope(self) -> None:
        """Show the values that apply at the chosen scope."""
        user = self._user()
        user_level = user_settings.merge(user_settings.DEFAULTS, user)
        if self.scope == USER:
            values, inherited = user_level, {}
        else:
            values = user_settings.merge(user_level, self.project.settings)
            inherited = user_level["checkpoints"]
            values["checkpoints"] = {k: v for k, v in (self.project.settings.get("checkpoints") or {}).items() if v}
        for kind, row in self.rows.items():
            row.pending = ""
            row.load(values["checkpoints"].get(kind, ""), inherited.get(kind, ""))
        self.speed.setCurrentText(str(values.get("propagation_speed", user_settings.DEFAULT_SPEED)))
        backend = str(values.get("propagation_backend") or user_settings.DEFAULTS["propagation_backend"])
        if self.backend.findText(backend) < 0:  # an older project's value (e.g. "copy") round-trips
            self.backend.addItem(backend)
        self.backend.setCurrentText(backend)
        self.brush.setValue(int(values.get("brush_size", user_settings.DEFAULTS["brush_size"])))
        self.autosave.setValue(int(values.get("autosave_s", user_settings.DEFAULTS["autosave_s"])))

    def values(self) -> dict[str, Any]:
        """The dialog's values at its scope (checkpoints: the accepted paths only)."""
        return {"checkpoints": {k: r.value for k, r in self.rows.items() if r.value},
                "propagation_speed": self.speed.currentText(),
                "propagation_backend": self.backend.currentText(),
                "brush_size": self.brush.value(), "autosave_s": self.autosave.value()}

    # ------------------------------------------------------------------ checking files
    def ask_file(self, title: str, start: str) -> str:
        if self._ask_file is not None:
            return self._ask_file(title, start)
        path, _ = QFileDialog.getOpenFileName(self, title, start, "Checkpoints (*.pth *.pt *.ckpt *.bin);;All files (*)")
        return path

    def run_check(self, title: str, fn: Callable[[], str], ok: Callable[[str], None],
                  bad: Callable[[BaseException], None]) -> None:
        """Run a checkpoint check in the background when a job runner is at hand, else right away."""
        if self.runner is None:
            try:
                text = fn()
            except Exception as exc:  # noqa: BLE001 - any failure is a refusal with its reason
                bad(exc)
            else:
                ok(text)
            return
        self.runner.submit(title, lambda progress, cancel: fn(), on_done=ok, on_error=bad)

    @property
    def checking(self) -> bool:
        return any(r.pending for r in self.rows.values())

    # ------------------------------------------------------------------ saving
    def accept(self) -> None:
        if self.checking:
            self.error_label.setText("a checkpoint is still being checked; wait for its result")
            self.error_label.show()
            return
        try:
            values = user_settings.validate(self.values())
            if self.scope == USER:
                user_settings.save_user(values)
            else:
                user_settings.save_project(self.project, values, user_settings.merge(user_settings.DEFAULTS,
                                                                                      self._user()))
        except (AnnotatorError, OSError) as exc:
            self.error_label.setText(f"not saved: {exc}")
            self.error_label.show()
            return
        self.saved.emit(user_settings.effective(self.project.settings if self.project is not None else None))
        super().accept()
