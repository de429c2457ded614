"""Review dock: tube view of the selected track, accept / reject per track or frame with a comment,
track-only playback, review progress; decisions go to ``annotator.review.ReviewStore``.

Accepting changes frame states (``reviewed``) through the video, so pending strokes are flushed
first and the session's caches are invalidated after (the ``EditSession`` contract); nothing is
decided while an engine job writes the video, nor on a damaged video (a lost label PNG: refused,
named in the status bar, as the CLI's ``review`` refuses).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.errors import AnnotatorError
from annotator.gui.pipeline.tube_view import CELL, TubeView, sample
from annotator.gui.pipeline.widgets import beside_project
from annotator.project import require_intact_labels
from annotator.review import (
    ReviewStore,
    flag_report_row,
    project_review_rows,
    shown_frame,
    track_tube,
    write_report_csv,
)


class ReviewPanel(QWidget):
    def __init__(self, pipeline: Any) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.window = pipeline.window
        self.title = QLabel("select a track (track panel, flags panel or Tab)")
        self.title.setWordWrap(True)
        self.tube = TubeView()
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("comment for the next decision (optional)")
        self.progress_tracks = QProgressBar()
        self.progress_frames = QProgressBar()
        for bar, text in ((self.progress_tracks, "tracks accepted %p%"), (self.progress_frames, "frames reviewed %p%")):
            bar.setFormat(text)
            bar.setRange(0, 100)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        for n, (name, text, slot) in enumerate([
                ("accept_track", "Accept track", self.accept_track), ("reject_track", "Reject track", self.reject_track),
                ("accept_frame", "Accept frame", self.accept_frame), ("reject_frame", "Reject frame", self.reject_frame),
                ("play", "Play track", self.toggle_play), ("accept_all", "Accept all tracks", self.accept_all)]):
            b = QPushButton(text)
            b.setObjectName(f"review_{name}")
            b.clicked.connect(lambda _=False, s=slot: s())
            grid.addWidget(b, n // 2, n % 2)
            self.buttons[name] = b
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.tube)
        lay.addWidget(self.comment)
        lay.addLayout(grid)
        lay.addWidget(self.progress_tracks)
        lay.addWidget(self.progress_frames)
        lay.addWidget(self.summary)
        lay.addStretch(1)
        self._play = QTimer(self)
        self._play.timeout.connect(self._play_step)
        self._play_frames: list[int] = []
        c = self.window.controller
        self.tube.frame_clicked.connect(c.go_to)
        c.selection_changed.connect(self._selection)
        c.frame_changed.connect(self.tube.mark)
        pipeline.flags.changed.connect(self._flags_changed)

    @property
    def flags(self) -> list[Any]:
        """The flags panel's rows: one set of flags for both views."""
        return self.pipeline.flags.rows

    def _flags_changed(self) -> None:
        self.update_progress()
        if self.isVisible():
            self.show_track(self.window.controller.selected)

    # ------------------------------------------------------------------ store
    def store(self) -> Any:
        """The open video's review store; None without a video, or when its ``review.json`` is damaged
        (named in the banner on open and in the status bar here, never a traceback)."""
        v = self.window.controller.video
        if v is None:
            return None
        try:
            return ReviewStore(v)
        except AnnotatorError as e:
            self.window.controller.message(f"review: {e}")
            return None

    def video_changed(self) -> None:
        self._play.stop()
        self.tube.show_tube(None, [], (0, 0, 0))
        self.update_progress()

    def update_progress(self) -> None:
        store = self.store()
        if store is None:
            damaged = self.window.controller.video is not None
            self.summary.setText("review.json is damaged: see the message" if damaged else "no video open")
            return
        p = store.progress()
        if p.open_flags is not None or self.flags or self.pipeline.association_ran:  # the flags panel's count
            p = replace(p, open_flags=len(self.flags))
        self.progress_tracks.setValue(int(round(100 * p.track_share)))
        self.progress_frames.setValue(int(round(100 * p.frame_share)))
        self.summary.setText(p.summary())

    # ------------------------------------------------------------------ tube
    def _selection(self, track: object) -> None:
        if self.isVisible():
            self.show_track(track)  # type: ignore[arg-type]

    def show_track(self, track: int | None) -> None:
        c = self.window.controller
        v = c.video
        if v is None or track is None or track not in v.tracks:
            self.title.setText("select a track (track panel, flags panel or Tab)")
            self.tube.show_tube(None, [], (0, 0, 0))
            return
        c.flush()
        frames = v.track_frames(track)
        cells = track_tube(v, track, sample(frames), cell=CELL)
        cat = v.taxonomy.get(v.tracks[track].category_id)
        store = self.store()
        latest = store.latest("track", track) if store is not None else None
        decided = f" - {latest.decision}ed" if latest is not None else ""
        nflags = sum(1 for f in self.flags if track in f.tracks)
        self.title.setText(f"track {track}: {cat.name}, on {len(frames)} frame(s), {nflags} flag(s){decided}")
        self.tube.show_tube(track, cells, c.track_colors().get(track, (255, 255, 0)))
        self.tube.mark(c.index)

    def toggle_play(self) -> None:
        """Play the selected track alone: its frames in order, other tracks hidden."""
        c = self.window.controller
        if self._play.isActive():
            self._play.stop()
            self.window.canvas.set_view_option("only_selected", False)
            return
        if c.video is None or c.selected is None:
            c.message("select a track to play")
            return
        self._play_frames = [f for f in c.video.track_frames(c.selected) if f >= c.index] or \
            c.video.track_frames(c.selected)
        self.window.canvas.set_view_option("only_selected", True)
        self._play.start(int(1000 / max(1.0, c.video.dense_fps)))

    def _play_step(self) -> None:
        if not self._play_frames:
            self.toggle_play()
            return
        self.window.controller.go_to(self._play_frames.pop(0))

    # ------------------------------------------------------------------ decisions
    def _decide(self, what: str, fn: Any) -> bool:
        c = self.window.controller
        if c.video is None:
            c.message("open a video first")
            return False
        if self.pipeline.jobs.busy:
            c.message(f"{what}: wait until {self.pipeline.jobs.job.title} ends")
            return False
        c.flush()
        try:  # integrity first, as the CLI's ``review`` (issue 28): decisions rewrite frame states
            require_intact_labels(c.video, what)
        except AnnotatorError as e:
            c.message(str(e))  # "<what> refused: ... integrity problem(s): <what, where>. Restore ..."
            return False
        store = self.store()
        if store is None:  # review.json is damaged: named by store(), nothing is decided over it
            return False
        try:
            fn(store, self.comment.text().strip())
        except AnnotatorError as e:
            c.message(f"{what}: {e}")
            return False
        self.comment.clear()
        self.pipeline.jobs.refresh()
        self.pipeline.reload_review_flags()  # accepted tracks and frames close their flags
        self.update_progress()
        self.show_track(c.selected)
        c.message(f"{what}: done")
        return True

    def accept_track(self) -> bool:
        t = self.window.controller.selected
        if t is None:
            self.window.controller.message("select a track to accept")
            return False
        return self._decide(f"accept track {t}", lambda s, text: s.accept_track(t, text))

    def reject_track(self) -> bool:
        t = self.window.controller.selected
        if t is None:
            self.window.controller.message("select a track to reject")
            return False
        return self._decide(f"reject track {t}", lambda s, text: s.reject_track(t, text))

    def accept_frame(self) -> bool:
        f = self.window.controller.index
        return self._decide(f"accept frame {shown_frame(f)}", lambda s, text: s.accept_frame(f, text))

    def reject_frame(self) -> bool:
        f = self.window.controller.index
        return self._decide(f"reject frame {shown_frame(f)}", lambda s, text: s.reject_frame(f, text))

    def accept_all(self) -> bool:
        v = self.window.controller.video
        if v is None:
            return False

        def fn(s: Any, text: str) -> None:
            for t in sorted(v.tracks):
                s.accept_track(t, text)

        return self._decide("accept all tracks", fn)

    def save_csv(self, path: str | None = None) -> Path | None:
        """The review report of the whole project as CSV: the decisions and comments of every video
        and its cached review flags with their state, plus the open video's association and
        propagation flags from the flags panel (the store does not keep those)."""
        project = self.window.project
        if project is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save review report", beside_project(project, "review.csv"),
                                                  "CSV (*.csv)")
            if not path:
                return None
        self.window.controller.flush()
        rows = project_review_rows(project)  # every video: one report
        v = self.window.controller.video
        if v is not None:
            rows += [flag_report_row(v, r.kind, r.frame, r.track, r.reason, "open", r.key, r.source)
                     for r in self.flags if r.source != "review"]
        out = write_report_csv(path, rows)
        self.window.controller.message(f"review report written to {out}")
        return out
