"""Per-frame features of the edge-aware tools, computed off the GUI thread and cached.

Why: the scissors' edge features and shortest-path maps (~0.2 s at 720p) and the superpixels
(~0.4 s per scale at 720p) must never run on the GUI thread, least of all in a frame switch (the
30 ms budget). The tools ask here without waiting: they get what is ready (``None`` otherwise) and
a request is queued for a daemon worker thread; when it is done :attr:`ToolFeatures.ready` fires on
the GUI thread and the tool refreshes its preview (until then the scissors draw straight lines and
the superpixel tool says it is computing).

The worker does the newest request first (the frame on screen, the anchor just placed); requests
of a frame no longer shown are dropped when a newer frame is asked for. The cache is bounded in
bytes (``tool_features_cache_mb``): least recently used frames go first, the shown frame never.
The image comes from the caller (the frame already decoded for display), so the worker never
touches the video.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PyQt5.QtCore import QObject, pyqtSignal

from annotator.editing import EdgeScissors, EditError, SuperpixelSet

DEFAULT_CACHE_MB = 256
#: bytes per pixel an ``EdgeScissors`` holds (features + one map; measured ~22 at 720p)
SCISSORS_BYTES_PER_PIXEL = 24


@dataclass
class _Entry:
    image: np.ndarray
    scissors: EdgeScissors | None = None
    superpixels: SuperpixelSet | None = None
    scales: tuple[int, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        h, w = self.image.shape[:2]
        n = h * w * SCISSORS_BYTES_PER_PIXEL if self.scissors is not None else 0
        return n + (self.superpixels.nbytes if self.superpixels is not None else 0)


def features_of(host: object) -> ToolFeatures | None:
    """The window's feature cache, reached through a tool's host (the controller); ``None`` for a
    host without one (the tools then fall back: straight lines, no superpixels)."""
    f = getattr(getattr(host, "resources", None), "features", None)
    return f if isinstance(f, ToolFeatures) else None


def shown_frame(host: object) -> tuple[int, np.ndarray] | None:
    """``(index, image)`` of the frame on screen, the image as the canvas got it (read ahead or
    from the video's cache: no second decode), or ``None`` without an open video."""
    if getattr(host, "video", None) is None or getattr(host, "session", None) is None:
        return None
    index = int(getattr(host, "index", 0))
    res = getattr(host, "resources", None)
    image = res.frame_image(index) if res is not None else host.image()  # type: ignore[attr-defined]
    return index, image


class ToolFeatures(QObject):
    """Scissors features and superpixels per frame of the open video.

    ``ready(kind, frame)``: ``kind`` is ``"scissors"`` (features ready), ``"map"`` (a start
    anchor's map is built), ``"superpixels"`` (a scale is computed) or ``"error"``.
    """

    ready = pyqtSignal(str, int)
    _done = pyqtSignal(int, str, int)  # generation, kind, frame (from the worker thread)

    def __init__(self, parent: QObject | None = None, cache_mb: float = DEFAULT_CACHE_MB) -> None:
        super().__init__(parent)
        self.max_bytes = int(cache_mb * 1e6)
        self.scales: tuple[int, ...] | None = None  # superpixel scales (None: the module default)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._tasks: list[tuple] = []  # newest last
        self._cond = threading.Condition()
        self._generation = 0
        self._current: int | None = None
        self._stopped = False
        self.busy = False
        self._done.connect(self._relay)
        self._thread = threading.Thread(target=self._run, name="tool-features", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """A video was opened or closed: forget every frame and pending request."""
        with self._cond:
            self._generation += 1
            self._entries.clear()
            self._tasks.clear()
            self._current = None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._tasks.clear()
            self._cond.notify_all()
        self._thread.join(timeout=2)

    def set_cache_mb(self, mb: float) -> None:
        self.max_bytes = int(float(mb) * 1e6)

    def configure(self, settings: dict) -> None:
        """``tool_features_cache_mb`` and ``superpixel_scales`` from the effective settings; a
        malformed value keeps the default (the window must open whatever the file says)."""
        try:
            self.set_cache_mb(float(settings.get("tool_features_cache_mb", DEFAULT_CACHE_MB)))
        except (TypeError, ValueError):
            self.set_cache_mb(DEFAULT_CACHE_MB)
        scales = settings.get("superpixel_scales")
        try:
            scales = tuple(int(s) for s in scales) if scales else None
        except (TypeError, ValueError):
            scales = None
        if scales is not None and (any(s < 1 for s in scales) or list(scales) != sorted(set(scales))):
            scales = None
        if scales != self.scales:
            self.scales = scales
            with self._cond:
                for e in self._entries.values():
                    e.superpixels = None

    # ------------------------------------------------------------------ asking (GUI thread, never waits)
    def scissors(self, frame: int, image: np.ndarray) -> EdgeScissors | None:
        """The frame's scissors if its features are computed; else ``None`` and they are requested."""
        e = self._entry(frame, image)
        if e.scissors is None:
            self._ask(("scissors", frame))
        return e.scissors

    def request_map(self, frame: int, image: np.ndarray, start: tuple[float, float]) -> None:
        """Build the scissors map from ``start`` in the background (features first if need be)."""
        self._entry(frame, image)
        self._ask(("map", frame, (float(start[0]), float(start[1]))))

    def superpixels(self, frame: int, image: np.ndarray, scale: int) -> SuperpixelSet | None:
        """The frame's superpixels if ``scale`` is computed; else ``None`` and it is requested
        (then the other scales, so cycling the scale finds them ready)."""
        e = self._entry(frame, image)
        if e.superpixels is None:
            e.superpixels = SuperpixelSet(e.image, **({"scales": self.scales} if self.scales else {}))
        sp = e.superpixels
        scale = min(max(int(scale), 0), len(sp.scales) - 1)
        if sp.ready(scale):
            return sp
        order = [scale] + [s for s in range(len(sp.scales)) if s != scale]
        for s in reversed(order):  # the wanted scale last: done first
            self._ask(("superpixels", frame, s))
        return None

    def error(self, frame: int, kind: str) -> str:
        e = self._entries.get(frame)
        return e.errors.get(kind, "") if e is not None else ""

    def cached_frames(self) -> list[int]:
        return list(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in list(self._entries.values()))

    # ------------------------------------------------------------------ internals
    def _entry(self, frame: int, image: np.ndarray) -> _Entry:
        with self._cond:
            if frame != self._current:
                self._current = frame
                self._tasks = [t for t in self._tasks if t[1] == frame]  # the frame left: its work goes
            e = self._entries.get(frame)
            if e is None or e.image.shape != image.shape:
                e = _Entry(np.ascontiguousarray(image))
                self._entries[frame] = e
            self._entries.move_to_end(frame)
            return e

    def _ask(self, task: tuple) -> None:
        with self._cond:
            if task in self._tasks:
                self._tasks.remove(task)
            if task[0] == "map":  # only the newest anchor's map matters
                self._tasks = [t for t in self._tasks if t[0] != "map"]
            self._tasks.append(task)
            self._cond.notify()

    def _trim(self) -> None:
        """Drop least recently used frames (never the shown one) until the cache fits."""
        with self._cond:
            while len(self._entries) > 1 and sum(e.nbytes for e in self._entries.values()) > self.max_bytes:
                oldest = next(iter(self._entries))
                if oldest == self._current:
                    self._entries.move_to_end(oldest)
                    oldest = next(iter(self._entries))
                    if oldest == self._current:
                        break
                del self._entries[oldest]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                task = self._tasks.pop()
                gen = self._generation
                entry = self._entries.get(task[1])
                self.busy = True
            try:
                if entry is not None:
                    kind = self._work(task, entry)
                    if kind:
                        self._trim()
                        self._done.emit(gen, kind, task[1])
            finally:
                self.busy = False

    def _work(self, task: tuple, e: _Entry) -> str:
        try:
            if task[0] in ("scissors", "map"):
                if e.scissors is None:
                    e.scissors = EdgeScissors(e.image)
                    if task[0] == "scissors":
                        return "scissors"
                    self._done.emit(self._generation, "scissors", task[1])
                if task[0] == "map":
                    if e.scissors.has_map(task[2]):
                        return ""
                    e.scissors.prepare(task[2])
                    return "map"
                return ""
            if task[0] == "superpixels" and e.superpixels is not None:
                if e.superpixels.ready(task[2]):
                    return ""
                e.superpixels.labels(task[2])
                return "superpixels"
        except (EditError, MemoryError, ValueError) as exc:
            e.errors[task[0]] = str(exc)
            return "error"
        return ""

    def _relay(self, generation: int, kind: str, frame: int) -> None:
        if generation == self._generation:
            self.ready.emit(kind, frame)
