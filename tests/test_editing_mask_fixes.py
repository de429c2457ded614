"""Fixes cheaper than redrawing (annotator.editing.mask_fixes), on hand-built scenes."""

from __future__ import annotations

import cv2
import numpy as np

from annotator.editing import EditContext, ReplaceTrackMask, cut_component, refine_with_grabcut, snap_outline


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = 240, 320
    img = np.clip(np.full((h, w, 3), (60, 120, 60), float) + rng.normal(0, 12, (h, w, 3)), 0, 255)
    disc = np.zeros((h, w), np.uint8)
    cv2.circle(disc, (160, 120), 60, 1, -1)
    disc = disc.astype(bool)
    obj = np.clip(np.full((h, w, 3), (200, 80, 70), float) + rng.normal(0, 12, (h, w, 3)), 0, 255)
    img[disc] = obj[disc]
    return img.astype(np.uint8), disc


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _morph(mask: np.ndarray, r: int, op) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return op(mask.astype(np.uint8), k).astype(bool)


def test_snap_moves_an_eroded_disc_back_to_its_edge():
    img, disc = _scene()
    eroded = _morph(disc, 4, cv2.erode)
    assert _iou(eroded, disc) < 0.9
    assert _iou(snap_outline(img, eroded), disc) > 0.98


def test_snap_pulls_a_dilated_disc_in():
    img, disc = _scene(1)
    grown = _morph(disc, 4, cv2.dilate)
    assert _iou(snap_outline(img, grown), disc) > 0.98


def test_grabcut_seeded_by_a_too_big_box_recovers_the_object():
    img, disc = _scene(2)
    box = np.zeros_like(disc)
    box[50:195, 85:240] = True
    assert _iou(box, disc) < 0.6
    out, state = refine_with_grabcut(img, box)
    assert _iou(out, disc) > 0.97
    # a - stroke on part of the object takes it away on the next call
    minus = np.zeros_like(disc)
    minus[100:140, 100:140] = True
    out2, _ = refine_with_grabcut(img, out, minus=minus, state=state)
    assert not (out2 & minus).any()


def test_cut_removes_the_leaked_blob_and_keeps_the_object():
    _img, disc = _scene()
    blob = np.zeros(disc.shape, np.uint8)
    cv2.circle(blob, (280, 120), 25, 1, -1)
    blob = blob.astype(bool)
    mask = disc | blob
    mask[115:125, 215:260] = True  # the neck of the leak
    stroke = np.zeros_like(disc)
    stroke[100:140, 238:241] = True
    removed = cut_component(mask, stroke)
    assert not (removed & disc).any()
    assert (blob & ~removed).sum() == 0
    # a stroke that does not sever the mask removes nothing
    short = np.zeros_like(disc)
    short[115:119, 238:241] = True
    assert not cut_component(mask, short).any()


def test_replace_track_mask_keeps_the_invariant():
    label = np.zeros((20, 20), np.uint16)
    label[2:10, 2:10] = 1
    label[5:15, 12:18] = 2
    new = np.zeros((20, 20), bool)
    new[4:12, 4:16] = True
    ch = ReplaceTrackMask(1, new).apply(label, EditContext(tracks={1: None, 2: None}))
    out = label.copy()
    out[ch.box] = ch.after
    assert ((out == 1) == new).all()
    assert ((out == 2) == ((label == 2) & ~new)).all()
