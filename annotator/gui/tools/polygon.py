"""Polygon with holes: click vertices; close a ring on its first vertex, with Enter or a double click.

The first ring is the outline; rings drawn after it is closed are holes; Enter commits (closing an
open ring first). Closing follows labelme: a click on the first vertex closes the ring. A double
click closes it too, but only where it is clearly meant: Qt reports two quick clicks under 5 screen
pixels apart as a double click, which is also how one traces a hoof, so a double click whose two
clicks fall apart, or that lands within a few pixels of the vertex placed before it, is two vertex
clicks (a repeat of the last vertex is dropped). Clicks outside the image snap to its border.

A ring that cannot be closed (it crosses itself) stays open and editable: the reason stays on the
canvas until the ring is fixed (Backspace, more points) or discarded (Esc); choosing another tool
keeps it for when the polygon tool comes back. What only looks like a crossing - repeated points,
straight runs and zero-area spikes, as an outline along the border that overshoots its start - is
repaired (``annotator.editing.check_ring``) and the ring closes, saying how many points it dropped.
"""

from __future__ import annotations

import math

from annotator.editing import EditError, RingCheck, check_ring, polygon_mask
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool

CLOSE_PX = 8.0  # screen pixels: a click this near the first vertex closes the ring
SAME_PX = 2.0  # screen pixels: a click this near the last vertex repeats it (dropped)
GUARD_PX = 6.0  # screen pixels: a double click this near the vertex before it does not close the ring

HINT_OPEN = ("polygon: click points; click the first point, press Enter or double click to close; "
             "Backspace removes a point, Esc discards")
HINT_CLOSED = "outline closed: draw a hole the same way, or press Enter to commit"
HINT_REFUSED = "fix the outline (Backspace removes the last point, clicks add points) or press Esc to discard it"


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


