"""The application shell around the workspace: menu bar, jobs dock, drag and drop, settings, help.

``install_menus(window)`` is called by ``MainWindow`` at the end of its ``__init__``. Everything
here talks to the window through a small set of members (``open_project``, ``close_project``,
``refresh_videos``, ``project``, ``controller.undo/redo``, ``canvas.set_view_option/fit/actual_size``,
``apply_settings``, ``refresh_backends``, ``job_runner``), each looked up when used, so the shell
and the workspace evolve separately.

Keys have one owner. A key the workspace already binds (a ``QShortcut`` or action on the window)
is shown in the menu as a hint only, never bound twice: Qt treats two bindings of one key as
ambiguous and fires neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup, QDockWidget, QFileDialog, QMenu, QShortcut, QWidget

from annotator.errors import AnnotatorError
from annotator.gui.dialogs.help_dialogs import AboutDialog, ShortcutSheet, menu_shortcuts, workspace_shortcuts
from annotator.gui.dialogs.new_project import ImportDialog, ImportOptions, run_import
from annotator.gui.dialogs.settings_dialog import SettingsDialog
from annotator.gui.drop import DropHandler, Dropped
from annotator.gui.job_runner import DONE, FAILED, Job, JobRunner
from annotator.gui.jobs_panel import JobsPanel
from annotator.gui.pipeline.widgets import beside_project
from annotator.project import settings as user_settings

OPACITIES = (0.25, 0.5, 0.75, 1.0)
#: view options: (name passed to canvas.set_view_option, menu text, wanted key, default)
VIEW_TOGGLES = (("overlay", "&Overlay", "T", True), ("outline_only", "Outlines &only", "O", False),
                ("only_selected", "Only the &selected track", "Shift+S", False),
                ("hide_stuff", "&Hide stuff", "Shift+H", False))


def ask_directory(parent: QWidget, title: str) -> str:
    """A folder chooser (a module function so tests can answer it), started beside the open (else
    the last) project, never in the program's working directory."""
    return QFileDialog.getExistingDirectory(parent, title, beside_project(getattr(parent, "project", None)))


def install_menus(window: Any) -> None:
    """Build the menu bar, the jobs dock, the drop handler and the help keys on ``window``."""
    window.shell = Shell(window)


def _taken_keys(window: QWidget) -> set[str]:
    """Key sequences the window already binds (portable text), from shortcuts and actions."""
    keys: set[str] = set()
    for sc in window.findChildren(QShortcut):
        if sc.isEnabled() and not sc.key().isEmpty():
            keys.add(sc.key().toString(QKeySequence.PortableText))
    for action in window.findChildren(QAction):
        keys.update(s.toString(QKeySequence.PortableText) for s in action.shortcuts() if not s.isEmpty())
    return keys


