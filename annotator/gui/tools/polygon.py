"""Polygon with holes: click vertices; double click closes a ring; Enter closes and commits.

The first ring is the outline; rings drawn after it is closed are holes (labelme/CVAT users close
with Enter or a double click, so both work). Backspace removes the last vertex, Esc discards.
"""

from __future__ import annotations

from annotator.editing import EditError, polygon_mask
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool


class PolygonTool(Tool):
    name = "polygon"
    title = "Polygon"

    def __init__(self, host) -> None:
        super().__init__(host)
        self.exterior: list[Point] = []
        self.holes: list[list[Point]] = []
        self.ring: list[Point] = []  # the ring being drawn (exterior until closed, then a hole)
        self.closed = False
        self._hover: Point | None = None

    @property
    def busy(self) -> bool:
        return bool(self.ring or self.closed)

    def press(self, ev: PointerEvent) -> None:
        if ev.button != "left":
            return
        self.ring.append(ev.point)
        self._show()

    def move(self, ev: PointerEvent) -> None:
        if self.ring:
            self._hover = ev.point
            self._show()

    def double_click(self, ev: PointerEvent) -> None:
        # the press of the double click added the point already (Qt sends press, release, double click)
        self._close_ring()

    def _close_ring(self) -> bool:
        ring = list(self.ring)
        if len(ring) < 3:
            return False
        try:
            polygon_mask(self.host.label().shape, self.exterior if self.closed else ring,
                         [ring] if self.closed else [])
        except EditError as e:
            self.host.message(str(e))
            return False
        if self.closed:
            self.holes.append(ring)
        else:
            self.exterior, self.closed = ring, True
        self.ring = []
        self._hover = None
        self._show()
        return True

    def accept(self) -> bool:
        if len(self.ring) >= 3 and not self._close_ring():
            return True  # the message says what is wrong; keep the points
        if not self.closed:
            return False
        try:
            region = polygon_mask(self.host.label().shape, self.exterior, self.holes)
        except EditError as e:
            self.host.message(str(e))
            return True
        self.host.paint(region, "polygon")
        self.cancel()
        return True

    def cancel(self) -> bool:
        had = self.busy
        self.exterior, self.holes, self.ring, self.closed, self._hover = [], [], [], False, None
        self.host.show_preview(None)
        return had

    def backspace(self) -> bool:
        if self.ring:
            self.ring.pop()
        elif self.holes:
            self.ring = self.holes.pop()
        elif self.closed:
            self.ring, self.exterior, self.closed = self.exterior, [], False
        else:
            return False
        self._show()
        return True

    def _show(self) -> None:
        p = Preview(color=self.host.preview_color(), vertices=True)
        if self.closed:
            try:
                p.mask = polygon_mask(self.host.label().shape, self.exterior, self.holes)
            except EditError:
                p.mask = None
            p.lines.append((self.exterior, True))
            p.lines.extend((h, True) for h in self.holes)
        if self.ring:
            p.lines.append((self.ring + ([self._hover] if self._hover else []), False))
            p.clicks = [(x, y, True) for x, y in self.ring[:1]]
        p.text = ("polygon: click points, double click closes the outline, then draw holes; Enter commits"
                  if not self.closed else "polygon closed: draw a hole or press Enter to commit")
        self.host.show_preview(p)
