"""Track list: id, class, colour swatch, frames present, visibility checkbox."""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPixmap
from PyQt5.QtWidgets import QListWidget, QListWidgetItem

from annotator.project import Video


class TrackPanel(QListWidget):
    visibility_changed = pyqtSignal(int, bool)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumWidth(240)
        self.itemChanged.connect(self._on_item_changed)

    def set_tracks(self, video: Video, colors: dict[int, tuple[int, int, int]], hidden: set[int],
                   on_frame: list[int]) -> None:
        self.blockSignals(True)
        self.clear()
        for t in sorted(video.tracks.values(), key=lambda t: t.id):
            cat = video.taxonomy.get(t.category_id)
            n = len(video.track_frames(t.id))
            here = "●" if t.id in on_frame else "○"
            item = QListWidgetItem(f"{here} #{t.id}  {cat.name}{' (thing)' if cat.isthing else ''}  · {n} fr")
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(*colors[t.id]))
            item.setIcon(QIcon(swatch))
            item.setData(Qt.UserRole, t.id)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked if t.id in hidden else Qt.Checked)
            self.addItem(item)
        self.blockSignals(False)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self.visibility_changed.emit(int(item.data(Qt.UserRole)), item.checkState() == Qt.Checked)