class PolygonTool(Tool):
    name = "polygon"
    title = "Polygon"

    def __init__(self, host) -> None:
        super().__init__(host)
        self.exterior: list[Point] = []
        self.holes: list[list[Point]] = []
        self.ring: list[Point] = []  # the ring being drawn (exterior until closed, then a hole)
        self.closed = False
        self.problem = ""  # why the open ring was refused; shown until it is fixed or discarded
        self.note = ""  # what the last step did (a repair), shown with the hint until the next step
        self._repairs: list[str] = []  # the repairs of this polygon's rings, said again at the commit
        self._crossing: list[tuple[Point, Point]] = []
        self._hover: Point | None = None
        # the last press: (where, the vertex before it, "add" | "same" | "close"); a double click
        # event replaces the second press of a pair, so it is judged against this
        self._press: tuple[Point, Point | None, str] | None = None

    @property
    def busy(self) -> bool:
        return bool(self.ring or self.closed)

    @property
    def _what(self) -> str:
        return f"hole {len(self.holes) + 1}" if self.closed else "polygon"

    # ------------------------------------------------------------------ events
    def press(self, ev: PointerEvent) -> None:
        if ev.button == "left":
            self._click(ev)

    def move(self, ev: PointerEvent) -> None:
        if not self.ring:
            return
        pt = self._clamp(ev.point)
        if len(self.ring) >= 3 and _dist(pt, self.ring[0]) * ev.scale <= CLOSE_PX:
            pt = self.ring[0]  # snap: the rubber band shows the ring closing
        self._hover = pt
        self._show()

    def double_click(self, ev: PointerEvent) -> None:
        pt = self._clamp(ev.point)
        last, self._press = self._press, None
        if last is None or _dist(pt, last[0]) * ev.scale > SAME_PX:
            self._click(ev)  # two vertex clicks Qt paired into a double click (tracing a hoof)
            return
        where, before, action = last
        if action != "add":
            return  # the first click closed the ring or repeated the last vertex
        if before is not None and _dist(where, before) * ev.scale <= GUARD_PX:
            return  # next to the vertex before: two vertex clicks, not a close
        if len(self.ring) >= 3:
            self._close_ring()

    def _click(self, ev: PointerEvent) -> None:
        pt = self._clamp(ev.point)
        before = self.ring[-1] if self.ring else None
        if len(self.ring) >= 3 and _dist(pt, self.ring[0]) * ev.scale <= CLOSE_PX:
            action = "close"
        elif before is not None and _dist(pt, before) * ev.scale <= SAME_PX:
            action = "same"
        else:
            action = "add"
        self._press = (pt, before, action)
        self.note = ""
        if action == "close":
            self._close_ring()
            return
        if action == "add":
            self.ring.append(pt)
            self._recheck()
        self._show()

    def _clamp(self, pt: Point) -> Point:
        """Clicks beyond the image land on its border (the image spans -0.5 .. size - 0.5)."""
        h, w = self.host.label().shape
        return (min(max(float(pt[0]), -0.5), w - 0.5), min(max(float(pt[1]), -0.5), h - 0.5))

    # ------------------------------------------------------------------ closing and checking
    def _check(self) -> RingCheck:
        return check_ring(self.ring, self._what)

    def _close_ring(self) -> bool:
        """Close the open ring (repaired if need be); a refused ring stays open with the reason."""
        if len(self.ring) < 3:
            return False
        check = self._check()
        if not check.ok:
            self._refuse(check)
            self._show()
            return False
        ring = [(float(x), float(y)) for x, y in check.points]
        if check.removed:
            self.note = (f"{self._what}: {check.removed} point(s) on a straight line, repeated or forming a "
                         f"zero-area spike were dropped")
            self._repairs.append(self.note)
        if self.closed:
            self.holes.append(ring)
        else:
            self.exterior, self.closed = ring, True
        self.ring, self._hover, self.problem, self._crossing = [], None, "", []
        self._show()
        return True

    def _refuse(self, check: RingCheck) -> None:
        self.problem = f"Not closed: {check.problem}."
        self._crossing = list(check.crossing) if check.crossing else []

    def _recheck(self) -> None:
        """After an edit of a refused ring: drop the reason once the ring would close."""
        if not self.problem:
            return
        check = self._check() if len(self.ring) >= 3 else None
        if check is None or check.ok:
            self.problem, self._crossing = "", []
            if check is not None:
                self.note = "the outline is fixed: click the first point, press Enter or double click to close it"
        else:
            self._refuse(check)

    # ------------------------------------------------------------------ keys
    def accept(self) -> bool:
        if self.ring and len(self.ring) < 3 and not self.closed:
            self.note = f"a polygon needs at least 3 points, this one has {len(self.ring)}"
            self._show()
            return True
        if len(self.ring) >= 3 and not self._close_ring():
            return True  # refused: the canvas says why; the points stay
        if not self.closed:
            return False
        try:
            region = polygon_mask(self.host.label().shape, self.exterior, self.holes)
        except EditError as e:
            self.problem = f"Not committed: {e}."
            self._show()
            return True
        repairs = self._repairs
        self.host.paint(region, "polygon")
        self.cancel()
        if repairs:  # Enter closed and committed at once: the hint with the repair was never seen
            self.host.message("committed; " + "; ".join(repairs))
        return True

    def cancel(self) -> bool:
        had = self.busy
        self._reset()
        self.host.show_preview(None)
        return had

    def _reset(self) -> None:
        self.exterior, self.holes, self.ring, self.closed, self._hover = [], [], [], False, None
        self.problem, self.note, self._crossing, self._press, self._repairs = "", "", [], None, []

    def backspace(self) -> bool:
        self._press = None
        self.note = ""
        if self.ring:
            self.ring.pop()
        elif self.holes:
            self.ring = self.holes.pop()
        elif self.closed:
            self.ring, self.exterior, self.closed = self.exterior, [], False
        else:
            return False
        self._recheck()
        self._show()
        return True

    # ------------------------------------------------------------------ tool changes
    def deactivate(self) -> None:
        """A frame or video change: the polygon belongs to the frame it was drawn on."""
        n = len(self.exterior) + sum(map(len, self.holes)) + len(self.ring)
        self.cancel()
        if n:
            self.host.message(f"the open polygon ({n} points) was discarded: a polygon belongs to the frame it was "
                              "drawn on",
                              "frame")

    def suspend(self) -> str:
        """Another tool is chosen: the polygon is kept (hidden) until the polygon tool comes back."""
        self._hover, self._press = None, None
        if not self.busy:
            self.cancel()
            return ""
        self.host.show_preview(None)
        n = len(self.exterior) + sum(map(len, self.holes)) + len(self.ring)
        state = "refused" if self.problem else "open"
        return f"the {state} polygon ({n} points) is kept: choose the polygon tool again to finish or discard it"

    def resume(self) -> None:
        if self.busy:
            self._show()

    # ------------------------------------------------------------------ preview
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
            if self.problem:  # the ring as it would close, its crossing edges marked
                p.lines.append((self.ring, True))
                p.bad_lines = list(self._crossing)
            else:
                p.lines.append((self.ring + ([self._hover] if self._hover else []), False))
            p.clicks = [(x, y, True) for x, y in self.ring[:1]]
        p.error = self.problem
        hint = HINT_REFUSED if self.problem else HINT_CLOSED if self.closed and not self.ring else HINT_OPEN
        p.text = f"{self.note}; {hint}" if self.note else hint
        self.host.show_preview(p)
