"""Tool bar: the tools (exclusive, each with its shortcut in the tooltip), paint mode, brush size."""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QActionGroup, QComboBox, QLabel, QSpinBox, QToolBar, QWidget

from annotator.editing import PaintMode
from annotator.gui.shortcuts import ShortcutRegistry
from annotator.gui.tools import TOOL_CLASSES

PAINT_MODES = [(PaintMode.REPLACE, "replace"), (PaintMode.ONLY_UNLABELLED, "only unlabelled"),
               (PaintMode.KEEP_LOCKED, "keep locked")]


class ToolBar(QToolBar):
    def __init__(self, registry: ShortcutRegistry, parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.setObjectName("tools")
        self.setToolButtonStyle(Qt.ToolButtonTextOnly)
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
        self.addSeparator()
        self.addWidget(QLabel(" paint: "))
        self.mode = QComboBox()
        for mode, text in PAINT_MODES:
            self.mode.addItem(text, mode.value)
        self.mode.setToolTip("replace: take every pixel under the mask (locked tracks never change)\n"
                             "only unlabelled: paint void pixels only (behind existing segments)\n"
                             "keep locked: replace, but locked tracks keep their pixels")
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

    def set_brush(self, radius: float) -> None:
        self.brush.blockSignals(True)
        self.brush.setValue(int(round(radius)))
        self.brush.blockSignals(False)
