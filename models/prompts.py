"""Prompt geometry shared by the mask tools: a box dragged on the image, checked and clipped.

Why here, below the editing layer: SAM (``models.sam``) and GrabCut (``annotator.editing.tools``)
take the same box and must refuse the same bad ones with the same message, and models may not
import the editing layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotator.errors import EditError


def check_box(box: Sequence[float], shape: tuple[int, int], what: str = "box") -> tuple[int, int, int, int]:
    """Clip ``(x0, y0, x1, y1)`` to an image of ``shape`` (H, W); return integer pixel corners.

    The corners may come in any order (a box dragged backwards); the result is ordered
    ``x0 <= x1``, ``y0 <= y1`` inside ``[0, W-1] x [0, H-1]``. Raises :class:`EditError` when the
    box is not four finite numbers, lies wholly outside the image, or is thinner than 2 px inside it.
    """
    h, w = shape
    try:
        ok = len(box) == 4 and bool(np.isfinite(np.asarray(box, float)).all())
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise EditError(f"{what}: expected (x0, y0, x1, y1), got {box!r}")
    xa, ya, xb, yb = (float(v) for v in box)
    xa, xb = sorted((xa, xb))
    ya, yb = sorted((ya, yb))
    if xb < 0 or yb < 0 or xa > w - 1 or ya > h - 1:
        raise EditError(f"{what} ({xa:.0f}, {ya:.0f}, {xb:.0f}, {yb:.0f}) is outside the {w}x{h} image")
    x0, y0 = max(int(np.floor(xa)), 0), max(int(np.floor(ya)), 0)
    x1, y1 = min(int(np.ceil(xb)), w - 1), min(int(np.ceil(yb)), h - 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise EditError(f"{what} is too small ({x1 - x0}x{y1 - y0} px inside the image); drag a larger box")
    return x0, y0, x1, y1
