"""The background thread that computes SAM embeddings in priority order, so the GUI never waits.

Why a thread of its own at a lower OS priority: the image encoder costs seconds per frame on a
CPU, so the embedding must be ready before the user clicks (current frame, then keyframes, then
the rest), and a click decoded on the GUI thread must not be starved by the encoder on 2 cores.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import threading
from collections.abc import Callable, Iterable

import numpy as np

from annotator.jobs import Cancelled, CancelToken
from models.sam.cache import Embedding
from models.sam.engine import SamEngine


class EmbeddingWorker:
    """Background thread computing embeddings in priority order; the GUI never waits on the encoder.

    :meth:`schedule` replaces the queue (current frame first, then keyframes in order, then the
    rest); :meth:`cancel` stops the running computation at the next encoder block and empties the
    queue. ``on_ready(frame)`` is called from the worker thread (the GUI re-emits it as a signal).
    """

    def __init__(self, engine: SamEngine, load_image: Callable[[int], np.ndarray],
                 on_ready: Callable[[int], None] | None = None,
                 on_error: Callable[[int, Exception], None] | None = None, nice: int = 10) -> None:
        """``nice`` lowers the OS priority of the worker thread (and of the torch threads it starts)
        so that SAM clicks decoded on the GUI thread are not starved by the encoder on 2 cores."""
        self.engine = engine
        self.nice = nice
        self.thread_nice: int | None = None  # the worker thread's niceness once it runs (Linux)
        self.load_image = load_image
        self.on_ready = on_ready
        self.on_error = on_error
        self._heap: list[tuple[int, int, int]] = []  # (priority, seq, frame)
        self._queued: dict[int, int] = {}  # frame -> seq of its live heap entry
        self._seq = 0
        self._keys: dict[int, str] = {}  # frame -> cache key of the embedding computed for it
        self._cond = threading.Condition()
        self._token = CancelToken()
        self._running: int | None = None
        self._stop = False
        self.computed = 0
        self._thread = threading.Thread(target=self._run, name="sam-embeddings", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- queue control

    def schedule(self, current: int | None, keyframes: Iterable[int] = (), others: Iterable[int] = ()) -> None:
        """Replace the queue: ``current`` first, then ``keyframes`` in order, then ``others``."""
        order: list[int] = []
        seen: set[int] = set()
        for f in ([current] if current is not None else []) + list(keyframes) + list(others):
            if f not in seen:
                seen.add(f)
                order.append(int(f))
        with self._cond:
            self._heap.clear()
            self._queued.clear()
            for prio, f in enumerate(order):
                if f in self._keys or f == self._running:
                    continue
                self._push(prio, f)
            self._cond.notify_all()

    def request(self, frame: int) -> None:
        """Put ``frame`` at the front of the queue (the user just moved to it)."""
        with self._cond:
            if frame in self._keys or frame == self._running:
                return
            self._push(-1 - self._seq, frame)
            self._cond.notify_all()

    def _push(self, prio: int, frame: int) -> None:
        self._seq += 1
        self._queued[frame] = self._seq
        heapq.heappush(self._heap, (prio, self._seq, frame))

    def cancel(self) -> None:
        """Stop the running embedding (at its next encoder block) and drop everything queued."""
        with self._cond:
            self._heap.clear()
            self._queued.clear()
            self._token.cancel()
            self._cond.notify_all()

    def stop(self, timeout: float | None = 10.0) -> None:
        with self._cond:
            self._stop = True
        self.cancel()
        self._thread.join(timeout)

    @property
    def pending(self) -> list[int]:
        with self._cond:
            return [f for _, s, f in sorted(self._heap) if self._queued.get(f) == s]

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._running is None and not self._queued

    # ----------------------------------------------------------------- results

    def get(self, frame: int) -> Embedding | None:
        """The embedding of ``frame`` if it is ready (memory or disk), else ``None``; never computes."""
        key = self._keys.get(frame)
        if key is not None:
            emb = self.engine.cache.get(key)
            if emb is not None:
                return emb
            with self._cond:  # evicted from memory and not on disk: compute it again when asked
                self._keys.pop(frame, None)
        emb = self.engine.cached(self.load_image(frame))
        if emb is not None:
            with self._cond:
                self._keys[frame] = emb.key
        return emb

    def wait(self, frame: int, timeout: float | None = None) -> Embedding | None:
        """Block until ``frame`` is embedded (requesting it first); ``None`` on timeout or cancel."""
        emb = self.get(frame)
        if emb is not None:
            return emb
        self.request(frame)
        with self._cond:
            ok = self._cond.wait_for(lambda: frame in self._keys or (frame not in self._queued
                                                                     and self._running != frame), timeout)
        return self.get(frame) if ok else None

    # ----------------------------------------------------------------- thread

    def _next(self) -> int | None:
        while self._heap:
            _, seq, f = heapq.heappop(self._heap)
            if self._queued.get(f) == seq:
                del self._queued[f]
                return f
        return None

    def _lower_priority(self) -> None:
        """Per-thread niceness (Linux); set before the first torch call so its OpenMP pool inherits it."""
        if not self.nice or not hasattr(os, "setpriority"):
            return
        with contextlib.suppress(OSError, AttributeError, ValueError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
            self.thread_nice = os.getpriority(os.PRIO_PROCESS, tid)

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                frame = None
                while not self._stop:
                    frame = self._next()
                    if frame is not None:
                        break
                    self._cond.wait()
                if self._stop:
                    return
                self._running = frame
                if self._token.cancelled:
                    self._token = CancelToken()
                token = self._token
            assert frame is not None
            try:
                emb = self.engine.embedding(self.load_image(frame), cancel=token)
            except Cancelled:
                emb = None
            except Exception as e:  # noqa: BLE001 - report and carry on with the next frame
                emb = None
                if self.on_error is not None:
                    self.on_error(frame, e)
            with self._cond:
                self._running = None
                if emb is not None:
                    self._keys[frame] = emb.key
                    self.computed += 1
                self._cond.notify_all()
            if emb is not None and self.on_ready is not None:
                self.on_ready(frame)
