"""The window's controller: owns the open video, its ``EditSession``, the selection and the tools.

Views (canvas, timeline, track panel, class picker) never touch the project: they show what the
controller's signals carry and call its methods. The controller is also the tools' host
(``tools.base.ToolHost``): it resolves which track a mask goes to (stuff -> its class's track; a
thing -> the selected track, else a new one), applies every label change through ``EditSession``
and keeps one undo order over edits and corrections (``undo_stack``). Corrections themselves are in
``track_actions``, which drives this controller (it imports the controller, never the reverse).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from annotator import panoptic
from annotator.editing import EditError, EditSession, Erase, FillRegion, Operation, Paint, PaintMode, Region
from annotator.errors import AnnotatorError, InputError, ProjectError
from annotator.gui import readout
from annotator.gui.paint_modes import protected_pixels, protected_text
from annotator.gui.resources import ResourceManager
from annotator.gui.tools import TOOL_CLASSES, Preview, Tool
from annotator.gui.tools import modes as tool_modes
from annotator.gui.tools.base import ToolCall, end_interaction
from annotator.gui.undo_stack import Entry, UndoStack, run_entry
from annotator.project import Project, Video, check_open_video, describe, issue_problems
from annotator.review import check_review_file, review_path

MAX_RECENT = 9
BRUSH_SIZES = (1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64, 90, 128)


class Controller(QObject):
    video_changed = pyqtSignal()
    frame_changed = pyqtSignal(int)
    labels_changed = pyqtSignal(int, object)  # frame, (y0, x0, y1, x1) or None for the whole frame
    tracks_changed = pyqtSignal()
    selection_changed = pyqtSignal(object)  # track id or None
    class_changed = pyqtSignal(int)
    tool_changed = pyqtSignal(str)
    preview_changed = pyqtSignal(object)  # Preview or None
    message_posted = pyqtSignal(str, str)  # text, scope (``status.SCOPES``: the state it belongs to)
    messages_cleared = pyqtSignal(str)  # scope: that state ended, its messages go
    history_changed = pyqtSignal()
    brush_changed = pyqtSignal(float)
    recovered = pyqtSignal(str)
    paint_mode_changed = pyqtSignal(str)

    def __init__(self, project: Project | None, resources: ResourceManager) -> None:
        super().__init__()
        self.project = project
        self.resources = resources
        self.video: Video | None = None
        self.session: EditSession | None = None
        self.index = 0
        self.hidden_tracks: set[int] = set()
        self.locked: set[int] = set()
        self.selected: int | None = None
        self.active_class = 0
        self.recent_classes: list[int] = []
        self.paint_mode = PaintMode.PANOPTIC  # things over stuff, stuff behind things (issue 23)
        self._protected = 0  # pixels a paint kept from the track in the current group (brush stroke)
        self._protected_thing = True
        self.brush_radius: float = 8.0
        self.undo_stack = UndoStack()
        self.tools: dict[str, Tool] = {cls.name: cls(self) for cls in TOOL_CLASSES}
        self.tool_name = "polygon"
        self._group: Any = None
        self._calls = ToolCall()  # inside a tool's event or key: its messages belong to the tool
        self._group_changed = False
        self._group_box: list[int] | None = None
        resources.autosave_due.connect(self.autosave)
        resources.embedding_ready.connect(self._embedding_ready)
        resources.embedding_failed.connect(self._embedding_failed)
        if project is not None and len(project.taxonomy):
            self.active_class = project.taxonomy.categories[0].id

    # ------------------------------------------------------------------ project and video
    def set_project(self, project: Project | None) -> None:
        self.close_video()
        self.clear_messages("project")
        self.project = project
        if project is not None and len(project.taxonomy):
            self.active_class = project.taxonomy.categories[0].id
        self.recent_classes = []

    def open_video(self, video_id: str) -> None:
        if self.project is None or (self.video is not None and self.video.id == video_id):
            return
        self.close_video()
        self.clear_messages("video")
        self.video = self.project.open_video(video_id)
        self.session = EditSession(self.video, locked=self.locked)
        self.index = 0
        self.hidden_tracks.clear()
        self.locked.clear()
        self.session.locked = self.locked
        self.selected = None
        self.undo_stack.clear()
        self.resources.open_video(self.video, 0)
        self.video_changed.emit()
        self.frame_changed.emit(0)
        self.tracks_changed.emit()
        self.history_changed.emit()
        self._report_recovery()

    def _report_recovery(self) -> None:
        s, v = self.session, self.video
        assert s is not None and v is not None
        parts = []
        if s.recovered:
            frames = ", ".join(f"{i + 1} ({v.frame_names[i]})" for i in s.recovered[:12])
            more = f" and {len(s.recovered) - 12} more" if len(s.recovered) > 12 else ""
            parts.append(f"Recovered unsaved edits after an unexpected exit on frame(s) {frames}{more} "
                         f"of video {v.id!r}; they are saved now.")
        if s.history.load_warning:
            parts.append(s.history.load_warning)
        if v.recovery_notes:  # an operation killed half way was rolled back, or the journal was cut
            parts.append("Crash recovery: " + "; ".join(v.recovery_notes) + ".")
        problems = check_open_video(v)  # quick: two file look-ups a frame, after recovery ran
        # side files named too (issue 28): a damaged review.json disables review decisions
        problems += issue_problems(v.id, check_review_file(review_path(v), v.num_frames))
        if problems:
            parts.append(f"{len(problems)} integrity problem(s): {describe(problems, limit=3)}")
        if parts:
            text = " ".join(parts)
            self.recovered.emit(text)
            self.message(text)

    def close_video(self) -> None:
        """Flush every stroke, stop SAM work for the video and release its lock."""
        self._end_tool()
        if self.video is not None:
            self.clear_messages("video")
        self.resources.open_video(None)
        if self.video is not None:
            try:
                if self.session is not None:
                    self.session.close()
            finally:
                self.video.close()
        self.video = None
        self.session = None

    @property
    def editable(self) -> bool:
        return self.video is not None and not self.video.readonly

    def flush(self) -> list[int]:
        """Write pending label maps (the save queue) - frame change, autosave, close, Ctrl+S."""
        if self.session is None or not self.editable:
            return []
        try:
            return self.session.flush()
        except AnnotatorError as e:  # a failed save stays pending (dirty) and says why
            self.message(f"saving failed, edits are kept in memory and in the undo journal: {e}")
            return []

    def autosave(self) -> None:
        if self.video is None or not self.editable or self._group is not None:
            return
        self.flush()
        with contextlib.suppress(ProjectError, OSError):
            self.video.save()

    # ------------------------------------------------------------------ navigation
    def go_to(self, index: int) -> None:
        if self.video is None:
            return
        index = max(0, min(self.video.num_frames - 1, int(index)))
        if index == self.index:
            return
        self.clear_messages("frame")
        self._end_tool()
        step, self.index = index - self.index, index
        self.frame_changed.emit(index)
        self.resources.read_ahead(index, step, self.session.dirty if self.session is not None else [])
        self.resources.request(index)
        if self.session is not None and self.session.dirty:
            QTimer.singleShot(0, self.flush)  # after the new frame is shown

    def step(self, delta: int) -> None:
        self.go_to(self.index + delta)

    def step_keyframe(self, direction: int) -> None:
        if self.video is None:
            return
        keys = self.video.keyframes
        if direction > 0:
            later = [k for k in keys if k > self.index]
            self.go_to(later[0] if later else self.video.num_frames - 1)
        else:
            earlier = [k for k in keys if k < self.index]
            self.go_to(earlier[-1] if earlier else 0)

    # ------------------------------------------------------------------ selection, class, tracks
    def select_track(self, track_id: int | None) -> None:
        if self.video is not None and track_id is not None and track_id not in self.video.tracks:
            track_id = None
        if track_id == self.selected:
            return
        self.selected = track_id
        if track_id is not None:
            self._set_class(self.video.tracks[track_id].category_id)
        self.selection_changed.emit(track_id)

    def new_object(self) -> None:
        """N: the next thing mask starts a new track (a pending SAM/GrabCut result is accepted first)."""
        self.tool_key("accept")
        self.select_track(None)

    def cycle_track(self, step: int) -> None:
        counts = self.track_frame_counts()  # the tracks the panel lists (with pixels somewhere)
        ids = sorted(t for t in self.video.tracks if counts.get(t)) if self.video is not None else []
        if not ids:
            return
        pos = ids.index(self.selected) if self.selected in ids else (-1 if step > 0 else 0)
        self.select_track(ids[(pos + step) % len(ids)])

    def set_class(self, category_id: int) -> None:
        """Picking a class: a selected track of another class is deselected (next mask = new track)."""
        sel = self.selected
        if self.video is not None and sel is not None and self.video.tracks[sel].category_id != category_id:
            self.selected = None
            self.selection_changed.emit(None)
        self._set_class(category_id)

    def _set_class(self, category_id: int) -> None:
        self.active_class = int(category_id)
        if category_id in self.recent_classes:
            self.recent_classes.remove(category_id)
        self.recent_classes.insert(0, int(category_id))
        del self.recent_classes[MAX_RECENT:]
        self.class_changed.emit(self.active_class)

    def recent_class(self, n: int) -> None:
        if 0 <= n < len(self.recent_classes):
            self.set_class(self.recent_classes[n])

    def set_track_visible(self, track_id: int, visible: bool) -> None:
        (self.hidden_tracks.discard if visible else self.hidden_tracks.add)(track_id)
        self.tracks_changed.emit()

    def toggle_selected_visible(self) -> None:
        if self.selected is not None:
            self.set_track_visible(self.selected, self.selected in self.hidden_tracks)

    def set_track_locked(self, track_id: int, locked: bool) -> None:
        (self.locked.add if locked else self.locked.discard)(track_id)
        self.tracks_changed.emit()

    def track_colors(self) -> dict[int, tuple[int, int, int]]:
        """Display colour per track (cached until a track is added, removed or re-classed)."""
        if self.video is None:
            return {}
        tracks = self.video.tracks
        key = tuple(sorted((t.id, t.category_id) for t in tracks.values()))
        if key != self._colors_key:
            tax = self.video.taxonomy
            self._colors = panoptic.display_colors(  # instances of a class: distinct shades (issue 23)
                (t.id, t.category_id, tax.get(t.category_id).color, tax.get(t.category_id).isthing)
                for t in tracks.values())
            self._colors_key = key
        return dict(self._colors)

    _colors_key: tuple = ()
    _colors: dict[int, tuple[int, int, int]] = {}  # noqa: RUF012 - replaced, never mutated

    def thing_tracks(self) -> set[int]:
        if self.video is None:
            return set()
        tax = self.video.taxonomy
        return {t.id for t in self.video.tracks.values() if tax.get(t.category_id).isthing}

    def track_frame_counts(self) -> dict[int, int]:
        return readout.track_frame_counts(self.video, self.session)

    def describe_pixel(self, x: float, y: float) -> str:
        """Cursor read-out: position, track and class under the pointer."""
        if self.video is None or self.session is None:
            return ""
        return readout.describe_pixel(self.video, self.display_label(self.index), self.locked, x, y)

    # ------------------------------------------------------------------ tools
    @property
    def tool(self) -> Tool:
        return self.tools[self.tool_name]

    def set_tool(self, name: str) -> None:
        if name in tool_modes.COMMANDS:  # a tool's mode (scissors, superpixel scale), not a tool
            tool_modes.run(self, name)
            return
        if name not in self.tools:
            raise KeyError(name)
        if self.tools[name].needs_sam and not self.resources.sam_available:
            self.message(self.resources.sam_reason)
            return
        if name == self.tool_name:
            return  # the same tool again: its pending work stays as it is
        self.clear_messages("tool")
        kept = self._end_tool(switch=True)
        self.tool_name = name
        self.tool_changed.emit(name)
        with self._calls:
            self.tool.resume()
        if kept:
            self.message(kept, "tool")
        if self.tools[name].needs_sam:
            self.resources.request(self.index)

    def _end_tool(self, switch: bool = False) -> str:
        """End the active tool's interaction (``tools.base.end_interaction``)."""
        tools = getattr(self, "tools", {})
        with self._calls:
            kept = end_interaction(tools.values(), tools.get(self.tool_name), switch)
        if self._group is not None:
            self.end_group()
        return kept

    def tool_key(self, what: str, *args: Any) -> bool:
        """Enter/Esc/Backspace/Tab (``accept``/``cancel``/``backspace``/``cycle``) for the tool;
        ``False`` when it had nothing to do. Esc also drops the tool's messages."""
        if what == "cancel":
            self.clear_messages("tool")
        with self._calls:
            return bool(getattr(self.tool, what)(*args))

    def pointer(self, kind: str, ev: Any) -> None:
        """Canvas events in image coordinates, routed to the active tool."""
        if kind == "move" and not ev.buttons:
            with self._calls:
                self.tool.move(ev)  # hover (previews)
            return
        if not self.editable:
            if kind == "press":
                self.message(self.video.lock_message if self.video is not None and self.video.lock_message
                             else "no video open" if self.video is None else "this video is read-only")
            return
        with self._calls:
            getattr(self.tool, {"press": "press", "move": "move", "release": "release",
                                "double": "double_click"}[kind])(ev)

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(max(0.5, min(256.0, radius)))
        self.brush_changed.emit(self.brush_radius)

    def brush_step(self, direction: int) -> None:
        """``]`` / ``[``: next size on a roughly geometric scale (small sizes step finely)."""
        r = self.brush_radius
        bigger = [s for s in BRUSH_SIZES if s > r + 1e-6]
        smaller = [s for s in BRUSH_SIZES if s < r - 1e-6]
        if direction > 0 and bigger:
            self.set_brush_radius(bigger[0])
        elif direction < 0 and smaller:
            self.set_brush_radius(smaller[-1])

    def set_paint_mode(self, mode: PaintMode | str) -> None:
        self.paint_mode = PaintMode(mode)
        self.paint_mode_changed.emit(self.paint_mode.value)

    def _report_protected(self, op: Paint | FillRegion, name: str) -> bool:
        """A paint changed nothing (returns ``False``): if the mode or a lock kept the pixels, say so."""
        n = protected_pixels(self.session, self.index, op)
        if n and self._group is not None:
            self._protected, self._protected_thing = self._protected + n, op.thing
        elif n:
            self.message(protected_text(name, n, self.paint_mode, op.thing))
        return False

    # ------------------------------------------------------------------ ToolHost
    def image(self) -> np.ndarray:
        assert self.video is not None
        try:
            return self.video.read_frame(self.index)
        except InputError:  # missing or damaged JPEG, named in the banner on open: a grey frame
            return np.full((*self.video.shape, 3), 64, np.uint8)

    def label(self) -> np.ndarray:
        assert self.session is not None
        return self.session.label(self.index)

    def display_label(self, frame: int) -> np.ndarray:
        """The label map to show: the session's if the frame has edits, else a read-ahead copy."""
        assert self.session is not None
        pre = self.resources.prefetch.label(frame) if self.resources.prefetch is not None else None
        if pre is not None and frame not in self.session.dirty:
            return pre
        return self.session.label(frame)

    def message(self, text: str, scope: str | None = None) -> None:
        """A status message for the state ``scope`` (``status.SCOPES``; default: a tool's own while
        it handles an event, else the open video's); it goes when that state ends."""
        scope = scope or ("tool" if self._calls.active else "video")
        self._calls.posted |= self._calls.active and scope != "hint"
        self.message_posted.emit(text, scope)

    def clear_messages(self, scope: str) -> None:
        self.messages_cleared.emit(scope)  # commit, Esc, a tool/frame/video/project change

    def show_preview(self, preview: Preview | None) -> None:
        self.preview_changed.emit(preview)
        if preview is None:
            self.clear_messages("hint")  # the hint described this preview
        elif preview.text and not (self._calls.active and self._calls.posted):
            self.message(preview.text, "hint")  # a message of this same gesture (an error) stays

    def preview_color(self) -> tuple[int, int, int]:
        if self.video is None:
            return (255, 220, 0)
        if self.selected is not None and self.selected in self.video.tracks:
            return self.track_colors()[self.selected]
        cat = self.video.taxonomy.get(self.active_class)
        return tuple(int(c) for c in cat.color)  # type: ignore[return-value]

    def target_track(self) -> int:
        """Where a new mask goes: stuff -> its class's track; a thing -> the selected track, else a new
        track (which becomes the selection, so the brush then fixes that object)."""
        assert self.video is not None
        tracks = self.video.tracks
        cat = self.video.taxonomy.get(self.active_class)
        if self.selected is not None and self.selected in tracks and tracks[self.selected].category_id == cat.id:
            return self.selected
        tid = None
        if not cat.isthing:
            tid = next((t.id for t in sorted(tracks.values(), key=lambda t: t.id) if t.category_id == cat.id), None)
        if tid is None:
            tid = self.video.new_track(cat.id).id
            self.tracks_changed.emit()
        self.select_track(tid)
        return tid

    def paint(self, region: Region, name: str) -> bool:
        if not self.editable or region.empty:
            return False
        try:
            tid = self.target_track()
        except AnnotatorError as e:
            self.message(str(e))
            return False
        op = Paint(region, tid, self.paint_mode, name=name, thing=tid in self.thing_tracks())
        return self.apply(op, name) or self._report_protected(op, name)

    def erase(self, region: Region, name: str) -> bool:
        return self.apply(Erase(region, name=name), name)

    def fill(self, point: tuple[float, float], name: str, by_colour: bool = False) -> bool:
        try:
            tid = self.target_track()
        except AnnotatorError as e:
            self.message(str(e))
            return False
        op = FillRegion(point, tid, name=name, mode=self.paint_mode, thing=tid in self.thing_tracks())
        return self.apply(op, name) or self._report_protected(op, name)

    def apply(self, op: Operation, name: str) -> bool:
        if self.session is None or not self.editable:
            return False
        try:
            change = self.session.apply(self.index, op, name)
        except (EditError, AnnotatorError) as e:
            self.message(str(e))
            return False
        if change is None:
            return False
        h, w = change.after.shape
        box = (change.y0, change.x0, change.y0 + h, change.x0 + w)
        if self._group is None:
            self.undo_stack.push_edit(name)
            self._after_edit()
        else:
            self._group_changed = True
        self.labels_changed.emit(self.index, box)
        return True

    def _after_edit(self) -> None:
        self.history_changed.emit()
        self.tracks_changed.emit()

    def begin_group(self, name: str) -> None:
        if self.session is None or self._group is not None:
            return
        self._group = self.session.group(name)
        self._group.__enter__()
        self._group_name = name
        self._group_changed = False
        self._protected = 0

    def end_group(self) -> None:
        if self._group is None:
            return
        group, self._group = self._group, None
        group.__exit__(None, None, None)
        if self._group_changed:
            self.undo_stack.push_edit(self._group_name)
            self._after_edit()
        elif self._protected:
            self.message(protected_text(self._group_name, self._protected, self.paint_mode, self._protected_thing))
        self._protected = 0

    def sam_request(self, tool: Any) -> tuple[Any, Any] | None:
        if not self.resources.sam_available:
            self.message(self.resources.sam_reason)
            return None
        if self.resources.sam_error:
            self.message(self.resources.sam_error)
            return None
        got = self.resources.embedding(self.index)
        if got is None:
            self.message(f"SAM: waiting for the embedding of frame {self.index + 1} "
                         f"({self.resources.status_text}); the click is decoded when it is ready")
        return got

    def _embedding_ready(self, frame: int) -> None:
        tool = self.tool
        if frame == self.index and getattr(tool, "waiting", False):
            with self._calls:
                tool.embedding_ready()

    def _embedding_failed(self, frame: int, text: str) -> None:
        tool = self.tool
        if getattr(tool, "waiting", False) and frame in (-1, self.index):
            with self._calls:
                tool.cancel()
                self.message(f"{text}; the SAM prompt was dropped")
        else:
            self.message(text)

    # ------------------------------------------------------------------ undo / redo
    # A pending polygon, SAM prompt or GrabCut box is left alone: Ctrl+Z undoes committed actions only
    # (Backspace removes points), so one key press never loses both (labelme #591).
    def undo(self) -> None:
        if self.session is None or self._group is not None:
            return
        entry = self.undo_stack.next_undo(self.session.can_undo, self.session.history.undo_name)
        if entry is None:
            self.message("nothing to undo", "frame")
            return
        if self._run_entry(entry, redo=False):
            self.undo_stack.undone(entry)
            self.message(f"undone: {entry.name}", "frame")
        self.history_changed.emit()

    def redo(self) -> None:
        if self.session is None or self._group is not None:
            return
        entry = self.undo_stack.next_redo()
        if entry is None:
            self.message("nothing to redo", "frame")
            return
        if self._run_entry(entry, redo=True):
            self.undo_stack.redone(entry, entry.undo_id)
            self.message(f"redone: {entry.name}", "frame")
        self.history_changed.emit()

    def _run_entry(self, entry: Entry, redo: bool) -> bool:
        """Undo (or redo) one entry; ``False`` with a message when the engine refuses."""
        s, v = self.session, self.video
        assert s is not None and v is not None
        try:
            frames = run_entry(entry, s, v, redo)
        except (EditError, AnnotatorError) as e:
            self.message(f"cannot {'redo' if redo else 'undo'} {entry.name}: {e}")
            return False
        if self.selected is not None and (self.selected not in v.tracks
                                          or not self.track_frame_counts().get(self.selected)):
            self.select_track(None)  # gone, or left without pixels (no longer listed in the track panel)
        self.show_frames_changed([f for f in frames if f == self.index] or frames[:1])
        return True

    def show_frames_changed(self, frames: list[int]) -> None:
        """After undo/redo/corrections: show the first changed frame if the current one did not change."""
        if frames and self.index not in frames and self.video is not None:
            self.go_to(frames[0])
        self.labels_changed.emit(self.index, None)
        self.tracks_changed.emit()
