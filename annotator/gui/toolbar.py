"""Tool bar: the tools (exclusive, each with its shortcut in the tooltip), paint mode, brush size.

The paint-mode box opens its list below itself (``DropDown``), not with the current item under the
pointer as some styles place a combo box popup, so a click never lands on a mode by accident. When
the window is narrower than the bar, Qt's extension button (the chevron at the end) holds the
actions that do not fit; the widgets here keep small minimum widths so that happens instead of the
bar pushing the window wider (issue 23: below about 600x430 the bar overflowed).
"""

from __future__ import annotations

from PyQt5.QtCore import QPoint, QSize, Qt
from PyQt5.QtWidgets import QActionGroup, QApplication, QComboBox, QLabel, QSpinBox, QToolBar, QWidget

from annotator.gui.paint_modes import KEYS, PAINT_MODES
from annotator.gui.shortcuts import ShortcutRegistry
from annotator.gui.tools import TOOL_CLASSES


class DropDown(QComboBox):
    """A combo box whose list always opens below the control (or above it at the screen's bottom)."""

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        super().showPopup()
        popup = self.view().window()
        below = self.mapToGlobal(QPoint(0, self.height()))
        screen = QApplication.screenAt(below) or QApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        y = below.y()
        if avail is not None and y + popup.height() > avail.bottom():
            y = self.mapToGlobal(QPoint(0, 0)).y() - popup.height()
        popup.move(below.x(), y)


class ToolBar(QToolBar):
    def __init__(self, registry: ShortcutRegistry, parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.setObjectName("tools")
        self.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.setIconSize(QSize(16, 16))
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        self.tool_actions = {}
        for cls in TOOL_CLASSES:
            act = registry.actions[f"tool:{cls.name}"]
            act.setCheckable(True)
            act.setText(cls.title)
            self.group.addAction(act)
            self.addAction(act)
            self.tool_actions[cls.name] = act
        self.scissors = registry.actions["tool:scissors"]  # a mode of the polygon tool (tools/modes.py)
        self.scissors.setCheckable(True)
        self.addAction(self.scissors)
        self.addSeparator()
        self.addWidget(QLabel(" paint: "))
        self.mode = DropDown()
        self.mode.setObjectName("paint_mode")
        self.mode.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        for mode, text in PAINT_MODES:
            self.mode.addItem(text, mode.value)
            self.mode.setItemData(self.mode.count() - 1, f"{text} ({KEYS.get(f'paint:{mode.value}', '')})",
                                  Qt.ToolTipRole)
        self.mode.setToolTip(
            "panoptic order (Alt+1, default): an object takes the pixels of stuff under it; stuff paints\n"
            "    only unlabelled pixels, so a sky drawn after the objects never covers them\n"
            "only unlabelled (Alt+2): paint void pixels only (behind existing segments)\n"
            "replace (Alt+3): take every pixel under the mask, objects too (locked tracks never change)\n"
            "keep locked (Alt+4): replace, but locked tracks keep their pixels")
        self.addWidget(self.mode)
        self.addWidget(QLabel("  brush: "))
        self.brush = QSpinBox()
        self.brush.setRange(1, 256)
        self.brush.setSuffix(" px")
        self.brush.setToolTip("brush radius ([ smaller, ] larger)")
        self.addWidget(self.brush)
        self.addSeparator()
        self.addAction(registry.actions["undo"])
        self.addAction(registry.actions["redo"])

    def set_tool(self, name: str) -> None:
        act = self.tool_actions.get(name)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        if name != "polygon":  # another tool ends scissors mode
            self.scissors.setChecked(False)

    def set_mode(self, value: str) -> None:
        """Show the controller's paint mode (changed by Alt+1..4) without re-emitting it."""
        i = self.mode.findData(value)
        if i >= 0 and i != self.mode.currentIndex():
            self.mode.blockSignals(True)
            self.mode.setCurrentIndex(i)
            self.mode.blockSignals(False)

    def set_brush(self, radius: float) -> None:
        self.brush.blockSignals(True)
        self.brush.setValue(int(round(radius)))
        self.brush.blockSignals(False)
