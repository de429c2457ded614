"""Background jobs for the window: run long work off the GUI thread, list it, cancel it.

Why one runner per window: every long operation (import, propagation, export, SAM embeddings)
must keep the window responsive, show its progress in the jobs panel and be cancellable, and its
result or error must come back on the GUI thread (Qt widgets are not thread-safe). The work
itself is plain code taking ``progress(done, total, text)`` and a ``CancelToken``
(``annotator.jobs``), the same functions the CLI drives with tqdm.

Errors never open a traceback dialog: an :class:`~annotator.errors.AnnotatorError` becomes one
line in the job's status; any other exception too (its traceback goes to stderr for bug reports).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QCoreApplication, QEventLoop, QObject, pyqtSignal, pyqtSlot

from annotator.errors import AnnotatorError
from annotator.jobs import Cancelled, CancelToken, ProgressFn

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
#: progress from a worker reaches the GUI at most this often (seconds); the last value always does
_THROTTLE_S = 0.05


def error_line(exc: BaseException) -> str:
    """One line for the user: the message of our own errors, ``Type: message`` for anything else."""
    if isinstance(exc, AnnotatorError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


class Job:
    """One background job as the jobs panel shows it.

    Fields are written by the worker (``update``) under a lock and read on the GUI thread;
    ``status`` only changes on the GUI thread, so a finished status means callbacks already ran.
    """

    def __init__(self, runner: JobRunner, title: str, external: bool = False,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self._runner = runner
        self._lock = threading.Lock()
        self._last_emit = 0.0
        self.title = title
        self.done = 0
        self.total = 0
        self.text = ""
        self.status = RUNNING
        self.error: str | None = None
        self.result: Any = None
        self.external = external
        self.token = CancelToken()
        self._on_cancel = on_cancel
        self._callbacks: tuple[Callable[[Any], None] | None, Callable[[BaseException], None] | None] = (None, None)
        self.started = time.monotonic()

    def __repr__(self) -> str:
        return f"<Job {self.title!r} {self.status} {self.done}/{self.total} {self.text!r}>"

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def fraction(self) -> float | None:
        """Progress in 0..1, or ``None`` when the total is unknown."""
        return min(1.0, self.done / self.total) if self.total > 0 else None

    def update(self, done: int, total: int, text: str = "") -> None:
        """Report progress; callable from any thread (the ``ProgressFn`` handed to the work)."""
        with self._lock:
            self.done, self.total = int(done), int(total)
            if text:
                self.text = text
            now = time.monotonic()
            last = self.total > 0 and self.done >= self.total
            if not last and now - self._last_emit < _THROTTLE_S:
                return
            self._last_emit = now
        self._runner._changed.emit(self)

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation check (the status changes when it does)."""
        if self.status != RUNNING or self.token.cancelled:
            return
        self.token.cancel()
        self.text = "cancelling..."
        if self._on_cancel is not None:
            self._on_cancel()
        self._runner._changed.emit(self)

    def finish(self, error: BaseException | str | None = None) -> None:
        """End an external job (one that runs on its own thread); callable from any thread."""
        if isinstance(error, BaseException):
            status, message = (CANCELLED, None) if isinstance(error, Cancelled) else (FAILED, error_line(error))
        elif error:
            status, message = FAILED, " ".join(str(error).split())
        else:
            status, message = (CANCELLED if self.token.cancelled else DONE), None
        self._runner._finished.emit(self, (status, None, message, None))


