"""Fixes of an existing mask that cost less than redrawing it (issue 24, item 4).

A propagated mask that misses is usually right almost everywhere: its outline lags a few pixels
behind the object, it leaked into a neighbour through a thin neck, or it lost a part. Redrawing it
costs a polygon; these operations start from the mask instead:

* :func:`refine_with_grabcut` - GrabCut seeded by the mask (inside probable foreground, a band
  around it probable background, the rest of the window background), continued by +/- strokes.
* :func:`snap_outline` - the outline moved to the strongest image edge within a band around it
  (marker-controlled watershed on the colour gradient; why this method: ``docs/fixes.md``).
* :func:`cut_component` - a "cut here" stroke across a leak: the part(s) it severs are removed.

All take and return full-frame ``HxW`` bool masks (no Qt, no video); the window and the robot
turn the result into a :class:`ReplaceTrackMask` operation for ``EditSession.apply`` (undoable,
locks and paint mode honoured).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from annotator import panoptic
from annotator.editing.operations import (
    Change,
    EditContext,
    EditError,
    Erase,
    Operation,
    Paint,
    PaintMode,
    Region,
    apply_change,
    bbox_of,
)
from annotator.editing.tools import GrabCutState, grabcut

#: width (pixels) of the probable-background band GrabCut may grow a seeded mask into, as a share
#: of the mask's equivalent diameter, and its bounds
GRABCUT_BAND_SHARE = 0.15
GRABCUT_BAND_MIN, GRABCUT_BAND_MAX = 6, 40
#: default half-width (pixels) of the band in which :func:`snap_outline` looks for the edge
SNAP_BAND = 6


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EditError(f"{what} needs an HxWx3 uint8 colour image, got {image.shape} {image.dtype}")
    return image


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], what: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise EditError(f"{what} is {m.shape}, the image is {tuple(shape)}")
    return m.astype(bool, copy=False)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return cv2.dilate(mask.astype(np.uint8), _disc(radius)).astype(bool)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return cv2.erode(mask.astype(np.uint8), _disc(radius), borderType=cv2.BORDER_REPLICATE).astype(bool)


def grabcut_band(mask: np.ndarray) -> int:
    """Width of the band around a seed mask where GrabCut may find more of the object: a share of
    the mask's size (a big object's outline may lag further behind than a small one's)."""
    area = int(np.count_nonzero(mask))
    diameter = 2.0 * np.sqrt(area / np.pi)
    return int(np.clip(round(GRABCUT_BAND_SHARE * diameter), GRABCUT_BAND_MIN, GRABCUT_BAND_MAX))


# --------------------------------------------------------------------------- GrabCut seeded by a mask


def refine_with_grabcut(image: np.ndarray, mask: np.ndarray, plus: np.ndarray | None = None,
                        minus: np.ndarray | None = None, state: GrabCutState | None = None,
                        iterations: int = 4) -> tuple[np.ndarray, GrabCutState]:
    """GrabCut seeded by an existing mask, then continued with + / - strokes.

    Arguments: ``image`` HxWx3 uint8 RGB; ``mask`` HxW bool, the track's current mask (read only
    when ``state`` is None: a first call); ``plus`` / ``minus`` HxW bool strokes, pixels that are
    definitely the object / definitely not; ``state`` the :class:`GrabCutState` a previous call
    returned (its colour models and trimap continue, the mask is not read again).

    First call: the working window is the mask's box grown by the band (:func:`grabcut_band`) plus
    a margin; inside the mask is probable foreground, the band outside it probable background (the
    object may continue there), the rest of the window definite background. Returns the new mask
    (HxW bool: the foreground component(s) touching the seed or a + stroke) and the state for the
    next stroke. Raises :class:`EditError` for an empty mask, mismatched shapes or a GrabCut failure.
    """
    image = _check_image(image, "GrabCut refine")
    shape = image.shape[:2]
    plus = _check_mask(plus, shape, "the + stroke")
    minus = _check_mask(minus, shape, "the - stroke")
    fg_r = Region.from_mask(plus) if plus is not None else None
    bg_r = Region.from_mask(minus) if minus is not None else None
    if state is None:
        seed = _check_mask(mask, shape, "the mask")
        box = bbox_of(seed) if seed is not None else None
        if box is None:
            raise EditError("GrabCut refine needs a mask to start from: the track has no pixels on this frame")
        band = grabcut_band(seed)
        h, w = shape
        y0, x0, y1, x1 = box
        m = band + 8
        cx0, cy0, cx1, cy1 = max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w), min(y1 + m, h)
        win = seed[cy0:cy1, cx0:cx1]
        trimap = np.full(win.shape, cv2.GC_BGD, np.uint8)
        trimap[_dilate(win, band)] = cv2.GC_PR_BGD
        trimap[win] = cv2.GC_PR_FGD
        state = GrabCutState((cx0, cy0, cx1, cy1), trimap, np.zeros((1, 65), np.float64),
                             np.zeros((1, 65), np.float64))
        # grabcut() starts from a box; a seeded trimap is one already past that step
        region, state = _grabcut_from_trimap(image, state, fg_r, bg_r, iterations)
    else:
        region, state = grabcut(image, state=state, fg_strokes=fg_r, bg_strokes=bg_r, iterations=iterations)
    fg = region.to_mask(shape)
    cx0, cy0, cx1, cy1 = state.crop
    anchor = np.zeros(shape, bool)
    anchor[cy0:cy1, cx0:cx1] = np.isin(state.trimap, (cv2.GC_FGD,))
    if mask is not None and np.shape(mask) == shape:
        anchor |= np.asarray(mask, bool)
    return _components_touching(fg, anchor), state


