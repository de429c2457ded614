"""How the robot turns a mask it sees into what a person would draw: polygons and brush strokes.

Why tracing and not pixel copying: the point is to price human work, so the robot may only
produce what a person's hand produces. A polygon is the outline of a connected region simplified
with Douglas-Peucker to a human-like density (a vertex wherever the outline departs more than
about 1-3 px from a straight line, at most ``MAX_VERTICES`` per ring); holes are separate
polygons (the caller erases void holes; holes filled by other segments are covered by drawing
those later). Specks smaller than ``MIN_AREA`` pixels are ignored, as a person ignores them.
A brush fix is a few strokes along a thin error region, each stroke a polyline with one brush
radius, rasterised by the same ``stroke_mask`` the canvas uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from annotator.editing import EditError, validate_polygon

#: a person ignores regions smaller than this (pixels)
MIN_AREA = 12
#: at most this many vertices per ring (a person simplifies long outlines)
MAX_VERTICES = 80
#: Douglas-Peucker tolerance: this share of the ring's perimeter, clipped to [EPS_MIN, EPS_MAX] px
EPS_SHARE = 0.004
EPS_MIN, EPS_MAX = 0.8, 3.0
#: brush radius limits (px) and the longest drag a person makes in one stroke (px of path)
BRUSH_MIN, BRUSH_MAX = 0.5, 20.0
STROKE_MAX_PX = 150.0


@dataclass
class Ring:
    """One polygon a person would click: vertices (x, y) in image coordinates."""

    points: np.ndarray  # (n, 2) float

    @property
    def vertices(self) -> int:
        return int(len(self.points))


@dataclass
class Stroke:
    """One brush drag: a polyline and a radius."""

    points: np.ndarray  # (n, 2) float, x, y
    radius: float


def _simplify(contour: np.ndarray) -> np.ndarray | None:
    """Douglas-Peucker at a human-like tolerance; None when no valid (simple) ring results.

    A contour that touches itself (a one-pixel neck) simplifies to a ring crossing itself at a
    fine tolerance; a person clicks a slightly simpler outline there, so coarser ones are tried.
    """
    peri = float(cv2.arcLength(contour, True))
    base = float(np.clip(EPS_SHARE * peri, EPS_MIN, EPS_MAX))
    for eps in (base * f for f in (1.0, 1.5, 2.25, 3.4, 5.0, 0.6)):
        approx = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2).astype(np.float64)
        while len(approx) > MAX_VERTICES:
            eps *= 1.3
            approx = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2).astype(np.float64)
        if len(approx) < 3:
            continue
        try:
            return validate_polygon(approx)
        except EditError:
            continue
    return None


def trace_rings(mask: np.ndarray, min_area: int = MIN_AREA) -> list[tuple[Ring, np.ndarray]]:
    """Exterior rings of the connected regions of ``mask`` (holes filled), largest first.

    Each ring comes with the boolean mask of its region's holes (pixels inside the ring that are
    not in ``mask``), so the caller can decide which holes a person must cut out.
    """
    out = _trace(np.ascontiguousarray(mask, dtype=np.uint8), mask, min_area, depth=0)
    out.sort(key=lambda r: -r[0])
    return [(r, h) for _, r, h in out]


def _trace(m: np.ndarray, mask: np.ndarray, min_area: int, depth: int) -> list[tuple[float, Ring, np.ndarray]]:
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out: list[tuple[float, Ring, np.ndarray]] = []
    for c in contours:
        area = cv2.contourArea(c) + len(c) / 2  # pixel area including the boundary pixels
        if area < min_area:
            continue
        pts = _simplify(c)
        if pts is None:
            if depth < 2:
                # no simple outline (thin strands touching themselves, e.g. kite lines): a person
                # outlines the bulk and leaves the strands to the brush - open away the strands
                part = np.zeros(m.shape, np.uint8)
                cv2.drawContours(part, [c], -1, 1, thickness=-1)
                part &= m
                k = np.ones((3 + 2 * depth, 3 + 2 * depth), np.uint8)
                out += _trace(cv2.morphologyEx(part, cv2.MORPH_OPEN, k), mask, min_area, depth + 1)
            continue
        x, y, w, h = cv2.boundingRect(c)
        filled = np.zeros((h, w), np.uint8)
        cv2.drawContours(filled, [c - np.array([x, y])], -1, 1, thickness=-1)
        holes = np.zeros(mask.shape, bool)
        holes[y:y + h, x:x + w] = (filled > 0) & ~mask[y:y + h, x:x + w].astype(bool)
        out.append((area, Ring(pts), holes))
    return out


# --------------------------------------------------------------------------- brush


def _order(points: np.ndarray, jump: float) -> list[np.ndarray]:
    """Greedy nearest-neighbour chains through ``points``; a new chain where the gap exceeds ``jump``."""
    left = np.ones(len(points), bool)
    chains: list[np.ndarray] = []
    start = 0
    while left.any():
        if not left[start]:
            start = int(np.flatnonzero(left)[0])
        chain = [start]
        left[start] = False
        cur = start
        while left.any():
            idx = np.flatnonzero(left)
            d = np.hypot(*(points[idx] - points[cur]).T)
            j = int(np.argmin(d))
            if d[j] > jump:
                break
            cur = int(idx[j])
            chain.append(cur)
            left[cur] = False
        chains.append(points[chain])
    return chains


def _split_long(chain: np.ndarray) -> list[np.ndarray]:
    """Cut a chain into strokes no longer than ``STROKE_MAX_PX`` of path."""
    if len(chain) < 2:
        return [chain]
    seg = np.hypot(*np.diff(chain, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    parts = np.floor(cum / STROKE_MAX_PX).astype(int)
    out = []
    for p in np.unique(parts):
        idx = np.flatnonzero(parts == p)
        if p > 0 and idx[0] > 0:  # overlap one point so consecutive strokes join
            idx = np.concatenate([[idx[0] - 1], idx])
        out.append(chain[idx])
    return out


def plan_strokes(region: np.ndarray, max_points: int = 300) -> list[Stroke]:
    """Brush strokes a person would drag to cover a (thin) error region.

    Strokes run along the region's ridge (the local maxima of its distance transform: the middle
    line of a band, the centre of a blob) with a brush as wide as the region is thick there (the
    median ridge distance, clipped to [BRUSH_MIN, BRUSH_MAX]); ridge points are chained by
    proximity, so a band takes one drag per ``STROKE_MAX_PX`` and a blob one dab.
    """
    m = np.ascontiguousarray(region, dtype=np.uint8)
    if not m.any():
        return []
    dist = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    ridge = (m > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)
    ys, xs = np.nonzero(ridge)
    # distance 1 = a one-pixel sliver: the smallest brush (the tool's dab still covers 3 pixels)
    radius = float(np.clip(np.median(dist[ridge]) - 0.5, BRUSH_MIN, BRUSH_MAX))
    step = max(1.0, radius / 2)
    while True:
        cells = np.stack([np.floor(xs / step), np.floor(ys / step)], axis=1)
        _, first = np.unique(cells, axis=0, return_index=True)
        if len(first) <= max_points:
            break
        step *= 1.5
    pts = np.stack([xs[first], ys[first]], axis=1).astype(np.float64)
    strokes: list[Stroke] = []
    for chain in _order(pts, jump=max(3.0, 3.0 * radius, 2.0 * step)):
        for part in _split_long(chain):
            strokes.append(Stroke(part, radius))
    return strokes
