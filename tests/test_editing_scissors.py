"""EdgeScissors: the livewire follows image edges; rings close; straight vertices stay straight."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from annotator.editing import EdgeScissors, EditError, clean_ring, polygon_mask

CX, CY, R = 150, 100, 60


def disc_image(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    img = np.full((200, 300, 3), 20, np.uint8)
    cv2.circle(img, (CX, CY), R, (230, 230, 230), -1)
    if noise:
        rng = np.random.default_rng(seed)
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img


def radius(pts: np.ndarray) -> np.ndarray:
    return np.hypot(pts[:, 0] - CX, pts[:, 1] - CY)


@pytest.mark.parametrize("noise", [0.0, 12.0])
def test_path_between_two_boundary_points_hugs_the_disc_edge(noise):
    sc = EdgeScissors(disc_image(noise))
    start, end = (CX, CY - R), (CX + R, CY)  # a quarter of the circle apart
    p = sc.path(start, end)
    assert p.dtype == np.int32 and p.ndim == 2 and p.shape[1] == 2
    assert tuple(p[0]) == start and tuple(p[-1]) == end
    r = radius(p)
    assert np.abs(r - R).max() <= 2.5  # on the edge, not on the chord (which dips to R * 0.71)
    assert len(p) >= 0.8 * (np.pi / 2 * R)  # the arc, not the 85-pixel chord
    steps = np.abs(np.diff(p, axis=0)).max(axis=1)
    assert (steps <= 1).all()  # 8-connected


def test_path_reuses_the_map_of_the_last_start():
    sc = EdgeScissors(disc_image())
    assert sc.source is None and not sc.has_map((CX, CY - R))
    sc.path((CX, CY - R), (CX + R, CY))
    assert sc.has_map((CX, CY - R)) and sc.source == (CX, CY - R)
    assert sc.try_path((CX, CY - R), (CX, CY + R)) is not None
    assert sc.try_path((CX + 1, CY - R), (CX, CY + R)) is None  # no map for that start: caller draws straight
    sc.prepare((CX - R, CY))
    assert sc.source == (CX - R, CY)


def test_try_path_does_not_wait_for_a_map_being_built():
    sc = EdgeScissors(disc_image())
    sc.prepare((CX, CY - R))
    got = []
    with sc._lock:  # as while a worker builds a map
        t = threading.Thread(target=lambda: got.append(sc.try_path((CX, CY - R), (CX + R, CY))))
        t.start()
        t.join(5)
    assert got == [None]


def test_ring_through_four_anchors_fills_the_disc():
    img = disc_image(8.0)
    sc = EdgeScissors(img)
    anchors = [(CX, CY - R), (CX + R, CY), (CX, CY + R), (CX - R, CY)]
    ring = sc.ring(anchors)
    assert np.abs(radius(ring) - R).max() <= 2.5
    region = polygon_mask(img.shape[:2], clean_ring(ring))
    got = np.zeros(img.shape[:2], bool)
    got[region.y0:region.y1, region.x0:region.x1] = region.mask
    truth = np.hypot(*np.mgrid[0:200, 0:300][::-1] - np.array([CX, CY])[:, None, None]) <= R
    iou = (got & truth).sum() / (got | truth).sum()
    assert iou > 0.95  # a straight 4-gon through the anchors has IoU 0.64
    assert tuple(ring[0]) == anchors[0] and tuple(ring[-1]) != anchors[0]  # not repeated at the end


def test_straight_flags_make_chords():
    sc = EdgeScissors(disc_image())
    anchors = [(CX, CY - R), (CX + R, CY), (CX, CY + R), (CX - R, CY)]
    ring = sc.ring(anchors, straight=[False, True, False, False])  # the segment into anchor 1 is straight
    r = radius(ring)
    assert r.min() < 0.75 * R  # the chord from anchor 0 to anchor 1 cuts inside
    i1 = int(np.flatnonzero((ring == anchors[1]).all(axis=1))[0])
    assert (np.abs(r[i1:] - R) <= 2.5).all()  # the rest follows the edge


def test_bad_input_raises_edit_error():
    with pytest.raises(EditError):
        EdgeScissors(np.zeros((10, 10, 3), np.float32))
    sc = EdgeScissors(disc_image())
    with pytest.raises(EditError):
        sc.ring([(1, 1)])
    with pytest.raises(EditError):
        sc.ring([(1, 1), (5, 5), (9, 1)], straight=[True])


def test_points_off_the_image_are_clamped():
    sc = EdgeScissors(disc_image())
    p = sc.path((-40, -40), (400, 300))
    assert tuple(p[0]) == (0, 0) and tuple(p[-1]) == (299, 199)
