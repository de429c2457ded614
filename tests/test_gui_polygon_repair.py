"""The polygon tool's ring check (``annotator.editing.check_ring``, issue 23 item 3): what only looks
like a self-intersection (repeated points, straight runs, zero-area spikes - an outline along the
image border that overshoots its start) is repaired; a real crossing stays refused with its edges."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.editing import EditError, check_ring, clean_ring, polygon_mask, validate_polygon

SHAPE = (90, 160)


def test_border_outline_overshooting_its_start_is_repaired():
    ring = [(80, -0.5), (150, -0.5), (150, 30), (10, 30), (10, -0.5), (100, -0.5)]
    with pytest.raises(EditError, match="intersects itself"):
        validate_polygon(ring)
    check = check_ring(ring)
    assert check.ok and check.removed == 2
    assert sorted(map(tuple, check.points.tolist())) == sorted([(150, -0.5), (150, 30), (10, 30), (10, -0.5)])
    m = polygon_mask(SHAPE, check.points).to_mask(SHAPE)
    assert m[0:30, 11:150].all() and m.sum() == m[0:31, 10:151].sum()


@pytest.mark.parametrize("ring, removed", [
    ([(0, 10), (0, 50), (0, 30), (40, 30)], 1),  # the outline runs down the edge and back: a spike
    ([(10, 10), (50, 10), (50, 50), (30, 50), (30, 20), (30, 50), (10, 50)], 3),  # a spike inside
    ([(10, 10), (50, 10), (50, 50), (50, 50.2), (50, 50), (10, 50)], 2),  # a point clicked twice, 0.2 px apart
    ([(30, 10), (50, 10), (50, 50), (10, 50), (10, 10), (40, 10)], 2),  # overshoot across the ring's joint
])
def test_zero_area_parts_are_dropped(ring, removed):
    check = check_ring(ring)
    assert check.ok, check.problem
    assert check.removed == removed
    validate_polygon(check.points)  # the repaired ring is a valid one


def test_a_real_crossing_stays_refused_with_its_edges():
    check = check_ring([(20, 20), (60, 60), (60, 20), (20, 60)])
    assert not check.ok and "intersects itself" in check.problem
    assert check.crossing == (((20.0, 20.0), (60.0, 60.0)), ((60.0, 20.0), (20.0, 60.0)))
    assert len(check.points) == 4  # the person's points, not a cleaned copy


def test_a_valid_ring_is_left_alone():
    ring = [(10, 10), (30, 10.3), (50, 10), (50, 50), (10, 50)]  # a near-straight top edge is kept
    check = check_ring(ring)
    assert check.ok and check.removed == 0 and len(check.points) == 5


def test_flat_and_bad_input_are_problems_not_exceptions():
    assert "zero area" in check_ring([(0, 0), (10, 10), (20, 20)]).problem
    assert "finite" in check_ring([(0, 0), (np.nan, 1), (3, 3)]).problem
    assert len(clean_ring([(0, 0), (10, 0), (0, 0)])) < 3


def test_a_spike_added_to_a_polygon_changes_no_pixel_but_its_sliver():
    rng = np.random.default_rng(1)
    for _ in range(20):
        cx, cy, r = 80, 45, 30
        ang = np.sort(rng.uniform(0, 2 * np.pi, 8))
        ring = np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)]
        k = int(rng.integers(0, 8))
        tip = ring[k] + (ring[k] - [cx, cy]) * 0.5  # out along the ray, then back to the same vertex
        spiked = np.vstack([ring[:k + 1], tip, ring[k:]])
        check = check_ring(spiked)
        assert check.ok
        a = polygon_mask(SHAPE, ring).to_mask(SHAPE)
        b = polygon_mask(SHAPE, check.points).to_mask(SHAPE)
        assert (a == b).all()
