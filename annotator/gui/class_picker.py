"""Class picker: type to search the taxonomy (1,000+ classes stay instant), thing/stuff marked,
recent classes on keys 1-9.

Filtering is a ``QSortFilterProxyModel`` over one model built once per taxonomy, so a keystroke
costs a substring test and a ranked sort of the matches rather than rebuilding widgets. Enter in the search field
picks the first match and hands the keyboard back to the canvas (``chosen`` signal).
"""

from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, QSortFilterProxyModel, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPainter, QPixmap, QStandardItem, QStandardItemModel
from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QListView, QVBoxLayout, QWidget

from annotator.taxonomy import Category, Taxonomy

CATEGORY_ROLE = Qt.UserRole + 1
NAME_ROLE = Qt.UserRole + 2


RANK_ROLE = Qt.UserRole + 3


class RankedFilter(QSortFilterProxyModel):
    """Substring filter ranked like a search box: name starts with the text, then a word of it does,
    then anywhere; ties keep the taxonomy order (so Enter picks "car" for "ca", not "escalator").

    Filtering and sorting run in C++ (filter on the lower-case name role, sort on an integer rank
    role); Python only computes one rank per class per keystroke, so 1,000+ classes stay instant.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.query = ""
        self.setFilterRole(NAME_ROLE)
        self.setSortRole(RANK_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseInsensitive)

    def set_query(self, text: str) -> None:
        self.query = q = text.strip().lower()
        model = self.sourceModel()
        model.blockSignals(True)
        for row in range(model.rowCount()):
            item = model.item(row)
            name = item.data(NAME_ROLE)
            if not q or name.startswith(q):
                rank = 0
            else:
                rank = 1 if any(w.startswith(q) for w in name.replace("-", "_").split("_")) else 2
            item.setData(rank * 1_000_000 + row, RANK_ROLE)
        model.blockSignals(False)
        self.setFilterFixedString(q)
        self.invalidate()
        self.sort(0)


def class_icon(cat: Category, size: int = 14) -> QIcon:
    """Things get a round swatch, stuff a square one (also said in words in the row text)."""
    pm = QPixmap(size, size)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    p.setBrush(QColor(*cat.color))
    p.setPen(QColor(20, 20, 20))
    if cat.isthing:
        p.drawEllipse(1, 1, size - 2, size - 2)
    else:
        p.drawRect(1, 1, size - 2, size - 2)
    p.end()
    return QIcon(pm)


def class_text(cat: Category) -> str:
    return f"{cat.name}   ({'thing' if cat.isthing else 'stuff'})"


class ClassPicker(QWidget):
    chosen = pyqtSignal(int)  # category id
    done = pyqtSignal()  # Enter/Esc in the search field: give the keyboard back

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search classes (C)…")
        self.search.setClearButtonEnabled(True)
        self.model = QStandardItemModel(self)
        self.proxy = RankedFilter(self)
        self.proxy.setSourceModel(self.model)
        self.list = QListView()
        self.list.setModel(self.proxy)
        self.list.setUniformItemSizes(True)  # constant-time layout for long lists
        self.list.setEditTriggers(QListView.NoEditTriggers)
        self.recent = QLabel()
        self.recent.setWordWrap(True)
        self.recent.setStyleSheet("color:#555;")
        self.active = QLabel()
        self.active.setStyleSheet("font-weight:bold;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.active)
        lay.addWidget(self.search)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.recent)
        self.taxonomy: Taxonomy | None = None
        self.active_id: int | None = None
        self.search.textChanged.connect(self.proxy.set_query)
        self.search.textChanged.connect(self._select_first)
        self.search.installEventFilter(self)
        self.list.activated.connect(self._activated)
        self.list.clicked.connect(self._activated)

    def set_taxonomy(self, taxonomy: Taxonomy | None) -> None:
        if taxonomy is self.taxonomy:
            return
        self.taxonomy = taxonomy
        self.model.clear()
        if taxonomy is None:
            return
        for cat in taxonomy:
            item = QStandardItem(class_icon(cat), class_text(cat))
            item.setData(cat.id, CATEGORY_ROLE)
            item.setData(cat.name.lower(), NAME_ROLE)
            item.setToolTip(f"id {cat.id}{f', {cat.parent}' if cat.parent else ''}")
            self.model.appendRow(item)

    def set_active(self, category_id: int, recent: list[int]) -> None:
        if self.taxonomy is None:
            return
        cat = self.taxonomy.get(category_id)
        self.active_id = cat.id
        self.active.setText(f"class: {cat.name} ({'thing' if cat.isthing else 'stuff'})")
        names = [f"{n + 1} {self.taxonomy.get(c).name}" for n, c in enumerate(recent[:9])]
        self.recent.setText("recent: " + " · ".join(names) if names else "")
        if not self.search.text():  # show the active class in the list
            self._show_active()

    def _show_active(self) -> None:
        """Highlight the active class (not whichever row is first after the search was cleared)."""
        if self.active_id is None:
            return
        match = self.model.match(self.model.index(0, 0), CATEGORY_ROLE, self.active_id, 1, Qt.MatchExactly)
        if match:
            idx = self.proxy.mapFromSource(match[0])
            self.list.setCurrentIndex(idx)
            self.list.scrollTo(idx, QListView.PositionAtCenter)

    def visible_ids(self) -> list[int]:
        return [int(self.proxy.index(r, 0).data(CATEGORY_ROLE)) for r in range(self.proxy.rowCount())]

    def focus_search(self) -> None:
        self.search.setFocus(Qt.ShortcutFocusReason)
        self.search.selectAll()

    def _select_first(self, text: str = "") -> None:
        if not text.strip():  # the search was cleared (Enter, Esc, the clear button): back to the active class
            self._show_active()
        elif self.proxy.rowCount():
            self.list.setCurrentIndex(self.proxy.index(0, 0))

    def _activated(self, index) -> None:
        if index.isValid():
            self.chosen.emit(int(index.data(CATEGORY_ROLE)))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.search and event.type() == QEvent.KeyPress:
            key = event.key()
            if key in (Qt.Key_Down, Qt.Key_Up):
                row = self.list.currentIndex().row() + (1 if key == Qt.Key_Down else -1)
                if 0 <= row < self.proxy.rowCount():
                    self.list.setCurrentIndex(self.proxy.index(row, 0))
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter):
                idx = self.list.currentIndex()
                if not idx.isValid() and self.proxy.rowCount():
                    idx = self.proxy.index(0, 0)
                if idx.isValid():
                    self.chosen.emit(int(idx.data(CATEGORY_ROLE)))
                    self.search.clear()
                    self.done.emit()
                return True
            if key == Qt.Key_Escape:
                self.search.clear()
                self.done.emit()
                return True
        return super().eventFilter(obj, event)


class ClassDialog(QDialog):
    """Pick a class in a dialog (the track panel's "change class")."""

    def __init__(self, taxonomy: Taxonomy, current: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Change class")
        self.picker = ClassPicker(self)
        self.picker.set_taxonomy(taxonomy)
        self.picker.set_active(current, [])
        self.category_id: int | None = None
        buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.picker)
        lay.addWidget(buttons)
        self.picker.chosen.connect(self._chosen)
        self.resize(320, 480)
        self.picker.focus_search()

    def _chosen(self, cid: int) -> None:
        self.category_id = cid
        self.accept()
