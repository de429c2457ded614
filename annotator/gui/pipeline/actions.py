"""Pipeline and Review menus: associate, propagate, flags, heat-map, review mode, score, export, overview.

What each action calls (never re-implemented here): ``annotator.stages.association.associate_video``,
``annotator.stages.propagate.run_propagate`` (the stage's face, as ``main.py propagate`` calls it; the
engine from :func:`build_propagator`: the settings' backend, flow at the settings' speed),
``annotator.review.compute_flags``
and ``annotator.review.ReviewStore``; long runs go through :class:`EngineJobs` (background
job, progress, cancel, the ``EditSession`` flush / invalidate contract).

The window reaches this module only as a ``PipelineHost`` (``host.py``): the pipeline works on the
controller and the job runner and never imports the main window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QDialog, QDialogButtonBox, QDockWidget, QFormLayout, QSpinBox

from annotator.errors import AnnotatorError
from annotator.gui.pipeline.engine_job import EngineJobs
from annotator.gui.pipeline.export_dialog import ExportDialog
from annotator.gui.pipeline.flag_source import (
    association_flags,
    association_ran,
    changed_tracks,
    live_rows,
    track_table,
)
from annotator.gui.pipeline.flags_panel import FlagRow, FlagsPanel, association_rows, review_rows
from annotator.gui.pipeline.heatmap import HeatmapItem
from annotator.gui.pipeline.host import PipelineHost
from annotator.gui.pipeline.import_dialog import ImportDatasetDialog
from annotator.gui.pipeline.overview import OverviewDialog
from annotator.gui.pipeline.preannotation import Preannotation
from annotator.gui.pipeline.review_panel import ReviewPanel
from annotator.gui.pipeline.score_dialog import ScoreDialog
from annotator.project import FrameState, require_intact_labels
from annotator.project.settings import effective
from annotator.review import ReviewStore, compute_flags, refresh_flags, shown_frame, visible
from annotator.stages.association import associate_video
from annotator.stages.corrections import CorrectionResult, touched_tracks
from annotator.stages.propagate import (
    PropagateOptions,
    ReviewFlag,
    load_confidence,
    run_propagate,
)
from propagation.factory import DEFAULT_SPEED, association_propagator, dense_backend

SPEEDS = ("fast", "balanced", "quality")


def build_propagator(settings: dict[str, Any]) -> Any:
    """The dense propagator the effective settings ask for, built as ``main.py propagate`` builds it
    (``PropagateOptions.with_engine``: the settings' backend, the same rule as the status bar), flow
    at their speed. The propagate job passes it to the stage as the options' ``engine``."""
    speed = settings.get("propagation_speed")
    return PropagateOptions(speed=speed if speed in SPEEDS else None, settings=settings).with_engine().engine


def propagation_profile(settings: dict[str, Any]) -> str:
    """What the propagate job runs, for its name in the jobs panel: ``flow, fast`` or ``memory``
    (:func:`build_propagator`'s rule, so the name and the engine agree with the status bar)."""
    if dense_backend(settings) == "memory":
        return "memory"
    speed = settings.get("propagation_speed")
    return f"flow, {speed if speed in SPEEDS else DEFAULT_SPEED}"


def keyframe_gap(keyframes: list[int], index: int, num_frames: int) -> tuple[int, int]:
    """The keyframe gap around ``index``: previous keyframe (or 0) to next keyframe (or the last frame)."""
    before = [k for k in keyframes if k <= index]
    after = [k for k in keyframes if k > index]
    return (before[-1] if before else 0), (after[0] if after else num_frames - 1)


class RangeDialog(QDialog):
    """Frames from / to (1-based, inclusive) for "Propagate selected range"."""

    def __init__(self, num_frames: int, start: int, end: int, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Propagate a range")
        self.first, self.last = QSpinBox(), QSpinBox()
        for box, value in ((self.first, start), (self.last, end)):
            box.setRange(1, num_frames)
            box.setValue(value + 1)
        lay = QFormLayout(self)
        lay.addRow("from frame", self.first)
        lay.addRow("to frame", self.last)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addRow(buttons)

    @property
    def frame_range(self) -> tuple[int, int]:
        a, b = self.first.value() - 1, self.last.value() - 1
        return min(a, b), max(a, b)


class Pipeline(QObject):
    """Owns the pipeline's actions, docks and overlay on one window (kept as ``window.pipeline``)."""

    def __init__(self, window: PipelineHost) -> None:
        super().__init__(window)  # type: ignore[arg-type] - the host is a QMainWindow
        self.window = w = window
        self.controller = window.controller
        self.jobs = EngineJobs(window)
        self.actions: dict[str, QAction] = {}
        self.last_association: Any = None
        self.last_propagation: Any = None
        self.reassociate_after_corrections = True
        self._log_seen = 0  # entries of the open video's log the flags are up to date with
        self._tracks_seen: dict[int, int] = {}  # its track table then (track_table)
        self.association_ran = False  # the open video has association flags (maybe none left)
        self.heatmap = HeatmapItem()
        w.canvas.scene().addItem(self.heatmap)
        self.flags = FlagsPanel()
        self.flags_dock = QDockWidget("Flags", w)
        self.flags_dock.setObjectName("flags_dock")
        self.flags_dock.setWidget(self.flags)
        # wide rows (the reasons) fit under the canvas, in a tab next to the jobs panel
        w.addDockWidget(Qt.BottomDockWidgetArea, self.flags_dock)
        if w.jobs_dock is not None:
            w.tabifyDockWidget(w.jobs_dock, self.flags_dock)
        self.flags_dock.hide()
        self.flags.jump.connect(self.jump)
        self.flags.compute.connect(self.compute_flags)
        self.flags.dismiss.connect(self.dismiss_flag)
        self.review = ReviewPanel(self)
        self.review_dock = QDockWidget("Review", w)
        self.review_dock.setObjectName("review_dock")
        self.review_dock.setWidget(self.review)
        w.addDockWidget(Qt.RightDockWidgetArea, self.review_dock)
        self.review_dock.hide()
        self._build_menus()
        c = w.controller
        c.frame_changed.connect(lambda _i: self.update_heatmap())
        c.video_changed.connect(self._video_changed)
        c.history_changed.connect(self._history_changed)  # corrections, their undo and redo
        w.tracks.action.connect(self._after_track_action)
        if c.video is not None:
            self._video_changed()

    # ------------------------------------------------------------------ menus
    def _action(self, name: str, text: str, slot: Callable[..., Any], key: str | None = None,
                checkable: bool = False, checked: bool = False) -> QAction:
        act = QAction(text, self.window)
        act.setObjectName(f"action_{name}")
        if checkable:
            act.setCheckable(True)
            act.setChecked(checked)
            act.toggled.connect(slot)
        else:
            act.triggered.connect(lambda _=False: slot())
        if key:
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.WindowShortcut)
        self.window.addAction(act)
        self.actions[name] = act
        return act

    def _build_menus(self) -> None:
        bar = self.window.menuBar()
        m = bar.addMenu("&Pipeline")
        m.setObjectName("menu_pipeline")
        m.addAction(self._action("associate", "&Associate keyframes (whole video)", self.associate, "Ctrl+Shift+A"))
        m.addAction(self._action("associate_from", "Associate from the &current keyframe on",
                                 lambda: self.associate(from_current=True)))
        m.addAction(self._action("reassociate", "Re-associate after track &corrections", self._set_reassociate,
                                 checkable=True, checked=True))
        m.addSeparator()
        m.addAction(self._action("propagate", "&Propagate whole video", self.propagate, "Ctrl+Shift+B"))
        m.addAction(self._action("propagate_gap", "Propagate this keyframe &gap (re-propagate around this frame)",
                                 lambda: self.propagate("gap"), "Ctrl+B"))
        m.addAction(self._action("propagate_range", "Propagate a &range...", lambda: self.propagate("ask")))
        m.addAction(self._action("cancel_job", "Cancel the running pipeline job", self.jobs.cancel))
        m.addSeparator()
        m.addAction(self._action("heatmap", "Confidence &heat-map", self.set_heatmap, "Ctrl+H", checkable=True))
        flags = self.flags_dock.toggleViewAction()
        flags.setText("&Flags panel")
        m.addAction(flags)
        m.addSeparator()
        self.preannotation = pre = Preannotation(self)
        d = m.addMenu("Pre-a&nnotation (Clip-PanoFCN)")
        d.addAction(self._action("preannotate", "&Pre-annotate this video", pre.run))
        d.addAction(self._action("preannotate_replace", "Pre-annotate again (&replace the unaccepted draft)",
                                 lambda: pre.run(replace=True)))
        d.addSeparator()
        d.addAction(self._action("accept_draft_frame", "Accept the draft on this &frame",
                                 lambda: pre.decide(True, "frame")))
        d.addAction(self._action("accept_draft_track", "Accept the draft of the selected &track",
                                 lambda: pre.decide(True, "track")))
        d.addAction(self._action("accept_draft_video", "Accept the whole draft", lambda: pre.decide(True, "video")))
        d.addAction(self._action("reject_draft_frame", "Reject the draft on this frame",
                                 lambda: pre.decide(False, "frame")))
        d.addAction(self._action("reject_draft_track", "Reject the draft of the selected track",
                                 lambda: pre.decide(False, "track")))
        d.addAction(self._action("score_draft", "&Score the draft against the final labels...", pre.score_draft))
        m.addSeparator()
        m.addAction(self._action("score", "&Score two label sources...", self.open_score))
        m.addAction(self._action("export", "&Export dataset...", self.open_export))
        m.addAction(self._action("import_dataset", "&Import dataset...", self.open_import))
        m.addAction(self._action("overview", "Project &overview...", self.open_overview))
        r = bar.addMenu("&Review")
        r.setObjectName("menu_review")
        r.addAction(self._action("review_mode", "&Review mode", self.set_review_mode, "Ctrl+Shift+R",
                                 checkable=True))
        r.addAction(self._action("compute_flags", "&Compute review flags", self.compute_flags))
        r.addAction(self._action("next_flag", "&Next flag", lambda: self.step_flag(True), "F"))
        r.addAction(self._action("prev_flag", "&Previous flag", lambda: self.step_flag(False), "Shift+F"))
        r.addSeparator()
        rv = self.review
        r.addAction(self._action("accept_track", "&Accept selected track", rv.accept_track, "Ctrl+Return"))
        r.addAction(self._action("reject_track", "Re&ject selected track", rv.reject_track, "Ctrl+Backspace"))
        r.addAction(self._action("accept_frame", "Accept this &frame", rv.accept_frame, "Ctrl+Shift+Return"))
        r.addAction(self._action("reject_frame", "Reject this frame", rv.reject_frame))
        r.addAction(self._action("accept_all", "Accept &all tracks", rv.accept_all))
        r.addAction(self._action("review_csv", "Save review report (CSV)...", rv.save_csv))
        self.menus = [m, r]
        helps = [a for a in bar.actions() if a.text().replace("&", "") == "Help"]
        for act in helps:  # Help stays the last menu, as in every desktop program
            bar.removeAction(act)
            bar.addAction(act)

    # ------------------------------------------------------------------ association
    def settings(self) -> dict[str, Any]:
        """Defaults < the user's settings < the project's (``annotator.project.settings.effective``)."""
        project = self.window.project
        return effective(project.settings if project is not None else None)

    def associate(self, from_current: bool = False, start: int | None = None) -> Any:
        """Associate keyframes (whole video, from the current keyframe, or from ``start``) as a job."""
        c = self.controller
        if c.video is None:
            c.message("associate: open a video first")
            return None
        if from_current:
            start = keyframe_gap(c.video.keyframes, c.index, c.video.num_frames)[0]

        def work(video: Any, progress: Any, cancel: Any) -> Any:
            require_intact_labels(video, f"association of video {video.id!r}")  # as the CLI (issue 28)
            return associate_video(video, association_propagator(), start=start, progress=progress, cancel=cancel)

        where = "" if not start else f" from frame {shown_frame(start)}"
        return self.jobs.start(f"associate keyframes of {c.video.id}{where}", work,
                               lambda res: self._associated(res, start))

    def _associated(self, res: Any, start: int | None) -> None:
        c = self.controller
        self.last_association = res
        video = c.video
        if res.undo_id and video is not None:
            def redo() -> CorrectionResult:
                again = associate_video(video, association_propagator(), start=start)
                return CorrectionResult("associate", again.undo_id, list(again.keyframes))

            c.undo_stack.push_correction("associate keyframes", res.undo_id, redo)
            c.history_changed.emit()
        self._mark_seen()
        self.association_ran = True
        self.flags.set_association(association_rows(res.flags))
        if res.flags:
            self.show_flags()
        skipped = f", {len(res.skipped)} keyframe(s) not annotated (skipped)" if res.skipped else ""
        c.message(f"associated {len(res.keyframes)} keyframe(s): {len(res.new_tracks)} new track(s), "
                  f"{len(res.flags)} flag(s){skipped}")

    def _set_reassociate(self, on: bool) -> None:
        self.reassociate_after_corrections = bool(on)

    def _after_track_action(self, name: str, args: dict) -> None:
        """A frame-based correction from the track panel fixed a keyframe: re-associate from there on
        (cancellable), so the fix reaches the later keyframes."""
        if not self.reassociate_after_corrections or name not in ("swap", "split", "delete_from"):
            return
        c = self.controller
        if c.video is None or not c.video.keyframes:
            return
        last = c.undo_stack.undo_entries[-1] if c.undo_stack.undo_entries else None
        if last is None or last.kind != "correction" or not last.name.startswith(("swap", "split", "delete")):
            return  # the correction was refused (its message says why): nothing to carry on
        frame = int(args.get("frame", c.index))
        later = [k for k in c.video.keyframes if k >= frame and c.video.frame_tracks(k)]
        if later and len([k for k in c.video.keyframes if c.video.frame_tracks(k)]) > 1:
            self.associate(start=later[0])

    # ------------------------------------------------------------------ propagation
    def propagate(self, scope: str = "video", frame_range: tuple[int, int] | None = None) -> Any:
        """Propagate the whole video, the keyframe ``gap`` around the current frame, a range (``ask``)
        or ``frame_range`` as a background job."""
        c = self.controller
        if c.video is None:
            c.message("propagate: open a video first")
            return None
        if scope == "gap":
            frame_range = keyframe_gap(c.video.keyframes, c.index, c.video.num_frames)
        elif scope == "ask" and frame_range is None:
            lo, hi = keyframe_gap(c.video.keyframes, c.index, c.video.num_frames)
            dlg = RangeDialog(c.video.num_frames, lo, hi, self.window)
            if not dlg.exec_():
                return None
            frame_range = dlg.frame_range
        settings = self.settings()

        def work(video: Any, progress: Any, cancel: Any) -> Any:
            # the stage checks the video, drops the stale evidence of new references, propagates
            options = PropagateOptions(settings=settings, frame_range=frame_range, engine=build_propagator(settings))
            return run_propagate(video, options, progress, cancel)

        what = "" if frame_range is None else f" frames {shown_frame(frame_range[0])}-{shown_frame(frame_range[1])}"
        return self.jobs.start(f"propagate {c.video.id}{what} ({propagation_profile(settings)})", work,
                               self._propagated)

    def _propagated(self, report: Any) -> None:
        self.last_propagation = report
        rows = [r for r in self.flags.review if r.source == "review"]
        dense = [f for f in report.flags if isinstance(f, ReviewFlag)]
        rows += [FlagRow("propagation", f.kind, f.frame, f.track, 1.0 - f.low_share, f.reason or
                         f"{100 * f.low_share:.0f}% of track {f.track} has low confidence") for f in dense]
        self.flags.set_review(rows)
        self.update_heatmap()
        self.controller.message(report.summary())

    # ------------------------------------------------------------------ heat-map
    def set_heatmap(self, on: bool) -> None:
        self.heatmap.setVisible(bool(on))
        self.update_heatmap()

    def update_heatmap(self) -> None:
        if not self.heatmap.isVisible():
            return
        c = self.controller
        v = c.video
        # a frame a person refined or accepted is a reference now: its old doubts are stale
        fresh = v is not None and c.session is not None and c.session.frame_state(c.index) == FrameState.PROPAGATED
        conf = load_confidence(v, c.index) if fresh else None
        shown = self.heatmap.show_confidence(conf, v.height, v.width) if v is not None else False
        if not shown and v is not None:
            c.message(f"frame {shown_frame(c.index)}: no confidence map (not propagated)")

    # ------------------------------------------------------------------ flags
    def show_flags(self) -> None:
        self.flags_dock.show()
        self.flags_dock.raise_()

    def jump(self, frame: int, track: int | None) -> None:
        c = self.controller
        c.go_to(frame)
        if track is not None:
            c.select_track(track)
        self.review.show_track(c.selected)

    def compute_flags(self) -> Any:
        """Run the automatic review checks (``annotator.review``) as a job; cache them in the review store."""
        def work(video: Any, progress: Any, cancel: Any) -> Any:
            require_intact_labels(video, f"review flags of video {video.id!r}")  # stored: a write (issue 28)
            flags = visible(compute_flags(video, progress=progress, cancel=cancel))
            ReviewStore(video).set_flags(flags)
            return flags

        c = self.controller
        title = f"review flags of {c.video.id}" if c.video is not None else "review flags"
        return self.jobs.start(title, work, self._flags_computed)

    def _flags_computed(self, flags: list[Any]) -> None:
        v = self.controller.video
        shown = (ReviewStore(v).open_flags() or []) if v is not None else flags  # decided ones stay closed
        others = [r for r in self.flags.review if r.source != "review"]
        self.flags.set_review(review_rows(shown) + others)
        self.show_flags()
        self.controller.message(f"{len(shown)} open review flag(s) of {len(flags)}")

    def reload_review_flags(self) -> None:
        """After review decisions: the panel lists the open flags (accepted tracks and frames close theirs)."""
        v = self.controller.video
        if v is None:
            return
        cached = ReviewStore(v).open_flags()
        if cached is None:
            return
        others = [r for r in self.flags.review if r.source != "review"]
        self.flags.set_review(review_rows(cached) + others)

    def _mark_seen(self) -> None:
        v = self.controller.video
        self._log_seen = len(v.log) if v is not None else 0
        self._tracks_seen = track_table(v) if v is not None else {}

    def _history_changed(self) -> None:
        """A correction, its undo or redo changed tracks: the flags of the touched tracks are brought
        up to date in both views (``flag_source``); a plain label edit leaves them alone."""
        v = self.controller.video
        if v is None or self.jobs.busy:
            return
        n = len(v.log)
        if n == self._log_seen:
            return
        since, before = self._log_seen, self._tracks_seen
        self._mark_seen()
        touched = touched_tracks(v, since) | changed_tracks(before, self._tracks_seen)
        if not touched:
            return
        self.refresh_flags(touched)

    def refresh_flags(self, tracks: set[int]) -> None:
        """Recompute the flags of ``tracks`` after a correction: association flags from the match
        tables as the tracks are now, review flags of those tracks, propagation flags of live tracks."""
        c = self.controller
        v = c.video
        if v is None:
            return
        run_only = list(self.last_association.flags) if self.last_association is not None else []
        try:
            assoc = association_flags(v, run_only)
            review = refresh_flags(v, tracks) if c.editable else ReviewStore(v).open_flags()
        except AnnotatorError as e:
            c.message(f"flags could not be refreshed: {e}")
            return
        others = live_rows(v, [r for r in self.flags.review if r.source != "review"])
        self.flags.assoc = association_rows(assoc)
        self.flags.set_review((review_rows(review) if review is not None else []) + others)

    def dismiss_flag(self, row: Any) -> bool:
        """A review flag that is not an error: recorded in the review store, gone from the list."""
        c = self.controller
        if c.video is None or self.jobs.busy:
            return False
        if row.source != "review":
            self.flags.remove(row)  # association / propagation flags are not stored: hide it
            return True
        try:
            ReviewStore(c.video).dismiss_flag(row.key, self.review.comment.text().strip())
        except AnnotatorError as e:
            c.message(f"dismiss flag: {e}")
            return False
        self.flags.remove(row)
        self.review.update_progress()
        c.message(f"flag {row.kind} on frame {shown_frame(row.frame)} dismissed")
        return True

    def step_flag(self, forward: bool) -> None:
        rows = self.flags.rows
        c = self.controller
        if not rows:
            c.message("no flags: compute them first (Review > Compute review flags)")
            return
        pool = sorted(rows, key=lambda r: (r.frame, r.track))
        if forward:
            row = next((r for r in pool if r.frame > c.index), pool[0])
        else:
            row = next((r for r in reversed(pool) if r.frame < c.index), pool[-1])
        n = self.flags.rows.index(row)
        self.flags.tree.setCurrentItem(self.flags.item_of(n))
        self.jump(row.frame, row.track or None)
        c.message(f"flag {row.kind} on frame {shown_frame(row.frame)}: {row.reason}")

    def _video_changed(self) -> None:
        self.association_ran = False
        self.flags.clear_all()
        c = self.controller
        v = c.video
        if v is None:
            return
        self._mark_seen()
        try:
            self.association_ran = association_ran(v)
            self.flags.set_association(association_rows(association_flags(v)))
            cached = ReviewStore(v).open_flags()
            if cached:
                self.flags.set_review(review_rows(cached))
        except Exception as exc:  # noqa: BLE001 - stale or damaged cached flags must not stop opening
            c.message(f"flags of {v.id} could not be read: {exc}")
        self.review.video_changed()
        self.update_heatmap()

    # ------------------------------------------------------------------ review mode, dialogs
    def set_review_mode(self, on: bool) -> None:
        """Reviewer layout: review dock and flags in front, the class picker out of the way."""
        self.review_dock.setVisible(bool(on))
        self.window.picker.setVisible(not on)
        if on:
            self.show_flags()
            self.review.show_track(self.controller.selected)

    def open_score(self) -> Any:
        dlg = ScoreDialog(self.window)
        dlg.show()
        self.score_dialog = dlg
        return dlg

    def open_export(self) -> Any:
        dlg = ExportDialog(self.window)
        dlg.show()
        self.export_dialog = dlg
        return dlg

    def open_import(self) -> Any:
        dlg = ImportDatasetDialog(self.window)
        dlg.show()
        self.import_dialog = dlg
        return dlg

    def open_overview(self) -> Any:
        dlg = OverviewDialog(self.window)
        dlg.show()
        dlg.reload()
        self.overview_dialog = dlg
        return dlg
