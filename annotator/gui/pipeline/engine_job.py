"""Running an engine on the open video in the background, with the ``EditSession`` contract.

Why this shape: association and propagation read and write label files of the open video while the
window stays usable (navigate, look, cancel). Before the job, pending strokes are flushed (the
engine must see them); during it, editing is paused - the canvas swallows drawing clicks and the
edit commands are disabled, and autosave is held - so the window never writes the frames the
worker writes; afterwards the session's cached label maps are invalidated and every view is
refreshed from disk. Only one such job runs at a time.

It works on the controller and the job runner; the window (a ``PipelineHost``) only pauses its edit
commands, redraws and lends the canvas and timeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QTimer

from annotator.gui.job_runner import Job
from annotator.gui.pipeline.host import PipelineHost
from annotator.jobs import Cancelled

REFRESH_MS = 400  # the timeline recolours this often while a job writes frames


class _BlockEdits(QObject):
    """Event filter on the canvas viewport: drawing clicks are refused while a job writes labels."""

    def __init__(self, runner: EngineJobs) -> None:
        super().__init__()
        self.runner = runner

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if self.runner.job is None:
            return False
        if event.type() in (QEvent.MouseButtonPress, QEvent.MouseButtonDblClick):
            self.runner.controller.message(
                f"{self.runner.job.title} is running: editing resumes when it ends (cancel it in the Jobs panel)")
            return True
        return event.type() == QEvent.MouseButtonRelease


class EngineJobs(QObject):
    """One engine job at a time on the window's open video."""

    def __init__(self, window: PipelineHost) -> None:
        super().__init__(window)  # type: ignore[arg-type] - the host is a QMainWindow
        self.window = window
        self.controller = window.controller
        self.job_runner = window.job_runner
        self.job: Job | None = None
        self._kept = ""  # what a cancelled job kept, in its own words ("3 of 8 frames propagated and kept")
        self._after: Callable[[], None] | None = None
        self._filter = _BlockEdits(self)
        window.canvas.viewport().installEventFilter(self._filter)
        self._tick = QTimer(self)
        self._tick.setInterval(REFRESH_MS)
        self._tick.timeout.connect(self._refresh_timeline)
        self.job_runner.job_finished.connect(self._job_finished)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self, title: str, work: Callable[[Any, Any, Any], Any],
              on_done: Callable[[Any], None] | None = None) -> Job | None:
        """Run ``work(video, progress, cancel)`` in the background; ``on_done(result)`` on the GUI thread
        after the session was invalidated. ``None`` (with a status message) when it cannot start."""
        c = self.controller
        if c.video is None or c.session is None:
            c.message(f"{title}: open a video first")
            return None
        if not c.editable:
            c.message(f"{title}: {c.video.lock_message or 'this video is open read-only'}")
            return None
        if self.job is not None:
            c.message(f"{title}: wait until {self.job.title} ends (or cancel it)")
            return None
        c.tool.cancel()
        c.flush()
        if c.session.dirty:  # a failed save: the engine would not see those strokes
            c.message(f"{title}: not started, unsaved edits could not be written (see the message before)")
            return None
        video = c.video
        self._pause_editing(True)

        def done(result: Any) -> None:
            self._end()
            if on_done is not None:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self._end()
            c.message(f"{title} failed: {exc}")

        self._kept = ""

        def run(progress: Any, cancel: Any) -> Any:
            try:
                return work(video, progress, cancel)
            except Cancelled as e:  # a stage that keeps part of its work says how much
                self._kept = str(e)
                raise

        self.job = self.job_runner.submit(title, run, on_done=done, on_error=failed)
        self._tick.start()
        dock = self.window.jobs_dock
        if dock is not None:
            dock.show()
            dock.raise_()
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Cancel the running job and wait until it ended (the video is about to be closed);
        ``True`` when nothing runs any more."""
        job = self.job
        if job is None:
            return True
        job.cancel()
        deadline = time.monotonic() + timeout_s
        app = QCoreApplication.instance()
        while job.running and time.monotonic() < deadline:
            if app is not None:
                app.processEvents(QEventLoop.AllEvents, 20)
            time.sleep(0.005)
        if not job.running:
            self._end()
        return not job.running

    # ------------------------------------------------------------------ internals
    def _job_finished(self, job: Job) -> None:
        if job is self.job and self.job is not None:  # cancelled (no callback ran)
            kept = self._kept or "finished parts are kept"
            if self._kept:
                job.text = kept  # the jobs panel shows "cancelled: <what was kept>"
                self.job_runner.job_changed.emit(job)
            self._end()
            self.controller.message(f"{job.title}: cancelled: {kept}")

    def _end(self) -> None:
        if self.job is None:
            return
        self.job = None
        self._tick.stop()
        self._pause_editing(False)
        self.refresh()

    def refresh(self) -> None:
        """Everything the engines may have written: label cache, tracks, states, current frame."""
        c = self.controller
        if c.session is None or c.video is None:
            return
        c.session.invalidate()
        c.resources.drop_labels(None)
        if c.selected is not None and c.selected not in c.video.tracks:
            c.select_track(None)
        c.tracks_changed.emit()
        c.history_changed.emit()
        c.labels_changed.emit(c.index, None)
        self.window.refresh_view()

    def _refresh_timeline(self) -> None:
        v = self.controller.video
        if v is None:
            return
        self.window.timeline.set_video([v.frame_state(i) for i in range(v.num_frames)], v.keyframes)

    def _pause_editing(self, pause: bool) -> None:
        self.window.set_editing_paused(pause)
