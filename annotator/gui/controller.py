"""Navigation state of the open video (Qt signals only; all data work goes through annotator.project).

The view widgets never touch the project: they listen to ``frame_changed``/``video_changed`` and
call the controller, as in Cutie's GUI split (view / controller / resource manager).
"""

from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from annotator import panoptic
from annotator.project import Project, Video

AUTOSAVE_MS = 30_000


class Controller(QObject):
    video_changed = pyqtSignal()
    frame_changed = pyqtSignal(int)

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project
        self.video: Video | None = None
        self.index = 0
        self.hidden_tracks: set[int] = set()
        self._autosave = QTimer(self)
        self._autosave.timeout.connect(self.autosave)
        self._autosave.start(AUTOSAVE_MS)

    # ------------------------------------------------------------------ video
    def open_video(self, video_id: str) -> None:
        if self.video is not None and self.video.id == video_id:
            return
        self.close_video()
        self.video = self.project.open_video(video_id)
        self.index = 0
        self.hidden_tracks.clear()
        self.video_changed.emit()
        self.frame_changed.emit(0)

    def close_video(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video = None

    def autosave(self) -> None:
        """Fold the journal into video.json and refresh the lock heartbeat (every 30 s and on frame change)."""
        if self.video is not None and not self.video.readonly:
            self.video.save()

    # ------------------------------------------------------------------ navigation
    def go_to(self, index: int) -> None:
        if self.video is None:
            return
        index = max(0, min(self.video.num_frames - 1, int(index)))
        if index != self.index:
            self.index = index
            self.frame_changed.emit(index)

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

    def set_track_visible(self, track_id: int, visible: bool) -> None:
        (self.hidden_tracks.discard if visible else self.hidden_tracks.add)(track_id)
        self.frame_changed.emit(self.index)

    # ------------------------------------------------------------------ data for views
    def track_colors(self) -> dict[int, tuple[int, int, int]]:
        assert self.video is not None
        tax = self.video.taxonomy
        out = {}
        for t in self.video.tracks.values():
            cat = tax.get(t.category_id)
            out[t.id] = panoptic.track_color(t.id, cat.color, cat.isthing)
        return out

    def current_images(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame RGB, label map with hidden tracks removed)."""
        assert self.video is not None
        image = self.video.read_frame(self.index)
        label = self.video.read_label(self.index)
        if self.hidden_tracks:
            label = label.copy()
            label[np.isin(label, list(self.hidden_tracks))] = panoptic.VOID
        return image, label
