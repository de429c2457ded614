"""Resource manager of the window: SAM engine and embeddings, the autosave clock.

Why a separate object (Cutie's resource_manager split): the controller decides *what* to do; this
object owns what is slow or shared - the SAM model (loaded once, on a worker thread, through the
job runner), the ``EmbeddingWorker`` that embeds the current frame first and then the keyframes,
and the timer that drives autosave. The worker's callbacks arrive on its own thread and are
re-emitted here as Qt signals, so everything the views see happens on the GUI thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from annotator.errors import InputError
from annotator.gui.prefetch import Prefetcher, decode_frame
from annotator.gui.tool_features import ToolFeatures
from annotator.project import Video
from models.sam import EmbeddingWorker, default_cache_dir, open_sam_engine, sam_availability

DEFAULT_AUTOSAVE_S = 30


def _load_frame(video: Video) -> Callable[[int], np.ndarray]:
    """A frame reader for the worker thread that bypasses the video's (unlocked) LRU cache."""
    return lambda i: decode_frame(video, i)


class ResourceManager(QObject):
    embedding_ready = pyqtSignal(int)
    embedding_failed = pyqtSignal(int, str)
    sam_status = pyqtSignal(str)
    autosave_due = pyqtSignal()
    _ready = pyqtSignal(int)  # from the worker thread
    _failed = pyqtSignal(int, str)

    def __init__(self, job_runner: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job_runner = job_runner
        self.settings: dict[str, Any] = {}
        self.sam_available = False
        self.sam_reason = "SAM tool unavailable: no project open"
        self.sam_error = ""
        self.engine: Any = None
        self.worker: Any = None
        self._loading: Any = None
        self._video: Video | None = None
        self._job: Any = None
        self._wanted: set[int] = set()
        self._done: set[int] = set()
        self._current: int | None = None
        self.prefetch: Prefetcher | None = None
        self.features = ToolFeatures(self)  # scissors and superpixels per frame, off the GUI thread
        self.status_text = "SAM: off"
        self._ready.connect(self._on_ready)
        self._failed.connect(self._on_failed)
        self.autosave = QTimer(self)
        self.autosave.timeout.connect(self.autosave_due.emit)
        self.set_autosave(DEFAULT_AUTOSAVE_S)

    # ------------------------------------------------------------------ configuration
    def set_autosave(self, seconds: float) -> None:
        self.autosave.start(max(1, int(float(seconds) * 1000)))

    def configure(self, settings: dict[str, Any], env: dict[str, str] | None = None) -> None:
        """Resolve SAM's checkpoint from ``settings`` (flag > env > settings); drop a loaded engine
        whose checkpoint is no longer the configured one."""
        self.settings = dict(settings)
        self.features.configure(self.settings)
        ok, _kind, reason = sam_availability(None, self.settings, env if env is not None else dict(os.environ))
        changed = ok != self.sam_available or reason != self.sam_reason  # the reason names the file
        self.sam_available, self.sam_reason = ok, reason
        if changed or not ok:
            self._drop_engine()
        self._set_status("SAM: on (loads on first use)" if ok else "SAM: off (no checkpoint)")

    def _drop_engine(self) -> None:
        self._stop_worker()
        self.engine = None
        self.sam_error = ""

    # ------------------------------------------------------------------ video lifecycle
    def open_video(self, video: Video | None, current: int = 0) -> None:
        self._stop_worker()
        if self.prefetch is not None:
            self.prefetch.stop()
        self.prefetch = Prefetcher(video) if video is not None else None
        self.features.reset()
        self._video = video
        self._current = current
        if video is not None and self.sam_available:
            self._ensure_engine()

    def _ensure_engine(self) -> None:
        if self.engine is not None:
            self._start_worker()
            return
        if self._loading is not None or self.sam_error:
            return
        video = self._video
        cache = default_cache_dir(video.project.path) if video is not None else None
        settings = dict(self.settings)
        self._set_status("SAM: loading model")
        self._loading = self.job_runner.submit(
            "load SAM model", lambda progress, cancel: open_sam_engine(cache, settings=settings),
            on_done=self._engine_loaded, on_error=self._engine_failed)

    def _engine_loaded(self, engine: Any) -> None:
        self._loading = None
        self.engine = engine
        self._start_worker()

    def _engine_failed(self, exc: BaseException) -> None:
        self._loading = None
        self.sam_error = f"SAM could not be loaded: {exc}"
        self._set_status("SAM: failed to load")
        self.embedding_failed.emit(-1, self.sam_error)

    def _start_worker(self) -> None:
        if self._video is None or self.engine is None or self.worker is not None:
            return
        video = self._video
        self.worker = EmbeddingWorker(self.engine, _load_frame(video), on_ready=self._ready.emit,
                                      on_error=lambda f, e: self._failed.emit(f, str(e)))
        self._wanted = {f for f in [self._current, *video.keyframes] if f is not None}
        self._done = set()
        self._job = self.job_runner.track_external(f"SAM embeddings of {video.id}", on_cancel=self._cancelled)
        self.worker.schedule(self._current, video.keyframes)
        self._progress()

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=2)  # cancelled at its next encoder block; the thread is a daemon
            self.worker = None
        if self._job is not None and self._job.running:
            self._job.finish()
        self._job = None

    def shutdown(self) -> None:
        self.autosave.stop()
        self._stop_worker()
        self.features.stop()
        if self.prefetch is not None:
            self.prefetch.stop()
            self.prefetch = None

    # ------------------------------------------------------------------ read-ahead
    def frame_image(self, frame: int) -> np.ndarray:
        """The frame's image: read ahead if it was, else through the video's cache."""
        img = self.prefetch.image(frame) if self.prefetch is not None else None
        if img is None:
            assert self._video is not None
            try:
                img = self._video.read_frame(frame)
            except InputError:  # missing or damaged JPEG: named in the banner on open (issue 28)
                img = np.full((*self._video.shape, 3), 64, np.uint8)
        return img

    def read_ahead(self, frame: int, direction: int, pending: list[int]) -> None:
        """Decode the next frames in the direction of travel (labels only where no edit is pending)."""
        if self.prefetch is not None:
            d = 1 if direction >= 0 else -1
            self.prefetch.want([frame + d, frame + 2 * d, frame - d], skip_labels=pending)

    def drop_labels(self, frames: list[int] | None) -> None:
        """Forget read-ahead label maps of ``frames`` (``None``: all): they were edited or rewritten."""
        if self.prefetch is not None:
            self.prefetch.drop_labels(frames)

    def _cancelled(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self._set_status(f"SAM: embedding cancelled ({len(self._done)}/{len(self._wanted)})")

    # ------------------------------------------------------------------ frames
    def request(self, frame: int) -> None:
        """The user moved to ``frame``: embed it before anything else."""
        self._current = frame
        if self.worker is None:
            if self.sam_available and self._video is not None:
                self._ensure_engine()
            return
        if frame not in self._done:
            self._wanted.add(frame)
            self.worker.request(frame)
            if self._job is None or not self._job.running:
                self._job = self.job_runner.track_external(f"SAM embeddings of {self._video.id}",
                                                           on_cancel=self._cancelled)
            self._progress()

    def embedding(self, frame: int) -> tuple[Any, Any] | None:
        """``(engine, embedding)`` when ``frame`` is embedded, else ``None`` (and it is requested)."""
        if self.worker is None:
            self.request(frame)
            return None
        emb = self.worker.get(frame)
        if emb is None:
            self.request(frame)
            return None
        return self.engine, emb

    def _on_ready(self, frame: int) -> None:
        self._done.add(frame)
        self._progress()
        self.embedding_ready.emit(frame)

    def _on_failed(self, frame: int, text: str) -> None:
        self._wanted.discard(frame)
        self._progress()
        self.embedding_failed.emit(frame, f"SAM embedding of frame {frame} failed: {text}")

    def _progress(self) -> None:
        total, done = len(self._wanted), len(self._done & self._wanted)
        if done >= total:
            self._set_status(f"SAM: ready ({done} frames embedded)"
                             + (f" · {self.engine.decoder_text}" if hasattr(self.engine, "decoder_text") else ""))
            if self._job is not None and self._job.running:
                self._job.update(done, total, f"embedding {done}/{total}")
                self._job.finish()
            return
        self._set_status(f"SAM: embedding {done}/{total}")
        if self._job is not None:
            self._job.update(done, total, f"embedding {done}/{total}")

    def _set_status(self, text: str) -> None:
        self.status_text = text
        self.sam_status.emit(text)
