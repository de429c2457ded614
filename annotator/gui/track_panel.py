"""Track panel: id, class, colour, frames present, visible, locked; context menu of corrections.

Only tracks with pixels on some frame are listed (a track whose only stroke was undone leaves it).

A view: rows come from the controller as :class:`TrackRow`; what the user asks for leaves as
signals (``selected``, ``visibility_changed``, ``lock_changed``, ``action``), which the window
routes to ``track_actions`` (``annotator.stages.corrections`` underneath).
"""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtCore import QPoint, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPixmap
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTreeWidget, QTreeWidgetItem

COLUMNS = ["id", "class", "fr", "vis", "lock"]
ID, CLASS, FRAMES, VISIBLE, LOCKED = range(5)


@dataclass(frozen=True)
class TrackRow:
    id: int
    category_id: int
    name: str
    isthing: bool
    color: tuple[int, int, int]
    frames: int
    visible: bool
    locked: bool
    on_frame: bool


def _swatch(color: tuple[int, int, int]) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*color))
    return QIcon(pm)


class TrackPanel(QTreeWidget):
    selected = pyqtSignal(object)  # track id or None
    visibility_changed = pyqtSignal(int, bool)
    lock_changed = pyqtSignal(int, bool)
    action = pyqtSignal(str, dict)  # "set_class" | "merge" | "split" | "swap" | "delete_on_frame" | ...

    def __init__(self) -> None:
        super().__init__()
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setContextMenuPolicy(Qt.DefaultContextMenu)
        self.setMinimumWidth(160)  # small windows (issue 23): the class column stretches, the rest fit
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(CLASS, QHeaderView.Stretch)
        self.headerItem().setToolTip(FRAMES, "frames the track has pixels on")
        self.headerItem().setToolTip(VISIBLE, "visible on the canvas (H)")
        self.headerItem().setToolTip(LOCKED, "locked: no tool changes its pixels")
        for c in (ID, FRAMES, VISIBLE, LOCKED):
            self.header().setSectionResizeMode(c, QHeaderView.ResizeToContents)
        self.rows: dict[int, TrackRow] = {}
        self.empty: list[int] = []  # tracks without pixels on any frame (not listed)
        self.frame = 0
        self.last_menu: QMenu | None = None
        self.itemChanged.connect(self._on_item_changed)
        self.itemSelectionChanged.connect(self._on_selection)

    def set_rows(self, rows: list[TrackRow], frame: int, selected: int | None) -> None:
        """Show the tracks that have pixels on some frame. A track left with 0 frames (its only edit
        undone, deleted on its last frame) leaves the list, as an undone object leaves CVAT's object
        list; it comes back when pixels are painted into it again (redo, or its stuff class)."""
        self.empty = [r.id for r in rows if r.frames <= 0]
        rows = [r for r in rows if r.frames > 0]
        self.blockSignals(True)
        self.clear()
        self.rows = {r.id: r for r in rows}
        self.frame = frame
        for r in rows:
            item = QTreeWidgetItem([f"{'●' if r.on_frame else '○'} {r.id}",
                                    f"{r.name} ({'thing' if r.isthing else 'stuff'})", str(r.frames), "", ""])
            item.setIcon(CLASS, _swatch(r.color))
            item.setData(ID, Qt.UserRole, r.id)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(VISIBLE, Qt.Checked if r.visible else Qt.Unchecked)
            item.setCheckState(LOCKED, Qt.Checked if r.locked else Qt.Unchecked)
            item.setToolTip(ID, "● on this frame" if r.on_frame else "○ not on this frame")
            self.addTopLevelItem(item)
            if r.id == selected:
                item.setSelected(True)
                self.setCurrentItem(item)
        self.blockSignals(False)

    def item_of(self, track_id: int) -> QTreeWidgetItem | None:
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(ID, Qt.UserRole) == track_id:
                return item
        return None

    def select(self, track_id: int | None) -> None:
        self.blockSignals(True)
        self.clearSelection()
        item = self.item_of(track_id) if track_id is not None else None
        if item is not None:
            item.setSelected(True)
            self.setCurrentItem(item)
            self.scrollToItem(item)
        self.blockSignals(False)

    def _on_selection(self) -> None:
        items = self.selectedItems()
        self.selected.emit(int(items[0].data(ID, Qt.UserRole)) if items else None)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        tid = int(item.data(ID, Qt.UserRole))
        if column == VISIBLE:
            self.visibility_changed.emit(tid, item.checkState(VISIBLE) == Qt.Checked)
        elif column == LOCKED:
            self.lock_changed.emit(tid, item.checkState(LOCKED) == Qt.Checked)

    # ------------------------------------------------------------------ context menu
    def build_menu(self, tid: int) -> QMenu:
        r = self.rows[tid]
        f = self.frame
        menu = QMenu(self)
        menu.setToolTipsVisible(True)

        def add(text: str, name: str, enabled: bool = True, into: QMenu = menu, **args: object) -> None:
            act = into.addAction(text)
            act.setEnabled(enabled)
            act.setObjectName(name)
            act.triggered.connect(lambda _=False, n=name, a={"track": tid, **args}: self.action.emit(n, a))

        title = menu.addAction(f"#{tid} {r.name} ({'thing' if r.isthing else 'stuff'}), {r.frames} frame(s)")
        title.setEnabled(False)
        menu.addSeparator()
        add("Change class…", "set_class")
        same = [o for o in self.rows.values() if o.id != tid and o.category_id == r.category_id]
        merge = menu.addMenu("Merge into this track")
        merge.setObjectName("merge_menu")
        swap = menu.addMenu(f"Swap with, from frame {f + 1} on")
        swap.setObjectName("swap_menu")
        for o in same:
            add(f"#{o.id} {o.name} ({o.frames} frame(s))", "merge", into=merge, absorb=o.id)
            add(f"#{o.id} {o.name}", "swap", into=swap, other=o.id, frame=f)
        merge.setEnabled(bool(same))
        swap.setEnabled(bool(same))
        if not same:
            merge.setToolTip("no other track of this class")
        add(f"Split from frame {f + 1} (new track from here on)", "split", frame=f)
        menu.addSeparator()
        add(f"Delete on this frame ({f + 1})", "delete_on_frame", enabled=r.on_frame)
        add(f"Delete from frame {f + 1} on", "delete_from", frame=f)
        add("Delete track (every frame)", "delete")
        menu.addSeparator()
        add("Unlock" if r.locked else "Lock", "lock", locked=not r.locked)
        add("Show" if not r.visible else "Hide", "visible", visible=not r.visible)
        return menu

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt override
        item = self.itemAt(event.pos())
        if item is None:
            return
        tid = int(item.data(ID, Qt.UserRole))
        self.select(tid)
        self.selected.emit(tid)
        self.last_menu = self.build_menu(tid)
        self.last_menu.exec_(event.globalPos())

    def row_position(self, track_id: int) -> QPoint:
        """Viewport coordinates of a track's row (tests click there)."""
        item = self.item_of(track_id)
        assert item is not None
        return self.visualItemRect(item).center()
