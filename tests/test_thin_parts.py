"""Thin parts: what a reduced label grid cannot hold, found so the propagator can redo those tiles at full size."""

from __future__ import annotations

import numpy as np
import pytest

from propagation.thin_parts import thin_mask


def test_a_one_pixel_line_is_thin_and_the_square_it_hangs_on_is_not():
    lab = np.zeros((80, 160), np.uint16)
    lab[20:50, 20:50] = 1  # a square
    lab[35, 50:140] = 1  # a 90 px line leaving it
    thin = thin_mask(lab, factor=1.8)
    assert thin is not None
    assert thin[35, 60:135].all()  # the line
    assert not thin[22:48, 22:48].any()  # the square's inside
    assert thin.sum() < 120  # the line (and the pixels of the background squeezed beside it), not the square's edges
    lab[35, 110:140] = 0  # 60 px: below the default minimum area of a structure
    assert thin_mask(lab, factor=1.8) is None


@pytest.mark.parametrize("factor", [1.8, 2.67, 4.0])
def test_smooth_boundaries_between_large_regions_are_not_thin(factor):
    yy, xx = np.mgrid[0:200, 0:300]
    lab = (1 + (yy > 80 + 20 * np.sin(xx / 30)) + ((xx - 150) ** 2 + (yy - 60) ** 2 < 40 ** 2)).astype(np.uint16)
    assert thin_mask(lab, factor) is None


def test_small_fragments_are_not_structure():
    lab = np.zeros((60, 60), np.uint16)
    lab[10, 10:15] = 2  # 5 px: below the default minimum area
    assert thin_mask(lab, 1.8) is None
    assert thin_mask(lab, 1.8, min_area=4) is not None
