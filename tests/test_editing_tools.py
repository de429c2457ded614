"""Weight-free tools on demo frames: polygon (holes, bad rings), brush/eraser strokes, colour fill, GrabCut."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.editing import (
    EditContext,
    EditError,
    Erase,
    FillRegion,
    Paint,
    flood_fill_mask,
    grabcut,
    polygon_mask,
    stroke_mask,
)
from annotator.editing.operations import apply_change, bbox_of
from annotator.editing.tools import check_box, validate_polygon
from resources.demo import generate_demo_video

SHAPE = (90, 160)


@pytest.fixture(scope="module")
def demo():
    return generate_demo_video(seed=1, num_frames=6, height=SHAPE[0], width=SHAPE[1], scenario="mixed")


def _point_in_poly(xs: np.ndarray, ys: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon, vectorised over pixels (reference for the rasteriser)."""
    inside = np.zeros(xs.shape, bool)
    n = len(poly)
    for k in range(n):
        (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % n]
        cond = (y1 > ys) != (y2 > ys)
        xint = (x2 - x1) * (ys - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1
        inside ^= cond & (xs < xint)
    return inside


def test_polygon_mask_matches_geometry_with_hole():
    ext = np.array([(10.3, 5.7), (140.2, 12.1), (120.8, 80.4), (20.5, 70.9)])
    hole = np.array([(50.0, 30.0), (90.0, 30.0), (70.0, 55.0)])
    m = polygon_mask(SHAPE, ext, [hole]).to_mask(SHAPE)
    ys, xs = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(float)
    ref = _point_in_poly(xs, ys, ext) & ~_point_in_poly(xs, ys, hole)
    # rasterisers disagree only on pixels the outline passes through
    assert (m != ref).mean() < 0.03
    assert m[40, 70] == 0 and m[20, 30] == 1 and m[0, 0] == 0
    area = 0.5 * abs(np.dot(ext[:, 0], np.roll(ext[:, 1], -1)) - np.dot(ext[:, 1], np.roll(ext[:, 0], -1)))
    hole_area = 0.5 * abs(np.dot(hole[:, 0], np.roll(hole[:, 1], -1)) - np.dot(hole[:, 1], np.roll(hole[:, 0], -1)))
    assert abs(m.sum() - (area - hole_area)) / (area - hole_area) < 0.06


def test_polygon_bad_input():
    with pytest.raises(EditError, match="at least 3"):
        polygon_mask(SHAPE, [(0, 0), (10, 10)])
    with pytest.raises(EditError, match="at least 3"):
        polygon_mask(SHAPE, [(0, 0), (10, 10), (10, 10), (0, 0)])  # duplicates collapse to 2
    with pytest.raises(EditError, match="intersects itself"):
        polygon_mask(SHAPE, [(0, 0), (50, 50), (50, 0), (0, 50)])  # bow tie
    with pytest.raises(EditError, match="zero area"):
        polygon_mask(SHAPE, [(0, 0), (10, 10), (20, 20)])
    with pytest.raises(EditError, match="hole 1"):
        polygon_mask(SHAPE, [(0, 0), (50, 0), (50, 50)], holes=[[(1, 1), (2, 2)]])
    with pytest.raises(EditError, match="finite"):
        validate_polygon([(0, 0), (np.nan, 1), (2, 2)])
    # a closed ring (first == last) and a polygon fully outside the image
    assert len(validate_polygon([(0, 0), (10, 0), (10, 10), (0, 0)])) == 3
    assert polygon_mask(SHAPE, [(500, 500), (600, 500), (600, 600)]).empty


def test_polygon_paints_demo_label(demo):
    label = demo.labels[0]
    r = polygon_mask(SHAPE, [(5, 5), (60, 5), (60, 40), (5, 40)])
    new = apply_change(label.copy(), Paint(r, 5).apply(label, EditContext(tracks=demo.tracks)))
    assert (new[6:39, 6:59] == 5).all()
    assert np.array_equal(new[50:], label[50:])


def _dist_to_polyline(pts: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(float)
    p = np.stack([xs, ys], -1)[..., None, :]  # (H, W, 1, 2)
    a, b = pts[:-1], pts[1:]
    if len(pts) == 1:
        return np.hypot(*(p[..., 0, :] - pts[0]).transpose(2, 0, 1))
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
    return d.min(-1)


@pytest.mark.parametrize("radius", [0.4, 1.0, 3.0, 7.5])
def test_stroke_covers_capsule_without_gaps(radius):
    pts = np.array([(10.25, 10.75), (150.6, 80.3), (30.1, 60.9)])  # long fast moves, fractional positions
    m = stroke_mask(SHAPE, pts, radius).to_mask(SHAPE)
    d = _dist_to_polyline(pts)
    assert m[d <= max(radius - 0.75, 0.3)].all()  # every pixel well inside is painted: no gaps
    assert not m[d > radius + 0.75].any()  # nothing far outside
    assert m[10, 10] or m[11, 10]


def test_stroke_subpixel_shift_moves_the_dab():
    a = stroke_mask(SHAPE, [(40.0, 40.0)], 3.0).to_mask(SHAPE)
    b = stroke_mask(SHAPE, [(40.45, 40.0)], 3.0).to_mask(SHAPE)
    c = stroke_mask(SHAPE, [(41.0, 40.0)], 3.0).to_mask(SHAPE)
    assert np.array_equal(np.roll(a, 1, axis=1), c)  # whole-pixel shift is exact
    cols = np.flatnonzero(b.any(axis=0))
    assert cols.mean() > np.flatnonzero(a.any(axis=0)).mean() - 1e-9  # half pixel is not rounded back


def test_stroke_bad_input_and_outside():
    with pytest.raises(EditError, match="radius"):
        stroke_mask(SHAPE, [(1, 1)], 0)
    with pytest.raises(EditError):
        stroke_mask(SHAPE, [], 3)
    assert stroke_mask(SHAPE, [(-100, -100), (-50, -60)], 3).empty


def test_brush_and_eraser_on_demo_label(demo):
    label = demo.labels[2]
    ctx = EditContext(tracks=demo.tracks, locked=frozenset({1}))
    stroke = stroke_mask(SHAPE, [(0, 45), (159, 45)], 4)
    new = apply_change(label.copy(), Paint(stroke, 6).apply(label, ctx))
    m = stroke.to_mask(SHAPE)
    assert np.array_equal(new, np.where(m & (label != 1), 6, label))
    er = apply_change(new.copy(), Erase(stroke).apply(new, ctx))
    assert np.array_equal(er, np.where(m & (new != 1), 0, new))
    with pytest.raises(EditError, match="locked"):  # brush on a locked track
        Paint(stroke, 1).apply(label, ctx)


def test_flood_fill_with_tolerance(demo):
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :40] = (100, 100, 100)
    img[:, 40:] = (120, 100, 100)
    img[10:20, 10:20] = (104, 98, 101)  # within tolerance 5 of the left colour
    r = flood_fill_mask(img, (5, 5), tolerance=5).to_mask(img.shape[:2])
    assert r[:, :40].all() and not r[:, 40:].any()
    r = flood_fill_mask(img, (5, 5), tolerance=25).to_mask(img.shape[:2])
    assert r.all()
    r = flood_fill_mask(img, (5, 5), tolerance=0).to_mask(img.shape[:2])
    assert r.sum() == 40 * 60 - 100
    within = np.zeros((60, 80), bool)
    within[:30] = True
    r = flood_fill_mask(img, (5, 5), tolerance=25, within=within).to_mask(img.shape[:2])
    assert np.array_equal(r, within)
    assert flood_fill_mask(img, (5, 50), within=within).empty  # seed outside `within`: no-op
    with pytest.raises(EditError, match="outside"):
        flood_fill_mask(img, (80, 5))
    # on a demo frame: the fill stays inside the sky (track 1) region
    frame, lab = demo.frames[0], demo.labels[0]
    ys, xs = np.nonzero(lab == 1)
    r = flood_fill_mask(frame, (xs[len(xs) // 2], ys[len(ys) // 2]), tolerance=30).to_mask(SHAPE)
    assert r.sum() > 50 and (lab[r] == 1).mean() > 0.95


def test_check_box():
    assert check_box((-10, -10, 50, 40), SHAPE) == (0, 0, 50, 40)
    assert check_box((50, 40, 10, 5), SHAPE) == (10, 5, 50, 40)  # dragged backwards
    with pytest.raises(EditError, match="outside"):
        check_box((200, 10, 300, 50), SHAPE)
    with pytest.raises(EditError, match="outside"):
        check_box((-50, -50, -1, -1), SHAPE)
    with pytest.raises(EditError, match="too small"):
        check_box((10, 10, 11, 11), SHAPE)
    with pytest.raises(EditError, match="expected"):
        check_box((1, 2, 3), SHAPE)


def test_grabcut_box_and_refinement(demo):
    frame, lab = demo.frames[4], demo.labels[4]
    things = [t for t in np.unique(lab) if t >= 5 and (lab == t).sum() > 150]
    tid = int(things[0])
    gt = lab == tid
    y0, x0, y1, x1 = bbox_of(gt)
    region, state = grabcut(frame, (x0 - 3, y0 - 3, x1 + 2, y1 + 2))
    pred = region.to_mask(SHAPE)
    iou = (pred & gt).sum() / (pred | gt).sum()
    assert iou > 0.6
    # a background stroke removes pixels, a foreground stroke adds them
    bg = stroke_mask(SHAPE, [(x0, y0)], 2)
    region2, state2 = grabcut(frame, state=state, bg_strokes=bg)
    assert not (region2.to_mask(SHAPE) & bg.to_mask(SHAPE)).any()
    far = stroke_mask(SHAPE, [(x1 - 1, y1 - 1)], 1.5)
    region3, _ = grabcut(frame, state=state2, fg_strokes=far)
    assert (region3.to_mask(SHAPE) | ~far.to_mask(SHAPE)).all()
    with pytest.raises(EditError, match="outside"):
        grabcut(frame, (500, 500, 600, 600))
    with pytest.raises(EditError, match="needs a box"):
        grabcut(frame)
    with pytest.raises(EditError, match="colour"):
        grabcut(frame[..., 0], (1, 1, 20, 20))


def test_many_vertex_polygon_is_checked_quickly_and_exactly():
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ring = np.stack([80 + 60 * np.cos(t) * (1 + 0.1 * np.sin(7 * t)), 45 + 40 * np.sin(t)], 1)
    assert len(validate_polygon(ring)) == 2000
    bad = ring.copy()
    bad[[10, 1000]] = bad[[1000, 10]]
    with pytest.raises(EditError, match="intersects itself"):
        validate_polygon(bad)
    m = polygon_mask(SHAPE, ring).to_mask(SHAPE)
    assert m[45, 80] and not m[0, 0]


# --------------------------------------------------------------------------- QA regressions (extreme geometry)


def test_polygon_with_far_outside_vertex_is_exact_or_refused():
    """A vertex far outside the image must not overflow the fixed-point raster (silently wrong mask)."""
    shape = (100, 200)
    tri = [(10, 10), (2e6, 10), (10, 50)]  # the part in the image is a wedge over the full width
    r = polygon_mask(shape, tri)
    m = r.to_mask(shape)
    assert m[10:50, 10:].all() and m.sum() == m[10:51, 10:].sum()  # rows 10-50, x >= 10
    with pytest.raises(EditError, match="far"):
        polygon_mask(shape, [(10, 10), (2e8, 10), (10, 50)])
    with pytest.raises(EditError):
        polygon_mask(shape, [(10, 10), (1e300, 10), (10, 50)])
    with pytest.raises(EditError):
        polygon_mask(shape, "abc")  # type: ignore[arg-type]


def test_stroke_extreme_radius_and_far_points_are_clear_errors_or_fast():
    shape = (100, 200)
    with pytest.raises(EditError, match="radius"):
        stroke_mask(shape, [(5, 5)], 1e9)
    with pytest.raises(EditError, match="far"):
        stroke_mask(shape, [(1e9, 1e9), (5, 5)], 3)
    # a drag that leaves the canvas far away still paints exactly the part inside the image
    r = stroke_mask(shape, [(50, 50), (50, 5e5)], 2)
    assert r.to_mask(shape)[50:, 48:53].all() and r.to_mask(shape)[:47].sum() == 0


def test_flood_fill_on_read_only_frame_and_bad_images(demo):
    """Frames from ``Video.read_frame`` are read-only (LRU cache): the colour fill must work on them."""
    frame = demo.frames[0].copy()
    frame.setflags(write=False)
    r = flood_fill_mask(frame, (5, 5), tolerance=20)
    assert not r.empty
    assert np.array_equal(r.to_mask(SHAPE), flood_fill_mask(demo.frames[0].copy(), (5, 5), 20).to_mask(SHAPE))
    for bad in (np.zeros((*SHAPE, 4), np.uint8), demo.frames[0].astype(np.float64)):
        with pytest.raises(EditError, match="image"):
            flood_fill_mask(bad, (5, 5))
    with pytest.raises(EditError, match="within"):
        flood_fill_mask(frame, (5, 5), within=np.ones((10, 10), bool))
    with pytest.raises(EditError):
        flood_fill_mask(frame, (float("nan"), 5))
    with pytest.raises(EditError):
        FillRegion((float("nan"), 3), 1).apply(demo.labels[0], EditContext())
    for box in (("a", 0, 3, 3), None):
        with pytest.raises(EditError):
            check_box(box, SHAPE)  # type: ignore[arg-type]


def test_sub_pixel_brush_paints_only_the_pixels_under_its_path():
    """A 1-pixel correction needs a 1-pixel brush: a rasterised r < 1 disc painted 3 lopsided pixels."""
    dab = stroke_mask((10, 10), [(4, 4)], 0.5)
    assert dab.mask.sum() == 1 and dab.to_mask((10, 10))[4, 4]
    line = stroke_mask((10, 10), [(1, 2), (6, 2)], 0.4).to_mask((10, 10))
    assert line.sum() == 6 and line[2, 1:7].all()
