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

Scissors mode (I toggles it; issue 24): between two clicks the segment follows the strongest image
edge (``annotator.editing.EdgeScissors``, intelligent scissors). The rubber band shows the snapped
segment under the pointer; a click places an anchor and commits that segment, a Shift+click places
a straight vertex (a straight segment into it), and closing (click on the first point, Enter, a
double click) follows the edge back to the first anchor (straight with Shift). Backspace removes the
last anchor with its whole segment. The edge features of the frame and the map of the last anchor
are computed off the GUI thread (``annotator.gui.tool_features``); until they are ready the rubber
band is straight. A click before the last anchor's map is built waits for it (~0.2 s at 720p, once):
what the band shows and what a click commits stay the same.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from annotator.editing import EditError, RingCheck, check_ring, polygon_mask
from annotator.gui.tool_features import features_of, shown_frame
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool

CLOSE_PX = 8.0  # screen pixels: a click this near the first vertex closes the ring
SAME_PX = 2.0  # screen pixels: a click this near the last vertex repeats it (dropped)
GUARD_PX = 6.0  # screen pixels: a double click this near the vertex before it does not close the ring

HINT_OPEN = ("polygon: click points; click the first point, press Enter or double click to close; "
             "Backspace removes a point, Esc discards")
HINT_CLOSED = "outline closed: draw a hole the same way, or press Enter to commit"
HINT_SCISSORS = ("scissors: click points on the outline, the segment follows image edges; Shift+click places a "
                 "straight vertex; click the first point, Enter or double click to close; Backspace removes a "
                 "point, Esc discards; I turns scissors off")