def _grabcut_from_trimap(image: np.ndarray, state: GrabCutState, fg: Region | None, bg: Region | None,
                         iterations: int) -> tuple[Region, GrabCutState]:
    """First GrabCut pass on a trimap built by the caller (``cv2.GC_INIT_WITH_MASK``)."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = state.crop
    for strokes, value in ((fg, cv2.GC_FGD), (bg, cv2.GC_BGD)):
        if strokes is not None and not strokes.empty:
            state.trimap[strokes.to_mask((h, w))[cy0:cy1, cx0:cx1]] = value
    crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, ::-1])  # OpenCV expects BGR
    has_fg = bool(np.isin(state.trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).any())
    has_bg = bool(np.isin(state.trimap, (cv2.GC_BGD, cv2.GC_PR_BGD)).any())
    if has_fg and has_bg:
        try:
            cv2.grabCut(crop, state.trimap, None, state.bgd_model, state.fgd_model, iterations,
                        cv2.GC_INIT_WITH_MASK)
        except cv2.error as e:  # degenerate colour statistics (a flat image)
            raise EditError(f"GrabCut failed on this mask ({e}); fix it with the brush instead") from e
    out = np.isin(state.trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))
    box = bbox_of(out)
    if box is None:
        return Region(0, 0, np.zeros((0, 0), bool)), state
    a, b, c, d = box
    return Region(cy0 + a, cx0 + b, out[a:c, b:d]), state


def _components_touching(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The connected components (8-connected) of ``mask`` that overlap ``anchor``: GrabCut's stray
    specks far from the object are dropped, every part touching what the person gave is kept."""
    if not mask.any():
        return mask
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    hit = np.unique(lab[anchor & mask])
    hit = hit[hit > 0]
    if hit.size == 0:  # nothing overlaps the seed: keep the largest part rather than nothing
        sizes = np.bincount(lab.ravel(), minlength=n)
        sizes[0] = 0
        hit = np.array([int(sizes.argmax())])
    return np.isin(lab, hit)


# --------------------------------------------------------------------------- snap outline to edges


