"""Main window: lays out the views and wires them to the controller (no data logic here).

Layout: tool bar; canvas | class picker + track panel; timeline; status bar. The shell (menus,
dialogs, jobs dock, drag and drop: ``menus.install_menus``) is added at the end of ``__init__``
and calls the public members below (``open_project``, ``apply_settings``, ``canvas.set_view_option``,
``undo_action`` ...). The pipeline (``pipeline.Pipeline``: engines, flags, review, dialogs) is
composed here too; it sees this window only as a ``pipeline.host.PipelineHost`` (the controller, the
job runner, a few views and public refresh calls), so it never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from annotator import panoptic
from annotator.backends import BackendStatus, backend_status
from annotator.errors import AnnotatorError
from annotator.gui import track_actions
from annotator.gui.banner import Banner
from annotator.gui.canvas import Canvas
from annotator.gui.class_picker import ClassDialog, ClassPicker
from annotator.gui.controller import Controller
from annotator.gui.job_runner import JobRunner
from annotator.gui.menus import install_menus
from annotator.gui.pipeline import Pipeline
from annotator.gui.resources import ResourceManager
from annotator.gui.shortcuts import BINDINGS, SAFE_COMMANDS, SHORTCUTS, ShortcutRegistry
from annotator.gui.status import StatusWidgets
from annotator.gui.timeline import Timeline
from annotator.gui.toolbar import ToolBar
from annotator.gui.track_panel import TrackPanel, TrackRow
from annotator.project import Project, check_project, describe
from annotator.project.settings import effective

__all__ = ["SHORTCUTS", "MainWindow"]

BY_COMMAND = {b.command: b for b in BINDINGS}
BANNER_ERROR = "background:#b03a2e;color:white;padding:4px;"
BANNER_INFO = "background:#f4d03f;color:black;padding:4px;"


class MainWindow(QMainWindow):
    def __init__(self, project: Project | None = None, backends: BackendStatus | None = None) -> None:
        super().__init__()
        self.project = project
        self.job_runner = JobRunner(self)
        self.resources = ResourceManager(self.job_runner, self)
        self.controller = c = Controller(project, self.resources)
        self.resize(1280, 800)
        self.canvas = Canvas()
        self.tracks = TrackPanel()
        self.picker = ClassPicker()
        self.timeline = Timeline()
        self.video_box = QComboBox()
        self.video_box.setMinimumWidth(90)  # small windows: the tool bar folds into its chevron (issue 23)
        self.banner = Banner()  # word-wrapped, with a close button
        self.banner.hide()
        self.shortcuts = ShortcutRegistry(self, self.run_command)
        self.undo_action = self.shortcuts.actions["undo"]
        self.redo_action = self.shortcuts.actions["redo"]
        self.toolbar = ToolBar(self.shortcuts, self)
        self.addToolBar(self.toolbar)
        self.status = StatusWidgets(self.statusBar())
        self.frame_label = self.status.frame_label
        self.frame_label.setMinimumWidth(0)  # narrow windows: the frame text shrinks instead
        self.backend_label = self.status.backend
        self._play = QTimer(self)
        self._play.timeout.connect(self._play_step)

        top = QHBoxLayout()
        top.addWidget(QLabel("Video:"))
        top.addWidget(self.video_box, 1)
        top.addWidget(self.status.frame_label, 2)
        side = QSplitter(Qt.Vertical)
        side.addWidget(self.picker)
        side.addWidget(self.tracks)
        side.setStretchFactor(1, 1)
        split = QSplitter()
        split.addWidget(self.canvas)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setSizes([940, 340])
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)
        lay.addWidget(self.timeline)
        self.setCentralWidget(central)

        c.video_changed.connect(self._on_video)
        c.frame_changed.connect(self._on_frame)
        c.labels_changed.connect(self._on_labels)
        c.labels_changed.connect(lambda f, _box: self._drop_read_ahead([f]))
        c.history_changed.connect(lambda: self._drop_read_ahead(None))
        c.tracks_changed.connect(self._on_tracks)
        c.selection_changed.connect(self._on_selection)
        c.class_changed.connect(self._on_class)
        c.tool_changed.connect(self._on_tool)
        c.preview_changed.connect(self.canvas.set_preview)
        c.message_posted.connect(self.status.show_message)
        c.messages_cleared.connect(self.status.clear_messages)
        c.history_changed.connect(self._on_history)
        c.brush_changed.connect(self._on_brush)
        c.paint_mode_changed.connect(self.toolbar.set_mode)
        c.recovered.connect(lambda text: self._show_banner(text, BANNER_INFO))
        self.resources.sam_status.connect(self.status.sam.setText)
        self.canvas.pointer.connect(self._on_pointer)
        self.canvas.left_canvas.connect(self._pointer_left)
        c.labels_changed.connect(lambda _f, _box: self._refresh_cursor())  # the read-out after an edit
        self._pointer_at: tuple[float, float] | None = None
        self.timeline.clicked.connect(c.go_to)
        self.tracks.selected.connect(c.select_track)
        self.tracks.visibility_changed.connect(c.set_track_visible)
        self.tracks.lock_changed.connect(c.set_track_locked)
        self.tracks.action.connect(self._track_action)
        self.picker.chosen.connect(c.set_class)
        self.picker.done.connect(lambda: self.canvas.setFocus(Qt.OtherFocusReason))
        self.video_box.currentTextChanged.connect(lambda v: v and self._open_video(v))
        self.toolbar.mode.currentIndexChanged.connect(
            lambda _i: c.set_paint_mode(self.toolbar.mode.currentData()))
        self.toolbar.brush.valueChanged.connect(c.set_brush_radius)

        self._counts: dict[int, int] | None = None
        self.settings: dict[str, Any] = {}
        self.apply_settings(effective(project.settings if project is not None else None))
        self.refresh_backends(backends)
        self._set_project(project)
        self._on_tool(c.tool_name)
        self._on_brush(c.brush_radius)
        install_menus(self)  # the shell: menus, dialogs, jobs dock, drag and drop
        # Pipeline and Review menus, flags / review docks, heat-map (issue 12); after the shell, whose
        # jobs dock the flags dock joins
        self.pipeline = Pipeline(self)

    # ------------------------------------------------------------------ contract with the shell
    def open_project(self, path: str | os.PathLike[str]) -> None:
        project = Project.open(Path(path))
        self.close_project()
        self._set_project(project)

    def close_project(self) -> None:
        self._play.stop()
        self._stop_pipeline()
        self.controller.close_video()
        if self.project is not None:
            self.project = None
        self._set_project(None)

    def _set_project(self, project: Project | None) -> None:
        self.project = project
        self.controller.set_project(project)
        self.picker.set_taxonomy(project.taxonomy if project is not None else None)
        self.setWindowTitle(f"VPS Annotator — {project.name}" if project is not None else "VPS Annotator")
        self.refresh_backends()
        self.refresh_videos()
        if project is None:
            self._on_empty()
        else:
            self._on_class(self.controller.active_class)
            self._report_hidden_videos(project)

    def _report_hidden_videos(self, project: Project) -> None:
        """Name the video folders the list hides (a damaged ``video.json``, an unfinished import):
        they would otherwise vanish from the window without a word (issue 28)."""
        folders = sorted(p.name for p in project.videos_dir.iterdir()
                         if p.is_dir() and not p.name.startswith(".")) if project.videos_dir.is_dir() else []
        hidden = [v for v in folders if v not in set(project.video_ids)]
        problems = check_project(project, hidden) if hidden else []
        if problems:
            text = (f"{len(hidden)} video(s) not listed: {describe(problems, limit=3)}")
            shown = self.banner.text() if not self.banner.isHidden() else ""
            self._show_banner(f"{shown} {text}".strip(), BANNER_ERROR)

    def refresh_videos(self) -> None:
        """Re-read the project's video list (after import/add video); keeps the open video."""
        current = self.controller.video.id if self.controller.video is not None else None
        ids = self.project.video_ids if self.project is not None else []
        self.video_box.blockSignals(True)
        self.video_box.clear()
        self.video_box.addItems(ids)
        self.video_box.blockSignals(False)
        if current in ids:
            self.video_box.setCurrentText(current)
        elif ids:
            self.video_box.setCurrentIndex(0)
            self._open_video(ids[0])

    def open_video(self, video_id: str) -> None:
        """Select a video in the video box and open it (``PipelineHost``: the overview's double click)."""
        self.video_box.setCurrentText(video_id)
        self._open_video(video_id)

    def _open_video(self, video_id: str) -> None:
        """Open a video; a damaged one is reported in the banner instead of stopping the window."""
        if self.controller.video is not None and self.controller.video.id != video_id:
            self._stop_pipeline()
        try:
            self.controller.open_video(video_id)
        except AnnotatorError as e:
            self._show_banner(f"cannot open video {video_id!r}: {e}", BANNER_ERROR)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Defaults from the settings dialog: brush_size, autosave_s, propagation_speed."""
        self.settings.update(settings)
        if "brush_size" in settings:
            self.controller.set_brush_radius(float(settings["brush_size"]))
        if "autosave_s" in settings:
            self.resources.set_autosave(float(settings["autosave_s"]))

    def refresh_backends(self, backends: BackendStatus | None = None) -> None:
        """Re-resolve checkpoints (settings changed): status bar texts, SAM tools on/off with the reason."""
        settings = effective(self.project.settings if self.project is not None else None)
        self.backends = backends or backend_status(settings)
        self.resources.configure(settings)
        self.status.set_backends(self.backends, self.resources.sam_reason)
        self.update_tool_state()

    def update_tool_state(self) -> None:
        """Enable the tool actions that can work now (SAM checkpoint, an editable video), with the reason."""
        c = self.controller
        editable = c.editable
        for name in self.toolbar.tool_actions:
            tool = c.tools[name]
            if tool.needs_sam and not self.resources.sam_available:
                self.shortcuts.set_enabled(f"tool:{name}", False, self.resources.sam_reason)
            elif not editable:
                reason = (c.video.lock_message if c.video is not None and c.video.lock_message
                          else "open a video to edit")
                self.shortcuts.set_enabled(f"tool:{name}", False, f"{tool.title}: disabled ({reason})")
            else:
                b = BY_COMMAND[f"tool:{name}"]
                self.shortcuts.set_enabled(f"tool:{name}", True, f"{b.description} ({' / '.join(b.keys)})")
        if c.tools[c.tool_name].needs_sam and not self.resources.sam_available:
            c.set_tool("polygon")

    _update_tool_state = update_tool_state  # the older name (tests call it)

    # ------------------------------------------------------------------ contract with the pipeline
    @property
    def jobs_dock(self) -> Any:
        """The shell's jobs dock, or ``None`` (``PipelineHost``)."""
        shell = getattr(self, "shell", None)
        return getattr(shell, "dock", None)

    def set_editing_paused(self, paused: bool) -> None:
        """An engine job writes the open video: only the looking commands stay enabled, autosave
        waits; afterwards both come back as the settings say (``PipelineHost``)."""
        for name, act in self.shortcuts.actions.items():
            if name not in SAFE_COMMANDS:
                act.setEnabled(not paused)
        if paused:
            self.resources.autosave.stop()
        else:
            self.resources.set_autosave(float(self.settings.get("autosave_s", 30)))
            self.update_tool_state()

    def refresh_view(self) -> None:
        """Redraw the current frame (an engine rewrote labels on disk; ``PipelineHost``)."""
        self._drop_read_ahead(None)
        self._on_frame(self.controller.index)

    # ------------------------------------------------------------------ commands (shortcuts, tool bar)
    def run_command(self, command: str) -> None:
        c = self.controller
        if command.startswith("tool:"):
            c.set_tool(command[5:])
            self.toolbar.set_tool(c.tool_name)
            return
        if command.startswith("recent:"):
            c.recent_class(int(command[7:]) - 1)
            return
        if command.startswith("paint:"):  # Alt+1..4: paint mode (the tool bar's box follows)
            c.set_paint_mode(command[6:])
            self.status.show_message(f"paint mode: {self.toolbar.mode.currentText()}")
            return
        simple = {
            "next_frame": lambda: c.step(1), "prev_frame": lambda: c.step(-1),
            "next_key": lambda: c.step_keyframe(1), "prev_key": lambda: c.step_keyframe(-1),
            "first_frame": lambda: c.go_to(0), "last_frame": lambda: c.go_to(10**9),
            "play": self._toggle_play, "undo": c.undo, "redo": c.redo, "save": self._save,
            "accept": lambda: c.tool_key("accept"), "cancel": self._cancel,
            "cycle": lambda: c.tool_key("cycle", 1) or c.cycle_track(1),
            "cycle_back": lambda: c.tool_key("cycle", -1) or c.cycle_track(-1),
            "backspace": lambda: c.tool_key("backspace"),
            "brush_bigger": lambda: c.brush_step(1), "brush_smaller": lambda: c.brush_step(-1),
            "new_object": c.new_object, "hide_track": c.toggle_selected_visible,
            "delete_on_frame": lambda: c.selected is not None and track_actions.delete_on_frame(c, c.selected),
            "class_search": self.picker.focus_search,
            "zoom_in": lambda: self.canvas.zoom(1.25), "zoom_out": lambda: self.canvas.zoom(0.8),
        }
        simple[command]()

    def _cancel(self) -> None:
        c = self.controller
        if not c.tool_key("cancel") and c.selected is not None:
            c.select_track(None)

    def _save(self) -> None:
        self.controller.autosave()
        self.status.show_message("saved")

    def _toggle_play(self) -> None:
        v = self.controller.video
        if self._play.isActive() or v is None:
            self._play.stop()
            return
        self._play.start(int(1000 / max(1.0, v.dense_fps)))

    def _play_step(self) -> None:
        c = self.controller
        if c.video is None or c.index >= c.video.num_frames - 1:
            self._play.stop()
            return
        c.step(1)

    def _track_action(self, name: str, args: dict) -> None:
        c = self.controller
        tid = int(args["track"])
        if name == "set_class":
            assert c.video is not None
            dlg = ClassDialog(c.video.taxonomy, c.video.tracks[tid].category_id, self)
            if dlg.exec_() and dlg.category_id is not None:
                track_actions.set_class(c, tid, dlg.category_id)
        elif name == "merge":
            track_actions.merge(c, tid, int(args["absorb"]))
        elif name == "swap":
            track_actions.swap(c, tid, int(args["other"]), int(args["frame"]))
        elif name == "split":
            track_actions.split(c, tid, int(args["frame"]))
        elif name == "delete_on_frame":
            track_actions.delete_on_frame(c, tid)
        elif name == "delete_from":
            track_actions.delete_from(c, tid, int(args["frame"]))
        elif name == "delete":
            track_actions.delete(c, tid)
        elif name == "lock":
            c.set_track_locked(tid, bool(args["locked"]))
        elif name == "visible":
            c.set_track_visible(tid, bool(args["visible"]))

    # ------------------------------------------------------------------ view updates
    def _show_banner(self, text: str, style: str) -> None:
        self.banner.setStyleSheet(style)
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    def _drop_read_ahead(self, frames: list[int] | None) -> None:
        self.resources.drop_labels(frames)

    def _on_empty(self) -> None:
        self.banner.hide()
        self.status.show_cursor("")
        self.frame_label.setText("no project open: File > New project or Open project")
        self.tracks.set_rows([], 0, None)
        self.timeline.set_video([], [])
        self.update_tool_state()

    def _on_video(self) -> None:
        v = self.controller.video
        assert v is not None
        if v.readonly:
            self._show_banner(f"{v.lock_message or 'This video is open read-only'}. Editing tools are disabled.",
                              BANNER_ERROR)
        else:
            self.banner.hide()
        if self.video_box.currentText() != v.id:
            self.video_box.blockSignals(True)
            self.video_box.setCurrentText(v.id)
            self.video_box.blockSignals(False)
        self._refresh_track_colors()
        self._on_history()
        self.update_tool_state()

    def _refresh_track_colors(self) -> None:
        c = self.controller
        self.canvas.set_tracks(c.track_colors(), c.thing_tracks())
        self.canvas.set_style(selected=c.selected, hidden=set(c.hidden_tracks))

    def _on_frame(self, index: int) -> None:
        c, v = self.controller, self.controller.video
        if v is None or c.session is None:
            return
        self.canvas.set_frame(self.resources.frame_image(index), c.display_label(index))
        self.timeline.set_current(index)
        self._update_frame_label()
        self.tracks.set_rows(self._rows(), index, c.selected)
        self._refresh_cursor()

    def _update_frame_label(self) -> None:
        c, v = self.controller, self.controller.video
        if v is None or c.session is None:
            return
        i = c.index
        key = "  KEYFRAME" if v.is_keyframe(i) else ""
        ro = "  [read-only]" if v.readonly else ""
        self.frame_label.setText(f"{v.id}  frame {i + 1}/{v.num_frames} ({v.frame_names[i]})  "
                                 f"state: {c.session.frame_state(i).value}{key}{ro}")

    def _on_labels(self, frame: int, box: object) -> None:
        c = self.controller
        if frame != c.index or c.session is None:
            return
        if c.video is not None and set(c.video.tracks) != set(self.canvas.renderer.colors):
            self._refresh_track_colors()
            box = None
        self.canvas.update_labels(c.session.label(frame), box)  # type: ignore[arg-type]

    def _rows(self) -> list[TrackRow]:
        c, v = self.controller, self.controller.video
        if v is None or c.session is None:
            return []
        colors = c.track_colors()
        if self._counts is None:  # frames per track: recounted after edits, not on every frame switch
            self._counts = c.track_frame_counts()
        counts = self._counts
        here = ({int(i) for i in panoptic.present_ids(c.session.label(c.index))} if c.index in c.session.dirty
                else set(v.frame_tracks(c.index)))
        rows = []
        for t in sorted(v.tracks.values(), key=lambda t: t.id):
            cat = v.taxonomy.get(t.category_id)
            rows.append(TrackRow(t.id, cat.id, cat.name, cat.isthing, colors[t.id], counts.get(t.id, 0),
                                 t.id not in c.hidden_tracks, t.id in c.locked, t.id in here))
        return rows

    def _on_tracks(self) -> None:
        c = self.controller
        self._counts = None
        if c.video is None:
            return
        self._refresh_track_colors()
        if c.session is not None:
            self.canvas.set_labels(c.display_label(c.index))
        self.tracks.set_rows(self._rows(), c.index, c.selected)
        self._refresh_cursor()

    def _on_selection(self, tid: object) -> None:
        self.tracks.select(tid)  # type: ignore[arg-type]
        self.canvas.set_style(selected=tid)

    def _on_class(self, cid: int) -> None:
        self.picker.set_active(cid, self.controller.recent_classes)

    def _on_tool(self, name: str) -> None:
        self.toolbar.set_tool(name)
        tool = self.controller.tools[name]
        self.canvas.set_cursor_radius(tool.cursor_radius)
        self.canvas.set_preview(None)
        self.status.show_message(f"{tool.title} tool", "hint")

    def _on_brush(self, radius: float) -> None:
        self.toolbar.set_brush(radius)
        self.canvas.set_cursor_radius(self.controller.tool.cursor_radius)

    def _on_history(self) -> None:
        c = self.controller
        s = c.session
        self.undo_action.setEnabled(s is not None)
        self.redo_action.setEnabled(s is not None)
        self._counts = None
        if c.video is not None and s is not None:
            self.timeline.set_video([s.frame_state(i) for i in range(c.video.num_frames)], c.video.keyframes)
            self._update_frame_label()

    def _on_pointer(self, kind: str, ev: Any) -> None:
        c = self.controller
        self._pointer_at = (ev.x, ev.y)
        c.pointer(kind, ev)
        if kind == "move":
            self._refresh_cursor()
            self.canvas.set_cursor_radius(c.tool.cursor_radius)

    def _refresh_cursor(self) -> None:
        """The read-out describes the pixel under the pointer as it is now (after an edit, an undo,
        a frame change), not as it was at the last mouse move."""
        at = self._pointer_at
        self.status.show_cursor(self.controller.describe_pixel(*at) if at is not None else "")

    def _pointer_left(self) -> None:
        self._pointer_at = None
        self.status.show_cursor("")

    def _stop_pipeline(self) -> None:
        """A pipeline job writes the open video: cancel it and wait before the video is closed."""
        if getattr(self, "pipeline", None) is not None:
            self.pipeline.jobs.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._play.stop()
        self._stop_pipeline()
        try:
            self.controller.close_video()  # flushes every stroke and releases the lock
        finally:
            self.resources.shutdown()
            self.job_runner.shutdown()
        super().closeEvent(event)
