"""Key bindings: one table (``BINDINGS``) for the actions, the help sheet and the README.

View options (T overlay, Ctrl+F fit, Ctrl+1 1:1...) belong to the View menu (``menus.py``).
Keys follow the Proposal column of ``gui_conventions.md`` (labelme/CVAT/X-AnyLabeling majority).
Every binding is a window-wide ``QAction``; while a text field has focus the registry takes the keys
off all of them (typing "d" in the class search never changes frame, Enter picks the class; CVAT
#1185) - the actions stay enabled, so tool-bar buttons and menus keep working - and puts them back
when the focus leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAbstractSpinBox,
    QAction,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)


@dataclass(frozen=True)
class Binding:
    command: str
    keys: tuple[str, ...]
    description: str
    text: str = ""  # menu/tool-bar text (defaults to the description)
    extra: tuple[str, ...] = ()  # also bound, not listed (how some platforms report the same key)

    @property
    def sequences(self) -> list[QKeySequence]:
        return [QKeySequence(k) for k in self.keys + self.extra]


BINDINGS: list[Binding] = [
    Binding("next_frame", ("D", "Right"), "next frame"),
    Binding("prev_frame", ("A", "Left"), "previous frame"),
    Binding("next_key", ("R", "Shift+Right"), "next keyframe"),
    Binding("prev_key", ("E", "Shift+Left"), "previous keyframe"),
    Binding("first_frame", ("Home",), "first frame"),
    Binding("last_frame", ("End",), "last frame"),
    Binding("play", ("Space",), "play / pause"),
    Binding("undo", ("Ctrl+Z",), "undo the last action (stroke or correction)", "Undo"),
    Binding("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "redo", "Redo"),
    Binding("save", ("Ctrl+S",), "save now (also autosaved)", "Save"),
    Binding("tool:polygon", ("P", "Ctrl+N"), "polygon tool (a click on the first point, Enter or a double click "
            "closes a ring; later rings are holes)", "Polygon"),
    Binding("tool:brush", ("Shift+1",), "brush (Ctrl+drag or right drag erases)", "Brush"),
    Binding("tool:eraser", ("Shift+2",), "eraser", "Eraser"),
    Binding("tool:fill", ("Shift+3",), "fill a region (Shift+click: by colour)", "Fill"),
    Binding("tool:grabcut", ("Shift+4",), "GrabCut box, then +/- strokes", "GrabCut"),
    Binding("tool:superpixel", ("Shift+5",), "superpixels: click or drag paints whole superpixels (right drag "
            "erases)", "Superpixels"),
    Binding("tool:scissors", ("I",), "scissors: the polygon's segments follow image edges (Shift+click: a "
            "straight vertex); I again: straight segments", "Scissors"),
    Binding("tool:superpixel_coarser", (",",), "coarser superpixels"),
    Binding("tool:superpixel_finer", (".",), "finer superpixels"),
    Binding("tool:sam", ("Q",), "SAM click: left = object, right / Shift+left = background", "SAM click"),
    Binding("tool:sam_box", ("W", "Ctrl+R"), "SAM box", "SAM box"),
    Binding("paint:panoptic", ("Alt+1",), "paint mode: panoptic order (things take stuff pixels, stuff paints "
            "only unlabelled pixels)", "Panoptic order"),
    Binding("paint:only_unlabelled", ("Alt+2",), "paint mode: only unlabelled pixels (behind everything)",
            "Only unlabelled"),
    Binding("paint:replace", ("Alt+3",), "paint mode: replace (take every unlocked pixel, also objects)", "Replace"),
    Binding("paint:keep_locked", ("Alt+4",), "paint mode: keep locked (replace, locked tracks keep theirs)",
            "Keep locked"),
    Binding("accept", ("Return", "Enter"), "accept the pending mask / close the polygon"),
    Binding("cancel", ("Escape",), "discard the pending mask or points"),
    Binding("cycle", ("Tab",), "next SAM candidate (otherwise next track)"),
    Binding("cycle_back", ("Shift+Tab",), "previous SAM candidate (otherwise previous track)",
            extra=("Backtab", "Shift+Backtab")),
    Binding("backspace", ("Backspace",), "remove the last point or click"),
    Binding("brush_bigger", ("]",), "larger brush"),
    Binding("brush_smaller", ("[",), "smaller brush"),
    Binding("new_object", ("N",), "new object: the next thing mask starts a new track"),
    Binding("hide_track", ("H",), "hide / show the selected track"),
    Binding("delete_on_frame", ("Delete",), "delete the selected track on this frame"),
    Binding("class_search", ("C",), "search classes (type, Enter picks)"),
    Binding("zoom_in", ("Ctrl++", "Ctrl+="), "zoom in (also mouse wheel)"),
    Binding("zoom_out", ("Ctrl+-",), "zoom out"),
    *[Binding(f"recent:{n}", (str(n),), f"recent class {n}") for n in range(1, 10)],
]

#: (key text, description) for the help sheet (F1) and the README
SHORTCUTS: list[tuple[str, str]] = [(" / ".join(b.keys), b.description) for b in BINDINGS
                                    if not b.command.startswith("recent:")] + [("1 … 9", "recent classes")]
MOUSE_HELP: list[tuple[str, str]] = [
    ("wheel", "zoom at the pointer"), ("middle drag", "pan"),
    ("left / right click (SAM)", "positive / negative point"),
    ("left drag (brush)", "paint, applied while dragging"), ("Ctrl+drag (brush)", "erase"),
]


#: commands that keep working while an engine job writes the open video's labels (they only look)
SAFE_COMMANDS = frozenset({"next_frame", "prev_frame", "next_key", "prev_key", "first_frame", "last_frame", "play",
                           "cancel", "zoom_in", "zoom_out", "class_search", "hide_track", "cycle", "cycle_back"})


def conflicts(bindings: list[Binding] = BINDINGS) -> list[str]:
    """Keys bound twice (CVAT's conflict detector); the table must have none."""
    seen: dict[str, str] = {}
    out = []
    for b in bindings:
        for k in b.keys + b.extra:
            norm = QKeySequence(k).toString()
            if norm in seen:
                out.append(f"{k}: {seen[norm]} and {b.command}")
            seen[norm] = b.command
    return out


def is_text_input(w: QWidget | None) -> bool:
    if isinstance(w, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)):
        return True
    return isinstance(w, QComboBox) and w.isEditable()


class ShortcutRegistry:
    """Creates one QAction per binding on ``window`` and runs ``handler(command)`` when triggered."""

    def __init__(self, window: QWidget, handler: Callable[[str], None]) -> None:
        self.actions: dict[str, QAction] = {}
        self._typing = False
        for b in BINDINGS:
            act = QAction(b.text or b.description, window)
            act.setShortcuts(b.sequences)
            act.setShortcutContext(Qt.WindowShortcut)
            act.setToolTip(f"{b.text or b.description} ({' / '.join(b.keys)})")
            act.triggered.connect(lambda _=False, c=b.command: handler(c))
            window.addAction(act)
            self.actions[b.command] = act
        app = QApplication.instance()
        if app is not None:
            app.focusChanged.connect(self._focus_changed)

    def set_enabled(self, command: str, enabled: bool, reason: str = "") -> None:
        act = self.actions[command]
        act.setEnabled(enabled)
        if reason:
            act.setToolTip(reason)

    @property
    def typing(self) -> bool:
        return self._typing

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        typing = is_text_input(new)
        if typing == self._typing:
            return
        self._typing = typing
        try:
            for b in BINDINGS:
                self.actions[b.command].setShortcuts([] if typing else b.sequences)
        except RuntimeError:  # the window is gone
            return
