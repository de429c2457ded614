"""Superpixel painting: a frame over-segmented at a few scales, regions picked by a click or a drag.

Why: stuff and large regions (sky, road, wall, grass) cost many polygon vertices or brush strokes;
painting whole superpixels gives edges that follow the image in a few strokes (the COCO-Stuff and
Cityscapes-coarse labelling practice; issue #24 item 2). The over-segmentation is SLIC
(Achanta et al. 2012, ``skimage.segmentation.slic``) unless ``method`` says otherwise; the choice
and its measured boundary recall against Felzenszwalb and compact watershed are in
``docs/tools.md`` (``bench/bench_tools.py`` prints them).

Scales are indices ``0 .. n-1`` into ``scales``, **coarse to fine**: ``scales`` holds the wanted
number of superpixels per frame at each scale, in increasing order. Each scale is computed on first
use (a window computes them in the background, the shown scale first) and kept.

Coordinates are OpenCV's ``(x, y)``, pixel centres on integers; points off the image are clamped.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage

from annotator.editing.operations import EditError, Region

XY = tuple[float, float]

#: superpixels per frame, coarse to fine: ~1/250 of the frame per region at the coarse end (a large
#: stuff region in a few strokes), ~1/3000 at the fine end (a limb, a pole); the same fraction of
#: the frame at any resolution
DEFAULT_SCALES: tuple[int, ...] = (250, 1000, 3000)
#: SLIC's colour/space trade-off (skimage's default for Lab images): lower follows colour edges
#: more, higher gives rounder regions
COMPACTNESS = 10.0
#: Gaussian smoothing (pixels) before SLIC: without it sensor and JPEG noise scatters the pixel
#: assignment and the connectivity step then merges the fragments across edges
SIGMA = 1.0
METHODS = ("slic", "watershed")


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise EditError(f"superpixels: expected an HxWx3 uint8 RGB image, got {img.dtype} of shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise EditError(f"superpixels: the image is too small ({img.shape[1]}x{img.shape[0]} pixels)")
    return img


def over_segment(image: np.ndarray, count: int, method: str = "slic") -> np.ndarray:
    """One over-segmentation of ``image`` (HxWx3 uint8) into about ``count`` regions.

    Returns ``HxW int32`` labels ``0 .. n-1``, every label present and each region connected.
    """
    # heavy import (scikit-image), only when a frame is over-segmented
    from skimage.segmentation import slic, watershed

    if method == "slic":
        lab = slic(image, n_segments=int(count), compactness=COMPACTNESS, sigma=SIGMA, start_label=0,
                   enforce_connectivity=True)
    elif method == "watershed":  # compact watershed on the colour gradient (Neubert and Protzel 2014)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        lab = watershed(grad, markers=int(count), compactness=1e-3) - 1
    else:
        raise EditError(f"superpixels: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    # dense 0..n-1 labels, so a lookup table indexed by label selects regions
    _, dense = np.unique(lab, return_inverse=True)
    return dense.reshape(lab.shape).astype(np.int32)


class SuperpixelSet:
    """Superpixels of one frame at several scales.

    Args:
        image: ``HxWx3 uint8`` RGB.
        scales: wanted superpixels per frame at each scale, coarse to fine (increasing).
        method: ``"slic"`` (default) or ``"watershed"``.

    Thread-safe: a worker may compute a scale while the GUI thread reads another.
    """

    def __init__(self, image: np.ndarray, scales: tuple[int, ...] = DEFAULT_SCALES, method: str = "slic") -> None:
        self._image = _check_image(image)
        scales = tuple(int(s) for s in scales)
        if not scales or any(s < 1 for s in scales) or list(scales) != sorted(set(scales)):
            raise EditError(f"superpixels: scales must be increasing positive counts (coarse to fine), got {scales}")
        if method not in METHODS:
            raise EditError(f"superpixels: unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.scales = scales
        self.method = method
        self.height, self.width = int(self._image.shape[0]), int(self._image.shape[1])
        self._labels: dict[int, np.ndarray] = {}
        self._boxes: dict[int, list[tuple[slice, slice]]] = {}
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def _scale(self, scale: int) -> int:
        if not 0 <= int(scale) < len(self.scales):
            raise EditError(f"superpixels: scale {scale} does not exist (0 .. {len(self.scales) - 1}, coarse to fine)")
        return int(scale)

    def ready(self, scale: int) -> bool:
        """Whether ``scale`` is computed (reading it costs nothing)."""
        return self._scale(scale) in self._labels

    def labels(self, scale: int) -> np.ndarray:
        """``HxW int32`` superpixel ids ``0 .. n-1`` at ``scale`` (computed on first use, ~0.4 s at 720p)."""
        s = self._scale(scale)
        lab = self._labels.get(s)
        if lab is None:
            with self._lock:
                lab = self._labels.get(s)
                if lab is None:
                    lab = over_segment(self._image, self.scales[s], self.method)
                    self._boxes[s] = ndimage.find_objects(lab + 1)
                    self._labels[s] = lab
        return lab

    @property
    def nbytes(self) -> int:
        """Memory held by the computed scales (for a byte-bounded cache)."""
        return sum(lab.nbytes for lab in self._labels.values())

    def ids_at(self, points: Sequence[XY], scale: int, connect: bool = True) -> np.ndarray:
        """Ids of the superpixels under ``points``; with ``connect`` the points are a drag path and
        every pixel of the polyline through them counts (mouse events skip pixels)."""
        lab = self.labels(scale)
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros(0, np.int32)
        if not np.isfinite(pts).all():
            raise EditError("superpixels: points must be finite numbers")
        pts = np.rint(pts)
        pts[:, 0] = np.clip(pts[:, 0], 0, self.width - 1)
        pts[:, 1] = np.clip(pts[:, 1], 0, self.height - 1)
        if connect and len(pts) > 1:
            steps = np.maximum(np.abs(np.diff(pts, axis=0)).max(axis=1).astype(int), 1)
            parts = [pts[:1]]
            for a, b, n in zip(pts[:-1], pts[1:], steps, strict=True):
                t = np.arange(1, n + 1)[:, None] / n
                parts.append(np.rint(a + (b - a) * t))
            pts = np.concatenate(parts)
        xy = pts.astype(np.int64)
        return np.unique(lab[xy[:, 1], xy[:, 0]])

    def region(self, points: Sequence[XY], scale: int, connect: bool = True) -> np.ndarray:
        """``HxW bool``: the union of the superpixels under ``points`` (a click or a drag path)."""
        ids = self.ids_at(points, scale, connect)
        lab = self.labels(scale)
        table = np.zeros(int(lab.max()) + 1, bool)
        table[ids] = True
        return table[lab]

    def crop(self, ids: np.ndarray, scale: int) -> Region:
        """The superpixels ``ids`` as a cropped :class:`Region` (their joint bounding box): what an
        ``Operation`` takes, without an HxW mask per mouse move."""
        lab = self.labels(scale)
        boxes = self._boxes[self._scale(scale)]
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) == 0:
            return Region(0, 0, np.zeros((0, 0), bool))
        y0 = min(boxes[i][0].start for i in ids)
        y1 = max(boxes[i][0].stop for i in ids)
        x0 = min(boxes[i][1].start for i in ids)
        x1 = max(boxes[i][1].stop for i in ids)
        sub = lab[y0:y1, x0:x1]
        table = np.zeros(int(lab.max()) + 1, bool)
        table[ids] = True
        return Region(y0, x0, table[sub])

    def boundaries(self, scale: int, box: tuple[int, int, int, int] | None = None) -> Region:
        """Superpixel boundaries at ``scale`` inside ``box = (x0, y0, x1, y1)`` (exclusive ends;
        the whole frame by default): a pixel is on a boundary where its right or lower neighbour
        has another id. For the overlay near the pointer."""
        lab = self.labels(scale)
        x0, y0, x1, y1 = (0, 0, self.width, self.height) if box is None else box
        x0, x1 = max(int(x0), 0), min(int(x1), self.width)
        y0, y1 = max(int(y0), 0), min(int(y1), self.height)
        if x1 <= x0 or y1 <= y0:
            return Region(0, 0, np.zeros((0, 0), bool))
        sub = lab[y0:y1, x0:x1]
        edge = np.zeros(sub.shape, bool)
        edge[:, :-1] |= sub[:, :-1] != sub[:, 1:]
        edge[:-1, :] |= sub[:-1, :] != sub[1:, :]
        return Region(y0, x0, edge)
