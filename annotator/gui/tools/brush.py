"""Brush and eraser: a round stroke applied while dragging, one undo step per stroke.

Each mouse move paints the segment since the last position (``stroke_mask`` of two points), so the
label map and the overlay follow the pointer; the whole drag is one ``EditSession.group``. Ctrl
turns the brush into the eraser for one stroke (X-AnyLabeling habit). ``[``/``]`` change the size.
"""

from __future__ import annotations

from annotator.editing import EditError, stroke_mask
from annotator.gui.tools.base import Point, PointerEvent, Tool


class BrushTool(Tool):
    name = "brush"
    title = "Brush"
    erasing = False

    def __init__(self, host) -> None:
        super().__init__(host)
        self._last: Point | None = None
        self._erase_stroke = False

    @property
    def cursor_radius(self) -> float | None:
        return float(self.host.brush_radius)

    @property
    def busy(self) -> bool:
        return self._last is not None

    def press(self, ev: PointerEvent) -> None:
        if ev.button not in ("left", "right"):
            return
        self._erase_stroke = self.erasing or ev.ctrl or ev.button == "right"
        self.host.begin_group("erase" if self._erase_stroke else "brush")
        self._last = ev.point
        self._dab([ev.point])

    def move(self, ev: PointerEvent) -> None:
        if self._last is None:
            return
        self._dab([self._last, ev.point])
        self._last = ev.point

    def release(self, ev: PointerEvent) -> None:
        if self._last is None:
            return
        self._last = None
        self.host.end_group()

    def cancel(self) -> bool:
        if self._last is None:
            return False
        self.release(PointerEvent(0, 0))
        return True

    def _dab(self, pts: list[Point]) -> None:
        try:
            region = stroke_mask(self.host.label().shape, pts, self.host.brush_radius)
        except EditError as e:
            self.host.message(str(e))
            return
        if self._erase_stroke:
            self.host.erase(region, "erase")
        else:
            self.host.paint(region, "brush")


class EraserTool(BrushTool):
    name = "eraser"
    title = "Eraser"
    erasing = True