class JobRunner(QObject):
    """Runs jobs on worker threads and reports them on the GUI thread."""

    job_added = pyqtSignal(object)
    job_changed = pyqtSignal(object)
    job_finished = pyqtSignal(object)
    # internal: emitted from worker threads, delivered (queued) on the runner's thread
    _changed = pyqtSignal(object)
    _finished = pyqtSignal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Job] = []
        self._threads: dict[Job, threading.Thread] = {}
        self._changed.connect(self._relay)  # slots of this QObject: queued onto its (GUI) thread
        self._finished.connect(self._deliver)

    # ------------------------------------------------------------------ starting work
    def submit(self, title: str, fn: Callable[[ProgressFn, CancelToken], Any],
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None) -> Job:
        """Run ``fn(progress, cancel)`` on a worker thread; ``on_done(result)`` / ``on_error(exc)``
        run on the GUI thread afterwards (a cancelled job calls neither)."""
        job = Job(self, title)
        self.jobs.append(job)

        def work() -> None:
            try:
                result = fn(job.update, job.token)
            except Cancelled:
                self._finished.emit(job, (CANCELLED, None, None, None))
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the panel
                if not isinstance(exc, AnnotatorError):
                    traceback.print_exc(file=sys.stderr)
                self._finished.emit(job, (FAILED, None, error_line(exc), exc))
            else:
                self._finished.emit(job, (DONE, result, None, None))

        job._callbacks = (on_done, on_error)
        thread = threading.Thread(target=work, name=f"job: {title}", daemon=True)
        self._threads[job] = thread
        self.job_added.emit(job)
        thread.start()
        return job

    def track_external(self, title: str, on_cancel: Callable[[], None] | None = None) -> Job:
        """List work that runs on its own thread (e.g. SAM's ``EmbeddingWorker``); it reports through
        ``job.update(done, total, text)`` and ends with ``job.finish()``; ``on_cancel`` is called
        when the user cancels it."""
        job = Job(self, title, external=True, on_cancel=on_cancel)
        self.jobs.append(job)
        self.job_added.emit(job)
        return job

    # ------------------------------------------------------------------ results (GUI thread)
    @pyqtSlot(object)
    def _relay(self, job: Job) -> None:
        self.job_changed.emit(job)

    @pyqtSlot(object, object)
    def _deliver(self, job: Job, outcome: tuple) -> None:
        status, result, message, exc = outcome
        if job.status != RUNNING:
            return  # finish() twice: keep the first outcome
        self._threads.pop(job, None)
        job.result = result
        job.error = message
        on_done, on_error = job._callbacks
        callback_error: BaseException | None = None
        try:
            if status == DONE and on_done is not None:
                on_done(result)
            elif status == FAILED and on_error is not None and exc is not None:
                on_error(exc)
        except Exception as e:  # noqa: BLE001 - a failing callback must not kill the event loop
            traceback.print_exc(file=sys.stderr)
            callback_error = e
        if callback_error is not None:
            status, job.error = FAILED, error_line(callback_error)
        job.status = status
        if status == DONE:
            if not job.external:  # an external worker may stop early: keep what it reported
                job.text = "done"
                if job.total > 0:
                    job.done = job.total
        elif status == CANCELLED:
            job.text = "cancelled"
        else:
            job.text = job.error or "failed"
        self.job_changed.emit(job)
        self.job_finished.emit(job)

    # ------------------------------------------------------------------ queries and control
    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs if j.status == RUNNING]

    def clear_finished(self) -> None:
        """Forget finished jobs (the panel's "clear" button)."""
        self.jobs = [j for j in self.jobs if j.status == RUNNING]

    def cancel_all(self) -> None:
        for job in self.running:
            job.cancel()

    def wait_all(self, timeout_s: float = 30.0, external: bool = True) -> bool:
        """Process events until no job is running (tests, shutdown); ``True`` if all finished.

        ``external=False`` ignores externally tracked jobs (long-lived workers)."""
        deadline = time.monotonic() + timeout_s
        app = QCoreApplication.instance()

        def busy() -> bool:
            return any(j.status == RUNNING and (external or not j.external) for j in self.jobs)

        while busy():
            if time.monotonic() > deadline:
                return False
            if app is not None:
                app.processEvents(QEventLoop.AllEvents, 20)
            time.sleep(0.005)
        return True

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Cancel everything and wait for the workers (window close): no half-written import left
        running behind a closed window. ``True`` if every job stopped in time."""
        self.cancel_all()
        ok = self.wait_all(timeout_s, external=False)
        for thread in list(self._threads.values()):
            thread.join(max(0.0, 0.1))
        return ok