def colour_gradient(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Per pixel, the largest Sobel gradient magnitude over the Lab channels of a lightly smoothed
    image (float32 HxW): an edge between two colours of equal brightness counts too."""
    img = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy).max(axis=2)


def snap_outline(image: np.ndarray, mask: np.ndarray, band: int = SNAP_BAND) -> np.ndarray:
    """The mask with its outline moved to the strongest image edge within ``band`` pixels of it.

    ``image`` HxWx3 uint8 RGB, ``mask`` HxW bool, ``band`` >= 1: how far (pixels) the outline may
    move, inwards or outwards. Method: marker-controlled watershed (scikit-image) on the colour
    gradient (:func:`colour_gradient`) of the mask's window. The mask eroded by ``band`` is the
    object's marker, the outside of the mask dilated by ``band`` the background's; the flooding
    from both meets on the gradient's ridge between them, i.e. on the strongest edge of the band.
    Parts of the mask thinner than ``2 * band`` are anchored by their skeleton instead, so a thin
    limb is snapped, not erased. Returns a new HxW bool mask (the input when it is empty).
    """
    from skimage.segmentation import watershed  # heavy import, only when a snap runs

    image = _check_image(image, "snap outline")
    shape = image.shape[:2]
    seed = _check_mask(mask, shape, "the mask")
    assert seed is not None
    if band < 1:
        raise EditError(f"snap outline: the band must be at least 1 pixel, got {band}")
    box = bbox_of(seed)
    if box is None:
        return seed.copy()
    h, w = shape
    y0, x0, y1, x1 = box
    m = band + 4
    cy0, cx0, cy1, cx1 = max(y0 - m, 0), max(x0 - m, 0), min(y1 + m, h), min(x1 + m, w)
    win = seed[cy0:cy1, cx0:cx1]
    grad = colour_gradient(image[cy0:cy1, cx0:cx1])
    inner = _erode(win, band)
    outer = ~_dilate(win, band)
    # a part thinner than 2 * band has no inner marker: its skeleton anchors it, so the part is
    # snapped like the rest instead of being flooded by the background
    thin = win & ~_dilate(inner, band)
    if thin.any():
        from skimage.morphology import skeletonize
        inner = inner | (skeletonize(thin) & _erode(win, 1))
    markers = np.zeros(win.shape, np.int32)
    markers[outer] = 1
    markers[inner] = 2
    if not (markers == 2).any():  # the whole mask is thinner than the band: nothing to anchor it
        return seed.copy()
    out = watershed(grad, markers) == 2
    result = seed.copy()
    result[cy0:cy1, cx0:cx1] = out
    return result


# --------------------------------------------------------------------------- cut here


def cut_component(mask: np.ndarray, stroke: np.ndarray) -> np.ndarray:
    """The part of ``mask`` a "cut here" stroke removes (HxW bool; empty when the stroke cuts nothing).

    ``mask`` and ``stroke`` are HxW bool. The rule: cut the mask along the stroke; among the pieces
    the stroke touches (4-connected pieces of the mask minus the stroke, next to the stroke) the
    largest is the object and stays, every other piece it touches is removed. The mask's pixels
    under the stroke go with the nearest piece, so the new outline runs along the middle of the
    stroke. Pieces the stroke does not touch (a part already apart, e.g. behind an occluder) are
    never removed, and a stroke that does not sever the mask (a single piece around it) removes
    nothing: draw it across the whole neck of the leak.
    """
    m = np.asarray(mask, bool)
    s = np.asarray(stroke, bool)
    if m.shape != s.shape or m.ndim != 2:
        raise EditError(f"cut here: the stroke is {s.shape}, the mask {m.shape}")
    under = m & s
    if not under.any():
        return np.zeros(m.shape, bool)
    rest = m & ~s
    pieces, n = ndimage.label(rest)  # 4-connected: a diagonal one-pixel stroke still severs
    if n < 2:
        return np.zeros(m.shape, bool)
    near = ndimage.binary_dilation(s, structure=np.ones((3, 3), bool))
    touched = np.unique(pieces[near & rest])
    touched = touched[touched > 0]
    if touched.size < 2:
        return np.zeros(m.shape, bool)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    keep = touched[np.argmax(sizes[touched])]
    drop = touched[touched != keep]
    removed = np.isin(pieces, drop)
    # the stroke's own pixels: each goes with the piece nearest to it
    _, (iy, ix) = ndimage.distance_transform_edt(pieces == 0, return_indices=True)
    owner = pieces[iy, ix]
    removed |= under & np.isin(owner, drop)
    return removed


# --------------------------------------------------------------------------- the operation


@dataclass(frozen=True, eq=False)
class ReplaceTrackMask(Operation):
    """Make ``mask`` (HxW bool) the track's mask on this frame: its pixels outside become void, the
    new ones are painted with ``mode`` (panoptic: a thing takes what is under it, stuff only void).

    What every fix hands to ``EditSession.apply``: one undo step, locks honoured.
    """

    track_id: int
    mask: np.ndarray
    mode: PaintMode = PaintMode.REPLACE
    thing: bool = True
    name: str = "fix mask"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        ctx.check_target(self.track_id, self.name)
        new = np.asarray(self.mask, bool)
        if new.shape != label.shape:
            raise EditError(f"{self.name}: the mask is {new.shape}, the frame {label.shape}")
        work = label.copy()
        lost = (label == self.track_id) & ~new
        cleared = Erase(Region.from_mask(lost), self.track_id).apply(work, ctx)
        apply_change(work, cleared)
        painted = Paint(Region.from_mask(new & (work != self.track_id)), self.track_id, self.mode,
                        thing=self.thing).apply(work, ctx)
        apply_change(work, painted)
        changes = [c for c in (cleared, painted) if c is not None]
        if not changes:
            return None
        y0 = min(c.y0 for c in changes)
        x0 = min(c.x0 for c in changes)
        y1 = max(c.y0 + c.after.shape[0] for c in changes)
        x1 = max(c.x0 + c.after.shape[1] for c in changes)
        return Change(y0, x0, np.ascontiguousarray(work[y0:y1, x0:x1], dtype=panoptic.LABEL_DTYPE))

    def describe(self) -> str:
        return f"{self.name} track {self.track_id}"
