"""Flags panel: association flags and review flags in one list; a click jumps to the frame and track.

A view: rows come in as :class:`FlagRow` (built from ``annotator.stages.association`` review flags and
``annotator.review.Flag``), a click leaves as ``jump(frame, track)``. Frames are shown in the window's
numbering (``annotator.review.shown_frame``: from 1, as the timeline), which the flags' reasons use too.
The panel's rows are the one list of current flags: the review dock counts and names the same ones
(``changed`` tells it when they change).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.review import shown_frame

COLUMNS = ["source", "kind", "frame", "track", "score / IoU", "why"]
#: association flags whose IoU means nothing (no match was made)
NO_SCORE = ("new_track", "vanished", "reappeared")


@dataclass(frozen=True)
class FlagRow:
    source: str  # "association" | "review"
    kind: str
    frame: int
    track: int
    score: float
    reason: str
    key: str = ""
    other: int = 0  # the second track of a switch / flip

    @property
    def tracks(self) -> tuple[int, ...]:
        """The tracks the flag concerns (none for a whole-frame flag)."""
        return tuple(t for t in (self.track, self.other) if t)


def association_rows(flags: Iterable[Any]) -> list[FlagRow]:
    """Rows of ``annotator.stages.association_records.ReviewFlag`` (new/vanished/low IoU/disputed...)."""
    return [FlagRow("association", f.kind, int(f.frame), int(f.track), float(f.iou), f.message,
                    f"assoc:{f.kind}:{f.frame}:{f.track}") for f in flags]


def review_rows(flags: Iterable[Any]) -> list[FlagRow]:
    """Rows of ``annotator.review.Flag``."""
    return [FlagRow("review", f.kind, int(f.frame), int(f.track), float(f.score), f.reason, f.key, int(f.other))
            for f in flags]


class FlagsPanel(QWidget):
    jump = pyqtSignal(int, object)  # frame, track id or None
    compute = pyqtSignal()  # "compute review flags" pressed
    dismiss = pyqtSignal(object)  # the selected FlagRow: "not an error"
    changed = pyqtSignal()  # the rows changed (the review dock shows the same set)

    def __init__(self) -> None:
        super().__init__()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.header().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.Stretch)
        for c in range(len(COLUMNS) - 1):
            self.tree.header().setSectionResizeMode(c, QHeaderView.ResizeToContents)
        self.summary = QLabel("no flags yet: run Pipeline > Associate keyframes or Review > Compute flags")
        self.summary.setWordWrap(True)
        self.button = QPushButton("Compute review flags")
        self.button.setToolTip("run the automatic checks (annotator.review) over the whole video")
        self.button.clicked.connect(self.compute.emit)
        self.dismiss_button = QPushButton("Dismiss flag")
        self.dismiss_button.setToolTip("the selected review flag is not an error (recorded in the review)")
        self.dismiss_button.clicked.connect(self._dismiss)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.dismiss_button)
        top.addWidget(self.button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.tree, 1)
        self.assoc: list[FlagRow] = []
        self.review: list[FlagRow] = []
        self.tree.itemClicked.connect(self._clicked)
        self.tree.itemActivated.connect(self._clicked)

    @property
    def rows(self) -> list[FlagRow]:
        return self.assoc + self.review

    def set_association(self, rows: list[FlagRow]) -> None:
        self.assoc = list(rows)
        self._fill()

    def set_review(self, rows: list[FlagRow]) -> None:
        self.review = list(rows)
        self._fill()

    def clear_all(self) -> None:
        self.assoc, self.review = [], []
        self._fill()

    def _fill(self) -> None:
        self.tree.clear()
        for n, r in enumerate(self.rows):
            item = QTreeWidgetItem([r.source, r.kind, str(shown_frame(r.frame)), str(r.track) if r.track else "-",
                                    "-" if r.source == "association" and r.kind in NO_SCORE else f"{r.score:.2f}",
                                    r.reason])
            item.setData(0, Qt.UserRole, n)
            item.setToolTip(5, r.reason)
            self.tree.addTopLevelItem(item)
        self.summary.setText(f"{len(self.assoc)} association flag(s), {len(self.review)} review flag(s); "
                             "click one to jump there")
        self.changed.emit()

    def item_of(self, n: int) -> QTreeWidgetItem:
        return self.tree.topLevelItem(n)

    def _dismiss(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self.dismiss.emit(self.rows[int(item.data(0, Qt.UserRole))])

    def remove(self, row: FlagRow) -> None:
        self.review = [r for r in self.review if r is not row]
        self.assoc = [r for r in self.assoc if r is not row]
        self._fill()

    def _clicked(self, item: QTreeWidgetItem, _col: int = 0) -> None:
        r = self.rows[int(item.data(0, Qt.UserRole))]
        self.jump.emit(r.frame, r.track or None)
