"""SuperpixelSet: regions respect strong edges; clicks and drags pick whole superpixels."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.editing import EditError, SuperpixelSet


def step_image(seed: int = 0) -> np.ndarray:
    """Textured halves with a strong vertical step edge at x = 97 (off the SLIC grid)."""
    rng = np.random.default_rng(seed)
    img = np.empty((120, 200, 3), np.float64)
    img[:, :97] = (40, 60, 50)
    img[:, 97:] = (200, 190, 150)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["slic", "watershed"])
def test_superpixels_respect_a_strong_step_edge(method):
    sp = SuperpixelSet(step_image(), scales=(20, 80), method=method)
    for scale in range(2):
        lab = sp.labels(scale)
        assert lab.dtype == np.int32 and lab.shape == (120, 200)
        n = int(lab.max()) + 1
        assert set(np.unique(lab)) == set(range(n))
        left, right = np.unique(lab[:, :97]), np.unique(lab[:, 97:])
        # almost no superpixel straddles the edge: count pixels on the wrong side of their majority
        wrong = 0
        for i in np.intersect1d(left, right):
            m = lab == i
            wrong += min(m[:, :97].sum(), m[:, 97:].sum())
        assert wrong <= 0.01 * lab.size
    assert int(sp.labels(1).max()) > int(sp.labels(0).max())  # scale 1 is finer


def test_click_region_is_whole_superpixels_on_one_side():
    sp = SuperpixelSet(step_image(), scales=(20, 80))
    reg = sp.region([(150, 60)], scale=0)
    lab = sp.labels(0)
    assert reg.dtype == bool and reg.shape == (120, 200) and reg[60, 150]
    ids = np.unique(lab[reg])
    assert len(ids) == 1 and (reg == (lab == ids[0])).all()
    assert reg[:, :97].sum() <= 0.02 * reg.sum()


def test_drag_path_covers_every_superpixel_under_the_line():
    sp = SuperpixelSet(step_image(), scales=(20, 80))
    lab = sp.labels(1)
    reg = sp.region([(5, 5), (190, 110)], scale=1)  # two mouse events far apart
    xs = np.linspace(5, 190, 400).round().astype(int)
    ys = np.linspace(5, 110, 400).round().astype(int)
    under = np.unique(lab[ys, xs])
    assert set(np.unique(lab[reg])) == set(under)
    clicks = sp.region([(5, 5), (190, 110)], scale=1, connect=False)
    assert clicks.sum() < reg.sum()  # separate clicks do not join


def test_crop_and_boundaries_match_the_full_masks():
    sp = SuperpixelSet(step_image(), scales=(20, 80))
    ids = sp.ids_at([(30, 30), (170, 90)], 1, connect=False)
    crop = sp.crop(ids, 1)
    full = np.zeros((120, 200), bool)
    full[crop.y0:crop.y1, crop.x0:crop.x1] = crop.mask
    assert (full == np.isin(sp.labels(1), ids)).all()
    edge = sp.boundaries(1, (90, 0, 105, 120))
    assert edge.x0 == 90 and edge.mask.shape == (120, 15)
    assert edge.mask[:, 95 - 90:99 - 90].any(axis=1).mean() > 0.95  # the step edge, within a pixel or two
    assert edge.mask[:, :3].mean() < 0.5  # not everywhere
    assert sp.nbytes == 120 * 200 * 4  # only scale 1 was computed
    sp.labels(0)
    assert sp.nbytes == 2 * 120 * 200 * 4


def test_scales_are_computed_on_demand_and_checked():
    sp = SuperpixelSet(step_image(), scales=(20, 80, 200))
    assert not sp.ready(2)
    sp.labels(2)
    assert sp.ready(2) and not sp.ready(0)
    with pytest.raises(EditError):
        sp.labels(3)
    with pytest.raises(EditError):
        SuperpixelSet(step_image(), scales=(80, 20))
    with pytest.raises(EditError):
        SuperpixelSet(step_image(), method="nope")
    with pytest.raises(EditError):
        SuperpixelSet(np.zeros((10, 10), np.uint8))
