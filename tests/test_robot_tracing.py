"""Tracing what the robot sees into polygons and brush strokes a person would draw."""

import numpy as np

from annotator.editing import polygon_mask, stroke_mask
from annotator.robot.tracing import MAX_VERTICES, MIN_AREA, plan_strokes, trace_rings


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def _disc(shape, cx, cy, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_disc_with_hole_traced_to_few_vertices_and_hole_reported():
    shape = (120, 160)
    mask = _disc(shape, 80, 60, 40) & ~_disc(shape, 80, 60, 12)
    rings = trace_rings(mask)
    assert len(rings) == 1
    ring, holes = rings[0]
    assert 8 <= ring.vertices <= MAX_VERTICES  # a person's polygon, not every boundary pixel
    filled = polygon_mask(shape, ring.points).to_mask(shape)
    assert _iou(filled, mask | holes) > 0.95
    assert abs(int(holes.sum()) - int((_disc(shape, 80, 60, 12)).sum())) < 30
    hole_rings = trace_rings(holes)
    assert len(hole_rings) == 1 and hole_rings[0][0].vertices >= 4


def test_specks_ignored_and_regions_largest_first():
    shape = (60, 60)
    mask = np.zeros(shape, bool)
    mask[5:7, 5:7] = True  # 4 px: below MIN_AREA
    mask[20:30, 20:30] = True
    mask[40:58, 35:58] = True
    assert MIN_AREA > 4
    rings = trace_rings(mask)
    assert len(rings) == 2
    areas = [polygon_mask(shape, r.points).to_mask(shape).sum() for r, _ in rings]
    assert areas[0] > areas[1]


def test_brush_strokes_cover_a_thin_band_with_few_strokes():
    shape = (100, 200)
    band = np.zeros(shape, bool)
    band[40:45, 20:180] = True
    strokes = plan_strokes(band)
    painted = np.zeros(shape, bool)
    for s in strokes:
        painted |= stroke_mask(shape, s.points, s.radius).to_mask(shape)
    assert (painted & band).sum() / band.sum() > 0.9
    assert (painted & ~band).sum() < 0.3 * band.sum()
    assert 1 <= len(strokes) <= 3  # 160 px long: one or two drags
    assert plan_strokes(np.zeros(shape, bool)) == []
