"""Mask-producing tools that need no weights: polygon, brush/eraser strokes, colour flood fill, GrabCut.

Each tool turns user geometry (and the frame image) into a :class:`Region`; the caller wraps it in
an operation (``Paint``, ``Erase``) and hands it to ``EditSession.apply``. Keeping tools and
operations apart means every tool automatically gets the paint modes, locks and undo.

Coordinates are OpenCV's: ``(x, y)`` floats, pixel ``(col, row)`` centred on integers.
Sub-pixel input is honoured by drawing in 1/16-pixel fixed point, so a stroke sampled at
fractional mouse positions (zoomed canvas) is neither shifted nor gappy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from annotator.editing.operations import EditError, Region, bbox_of, pixel_of
from models.prompts import check_box  # SAM checks boxes the same way

_SHIFT = 4
_SCALE = 1 << _SHIFT

Point = tuple[float, float]


#: largest |coordinate| accepted (pixels): far beyond any frame, small enough that 1/16-pixel fixed
#: point stays inside OpenCV's int32 (a larger value wrapped around and drew a wrong shape)
MAX_COORD = float(1 << 22)


def _as_points(points: Sequence[Point] | np.ndarray, what: str) -> np.ndarray:
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise EditError(f"{what}: expected a list of (x, y) points ({e})") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise EditError(f"{what}: expected a list of (x, y) points, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise EditError(f"{what}: points must be finite numbers")
    if np.abs(pts).max() > MAX_COORD:
        raise EditError(f"{what}: a point lies too far outside the image (|coordinate| > {MAX_COORD:.0f} px)")
    return pts


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _SCALE).astype(np.int32)


# --------------------------------------------------------------------------- polygon


def _segments_cross(p: np.ndarray) -> tuple[int, int] | None:
    """First pair of non-adjacent edges of the closed polygon ``p`` that intersect, vectorised O(n^2).

    Edge pairs are tested in blocks of ~1M so that an imported polygon with thousands of vertices
    does not allocate gigabytes.
    """
    n = len(p)
    q = np.roll(p, -1, axis=0)
    lo, hi = np.minimum(p, q) - 1e-9, np.maximum(p, q) + 1e-9  # edge bounding boxes
    block = max(1, (1 << 20) // max(n, 1))
    cols = np.arange(n)[None, :]
    for s in range(0, n, block):
        rows = np.arange(s, min(s + block, n))[:, None]
        r = slice(s, s + block)
        # only pairs whose boxes overlap can cross: a cheap filter before the exact test
        near = ((rows < cols) & (lo[r, 0, None] <= hi[None, :, 0]) & (lo[None, :, 0] <= hi[r, 0, None])
                & (lo[r, 1, None] <= hi[None, :, 1]) & (lo[None, :, 1] <= hi[r, 1, None]))
        ii, jj = np.nonzero(near)
        found = _cross_pairs(p, ii + s, jj)
        if found is not None:
            return found
    return None


def _cross_pairs(p: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[int, int] | None:
    """First (i, j) among the given edge pairs that intersect (adjacent edges are skipped)."""
    n = len(p)
    a, b = p, np.roll(p, -1, axis=0)  # edge i: a[i] -> b[i]
    adjacent = (j == i + 1) | ((i == 0) & (j == n - 1))
    i, j = i[~adjacent], j[~adjacent]
    if i.size == 0:
        return None

    def orient(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
        v = (p2[:, 0] - p1[:, 0]) * (p3[:, 1] - p1[:, 1]) - (p2[:, 1] - p1[:, 1]) * (p3[:, 0] - p1[:, 0])
        return np.sign(np.where(np.abs(v) < 1e-9, 0.0, v))

    def on_seg(p1: np.ndarray, p2: np.ndarray, q: np.ndarray) -> np.ndarray:
        return ((np.minimum(p1[:, 0], p2[:, 0]) - 1e-9 <= q[:, 0]) & (q[:, 0] <= np.maximum(p1[:, 0], p2[:, 0]) + 1e-9)
                & (np.minimum(p1[:, 1], p2[:, 1]) - 1e-9 <= q[:, 1])
                & (q[:, 1] <= np.maximum(p1[:, 1], p2[:, 1]) + 1e-9))

    a1, b1, a2, b2 = a[i], b[i], a[j], b[j]
    o1, o2 = orient(a1, b1, a2), orient(a1, b1, b2)
    o3, o4 = orient(a2, b2, a1), orient(a2, b2, b1)
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)
    touch = (((o1 == 0) & on_seg(a1, b1, a2)) | ((o2 == 0) & on_seg(a1, b1, b2))
             | ((o3 == 0) & on_seg(a2, b2, a1)) | ((o4 == 0) & on_seg(a2, b2, b1)))
    hit = np.flatnonzero(proper | touch)
    if hit.size == 0:
        return None
    return int(i[hit[0]]), int(j[hit[0]])


def validate_polygon(points: Sequence[Point] | np.ndarray, what: str = "polygon") -> np.ndarray:
    """Check a ring: >= 3 distinct vertices, non-zero area, no self-intersection; returns it as an array.

    Consecutive duplicate vertices (a double click) are dropped rather than refused.
    """
    pts = _as_points(points, what)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-9, axis=1)
    pts = pts[keep]
    if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]  # explicitly closed ring
    if len(pts) < 3:
        raise EditError(f"{what} needs at least 3 distinct points, got {len(pts)}")
    crossing = _segments_cross(pts)
    if crossing is not None:
        e1, e2 = crossing
        raise EditError(f"{what} intersects itself (edge {e1}-{(e1 + 1) % len(pts)} crosses edge "
                        f"{e2}-{(e2 + 1) % len(pts)}); move the vertices so the outline does not cross")
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    if area < 1e-6:
        raise EditError(f"{what} has zero area (all points on one line)")
    return pts


def polygon_mask(shape: tuple[int, int], exterior: Sequence[Point] | np.ndarray,
                 holes: Sequence[Sequence[Point] | np.ndarray] = ()) -> Region:
    """Rasterise a polygon with holes (even-odd is not used: holes are cut explicitly).

    Raises :class:`EditError` for fewer than 3 points or a self-intersecting ring. A polygon lying
    entirely outside the image gives an empty region (a defined no-op).
    """
    h, w = shape
    ext = validate_polygon(exterior, "polygon")
    rings = [validate_polygon(hole, f"hole {k + 1}") for k, hole in enumerate(holes)]
    lo = np.floor(ext.min(axis=0)).astype(int) - 1
    hi = np.ceil(ext.max(axis=0)).astype(int) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return Region(0, 0, np.zeros((0, 0), bool))
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    off = np.array([x0, y0], np.float64)
    cv2.fillPoly(canvas, [_fixed(ext - off)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    if rings:
        cv2.fillPoly(canvas, [_fixed(r - off) for r in rings], 0, lineType=cv2.LINE_8, shift=_SHIFT)
    return Region(y0, x0, canvas.astype(bool))


#: how far (pixels) a vertex may lie off the line through its neighbours and still count as on it
#: when a refused ring is repaired: a sliver under half a pixel wide is no shape a person meant
REPAIR_TOL = 0.5


def _flat(a: np.ndarray, b: np.ndarray, c: np.ndarray, tol: float) -> bool:
    """``b`` lies within ``tol`` of the line through ``a`` and ``c`` (or ``a`` and ``c`` coincide)."""
    d = c - a
    n = float(np.hypot(d[0], d[1]))
    if n <= tol:
        return True  # a -> b -> a: a spike of zero area
    return abs(float(d[0] * (b[1] - a[1]) - d[1] * (b[0] - a[0]))) / n <= tol


def clean_ring(points: Sequence[Point] | np.ndarray, tol: float = REPAIR_TOL, what: str = "polygon") -> np.ndarray:
    """Drop repeated points, vertices on a straight line and zero-area spikes from a ring (O(n)).

    A vertex is dropped when it lies within ``tol`` pixels of the line through its neighbours:
    in the middle of a straight run that changes nothing; where the outline turns back on itself
    (a spike, e.g. an outline along the image border that overshoots its start) it removes a
    sliver under ``tol`` wide, which is what makes such a ring "self-intersecting". Wrapping
    around the ring's start is handled. May return fewer than 3 points (a ring with no area).
    """
    pts = _as_points(points, what)
    out: list[np.ndarray] = []
    for p in pts:
        while len(out) >= 2 and _flat(out[-2], out[-1], p, tol):
            out.pop()
        if out and float(np.hypot(*(p - out[-1]))) <= tol:
            continue  # a repeated point
        out.append(p)
    changed = True
    while changed and len(out) >= 3:  # the joint where the ring closes
        changed = False
        if float(np.hypot(*(out[-1] - out[0]))) <= tol or _flat(out[-2], out[-1], out[0], tol):
            out.pop()
            changed = True
        elif _flat(out[-1], out[0], out[1], tol):
            out.pop(0)
            changed = True
    return np.array(out, np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class RingCheck:
    """What closing a ring would give: the ring to use, or why it is refused."""

    points: np.ndarray  # the ring as it will be drawn (repaired when ``removed`` > 0)
    removed: int = 0  # vertices the repair dropped (repeated points, straight runs, zero-area spikes)
    problem: str = ""  # why the ring is refused; "" when it is accepted
    crossing: tuple[tuple[Point, Point], tuple[Point, Point]] | None = None  # two edges that cross

    @property
    def ok(self) -> bool:
        return not self.problem


def check_ring(points: Sequence[Point] | np.ndarray, what: str = "polygon") -> RingCheck:
    """Validate a ring as :func:`validate_polygon` does; a refused ring is repaired with
    :func:`clean_ring` (exactly, then with :data:`REPAIR_TOL`) and accepted if the repair fixes it.

    Never raises for bad geometry: a ring that stays refused comes back with ``problem`` set and,
    for a self-intersection, the two crossing edges (for the window to mark them).
    """
    try:
        return RingCheck(validate_polygon(points, what))
    except EditError as e:
        first = e
    try:
        raw = _as_points(points, what)
    except EditError as e:
        return RingCheck(np.zeros((0, 2)), problem=str(e))
    cleaned = raw
    for tol in (1e-9, REPAIR_TOL):
        cleaned = clean_ring(raw, tol, what)
        try:
            return RingCheck(validate_polygon(cleaned, what), removed=len(raw) - len(cleaned))
        except EditError:
            continue
    crossing = None
    if len(cleaned) >= 3:
        hit = _segments_cross(cleaned)
        if hit is not None:
            n = len(cleaned)
            crossing = tuple((tuple(map(float, cleaned[i])), tuple(map(float, cleaned[(i + 1) % n])))
                             for i in hit)  # type: ignore[assignment]
    return RingCheck(raw, problem=str(first), crossing=crossing)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- brush / eraser


def stroke_mask(shape: tuple[int, int], points: Sequence[Point] | np.ndarray, radius: float) -> Region:
    """Footprint of a round brush of ``radius`` pixels dragged through ``points`` (a single point = a dab).

    The stroke is resampled every ``max(radius/2, 0.25)`` pixels and a disc stamped at each
    sample, in 1/16-pixel fixed point, so fast mouse moves leave no gaps and fractional positions
    are not rounded away. A brush narrower than a pixel paints exactly the pixels under its path
    (a 1-pixel fix needs a 1-pixel brush).
    """
    if not np.isfinite(radius) or radius <= 0:
        raise EditError(f"brush radius must be positive, got {radius}")
    if radius > MAX_COORD:
        raise EditError(f"brush radius {radius:g} is too large (at most {MAX_COORD:.0f} px)")
    h, w = shape
    pts = _as_points(points, "brush stroke")
    if len(pts) > 1:
        seg = np.diff(pts, axis=0)
        lengths = np.hypot(seg[:, 0], seg[:, 1])
        step = max(radius / 2.0, 0.25)
        counts = np.maximum(np.ceil(lengths / step).astype(int), 1)
        t = np.concatenate([np.arange(c) / c for c in counts])
        idx = np.repeat(np.arange(len(seg)), counts)
        pts = np.vstack([pts[idx] + seg[idx] * t[:, None], pts[-1:]])
    r = max(radius, 0.5)
    lo = np.floor(pts.min(axis=0) - r).astype(int) - 1
    hi = np.ceil(pts.max(axis=0) + r).astype(int) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return Region(0, 0, np.zeros((0, 0), bool))
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = _fixed(pts - np.array([x0, y0], np.float64))
    rad = int(round(r * _SCALE))
    # drop consecutive duplicates after fixed-point rounding (a resting mouse)
    keep = np.ones(len(fixed), bool)
    keep[1:] = np.any(fixed[1:] != fixed[:-1], axis=1)
    # only discs that reach the canvas (a drag far out of the frame samples many that do not)
    lim = np.array([x1 - x0, y1 - y0], np.float64) * _SCALE + rad + _SCALE
    keep &= np.all((fixed >= -rad - _SCALE) & (fixed <= lim), axis=1)
    if radius >= 1.0:
        for cx, cy in fixed[keep]:
            cv2.circle(canvas, (int(cx), int(cy)), rad, 1, thickness=-1, lineType=cv2.LINE_8, shift=_SHIFT)
    else:  # a sub-pixel brush paints exactly the pixels under its path (a rasterised disc of r < 1 is lopsided)
        c = np.round(pts).astype(int) - np.array([x0, y0])
        ok = (c[:, 0] >= 0) & (c[:, 0] < canvas.shape[1]) & (c[:, 1] >= 0) & (c[:, 1] < canvas.shape[0])
        canvas[c[ok, 1], c[ok, 0]] = 1
    return Region(y0, x0, canvas.astype(bool))


# --------------------------------------------------------------------------- flood fill on colour


def flood_fill_mask(image: np.ndarray, point: Point, tolerance: float = 10.0, connectivity: int = 4,
                    within: np.ndarray | None = None) -> Region:
    """Pixels connected to ``point`` whose colour is within ``tolerance`` (per channel) of the seed colour.

    ``within`` (bool HxW) optionally restricts the fill, e.g. to void pixels only.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or image.dtype != np.uint8:
        raise EditError(f"flood fill: expected an HxW or HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if connectivity not in (4, 8):
        raise EditError(f"connectivity must be 4 or 8, got {connectivity}")
    if not np.isfinite(tolerance) or tolerance < 0:
        raise EditError(f"flood fill tolerance must be >= 0, got {tolerance}")
    h, w = image.shape[:2]
    x, y = pixel_of(point, (h, w), "flood fill")
    ff = np.zeros((h + 2, w + 2), np.uint8)
    if within is not None:
        if np.shape(within) != (h, w):
            raise EditError(f"flood fill: 'within' is {np.shape(within)}, the image is {(h, w)}")
        if not within[y, x]:
            return Region(0, 0, np.zeros((0, 0), bool))
        ff[1:-1, 1:-1] = ~np.asarray(within, bool)
    tol = (float(tolerance),) * 3
    img = np.ascontiguousarray(image)
    if not img.flags.writeable:  # OpenCV refuses read-only arrays even with FLOODFILL_MASK_ONLY
        img = img.copy()
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (2 << 8)
    _, _, _, rect = cv2.floodFill(img, ff, (x, y), 0, loDiff=tol, upDiff=tol, flags=flags)
    rx, ry, rw, rh = rect
    return Region(ry, rx, ff[1 + ry:1 + ry + rh, 1 + rx:1 + rx + rw] == 2)


# --------------------------------------------------------------------------- GrabCut


@dataclass
class GrabCutState:
    """What GrabCut needs to continue after +/- strokes: the crop, its trimap and colour models."""

    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 of the working window in the frame
    trimap: np.ndarray  # uint8 GC_* labels of the window
    bgd_model: np.ndarray
    fgd_model: np.ndarray


def box_pad(width: int, height: int) -> int:
    """Width of the probable-background band GrabCut puts around a box: a tenth of the box's
    longer side, at least 4 px (it is where an object cut by a tight box may still continue)."""
    return max(4, int(round(0.1 * max(width, height))))


def grabcut(image: np.ndarray, box: Sequence[float] | None = None, state: GrabCutState | None = None,
            fg_strokes: Region | None = None, bg_strokes: Region | None = None,
            iterations: int = 3, margin: float = 0.25) -> tuple[Region, GrabCutState]:
    """GrabCut from a box, or refine a previous result with foreground (+) / background (-) strokes.

    Works on a window around the box (box plus ``margin`` of its size) so that a small object in a
    720p frame costs its size. Inside the box is probable foreground, a band of :func:`box_pad`
    around it probable background (the object may extend into it) and the rest of the window
    definite background. Returns the foreground region and a state for the next refinement.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EditError(f"GrabCut needs an HxWx3 uint8 colour image, got {image.shape} {image.dtype}")
    if state is not None and not (state.crop[2] <= image.shape[1] and state.crop[3] <= image.shape[0]):
        raise EditError("GrabCut refinement on another image than the one the box was drawn on; drag a new box")
    h, w = image.shape[:2]
    if state is None:
        if box is None:
            raise EditError("GrabCut needs a box to start (drag a rectangle around the object)")
        bx0, by0, bx1, by1 = check_box(box, (h, w), "GrabCut box")
        mx, my = int((bx1 - bx0) * margin) + 8, int((by1 - by0) * margin) + 8
        cx0, cy0 = max(bx0 - mx, 0), max(by0 - my, 0)
        cx1, cy1 = min(bx1 + mx + 1, w), min(by1 + my + 1, h)
        # GC_BGD far outside the box; a band around it only probable background, so an object
        # that touches (or slightly crosses) the box edge is cut along its own outline, not along
        # the box's straight edge (issue 23)
        trimap = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
        pad = box_pad(bx1 - bx0, by1 - by0)
        px, py = min(pad, mx // 2), min(pad, my // 2)  # definite background stays around the band
        trimap[max(by0 - py, cy0) - cy0:min(by1 + py + 1, cy1) - cy0,
               max(bx0 - px, cx0) - cx0:min(bx1 + px + 1, cx1) - cx0] = cv2.GC_PR_BGD
        trimap[by0 - cy0:by1 - cy0 + 1, bx0 - cx0:bx1 - cx0 + 1] = cv2.GC_PR_FGD
        state = GrabCutState((cx0, cy0, cx1, cy1), trimap, np.zeros((1, 65), np.float64),
                             np.zeros((1, 65), np.float64))
        first = True
    else:
        state = GrabCutState(state.crop, state.trimap.copy(), state.bgd_model.copy(), state.fgd_model.copy())
        first = False
    cx0, cy0, cx1, cy1 = state.crop
    for strokes, value in ((fg_strokes, cv2.GC_FGD), (bg_strokes, cv2.GC_BGD)):
        if strokes is None or strokes.empty:
            continue
        r = strokes.clipped((h, w))
        full = np.zeros((h, w), bool)
        full[r.y0:r.y1, r.x0:r.x1] = r.mask
        state.trimap[full[cy0:cy1, cx0:cx1]] = value
    crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, ::-1])  # OpenCV expects BGR
    has_fg = bool(np.isin(state.trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).any())
    has_bg = bool(np.isin(state.trimap, (cv2.GC_BGD, cv2.GC_PR_BGD)).any())
    if has_fg and has_bg:
        try:
            mode = cv2.GC_INIT_WITH_MASK if first else cv2.GC_EVAL
            cv2.grabCut(crop, state.trimap, None, state.bgd_model, state.fgd_model, iterations, mode)
        except cv2.error as e:  # degenerate colour statistics (e.g. a flat image)
            raise EditError(f"GrabCut failed on this box ({e.msg.strip() if hasattr(e, 'msg') else e}); "
                            "try a larger box or draw the mask with the brush") from e
    fg = np.isin(state.trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))
    box_ = bbox_of(fg)
    if box_ is None:
        return Region(0, 0, np.zeros((0, 0), bool)), state
    a, b, c, d = box_
    return Region(cy0 + a, cx0 + b, fg[a:c, b:d]), state
