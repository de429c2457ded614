"""Help: the keyboard shortcut sheet (F1) and the About box.

The sheet is built from data, never typed twice: the workspace's table
``annotator.gui.shortcuts.SHORTCUTS`` (rows of key text and description) plus every menu action
that has a shortcut, so what F1 shows is what the keys do.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterable, Sequence
from typing import Any

from PyQt5.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, Qt
from PyQt5.QtGui import QFontDatabase, QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QAction,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.gui.shortcuts import MOUSE_HELP, SHORTCUTS


def workspace_shortcuts() -> list[tuple[str, str]]:
    """Rows of ``annotator.gui.shortcuts.SHORTCUTS`` plus its ``MOUSE_HELP``."""
    rows = _rows(SHORTCUTS)
    return rows + _rows(MOUSE_HELP) if rows else []


def _rows(table: Any) -> list[tuple[str, str]]:
    """Accept a list of (keys, description[, ...]) rows or a dict key -> description/(method, arg)."""
    rows: list[tuple[str, str]] = []
    items: Iterable[Any] = table.items() if isinstance(table, dict) else table
    for item in items:
        try:
            key, what = item[0], item[1]
        except (TypeError, IndexError, KeyError):
            continue
        if isinstance(what, tuple | list):
            what = " ".join(str(x) for x in what).replace("_", " ")
        rows.append((str(key), str(what)))
    return rows


def menu_shortcuts(menus: Iterable[QMenu]) -> list[tuple[str, str]]:
    """(shortcut, "Menu > Action") of every menu action that has one (also display-only hints)."""
    rows: list[tuple[str, str]] = []

    def walk(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{path} > {action.menu().title().replace('&', '')}")
                continue
            text = action.text().replace("&", "")
            name, _, hint = text.partition("\t")
            keys = action.shortcut().toString(QKeySequence.NativeText) or hint
            if keys and not action.isSeparator():
                rows.append((keys, f"{path} > {name}"))

    for menu in menus:
        walk(menu, menu.title().replace("&", ""))
    return rows


class ShortcutSheet(QDialog):
    """A searchable table of every shortcut; non-modal so it can stay open while working."""

    def __init__(self, rows: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(720, 720)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("search keys or actions...")
        self.filter.setClearButtonEnabled(True)
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(True)
        for i, (keys, what) in enumerate(rows):
            key_item = QTableWidgetItem(keys)
            key_item.setFont(self._mono())
            self.table.setItem(i, 0, key_item)
            self.table.setItem(i, 1, QTableWidgetItem(what))
        self.table.resizeRowsToContents()
        note = QLabel("Shortcuts do nothing while a text field has the focus. "
                      "Press Esc to close this sheet.")
        note.setStyleSheet("color:#555;")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table, 1)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.filter.textChanged.connect(self._filter)
        close = QAction(self)
        close.setShortcut(QKeySequence(Qt.Key_F1))
        close.triggered.connect(self.close)
        self.addAction(close)

    @staticmethod
    def _mono():
        return QFontDatabase.systemFont(QFontDatabase.FixedFont)

    def _filter(self, text: str) -> None:
        text = text.strip().lower()
        for i in range(self.table.rowCount()):
            row = " ".join(self.table.item(i, c).text().lower() for c in range(2))
            self.table.setRowHidden(i, bool(text) and text not in row)

    def visible_rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(i, 0).text(), self.table.item(i, 1).text())
                for i in range(self.table.rowCount()) if not self.table.isRowHidden(i)]


def about_text() -> str:
    try:
        ours = importlib.metadata.version("vps-annotator")
    except Exception:  # noqa: BLE001 - running from a checkout without metadata
        ours = "development"
    return (f"<h3>VPS Annotator {ours}</h3>"
            "<p>Turns raw videos into video panoptic segmentation datasets (VIPSeg format): "
            "keyframe annotation with SAM, GrabCut, polygon and brush, association of tracks, "
            "dense propagation, review, scoring (VPQ/STQ) and export.</p>"
            f"<p>Python {platform.python_version()}, Qt {QT_VERSION_STR}, PyQt {PYQT_VERSION_STR}.</p>"
            "<p>Press F1 for the keyboard shortcuts.</p>")


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About VPS Annotator")
        label = QLabel(about_text())
        label.setWordWrap(True)
        label.setTextFormat(Qt.RichText)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addWidget(buttons)
        self.setMinimumWidth(420)
