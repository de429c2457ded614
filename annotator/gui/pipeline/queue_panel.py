"""Review queue panel: the (frame, track) pairs worth a look, ranked, then the sample of the rest.

A view (as the flags panel): rows come in as :class:`QueueRow`, a click leaves as ``jump(row)``,
the buttons as signals; it never touches the video. What it shows follows the Qt-free queue
(``annotator.review.queue``): the ranked items first (frame 1-based as everywhere in the window,
track, class, the estimated probability the mask is under the bar, the reason), then the sample
of the pairs left out of the queue, which a reviewer looks at before the rest is accepted in bulk.
The gate line under the list says why "Accept the rest" is disabled (the sample not seen yet, a
sample pair needed a fix) or what it would accept.
"""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.review import shown_frame

COLUMNS = ["#", "part", "frame", "track", "class", "p_bad", "reason", "state"]
#: row states and how they are drawn (``""``: not looked at yet)
STATE_COLORS = {"seen": QColor(150, 150, 150), "accepted": QColor(60, 160, 70), "fixed": QColor(60, 120, 220)}


@dataclass(frozen=True)
class QueueRow:
    part: str  # "queue" (ranked by gain) | "sample" (of the rest, looked at before the bulk accept)
    frame: int  # 0-based; shown 1-based
    track: int
    category: str
    p_bad: float | None  # the estimate (None: a sample pair the queue gives no estimate for)
    gain: float | None
    reason: str
    state: str = ""  # "" | seen | accepted | fixed


class QueuePanel(QWidget):
    jump = pyqtSignal(int)  # row index: go there (frame shown, track selected)
    next_item = pyqtSignal()
    prev_item = pyqtSignal()
    recompute = pyqtSignal()
    accept_rest = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[QueueRow] = []
        self.title = QLabel("no queue yet: propagate, or press Recompute")
        self.title.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.header().setSectionResizeMode(COLUMNS.index("reason"), QHeaderView.Stretch)
        for c in range(len(COLUMNS)):
            if COLUMNS[c] != "reason":
                self.tree.header().setSectionResizeMode(c, QHeaderView.ResizeToContents)
        self.tree.itemClicked.connect(lambda item, _col: self.jump.emit(self.tree.indexOfTopLevelItem(item)))
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        for n, (name, text, signal) in enumerate([
                ("prev", "Previous (Shift+J)", self.prev_item), ("next", "Next in queue (J)", self.next_item),
                ("recompute", "Recompute", self.recompute), ("accept_rest", "Accept the rest", self.accept_rest)]):
            b = QPushButton(text)
            b.setObjectName(f"queue_{name}")
            b.clicked.connect(lambda _=False, s=signal: s.emit())
            grid.addWidget(b, n // 2, n % 2)
            self.buttons[name] = b
        self.gate = QLabel("")
        self.gate.setWordWrap(True)
        self.gate.setObjectName("queue_gate")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.tree, 1)
        lay.addLayout(grid)
        lay.addWidget(self.gate)
        self.set_gate(False, "no queue yet")

    def set_rows(self, rows: list[QueueRow], title: str) -> None:
        """Show ``rows`` (queue items first, then the sample) under ``title``."""
        self.rows = list(rows)
        self.title.setText(title)
        self.tree.clear()
        self.tree.addTopLevelItems([self._item(n, r) for n, r in enumerate(self.rows)])

    def _item(self, n: int, r: QueueRow) -> QTreeWidgetItem:
        p = "" if r.p_bad is None else f"{r.p_bad:.2f}"
        item = QTreeWidgetItem([str(n + 1), r.part, str(shown_frame(r.frame)), str(r.track), r.category, p,
                                r.reason, r.state])
        gain = "" if r.gain is None else f", expected gain {r.gain:.3f}"
        item.setToolTip(COLUMNS.index("reason"), f"{r.reason}{gain}")
        item.setTextAlignment(COLUMNS.index("p_bad"), int(Qt.AlignRight | Qt.AlignVCenter))
        if r.state in STATE_COLORS:
            for c in range(len(COLUMNS)):
                item.setForeground(c, QBrush(STATE_COLORS[r.state]))
        return item

    def set_state(self, n: int, state: str) -> None:
        """Mark row ``n`` seen / accepted / fixed (redrawn in place, the list keeps its scroll)."""
        if not 0 <= n < len(self.rows) or self.rows[n].state == state:
            return
        r = self.rows[n]
        self.rows[n] = QueueRow(r.part, r.frame, r.track, r.category, r.p_bad, r.gain, r.reason, state)
        item = self.tree.topLevelItem(n)
        item.setText(COLUMNS.index("state"), state)
        brush = QBrush(STATE_COLORS[state]) if state in STATE_COLORS else QBrush()
        for c in range(len(COLUMNS)):
            item.setForeground(c, brush)

    def set_current(self, n: int | None) -> None:
        if n is None or not 0 <= n < len(self.rows):
            self.tree.clearSelection()
            return
        item = self.tree.topLevelItem(n)
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)

    def set_gate(self, enabled: bool, text: str) -> None:
        """Enable "Accept the rest" or say why it is disabled (also its tooltip)."""
        b = self.buttons["accept_rest"]
        b.setEnabled(enabled)
        b.setToolTip(text)
        self.gate.setText(("accept the rest: " if enabled else "accept the rest is disabled: ") + text)

    def item_rect_center(self, n: int):  # noqa: ANN201 - a QPoint, for tests clicking a row
        item = self.tree.topLevelItem(n)
        self.tree.scrollToItem(item)
        return self.tree.visualItemRect(item).center()