class Shell(QObject):
    """Owns the menus, dialogs and dock of one window (kept as ``window.shell``)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        if getattr(window, "job_runner", None) is None:
            window.job_runner = JobRunner(window)
        self.runner: JobRunner = window.job_runner
        self.actions: dict[str, QAction] = {}
        self.dialogs: dict[str, QWidget] = {}
        self._taken = _taken_keys(window)
        self._import_queue: list[ImportOptions] = []
        style = getattr(getattr(window, "canvas", None), "style", None)  # start from what the canvas shows
        self.view_state: dict[str, Any] = {name: getattr(style, name, default) for name, _t, _k, default in VIEW_TOGGLES}
        self.view_state["opacity"] = float(getattr(style, "opacity", 0.5))

        bar = window.menuBar()
        self.menus = [self._file_menu(bar.addMenu("&File")), self._edit_menu(bar.addMenu("&Edit")),
                      self._view_menu(bar.addMenu("&View")), self._help_menu(bar.addMenu("&Help"))]
        self.jobs_panel = JobsPanel(self.runner)
        self.dock = QDockWidget("Jobs", window)
        self.dock.setObjectName("jobs_dock")
        self.dock.setWidget(self.jobs_panel)
        window.addDockWidget(Qt.BottomDockWidgetArea, self.dock)
        self.dock.hide()
        toggle = self.dock.toggleViewAction()
        toggle.setText("&Jobs panel")
        self.menus[2].addSeparator()
        self.menus[2].addAction(toggle)
        self.actions["jobs_panel"] = toggle
        self.runner.job_added.connect(self._job_added)
        self.runner.job_finished.connect(self._job_finished)
        self.drop_handler = DropHandler(window, self.handle_drop)
        self._update_enabled()
        self.apply_settings(backends=False)

    # ------------------------------------------------------------------ building
    def _action(self, name: str, text: str, slot: Callable[..., Any], key: str | QKeySequence | None = None,
                checkable: bool = False, checked: bool = False) -> QAction:
        """An action whose key is bound only if nobody else binds it (else shown as a hint)."""
        action = QAction(text, self.window)
        action.setObjectName(f"action_{name}")
        if checkable:
            action.setCheckable(True)
            action.setChecked(checked)
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        if key:
            seq = QKeySequence(key)
            if seq.toString(QKeySequence.PortableText) in self._taken:
                action.setText(f"{text}\t{seq.toString(QKeySequence.NativeText)}")
            else:
                action.setShortcut(seq)
                self._taken.add(seq.toString(QKeySequence.PortableText))
        self.actions[name] = action
        return action

    def _file_menu(self, menu: QMenu) -> QMenu:
        menu.addAction(self._action("new_project", "&New project...", self.new_project, "Ctrl+Shift+N"))
        menu.addAction(self._action("open_project", "&Open project...", self.choose_project, "Ctrl+O"))
        self.recent_menu = menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        menu.addSeparator()
        menu.addAction(self._action("add_video", "&Add video...", self.add_video, "Ctrl+Shift+I"))
        menu.addSeparator()
        menu.addAction(self._action("close_project", "&Close project", self.close_project, "Ctrl+W"))
        menu.addAction(self._action("quit", "&Quit", self.window.close, "Ctrl+Q"))
        return menu

    def _edit_menu(self, menu: QMenu) -> QMenu:
        for name, text, method, keys in (("undo", "&Undo", "undo", QKeySequence.Undo),
                                         ("redo", "&Redo", "redo", "Ctrl+Shift+Z")):
            action = getattr(self.window, f"{name}_action", None)
            if not isinstance(action, QAction):  # the workspace did not expose one: show the key only
                action = self._action(name, text, lambda m=method: self._controller_call(m), keys)
                setattr(self.window, f"{name}_action", action)
            self.actions[name] = action
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self._action("preferences", "&Preferences...", self.preferences, "Ctrl+,"))
        return menu

    def _workspace_action(self, command: str) -> QAction | None:
        """The workspace's own action for ``command`` (its ``ShortcutRegistry``), to reuse in a menu."""
        actions = getattr(getattr(self.window, "shortcuts", None), "actions", None)
        action = actions.get(command) if isinstance(actions, dict) else None
        return action if isinstance(action, QAction) else None

    def _view_menu(self, menu: QMenu) -> QMenu:
        for name, text, key, _default in VIEW_TOGGLES:
            shared = self._workspace_action("toggle_overlay") if name == "overlay" else None
            if shared is not None:  # T toggles it there: one action, so menu and key never disagree
                self.actions[name] = shared
                menu.addAction(shared)
                continue
            menu.addAction(self._action(name, text, lambda on, n=name: self.set_view(n, on), key,
                                        checkable=True, checked=bool(self.view_state[name])))
        opacity = menu.addMenu("Overlay o&pacity")
        group = QActionGroup(self.window)
        for value in OPACITIES:
            action = self._action(f"opacity_{int(value * 100)}", f"{int(value * 100)} %",
                                  lambda on, v=value: on and self.set_view("opacity", v),
                                  checkable=True, checked=abs(value - self.view_state["opacity"]) < 0.01)
            group.addAction(action)
            opacity.addAction(action)
        menu.addSeparator()
        for name, text, key in (("fit", "&Fit to window", "Ctrl+F"), ("actual_size", "&Actual size (1:1)", "Ctrl+0")):
            shared = self._workspace_action(name)
            if shared is not None:
                self.actions[name] = shared
                menu.addAction(shared)
            else:
                menu.addAction(self._action(name, text, lambda m=name: self._canvas_call(m), key))
        return menu

    def _help_menu(self, menu: QMenu) -> QMenu:
        menu.addAction(self._action("shortcuts", "&Keyboard shortcuts", self.show_shortcuts, "F1"))
        menu.addAction(self._action("about", "&About VPS Annotator", self.show_about))
        return menu

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = user_settings.recent_projects()
        for i, path in enumerate(paths, 1):
            action = self.recent_menu.addAction(f"&{i % 10} {Path(path).name}  ({Path(path).parent})")
            action.setToolTip(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_project(p))
        if paths:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(lambda _c=False: user_settings.clear_recent())
        else:
            none = self.recent_menu.addAction("(no recent projects)")
            none.setEnabled(False)

    def _update_enabled(self) -> None:
        has = getattr(self.window, "project", None) is not None
        for name in ("add_video", "close_project"):
            self.actions[name].setEnabled(has)

    # ------------------------------------------------------------------ window calls
    def _call(self, obj: Any, method: str, *args: Any) -> Any:
        fn = getattr(obj, method, None)
        if not callable(fn):
            self.message(f"not available in this window: {method}")
            return None
        return fn(*args)

    def _controller_call(self, method: str) -> None:
        self._call(getattr(self.window, "controller", None), method)

    def _canvas_call(self, method: str, *args: Any) -> None:
        self._call(getattr(self.window, "canvas", None), method, *args)

    def message(self, text: str, ms: int = 8000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def set_view(self, name: str, value: Any) -> None:
        self.view_state[name] = value
        self._canvas_call("set_view_option", name, value)

    # ------------------------------------------------------------------ settings
    def apply_settings(self, backends: bool = True) -> dict[str, Any]:
        """Push the settings that apply now (defaults < user < project) to the window; with
        ``backends`` also re-resolve checkpoints (the window did that itself at start-up)."""
        project = getattr(self.window, "project", None)
        settings = user_settings.effective(project.settings if project is not None else None)
        if callable(getattr(self.window, "apply_settings", None)):
            self.window.apply_settings(settings)
        if backends and callable(getattr(self.window, "refresh_backends", None)):
            self.window.refresh_backends()
        return settings

    def preferences(self) -> SettingsDialog:
        dlg = SettingsDialog(getattr(self.window, "project", None), self.runner, self.window)
        dlg.saved.connect(lambda _s: (self.apply_settings(), self.message("settings saved")))
        return self._show("preferences", dlg)

    def _show(self, name: str, dlg: QWidget, modal: bool = True) -> Any:
        """Show a dialog without blocking the event loop (``open`` for window-modal ones)."""
        old = self.dialogs.get(name)
        if old is not None:
            old.close()
        dlg.setAttribute(Qt.WA_DeleteOnClose, True)
        dlg.destroyed.connect(lambda _o=None, n=name, d=dlg: self.dialogs.get(n) is d and self.dialogs.pop(n))
        self.dialogs[name] = dlg
        if modal:
            dlg.open()
        else:
            dlg.show()
        return dlg

    # ------------------------------------------------------------------ projects
    def open_project(self, path: str | Path) -> bool:
        try:
            self._call(self.window, "open_project", Path(path))
        except (AnnotatorError, OSError, ValueError) as exc:  # a slot must not raise (PyQt aborts)
            self.message(f"cannot open {path}: {exc}")
            return False
        project = getattr(self.window, "project", None)
        if project is not None:
            user_settings.add_recent(project.path)
        self._update_enabled()
        self.apply_settings(backends=False)  # the window re-resolves checkpoints when a project opens
        return True

    def choose_project(self) -> None:
        path = ask_directory(self.window, "Open project (a NAME.vpsproj folder)")
        if path:
            self.open_project(path)

    def close_project(self) -> None:
        self._call(self.window, "close_project")
        self._update_enabled()

    def new_project(self, source: str | Path | None = None) -> ImportDialog:
        dlg = ImportDialog(None, source, self.window)
        dlg.accepted.connect(lambda: self.start_import(dlg.chosen))
        return self._show("import", dlg)

    def add_video(self, source: str | Path | None = None, more: list[Path] | None = None) -> ImportDialog | None:
        project = getattr(self.window, "project", None)
        if project is None:
            return self.new_project(source)
        dlg = ImportDialog(project, source, self.window)
        dlg.accepted.connect(lambda: self.start_import(dlg.chosen, more or []))
        return self._show("import", dlg)

    def start_import(self, options: ImportOptions, more: list[Path] | None = None) -> Job:
        """Run an import in the background; then open the new project or list the new video.
        ``more`` sources follow one after another with the same options."""
        self._import_queue.extend(replace(options, source=p, create=False, name="") for p in (more or []))
        self.show_jobs()
        return self.runner.submit(options.title, lambda progress, cancel: run_import(options, progress, cancel),
                                  on_done=lambda result: self._imported(options, result))

    def _imported(self, options: ImportOptions, result: tuple[Path, str]) -> None:
        path, video_id = result
        project = getattr(self.window, "project", None)
        if options.create:
            self.open_project(path)
        elif project is not None and Path(project.path) == Path(path):
            self._call(self.window, "refresh_videos")
        self.message(f"imported {options.source.name} as video {video_id}")
        if self._import_queue:
            self.start_import(self._import_queue.pop(0))

    def handle_drop(self, dropped: Dropped) -> None:
        if dropped.projects:
            self.open_project(dropped.projects[0])
            return
        first, *rest = dropped.sources
        if getattr(self.window, "project", None) is None:
            self.new_project(first)
            if rest:
                self.message(f"importing {first.name} first; drop the other {len(rest)} once the project exists")
        else:
            self.add_video(first, rest)

    # ------------------------------------------------------------------ jobs
    def _job_added(self, job: Job) -> None:
        if not job.external:
            self.show_jobs()

    def show_jobs(self) -> None:
        """Show the jobs dock (low: one line per job) if it is hidden."""
        if self.dock.isHidden():
            self.dock.show()
            self.window.resizeDocks([self.dock], [190], Qt.Vertical)

    def _job_finished(self, job: Job) -> None:
        if job.status == FAILED:
            self.message(f"{job.title} failed: {job.error}", 15000)
        elif job.status == DONE and not job.external and not self.runner.running:
            self.message(f"{job.title}: done")

    # ------------------------------------------------------------------ help
    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = workspace_shortcuts()
        seen = {r[0] for r in rows}
        return rows + [r for r in menu_shortcuts(self.menus) if r[0] not in seen]

    def show_shortcuts(self) -> ShortcutSheet:
        return self._show("shortcuts", ShortcutSheet(self.shortcut_rows(), self.window), modal=False)

    def show_about(self) -> AboutDialog:
        return self._show("about", AboutDialog(self.window))
