"""GrabCut box with +/- strokes (no weights): drag a box, then refine with strokes, Enter accepts.

After the box, a left drag marks foreground (+) and a right drag (or Shift+drag) background (-);
each stroke re-runs GrabCut from the kept colour models (``GrabCutState``), as in OpenCV's demo.
"""

from __future__ import annotations

from annotator.editing import EditError, GrabCutState, Region, grabcut, stroke_mask
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool, drag_rect


class GrabCutTool(Tool):
    name = "grabcut"
    title = "GrabCut"

    def __init__(self, host) -> None:
        super().__init__(host)
        self._start: Point | None = None
        self._end: Point | None = None
        self.box: tuple[float, float, float, float] | None = None
        self.state: GrabCutState | None = None
        self.region: Region | None = None
        self._stroke: list[Point] = []
        self._positive = True

    @property
    def busy(self) -> bool:
        return self.box is not None or self._start is not None

    @property
    def cursor_radius(self) -> float | None:
        return self._stroke_radius() if self.state is not None else None

    def _stroke_radius(self) -> float:
        return max(2.0, float(self.host.brush_radius) / 2)

    def press(self, ev: PointerEvent) -> None:
        if ev.button not in ("left", "right"):
            return
        if self.state is None:
            if ev.button == "left":
                self._start = self._end = ev.point
                self._show()
            return
        self._positive = ev.button == "left" and not ev.shift
        self._stroke = [ev.point]
        self._show()

    def move(self, ev: PointerEvent) -> None:
        if self._start is not None:
            self._end = ev.point
            self._show()
        elif self._stroke:
            self._stroke.append(ev.point)
            self._show()

    def release(self, ev: PointerEvent) -> None:
        try:
            if self._start is not None:
                box = drag_rect(self._start, ev.point)
                self._start = self._end = None
                self.region, self.state = grabcut(self.host.image(), box=box)
                self.box = box
            elif self._stroke:
                pts, self._stroke = self._stroke + [ev.point], []
                strokes = stroke_mask(self.host.label().shape, pts, self._stroke_radius())
                self.region, self.state = grabcut(
                    self.host.image(), state=self.state,
                    fg_strokes=strokes if self._positive else None,
                    bg_strokes=None if self._positive else strokes)
            else:
                return
        except EditError as e:
            self.host.message(str(e))
        self._show()

    def accept(self) -> bool:
        if self.region is None or self.region.empty:
            return False
        self.host.paint(self.region, "GrabCut")
        self.cancel()
        return True

    def cancel(self) -> bool:
        had = self.busy
        self._start = self._end = None
        self.box = self.state = self.region = None
        self._stroke = []
        self.host.show_preview(None)
        return had

    def _show(self) -> None:
        p = Preview(color=self.host.preview_color(), mask=self.region)
        if self._start is not None and self._end is not None:
            p.rect = drag_rect(self._start, self._end)
        elif self.box is not None:
            p.rect = self.box
        if self._stroke:
            p.lines.append((self._stroke, False))
        p.text = ("GrabCut: drag a box around the object" if self.state is None else
                  "GrabCut: left drag = + (object), right drag = - (background); Enter accepts, Esc discards")
        self.host.show_preview(p)
