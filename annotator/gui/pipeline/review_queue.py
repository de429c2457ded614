"""The review queue in the window (issue 25): its dock, "next in queue", the sample gate of the bulk
accept, the timeline's suggested keyframes and sure gaps, K and Shift+K.

What it calls (never re-implemented here): ``annotator.review``'s ``build_queue``,
``suggest_keyframes``, ``sure_gaps`` and ``accept_rest`` (the Qt-free queue), the review store for
a gap's accept, ``Video.set_keyframes`` for K. The queue is built off the GUI thread with the job
runner (progress and cancel in the Jobs panel) after propagation, after corrections and on
Recompute; a result that arrives for an older video or after a newer request is dropped.

How a reviewer walks it (CVAT's and XMem's "next frame to check"): J goes to the next pair not
done yet - the ranked items first, then the sample of the rest - showing its frame, selecting its
track (white outline) and scrolling the canvas so the mask is in view; Shift+J goes back.
Accepting the item's track or frame (review dock) marks it accepted and moves on; an edit or a
correction made on its frame marks it fixed (J then goes on). "Accept the rest" is enabled only
when every sample pair was looked at and none needed a fix; the gate line says why otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QRectF, Qt, QTimer
from PyQt5.QtWidgets import QDockWidget

from annotator.errors import AnnotatorError
from annotator.gui.pipeline.queue_panel import QueuePanel, QueueRow
from annotator.gui.timeline import NOT_ANNOTATED
from annotator.project import FrameState
from annotator.review import ReviewStore, shown_frame
from annotator.review.queue import (  # face export pending
    accept_rest,
    build_queue,
    suggest_keyframes,
    sure_gaps,
)

#: pixels of margin around a mask when the canvas scrolls it into view
FRAME_MARGIN = 24


def _call(fn: Callable[..., Any], *args: Any, progress: Any = None, cancel: Any = None, **kw: Any) -> Any:
    """Call a queue function, handing it ``progress`` / ``cancel`` when its signature takes them."""
    params = inspect.signature(fn).parameters
    if "progress" in params:
        kw["progress"] = progress
    if "cancel" in params:
        kw["cancel"] = cancel
    return fn(*args, **kw)


class ReviewQueueDock(QObject):
    """Owns the queue dock of one window's pipeline (kept as ``pipeline.queue``)."""

    def __init__(self, pipeline: Any) -> None:
        super().__init__(pipeline)
        self.pipeline = pipeline
        self.window = w = pipeline.window
        self.controller = c = w.controller
        self.panel = QueuePanel()
        self.dock = QDockWidget("Review queue", w)
        self.dock.setObjectName("queue_dock")
        self.dock.setWidget(self.panel)
        w.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        w.tabifyDockWidget(pipeline.review_dock, self.dock)
        self.dock.hide()
        self.queue: Any = None
        self.suggestions: list[Any] = []
        self.gaps: list[tuple[int, int]] = []
        self.walk: list[tuple[str, int, int]] = []  # (part, frame, track) in visiting order
        self.state: dict[tuple[int, int], str] = {}  # (frame, track) -> seen | accepted | fixed
        self.pos: int | None = None  # index into ``walk`` of the item shown last
        self.job: Any = None
        self._generation = 0
        self._pending = ""  # a recompute asked for while an engine job wrote the video
        self._log_seen = 0
        self._undo_seen = 0
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(0)
        self._later.timeout.connect(self._run_pending)
        p = self.panel
        p.jump.connect(self.go_row)
        p.next_item.connect(lambda: self.step(1))
        p.prev_item.connect(lambda: self.step(-1))
        p.recompute.connect(lambda: self.recompute("asked for"))
        p.accept_rest.connect(self.accept_rest)
        c.video_changed.connect(self._video_changed)
        c.history_changed.connect(self._history_changed)
        pipeline.review.decided.connect(lambda _what: self._decided())
        w.job_runner.job_finished.connect(lambda _job: self._later.start() if self._pending else None)
        pipeline.actions["review_mode"].toggled.connect(lambda on: on and self.show())
        toggle = self.dock.toggleViewAction()
        toggle.setText("Review &queue")
        review_menu = pipeline.menus[1]
        review_menu.addSeparator()
        review_menu.addAction(toggle)
        self.accept_rest_action = pipeline._action("queue_accept_rest", "Accept the &rest of the queue (after the "
                                                   "sample)", self.accept_rest)
        review_menu.addAction(self.accept_rest_action)
        self._set_gate()
        if c.video is not None:
            self._video_changed()

    # ------------------------------------------------------------------ commands (shortcuts.BINDINGS)
    def command(self, name: str) -> None:
        """J / Shift+J / K / Shift+K (``queue:next``, ``queue:prev``, ``queue:keyframe``, ``queue:accept_gap``)."""
        {"next": lambda: self.step(1), "prev": lambda: self.step(-1), "keyframe": self.make_keyframe,
         "accept_gap": self.accept_gap}[name]()

    def show(self) -> None:
        self.dock.show()
        self.dock.raise_()

    # ------------------------------------------------------------------ computing the queue
    def recompute(self, why: str = "") -> Any:
        """Build the queue, the suggested keyframes and the sure gaps of the open video as a job."""
        c = self.controller
        v = c.video
        if v is None:
            return None
        if self.pipeline.jobs.busy:  # an engine writes the labels: the queue waits for its end
            self._pending = why or "after the running job"
            return None
        self._pending = ""
        if self.job is not None and self.job.running:
            self.job.cancel()  # an older request: its result would be stale
        self._generation += 1
        gen, settings = self._generation, self.pipeline.settings()

        def work(progress: Any, cancel: Any) -> Any:
            queue = _call(build_queue, v, settings, progress=progress, cancel=cancel)
            return queue, list(suggest_keyframes(v)), [tuple(g) for g in sure_gaps(v)]

        title = f"review queue of {v.id}" + (f" ({why})" if why else "")
        self.job = self.window.job_runner.submit(title, work, on_done=lambda res: self._computed(gen, v, res),
                                                 on_error=lambda exc: c.message(f"{title} failed: {exc}"))
        self.panel.title.setText(f"computing the review queue{f' ({why})' if why else ''}...")
        return self.job

    def _run_pending(self) -> None:
        if self._pending and not self.pipeline.jobs.busy:
            self.recompute(self._pending)

    def _computed(self, gen: int, video: Any, result: Any) -> None:
        if gen != self._generation or video is not self.controller.video:
            return  # a newer request or another video: this result is stale
        self.queue, self.suggestions, self.gaps = result
        q = self.queue
        self.walk = [("queue", int(i.frame), int(i.track)) for i in q.items]
        self.walk += [("sample", int(f), int(t)) for f, t in q.sample]
        self._refresh_done()
        self._show_rows()
        self.window.timeline.set_marks(self.suggestions, self.gaps)
        self.pos = None
        self.controller.message(f"review queue: {len(q.items)} pair(s) to look at, a sample of {len(q.sample)} "
                                f"of the {len(q.rest)} others; {len(self.suggestions)} suggested keyframe(s), "
                                f"{len(self.gaps)} sure gap(s)")

    def _show_rows(self) -> None:
        v, q = self.controller.video, self.queue
        if v is None or q is None:
            return
        tax, tracks = v.taxonomy, v.tracks

        def name(t: int) -> str:
            return tax.get(tracks[t].category_id).name if t in tracks else "(deleted)"

        rows = [QueueRow("queue", int(i.frame), int(i.track), name(int(i.track)), float(i.p_bad), float(i.gain),
                         str(i.reason), self.state.get((int(i.frame), int(i.track)), "")) for i in q.items]
        rows += [QueueRow("sample", int(f), int(t), name(int(t)), None, None, "sample of the rest (not queued)",
                          self.state.get((int(f), int(t)), "")) for f, t in q.sample]
        self.panel.set_rows(rows, f"{len(q.items)} pair(s) in the queue, ranked by expected gain; then a sample of "
                            f"{len(q.sample)} of the {len(q.rest)} pair(s) left out")
        self._set_gate()

    # ------------------------------------------------------------------ walking it
    def step(self, direction: int) -> bool:
        """J (``direction`` 1): the next pair not done yet after the one shown; Shift+J: the one before."""
        c = self.controller
        if c.video is None:
            c.message("review queue: open a video first")
            return False
        if self.queue is None:
            self.show()
            self.recompute("asked for")
            c.message("review queue: computing it first (Jobs panel); press J again when it is listed")
            return False
        if not self.walk:
            c.message("review queue: nothing to look at (the queue and the sample are empty)")
            return False
        if direction > 0:
            start = -1 if self.pos is None else self.pos
            n = next((i for i in range(start + 1, len(self.walk)) if not self._done(i)), None)
            if n is None:
                c.message("review queue: every pair was looked at" + (
                    "; accept the rest now (Review menu or the queue dock)" if self._sample_passed() else ""))
                return False
        else:
            if not self.pos:
                c.message("review queue: at the first pair")
                return False
            n = self.pos - 1
        return self.go_row(n)

    def go_row(self, n: int) -> bool:
        """Show walk entry ``n``: its frame, its track selected and scrolled into view; it counts as seen."""
        c = self.controller
        if not 0 <= n < len(self.walk) or c.video is None:
            return False
        part, frame, track = self.walk[n]
        self.pos = n
        c.go_to(frame)
        c.select_track(track if track in c.video.tracks else None)
        self._frame_track(frame, track)
        if (frame, track) not in self.state:
            self.state[(frame, track)] = "seen"
            self.panel.set_state(n, "seen")
        self.panel.set_current(n)
        self._undo_seen = len(c.undo_stack.undo_entries)
        self._set_gate()
        where = f"{part} pair {n + 1}/{len(self.walk)}: frame {shown_frame(frame)}, track {track}"
        item = next((i for i in self.queue.items if (int(i.frame), int(i.track)) == (frame, track)), None)
        c.message(f"{where}: {item.reason} (p_bad {item.p_bad:.2f})" if item is not None else where)
        return True

    def _frame_track(self, frame: int, track: int) -> None:
        """Scroll the canvas so the track's mask on ``frame`` is in view (the zoom stays as it is)."""
        c = self.controller
        if c.session is None:
            return
        ys, xs = np.nonzero(c.display_label(frame) == track)
        if len(xs):
            box = QRectF(float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                         float(ys.max() - ys.min() + 1))
            self.window.canvas.ensureVisible(box, FRAME_MARGIN, FRAME_MARGIN)

    def _done(self, n: int) -> bool:
        return self.state.get(self.walk[n][1:]) in ("accepted", "fixed")

    def _refresh_done(self) -> None:
        """Pairs whose track or frame a reviewer accepted are done (the review store says so)."""
        v = self.controller.video
        if v is None or not self.walk:
            return
        try:
            store = ReviewStore(v)
        except AnnotatorError:
            return
        accepted = store.accepted_tracks()
        for n, (_part, f, t) in enumerate(self.walk):
            if (t in accepted or v.frame_state(f) == FrameState.REVIEWED) and self.state.get((f, t)) != "fixed":
                self.state[(f, t)] = "accepted"
                self.panel.set_state(n, "accepted")

    def _decided(self) -> None:
        """A review decision landed: accepted pairs are done; if the shown one is, go to the next."""
        self._refresh_done()
        self._set_gate()
        if self.pos is not None and self.pos < len(self.walk) and self._done(self.pos):
            self.step(1)

    def _history_changed(self) -> None:
        """An edit or a correction while a pair is shown on its frame fixes it; a correction (the
        video's log grew) makes the queue stale: it is recomputed in the background."""
        c, v = self.controller, self.controller.video
        if v is None:
            return
        n_undo = len(c.undo_stack.undo_entries)
        if self.pos is not None and n_undo > self._undo_seen and self.walk[self.pos][1] == c.index:
            key = self.walk[self.pos][1:]
            self.state[key] = "fixed"
            self.panel.set_state(self.pos, "fixed")
            self._set_gate()
        self._undo_seen = n_undo
        n_log = len(v.log)
        if n_log != self._log_seen:
            self._log_seen = n_log
            if self.queue is not None and not self.pipeline.jobs.busy:
                self.recompute("after a correction")

    # ------------------------------------------------------------------ the sample gate, bulk accept
    def _sample_state(self) -> tuple[int, int, list[tuple[int, int]]]:
        sample = [(int(f), int(t)) for f, t in self.queue.sample] if self.queue is not None else []
        seen = sum(1 for p in sample if p in self.state)
        fixed = [p for p in sample if self.state.get(p) == "fixed"]
        return len(sample), seen, fixed

    def _sample_passed(self) -> bool:
        total, seen, fixed = self._sample_state()
        return self.queue is not None and bool(self.queue.rest) and seen == total and not fixed

    def gate_reason(self) -> tuple[bool, str]:
        """(enabled, why) of "Accept the rest"."""
        if self.controller.video is None:
            return False, "no video open"
        if self.queue is None:
            return False, "no queue yet (propagate, or press Recompute)"
        if not self.queue.rest:
            return False, "nothing is left out of the queue"
        total, seen, fixed = self._sample_state()
        if fixed:
            f, t = fixed[0]
            return False, (f"{len(fixed)} sample pair(s) needed a fix (first: frame {shown_frame(f)}, track {t}): "
                           "the rest is not sure enough to accept unseen; recompute the queue")
        if seen < total:
            return False, f"look at the sample first: {seen} of {total} sample pair(s) seen (J walks to them)"
        return True, f"the sample passed ({total} pair(s) seen, none needed a fix): accepts {len(self.queue.rest)} pair(s)"

    def _set_gate(self) -> None:
        ok, why = self.gate_reason()
        self.panel.set_gate(ok, why)
        self.accept_rest_action.setEnabled(ok)
        self.accept_rest_action.setStatusTip(why)
        self.accept_rest_action.setToolTip(why)

    def accept_rest(self) -> bool:
        """Accept every pair left out of the queue (``annotator.review.accept_rest``), after the sample."""
        c = self.controller
        ok, why = self.gate_reason()
        if not ok:
            c.message(f"accept the rest: {why}")
            return False
        queue, seen = self.queue, [p for p in self.state if self.state[p] in ("seen", "accepted")]
        done = self.pipeline.review.decide(f"accept the rest of the queue ({len(queue.rest)} pair(s))",
                                           lambda store, text: _call(accept_rest, store.video, queue,
                                                                     **_accept_kwargs(seen, text)))
        if done:
            self.recompute("after the bulk accept")
        return done

    # ------------------------------------------------------------------ K and Shift+K
    def make_keyframe(self) -> bool:
        """K: the current frame becomes a keyframe (suggested or not), journaled by ``Video.set_keyframes``."""
        c = self.controller
        v = c.video
        if v is None:
            c.message("make a keyframe: open a video first")
            return False
        f = c.index
        if not c.editable:
            c.message(f"make a keyframe: {v.lock_message or 'this video is open read-only'}")
            return False
        if v.is_keyframe(f):
            c.message(f"frame {shown_frame(f)} is a keyframe already")
            return False
        suggested = next((s for s in self.suggestions if int(s.frame) == f), None)
        try:
            v.set_keyframes([*v.keyframes, f])
        except AnnotatorError as e:
            c.message(f"make a keyframe: {e}")
            return False
        self.suggestions = [s for s in self.suggestions if int(s.frame) != f]
        self.window.timeline.set_marks(self.suggestions, self.gaps)
        c.history_changed.emit()  # the timeline and the frame line show the new keyframe
        state = c.session.frame_state(f) if c.session is not None else FrameState.UNLABELLED
        todo = " - label it (its labels are only propagated): association skips it until then" \
            if state in NOT_ANNOTATED else ""
        why = f" (suggested: {suggested.reason})" if suggested is not None else ""
        c.message(f"frame {shown_frame(f)} is a keyframe now{why}{todo}")
        return True

    def accept_gap(self) -> bool:
        """Shift+K: accept every frame of the sure gap under the current frame (the review store)."""
        c = self.controller
        if c.video is None:
            c.message("accept a sure gap: open a video first")
            return False
        gap = self.window.timeline.gap_at(c.index)
        if gap is None:
            listed = ", ".join(f"{shown_frame(a)}-{shown_frame(b)}" for a, b in self.gaps[:6]) or "none"
            c.message(f"frame {shown_frame(c.index)} is not in a sure gap (sure gaps: {listed})")
            return False
        a, b = gap
        frames = [i for i in range(a, b + 1) if c.video.frame_state(i) != FrameState.REVIEWED]
        if not frames:
            c.message(f"sure gap {shown_frame(a)}-{shown_frame(b)} is accepted already")
            return False

        def fn(store: Any, text: str) -> None:
            with store.video.transaction("accept sure gap", {"first": a, "last": b}):
                store.accept_frames(frames, text or f"sure gap {shown_frame(a)}-{shown_frame(b)} (quick accept)")

        done = self.pipeline.review.decide(f"accept sure gap {shown_frame(a)}-{shown_frame(b)}", fn)
        if done:
            self.gaps = [g for g in self.gaps if g != gap]
            self.window.timeline.set_marks(self.suggestions, self.gaps)
        return done

    # ------------------------------------------------------------------ video changes
    def _video_changed(self) -> None:
        self._generation += 1  # a running build is for the old video
        self.queue, self.suggestions, self.gaps, self.walk, self.state, self.pos = None, [], [], [], {}, None
        self.panel.set_rows([], "no queue yet: propagate, or press Recompute")
        self.window.timeline.set_marks([], [])
        self._set_gate()
        c, v = self.controller, self.controller.video
        if v is None:
            return
        self._log_seen, self._undo_seen = len(v.log), len(c.undo_stack.undo_entries)
        if any(v.frame_state(i) == FrameState.PROPAGATED for i in range(v.num_frames)):
            self.recompute("video opened")  # propagated frames: their queue and marks are worth showing


def _accept_kwargs(seen: list[tuple[int, int]], comment: str) -> dict[str, Any]:
    """Keyword arguments of ``accept_rest`` the window can give: the pairs looked at, the comment
    (only those the function takes)."""
    params = inspect.signature(accept_rest).parameters
    kw: dict[str, Any] = {}
    if "sample_errors" in params:  # the gate enables the bulk accept only when no sample pair needed a fix
        kw["sample_errors"] = 0
    if "comment" in params:
        kw["comment"] = comment or "accepted in bulk after the sample (review queue)"
    return kw
