"""Where a person clicks the intelligent-scissors anchors of one outline, and what comes out.

Why greedy: with live-wire (Mortensen and Barrett 1995) a person clicks a few anchors on the
boundary they see, watches the snapped segment under the pointer and adds an anchor where it
leaves the object's edge; where the snapped segment keeps missing, a free click makes that
segment straight. The plan does the same: it starts from the outline's four extreme points (the
points a person finds first, as in extreme clicking), computes the ring through the window's own
:class:`annotator.editing.scissors.EdgeScissors`, and while the ring's region misses the goal it
adds an anchor on the truth boundary where the ring strays furthest from it. Each segment is the
snapped path or the straight line, whichever stays closer to the boundary (the person sees both:
the preview and where a free click would go). It stops at the goal, or when more anchors would
cost more than the polygon the person would otherwise click (``max_anchors``).

The scissors run on a crop around the object (its box plus :data:`MARGIN`): the same function on
the part of the frame the outline can reach, so the shortest-path maps cost the object's size,
not the frame's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from annotator.editing import EditError, check_ring, polygon_mask
from annotator.editing.scissors import EdgeScissors, straight_segment

#: pixels of image around the object's box that the scissors see
MARGIN = 24
#: an anchor is not added where the ring already lies this close (px) to the boundary everywhere
MIN_DEVIATION = 1.5


@dataclass
class ScissorsPlan:
    """One outline: anchors (x, y, frame coordinates), which segments are straight, the result."""

    anchors: np.ndarray  # (K, 2) int, drawing order
    straight: list[bool]  # per anchor: the segment into it is a free (straight) click
    ring: np.ndarray  # (M, 2) float, the checked ring as painted
    mask: np.ndarray  # HxW bool, the ring's region
    score: float  # the caller's judgement of ``mask``

    @property
    def count(self) -> int:
        return int(len(self.anchors))


def _outline(region: np.ndarray) -> np.ndarray:
    """The outer boundary of the largest part of ``region``, (P, 2) int xy, one pixel per step."""
    cs, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not cs:
        return np.zeros((0, 2), np.int64)
    return max(cs, key=len).reshape(-1, 2).astype(np.int64)


def _distances(points: np.ndarray, to: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distance (px) of each of ``points`` to the nearest pixel of the polyline ``to`` (crop coordinates)."""
    canvas = np.ones(shape, np.uint8)
    canvas[to[:, 1], to[:, 0]] = 0
    dist = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
    return dist[points[:, 1], points[:, 0]]


class ScissorsPlanner:
    """Plans outlines on one frame for one object (a crop of the frame around it)."""

    def __init__(self, image: np.ndarray, region: np.ndarray) -> None:
        ys, xs = np.nonzero(region)
        h, w = region.shape
        self.x0, self.y0 = max(int(xs.min()) - MARGIN, 0), max(int(ys.min()) - MARGIN, 0)
        self.x1, self.y1 = min(int(xs.max()) + MARGIN + 1, w), min(int(ys.max()) + MARGIN + 1, h)
        self.frame_shape = (h, w)
        self.crop_shape = (self.y1 - self.y0, self.x1 - self.x0)
        self.scissors = EdgeScissors(np.ascontiguousarray(image[self.y0:self.y1, self.x0:self.x1]))
        self._paths: dict[tuple[tuple[int, int], tuple[int, int]], np.ndarray] = {}

    def _path(self, a: tuple[int, int], b: tuple[int, int]) -> np.ndarray:
        key = (a, b)
        p = self._paths.get(key)
        if p is None:
            p = self.scissors.path(a, b).astype(np.int64)
            self._paths[key] = p
        return p

    def plan(self, region: np.ndarray, score: Callable[[np.ndarray], float], goal: float,
             max_anchors: int) -> ScissorsPlan | None:
        """The cheapest outline of ``region`` (HxW bool, holes filled) reaching ``goal`` by ``score``.

        Returns the best plan found within ``max_anchors`` anchors (its ``score`` may stay under the
        goal: the caller prices a touch-up or picks another tool), or None when no valid ring comes
        out (fewer than 3 boundary pixels, or every ring refused).
        """
        crop = region[self.y0:self.y1, self.x0:self.x1]
        outline = _outline(crop)
        if len(outline) < 8 or max_anchors < 3:
            return None
        n = len(outline)
        ext = {int(np.argmin(outline[:, 0])), int(np.argmin(outline[:, 1])), int(np.argmax(outline[:, 0])),
               int(np.argmax(outline[:, 1]))}
        idx = sorted(ext)
        if len(idx) < 3:
            idx = sorted({0, n // 3, 2 * n // 3})
        best: ScissorsPlan | None = None
        while True:
            plan, worst = self._ring(outline, idx, score)
            if plan is not None and (best is None or plan.score > best.score
                                     or (plan.score >= goal and plan.count < best.count)):
                best = plan
            if plan is not None and plan.score >= goal:
                return plan
            if len(idx) >= max_anchors or worst is None:
                return best
            idx = sorted(set(idx) | {worst})

    def _ring(self, outline: np.ndarray, idx: list[int], score: Callable[[np.ndarray], float]
              ) -> tuple[ScissorsPlan | None, int | None]:
        """The ring through the anchors at ``idx`` (outline indices) and where to add the next anchor."""
        n = len(outline)
        anchors = [tuple(int(v) for v in outline[i]) for i in idx]
        parts: list[np.ndarray] = []
        straight: list[bool] = [False] * len(idx)
        worst, worst_dev = None, MIN_DEVIATION
        for k in range(len(idx)):
            i, j = idx[k], idx[(k + 1) % len(idx)]
            arc = outline[np.arange(i, i + ((j - i) % n or n) + 1) % n]
            a, b = anchors[k], anchors[(k + 1) % len(idx)]
            options = []
            for flat in (False, True):
                seg = straight_segment(a, b).astype(np.int64) if flat else self._path(a, b)
                d_arc = _distances(arc, seg, self.crop_shape)  # how far the boundary is from the segment
                d_seg = _distances(seg, arc, self.crop_shape)  # how far the segment wanders off it
                options.append((max(float(d_arc.max()), float(d_seg.max())), flat, seg, d_arc))
            dev, flat, seg, d_arc = min(options, key=lambda o: o[0])
            straight[(k + 1) % len(idx)] = flat
            parts.append(seg[:-1] if len(seg) > 1 else seg)
            if dev > worst_dev and len(arc) > 2:
                inner = d_arc[1:-1]
                worst_dev, worst = dev, int((i + 1 + int(np.argmax(inner))) % n)
        ring = np.concatenate(parts, axis=0).astype(np.float64) + np.array([self.x0, self.y0], np.float64)
        checked = check_ring(ring, "scissors outline")
        if checked.problem:
            return None, worst
        try:
            mask = polygon_mask(self.frame_shape, checked.points).to_mask(self.frame_shape)
        except EditError:
            return None, worst
        pts = np.array(anchors, np.int64) + np.array([self.x0, self.y0])
        return ScissorsPlan(pts, straight, checked.points, mask, float(score(mask))), worst
