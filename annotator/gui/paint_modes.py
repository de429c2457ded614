"""Paint modes in the window: their order (tool-bar box, Alt+1..4) and what the status bar says
when a paint changed nothing because every pixel under it was protected (issue 23).

The rule itself is the engine's (``annotator.editing.PaintMode``, ``Paint.protected``); this module
only words it for a person and names the key that lifts it.
"""

from __future__ import annotations

from annotator.editing import EditError, EditSession, FillRegion, Paint, PaintMode
from annotator.errors import AnnotatorError
from annotator.gui.shortcuts import BINDINGS

#: the order of the tool bar's box and of the Alt+1..4 keys
PAINT_MODES = [(PaintMode.PANOPTIC, "panoptic order"), (PaintMode.ONLY_UNLABELLED, "only unlabelled"),
               (PaintMode.REPLACE, "replace"), (PaintMode.KEEP_LOCKED, "keep locked")]
KEYS = {b.command: " / ".join(b.keys) for b in BINDINGS if b.command.startswith("paint:")}


def protected_pixels(session: EditSession | None, frame: int, op: Paint | FillRegion) -> int:
    """Pixels under ``op`` that its mode or a lock kept from the track (0 if it cannot tell)."""
    if session is None:
        return 0
    try:
        label = session.label(frame)
        paint = op.paint(label) if isinstance(op, FillRegion) else op
        return paint.protected(label, session.context())
    except (EditError, AnnotatorError):
        return 0


def protected_text(name: str, pixels: int, mode: PaintMode, thing: bool) -> str:
    """Status text for a paint that changed nothing because every pixel under it was protected
    (the reason first: the status bar may cut the end; its tooltip holds the whole text)."""
    replace = f"{KEYS['paint:replace']} = replace"
    if not mode.takes_only_void(thing):
        return f"{name}: nothing painted - the pixels belong to locked tracks ({pixels} px protected; unlock them)"
    if mode == PaintMode.PANOPTIC:
        return (f"{name}: nothing painted - stuff paints only unlabelled pixels in the panoptic order "
                f"({pixels} px protected; {replace})")
    return f"{name}: nothing painted - this paint mode takes only unlabelled pixels ({pixels} px protected; {replace})"
