"""Thin parts of a label map: structures narrower than a cell of a reduced label grid.

Why: the fast profile fuses and refines labels on a grid of 480 px; kite lines, poles, ropes and
thin limbs are one or two full-size pixels wide and vanish there (figures: ``docs/propagation.md``).
Knowing where a reference has such parts lets the
propagator redo just the tiles they land in at full size (``FlowConfig.thin_tiles``) instead of
running the whole frame at full size, which the 720p speed budget does not allow.
"""

from __future__ import annotations

import cv2
import numpy as np


def thin_mask(label: np.ndarray, factor: float, min_area: int = 64) -> np.ndarray | None:
    """Pixels of ``label`` not covered by any ``k x k`` block of their own label, k = ceil(factor) + 1
    rounded up to odd (what a grid ``factor`` times coarser cannot hold), in connected pieces of at least ``min_area``
    pixels (isolated corner pixels of large regions are no structure); None if there are none.

    A pixel is covered when some k x k window around it lies entirely inside its own label: the
    morphological opening of each label, done for all labels at once with min/max filters.
    """
    k = int(np.ceil(factor)) + 1
    k += 1 - k % 2  # odd: an even kernel's window is off-centre, and spreading it back misses a side
    ker = np.ones((k, k), np.uint8)
    lab = np.ascontiguousarray(label, dtype=np.uint16)
    core = cv2.erode(lab, ker) == cv2.dilate(lab, ker)  # the window centred here holds one label
    # a core pixel's window is covered by its label: spread core labels over their windows both ways
    # (max and min filters), so neighbouring labels do not hide each other
    spread_hi = cv2.dilate(np.where(core, lab, 0).astype(np.uint16), ker)
    spread_lo = cv2.erode(np.where(core, lab, np.iinfo(np.uint16).max).astype(np.uint16), ker)
    thin = ((spread_hi != lab) & (spread_lo != lab)).astype(np.uint8)
    if not thin.any():
        return None
    n, comp, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    if not keep.any():
        return None
    return keep[comp]