HINT_WAIT = "scissors: finding the image edges of this frame (straight lines until they are ready)"
HINT_MAP = "scissors: tracing edges from the new point (a straight line for a moment)"
#: pixels a snapped segment may be simplified by (approxPolyDP): invisible, a tenth of the vertices
SIMPLIFY_PX = 0.5
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
        self.scissors = False  # scissors mode: segments follow image edges
        self._marks: list[int] = []  # len(ring) before each click of the open ring (Backspace undoes one)
        self._snap: list[Point] = []  # the snapped segment from the last point to the pointer
        self._closing: tuple[tuple, list[Point]] | None = None  # (key, closing segment) cache
        self._straight = False  # the pointer's segment is straight (Shift held)
        self._connect_features()

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
        self._straight = ev.shift
        self._snap = self._preview_segment(self.ring[-1], pt) if self.scissors and not ev.shift else []
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
        self._straight = ev.shift
        if action == "close":
            self._close_ring()
            return
        if action == "add":
            self._marks.append(len(self.ring))
            if self.scissors and before is not None and not ev.shift:
                self.ring.extend(self._segment(before, pt)[1:])
            else:
                self.ring.append(self._pixel(pt) if self.scissors else pt)
            self._snap = []
            self._want_map()
            self._recheck()
        self._show()

    def _clamp(self, pt: Point) -> Point:
        """Clicks beyond the image land on its border (the image spans -0.5 .. size - 0.5)."""
        h, w = self.host.label().shape
        return (min(max(float(pt[0]), -0.5), w - 0.5), min(max(float(pt[1]), -0.5), h - 0.5))

    # ------------------------------------------------------------------ closing and checking
    def _check(self) -> RingCheck:
        return check_ring(self.ring + self._closing_segment(), self._what)

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
        self._marks, self._snap, self._closing = [], [], None
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
            if check is not None and not self.scissors:
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
        self._marks, self._snap, self._closing = [], [], None

    def backspace(self) -> bool:
        self._press = None
        self.note = ""
        if self.ring:
            mark = self._marks.pop() if self._marks else len(self.ring) - 1
            del self.ring[min(mark, len(self.ring) - 1):]  # the last click with its whole segment
            self._snap = []
            self._want_map()
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
        """Another tool is chosen: the polygon is kept (hidden) until the polygon tool comes back.
        Scissors mode ends (I brings the polygon tool back in scissors mode, P without)."""
        self._hover, self._press = None, None
        self.scissors, self._snap, self._closing = False, [], None
        if not self.busy:
            self.cancel()
            return ""
        self.host.show_preview(None)
        n = len(self.exterior) + sum(map(len, self.holes)) + len(self.ring)
        state = "refused" if self.problem else "open"
        return f"the {state} polygon ({n} points) is kept: choose the polygon tool again to finish or discard it"

    def resume(self) -> None:
        self._want_features()
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
                band = self._snap[1:] if self._snap else [self._hover] if self._hover else []
                p.lines.append((self.ring + band, False))
            p.clicks = [(x, y, True) for x, y in self.ring[:1]]
        if self.scissors:  # the anchors as dots: every pixel of an edge-following ring is a vertex
            p.vertices = False
            p.clicks = [(x, y, True) for x, y in self._anchors()]
        p.error = self.problem
        hint = HINT_REFUSED if self.problem else HINT_CLOSED if self.closed and not self.ring else HINT_OPEN
        if self.scissors and not self.problem and (self.ring or not self.closed):
            sc = self._scissors()
            hint = (HINT_WAIT if sc is None else HINT_MAP if self.ring and not sc.has_map(self.ring[-1])
                    else HINT_SCISSORS)
        p.text = f"{self.note}; {hint}" if self.note else hint
        self.host.show_preview(p)

    # ------------------------------------------------------------------ scissors mode
    def set_scissors(self, on: bool) -> None:
        """Turn scissors mode on or off; an open ring keeps its points (new segments follow the mode)."""
        self.scissors = bool(on)
        self._snap, self._closing = [], None
        self._want_features()
        if self._active():
            self._show()

    def _connect_features(self) -> None:
        features = features_of(self.host)
        if features is not None:
            features.ready.connect(self._features_ready)
        frame_changed = getattr(self.host, "frame_changed", None)
        if frame_changed is not None:  # a frame shown while scissors are on: its features, in the background
            frame_changed.connect(lambda _i: self._want_features())

    def _active(self) -> bool:
        return getattr(self.host, "tool_name", self.name) == self.name

    def _want_features(self) -> None:
        if not (self.scissors and self._active()):
            return
        features, shown = features_of(self.host), shown_frame(self.host)
        if features is None or shown is None:
            return
        if features.scissors(*shown) is not None:
            self._want_map()

    def _want_map(self) -> None:
        """The last point of the open ring is the next segment's start: build its map now."""
        features, shown = features_of(self.host), shown_frame(self.host)
        if self.scissors and self.ring and features is not None and shown is not None:
            features.request_map(*shown, self.ring[-1])

    def _scissors(self):
        features, shown = features_of(self.host), shown_frame(self.host)
        if features is None or shown is None:
            return None
        return features.scissors(*shown)

    def _features_ready(self, kind: str, frame: int) -> None:
        if not (self.scissors and self._active()) or frame != getattr(self.host, "index", frame):
            return
        if kind == "scissors":
            self._want_map()
        if self.ring and self._hover is not None and not self._straight and kind in ("scissors", "map"):
            self._snap = self._preview_segment(self.ring[-1], self._hover)
        if self.busy or kind == "scissors":
            self._show()

    def _pixel(self, pt: Point) -> Point:
        h, w = self.host.label().shape
        return (float(min(max(round(pt[0]), 0), w - 1)), float(min(max(round(pt[1]), 0), h - 1)))

    def _preview_segment(self, a: Point, b: Point) -> list[Point]:
        """The snapped segment for the rubber band, if the map of ``a`` is ready (never waits)."""
        sc = self._scissors()
        path = sc.try_path(a, b) if sc is not None else None
        return _simplify(path) if path is not None else []

    def _segment(self, a: Point, b: Point) -> list[Point]:
        """The committed segment from ``a`` to ``b``: edge-following once the frame's features exist
        (waiting for the map of ``a`` if a click came before it), straight before that."""
        sc = self._scissors()
        if sc is None:
            self.note = "the image edges were not ready yet: a straight segment"
            return [a, self._pixel(b)]
        path = sc.try_path(a, b)
        return _simplify(path if path is not None else sc.path(a, b))

    def _closing_segment(self) -> list[Point]:
        """The points between the last and the first anchor when scissors close the ring."""
        if not self.scissors or self._straight or len(self.ring) < 3:
            return []
        key = (self.ring[-1], self.ring[0], len(self.ring))
        if self._closing is None or self._closing[0] != key:
            self._closing = (key, self._segment(self.ring[-1], self.ring[0])[1:-1])
        return list(self._closing[1])

    def _anchors(self) -> list[Point]:
        """Where the clicks of the open ring landed: each click's segment ends at its anchor."""
        if not self._marks:
            return list(self.ring[:1])
        ends = [*self._marks[1:], len(self.ring)]
        return [self.ring[e - 1] for e in ends if 0 < e <= len(self.ring)]


def _simplify(path: np.ndarray) -> list[Point]:
    """A pixel path as few vertices as keep it within :data:`SIMPLIFY_PX`, both ends kept."""
    if len(path) > 2:
        path = cv2.approxPolyDP(path.reshape(-1, 1, 2).astype(np.int32), SIMPLIFY_PX, False).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in path]
