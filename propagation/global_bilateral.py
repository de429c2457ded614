"""A dense bilateral grid over (t, y, x, Y, U, V): the appearance model of a whole gap.

Bilateral Space Video Segmentation (Maerki et al., CVPR 2016) lifts the labelled pixels of a
video into a coarse grid over time, position and colour, smooths there and reads the result back
("splat, blur, slice"). A pixel then borrows the labels of pixels that are near it in time and
space *and* look like it, which is what a per-track colour histogram (no position) or a flow
chain (no appearance once the flow is lost) cannot give alone.

The grid is dense (a numpy array per label) rather than a hashed lattice: for one gap of a few
frames at the label grid it is small (``cells`` below, ~1.5 M cells per label at 480 px with the
defaults), and the blur is a separable [1 2 1] filter (``scipy.ndimage.convolve1d``). Memory is
bounded by ``max_cells``: the colour bins are coarsened until labels x cells fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import convolve1d

_KERNEL = np.array([1.0, 2.0, 1.0], np.float32) / 4


@dataclass(frozen=True)
class GridSpec:
    """Cell sizes: ``spatial`` px per cell (label grid), ``colour`` bins per YUV channel, one time
    cell per frame of the gap."""

    spatial: int = 16
    colour: int = 8
    max_cells: int = 24_000_000  # labels x cells; about 100 MB of float32


class BilateralGrid:
    """Per-label mass in a (t, y, x, Y, U, V) grid for the frames of one gap.

    ``BilateralGrid(n_frames, (h, w), n_labels, spec)``; frames are indexed 0..n_frames-1 in time
    order. ``splat`` adds weighted labelled pixels, ``blur`` smooths every axis, ``slice`` returns
    per-pixel label posteriors and how much evidence was near.
    """

    def __init__(self, n_frames: int, hw: tuple[int, int], n_labels: int, spec: GridSpec | None = None) -> None:
        spec = spec or GridSpec()
        h, w = hw
        self.cell = max(1, spec.spatial)
        self.gy, self.gx = -(-h // self.cell), -(-w // self.cell)
        bins = max(2, spec.colour)
        while bins > 2 and n_labels * n_frames * self.gy * self.gx * bins ** 3 > spec.max_cells:
            bins -= 1  # bounded memory: coarser colours before anything else
        self.bins = bins
        self.shape = (n_frames, self.gy, self.gx, bins, bins, bins)
        self.n_labels = n_labels
        self.mass = np.zeros((n_labels, int(np.prod(self.shape))), np.float32)

    def cells(self, t: int, rgb: np.ndarray) -> np.ndarray:
        """Flat cell index of every pixel of frame ``t`` (HxWx3 uint8 RGB), H*W int64."""
        h, w = rgb.shape[:2]
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV).reshape(-1, 3).astype(np.int64)
        q = yuv * self.bins // 256
        ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
        idx = np.full(h * w, t, np.int64)
        for size, v in ((self.gy, ys // self.cell), (self.gx, xs // self.cell),
                        (self.bins, q[:, 0]), (self.bins, q[:, 1]), (self.bins, q[:, 2])):
            idx = idx * size + v
        return idx

    def splat(self, cells: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> None:
        """Add ``weights`` (float) of pixels at ``cells`` to the mass of ``labels`` (ints in [0, n_labels))."""
        n = self.mass.shape[1]
        keep = weights > 0
        flat = labels[keep].astype(np.int64) * n + cells[keep]
        self.mass += np.bincount(flat, weights=weights[keep], minlength=self.mass.size
                                 ).astype(np.float32).reshape(self.mass.shape)

    def blur(self, passes: int = 1) -> None:
        """Separable [1 2 1] smoothing along every grid axis, ``passes`` times."""
        grid = self.mass.reshape((self.n_labels, *self.shape))
        for _ in range(passes):
            for axis in range(1, grid.ndim):
                if grid.shape[axis] > 1:
                    grid = convolve1d(grid, _KERNEL, axis=axis, mode="constant")
        self.mass = np.ascontiguousarray(grid.reshape(self.n_labels, -1))

    def slice(self, cells: np.ndarray, prior: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """(P x n_labels float32 posterior, P float32 evidence mass) at ``cells``; the posterior is
        uniform where no evidence reached the cell (``prior`` keeps it defined)."""
        m = self.mass[:, cells].T
        total = m.sum(axis=1)
        post = (m + prior / self.n_labels) / (total + prior)[:, None]
        return post.astype(np.float32), total.astype(np.float32)
