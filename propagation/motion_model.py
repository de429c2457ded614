"""Robust whole-object motion of a track: an affine map fitted to a flow chain's correspondences.

Why: a flow chain moves every pixel on its own. Where the flow is wrong (occlusion, motion blur,
uncovered background that inherits the object's motion) a mask can grow to several times the
object or shrink to nothing, although the object as a whole moved in a simple way. A chain
already tells, for every target pixel, where it came from in the reference (its coordinate map)
and how sure it is (its forward-backward confidence). The confident pixels of a track give
correspondences reference -> target; RANSAC fits one affine map (or a homography) to them, the
outliers (articulated parts, bad flow) drop out, and the reference mask warped by that map is
what "the motion says" the object looks like now: a size to check the chain against and a shape
to fall back to (the warped-keyframe idea of motion-model trackers, without learned weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: models :func:`fit_motions` can fit
MODELS = ("affine", "similarity", "homography")


@dataclass
class TrackMotion:
    """Motion of one track from the reference grid to the target grid."""

    matrix: np.ndarray  # 3x3, reference (x, y, 1) -> target (x, y, 1), label-grid pixels
    inliers: int  # correspondences the fit explains within the RANSAC tolerance
    points: int  # correspondences it was fitted to

    @property
    def support(self) -> float:
        """Inlier share: how much of the confident part of the track moves as one body."""
        return self.inliers / max(self.points, 1)

    @property
    def scale(self) -> float:
        """Area scale of the map at the origin (determinant of the linear part)."""
        return float(abs(np.linalg.det(self.matrix[:2, :2])))


def fit_motions(coords: np.ndarray, conf: np.ndarray, label: np.ndarray, tracks: list[int] | np.ndarray,
                model: str = "affine", min_conf: float = 0.2, min_points: int = 24, max_points: int = 400,
                threshold: float = 0.05) -> dict[int, TrackMotion]:
    """Fit one motion per track from a chain's coordinate map.

    ``coords`` (H x W x 2): for each target pixel, its position in the reference (same grid);
    ``conf``: the chain's confidence; ``label``: the chain's label (reference label at ``coords``).
    Pixels of track k with ``conf >= min_conf`` are its correspondences (at most ``max_points``,
    an even subsample, so the fit costs the same for a stuff region as for a small thing). Tracks
    with fewer than ``min_points`` get no motion: too little evidence that they are still visible.
    The RANSAC tolerance is ``threshold`` x sqrt(track area), at least 1.5 px: a fixed pixel
    tolerance would call a large object's perspective and articulation "outliers" (measured: 35%
    inliers on a scooter at 2 px) and accept anything for a small one.
    """
    if model not in MODELS:
        raise ValueError(f"unknown motion model {model!r}; choose one of {', '.join(MODELS)}")
    want = np.asarray(tracks, dtype=np.int64)
    out: dict[int, TrackMotion] = {}
    if want.size == 0:
        return out
    sure = conf >= min_conf
    idx = np.flatnonzero(sure.ravel())
    if idx.size == 0:
        return out
    labs = label.ravel()[idx].astype(np.int64)
    keep = np.isin(labs, want)
    idx, labs = idx[keep], labs[keep]
    if idx.size == 0:
        return out
    order = np.argsort(labs, kind="stable")
    idx, labs = idx[order], labs[order]
    ids, starts, counts = np.unique(labs, return_index=True, return_counts=True)
    w = label.shape[1]
    flat = coords.reshape(-1, 2)
    for k, s, n in zip(ids.tolist(), starts.tolist(), counts.tolist(), strict=True):
        if n < min_points:
            continue
        pick = idx[s:s + n]
        if n > max_points:
            pick = pick[np.linspace(0, n - 1, max_points).astype(np.int64)]
        src = flat[pick].astype(np.float32)
        dst = np.stack([pick % w, pick // w], axis=1).astype(np.float32)
        m = _fit(src, dst, model, max(1.5, threshold * float(np.sqrt(n))))
        if m is None:
            continue
        matrix, inl = m
        out[int(k)] = TrackMotion(matrix, int(inl), len(pick))
    return out


def _fit(src: np.ndarray, dst: np.ndarray, model: str, threshold: float) -> tuple[np.ndarray, int] | None:
    if model == "homography":
        h, inl = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
        if h is None or not np.all(np.isfinite(h)):
            return None
        return h.astype(np.float64), int(inl.sum())
    fit = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    a, inl = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
    if a is None or not np.all(np.isfinite(a)):
        return None
    return np.vstack([a, [0.0, 0.0, 1.0]]), int(inl.sum())


def warp_mask(mask: np.ndarray, motion: TrackMotion, shape: tuple[int, int]) -> np.ndarray:
    """The reference mask carried by ``motion`` onto a (height, width) grid, as a boolean mask
    (bilinear on the soft mask, threshold one half: no staircase from nearest-neighbour warping)."""
    src = mask.astype(np.float32)
    size = (shape[1], shape[0])
    m = motion.matrix
    if np.allclose(m[2], [0.0, 0.0, 1.0]):
        out = cv2.warpAffine(src, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    else:
        out = cv2.warpPerspective(src, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out >= 0.5
