"""Main window layout: video picker, canvas, track panel, timeline, status bar (no data logic here)."""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QShortcut,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from annotator.backends import BackendStatus, backend_status
from annotator.gui.canvas import Canvas
from annotator.gui.controller import Controller
from annotator.gui.timeline import Timeline
from annotator.gui.track_panel import TrackPanel
from annotator.project import Project

#: key -> (controller method, argument); documented in README
SHORTCUTS = {
    "Right": ("step", 1), "D": ("step", 1), "Left": ("step", -1), "A": ("step", -1),
    "Shift+Right": ("step_keyframe", 1), "E": ("step_keyframe", 1),
    "Shift+Left": ("step_keyframe", -1), "Q": ("step_keyframe", -1),
    "Home": ("go_to", 0), "End": ("go_to", 10**9),
}


class MainWindow(QMainWindow):
    def __init__(self, project: Project, backends: BackendStatus | None = None) -> None:
        super().__init__()
        self.controller = Controller(project)
        self.setWindowTitle(f"VPS Annotator — {project.name}")
        self.resize(1280, 800)
        self.canvas = Canvas()
        self.tracks = TrackPanel()
        self.timeline = Timeline()
        self.video_box = QComboBox()
        self.video_box.addItems(project.video_ids)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setMaximumWidth(120)
        self.overlay_toggle = QCheckBox("overlay")
        self.overlay_toggle.setChecked(True)
        self.banner = QLabel()
        self.banner.setStyleSheet("background:#b03a2e;color:white;padding:4px;")
        self.banner.hide()

        top = QHBoxLayout()
        top.addWidget(QLabel("Video:"))
        top.addWidget(self.video_box, 1)
        top.addWidget(self.overlay_toggle)
        top.addWidget(QLabel("opacity"))
        top.addWidget(self.opacity)
        split = QSplitter()
        split.addWidget(self.canvas)
        split.addWidget(self.tracks)
        split.setStretchFactor(0, 1)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.addLayout(top)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)
        lay.addWidget(self.timeline)
        self.setCentralWidget(central)
        self.frame_label = QLabel()
        self.backends = backends or backend_status(project.settings)
        self.backend_label = QLabel(self.backends.summary)
        self.backend_label.setToolTip(self.backends.details)
        self.backend_label.setStyleSheet("padding: 0 8px; border-left: 1px solid #999;")
        self.statusBar().addWidget(self.frame_label, 1)
        self.statusBar().addPermanentWidget(self.backend_label)

        c = self.controller
        c.video_changed.connect(self._on_video)
        c.frame_changed.connect(self._on_frame)
        self.timeline.clicked.connect(c.go_to)
        self.tracks.visibility_changed.connect(c.set_track_visible)
        self.video_box.currentTextChanged.connect(lambda v: v and c.open_video(v))
        self.opacity.valueChanged.connect(self._on_opacity)
        self.overlay_toggle.toggled.connect(self._on_overlay)
        self._shortcuts = []
        for key, (method, arg) in SHORTCUTS.items():
            sc = QShortcut(QKeySequence(key), self)
            sc.activated.connect(lambda m=method, a=arg: self._shortcut(m, a))
            self._shortcuts.append(sc)
        if project.video_ids:
            c.open_video(project.video_ids[0])

    def _shortcut(self, method: str, arg: int) -> None:
        if isinstance(QApplication.focusWidget(), QLineEdit):
            return  # typing in a text field never moves frames
        getattr(self.controller, method)(arg)

    def _on_video(self) -> None:
        v = self.controller.video
        assert v is not None
        self.banner.setVisible(bool(v.lock_message))
        self.banner.setText(v.lock_message)
        self.timeline.set_video([v.frame_state(i) for i in range(v.num_frames)], v.keyframes)

    def _on_frame(self, index: int) -> None:
        c, v = self.controller, self.controller.video
        assert v is not None
        colors = c.track_colors()
        image, label = c.current_images()
        self.canvas.show_frame(image, label, colors)
        self.timeline.set_current(index)
        self.tracks.set_tracks(v, colors, c.hidden_tracks, v.frame_tracks(index))
        key = "  KEYFRAME" if v.is_keyframe(index) else ""
        ro = "  [read-only]" if v.readonly else ""
        self.frame_label.setText(f"{v.id}  frame {index + 1}/{v.num_frames} ({v.frame_names[index]})  "
                                 f"state: {v.frame_state(index).value}{key}{ro}")

    def _on_opacity(self, value: int) -> None:
        self.canvas.alpha = value / 100
        self._on_frame(self.controller.index)

    def _on_overlay(self, on: bool) -> None:
        self.canvas.show_overlay = on
        self._on_frame(self.controller.index)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.controller.close_video()
        super().closeEvent(event)
