"""Edge-following polygon segments (intelligent scissors / livewire), Qt-free.

Why: on real footage over half of an annotator's time goes into polygon vertices (issue #24).
Between two clicks the livewire segment follows the strongest image edge (Mortensen and Barrett
1995; GIMP's scissors, Photoshop's magnetic lasso), so an outline needs a fraction of the
vertices. The engine is OpenCV's ``cv2.segmentation.IntelligentScissorsMB``: the edge features of
a frame are computed once (``applyImage``), a shortest-path map is built once per start anchor
(``buildMap``, a Dijkstra over the whole frame), and every preview under the pointer is only a walk
back along that map (``getContour``, microseconds). Figures: ``bench/bench_tools.py`` and
``docs/tools.md``.

Coordinates are OpenCV's ``(x, y)`` with pixel centres on integers, as in
``annotator.editing.tools``; points off the image are clamped onto it.

Threading: one :class:`EdgeScissors` may be shared by a worker thread (which calls
:meth:`EdgeScissors.prepare` for a new anchor) and the GUI thread (which calls
:meth:`EdgeScissors.try_path` for the preview and never waits); an internal lock keeps the OpenCV
object consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from annotator.editing.operations import EditError

XY = tuple[float, float]

#: gradient magnitude (8-bit image units) at and above which an edge counts as fully strong;
#: OpenCV's sample value: weaker texture edges still attract the path, but less
GRADIENT_LIMIT = 200.0
#: Canny thresholds of the edge feature (OpenCV's sample values). Canny edges are one pixel thin,
#: so the path sits on the edge rather than on a band beside it (see docs/tools.md)
CANNY = (32.0, 100.0)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise EditError(f"scissors: expected an HxWx3 uint8 RGB image, got {img.dtype} of shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise EditError(f"scissors: the image is too small ({img.shape[1]}x{img.shape[0]} pixels)")
    return np.ascontiguousarray(img)


def straight_segment(a: Sequence[int], b: Sequence[int]) -> np.ndarray:
    """The 8-connected pixel line from ``a`` to ``b`` inclusive, ``(N, 2) int32`` xy."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    n = int(np.abs(b - a).max()) + 1
    t = np.linspace(0.0, 1.0, n)
    pts = np.rint(a[None, :] + (b - a)[None, :] * t[:, None]).astype(np.int32)
    return pts


class EdgeScissors:
    """Livewire over one frame.

    Args:
        image: the frame, ``HxWx3 uint8`` RGB (or ``HxW`` grey). Its edge features are computed
            here, once.
        gradient_limit, canny: edge feature settings (module constants by default); ``canny=None``
            uses the Laplacian zero-crossing feature instead of Canny edges.

    Raises :class:`EditError` for an image that is not 8-bit with 1 or 3 channels.
    """

    def __init__(self, image: np.ndarray, *, gradient_limit: float = GRADIENT_LIMIT,
                 canny: tuple[float, float] | None = CANNY) -> None:
        img = _check_image(image)
        self.height, self.width = int(img.shape[0]), int(img.shape[1])
        self._tool = cv2.segmentation.IntelligentScissorsMB()
        self._tool.setGradientMagnitudeMaxLimit(float(gradient_limit))
        if canny is not None:
            self._tool.setEdgeFeatureCannyParameters(float(canny[0]), float(canny[1]))
        self._tool.applyImage(img)
        self._source: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def pixel(self, pt: XY) -> tuple[int, int]:
        """The image pixel ``(x, y)`` nearest to ``pt`` (clamped onto the image)."""
        x = int(np.clip(np.rint(float(pt[0])), 0, self.width - 1))
        y = int(np.clip(np.rint(float(pt[1])), 0, self.height - 1))
        return (x, y)

    # ------------------------------------------------------------------ maps
    @property
    def source(self) -> tuple[int, int] | None:
        """The start pixel whose shortest-path map is built (``None`` before the first)."""
        return self._source

    def has_map(self, start: XY) -> bool:
        """Whether the map for ``start`` is built, so a path from it costs only a walk back."""
        return self._source == self.pixel(start)

    def prepare(self, start: XY) -> None:
        """Build the shortest-path map from ``start`` (~0.2 s at 720p; a no-op if it is the last one).

        Call it from a worker thread when an anchor is placed; the preview meanwhile uses
        :meth:`try_path`, which does not wait for it.
        """
        with self._lock:
            self._build(self.pixel(start))

    def _build(self, src: tuple[int, int]) -> None:  # under the lock
        if self._source != src:
            self._source = None
            self._tool.buildMap(src)
            self._source = src

    def _contour(self, end: XY) -> np.ndarray:
        c = self._tool.getContour(self.pixel(end), backward=False)
        return np.asarray(c, np.int32).reshape(-1, 2)

    def path(self, start: XY, end: XY) -> np.ndarray:
        """The edge-following segment from ``start`` to ``end``, both ends included.

        Returns ``(N, 2) int32`` pixel coordinates ``(x, y)``, 8-connected, ``N >= 1``. Builds the
        map for ``start`` unless it is the cached one (the last start), so successive calls with the
        same start (a preview per mouse move) cost only the walk back.
        """
        with self._lock:
            self._build(self.pixel(start))
            return self._contour(end)

    def try_path(self, start: XY, end: XY) -> np.ndarray | None:
        """Like :meth:`path`, but never waits: ``None`` unless the map for ``start`` is ready and no
        other thread is building one (the caller then shows a straight line)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._source != self.pixel(start):
                return None
            return self._contour(end)
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ rings
    def ring(self, anchors: Sequence[XY], straight: Sequence[bool] | None = None) -> np.ndarray:
        """A closed ring through ``anchors``, following edges between successive anchors.

        Args:
            anchors: ``K >= 2`` points ``(x, y)`` in drawing order; the ring closes from the last
                anchor back to the first.
            straight: optional, ``K`` flags; ``straight[i]`` True makes the segment *into* anchor
                ``i`` a straight line (a free vertex; ``straight[0]`` is the closing segment).

        Returns ``(M, 2) int32`` xy, the ring without repeating its first point, suitable for
        ``annotator.editing.polygon_mask`` (after ``clean_ring`` to drop the many collinear pixels).
        Raises :class:`EditError` for fewer than two anchors or a ``straight`` of the wrong length.
        """
        pts = [self.pixel(p) for p in anchors]
        k = len(pts)
        if k < 2:
            raise EditError(f"scissors: a ring needs at least 2 anchors, got {k}")
        flags = [False] * k if straight is None else [bool(s) for s in straight]
        if len(flags) != k:
            raise EditError(f"scissors: {len(flags)} straight flags for {k} anchors")
        parts: list[np.ndarray] = []
        for i in range(k):
            a, b = pts[i], pts[(i + 1) % k]
            seg = straight_segment(a, b) if flags[(i + 1) % k] else self.path(a, b)
            parts.append(seg[:-1] if len(seg) > 1 else seg)  # the end is the next part's start
        return np.concatenate(parts, axis=0).astype(np.int32)
