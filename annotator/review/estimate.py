"""Signals that predict whether a propagated mask is wrong: features per (frame, track) and per pixel.

Why these signals: a propagated mask goes wrong by drifting, leaking and losing thin parts, and
each leaves a trace in what a video already stores (its labels, the references a person drew,
the frames, the confidence map dense propagation saved), so nothing here needs the propagator's
internals or extra arrays:

* **distance to the nearest reference** and the length of the gap (errors accumulate along a chain;
  a one-sided gap has no second reference to pull the chain back);
* **confidence** the propagator stored (mean, share under 0.5), the fused forward/backward and
  photometric evidence it had;
* **area change** against the area the references imply (linear between the left and right
  reference, the nearest one for one-sided gaps) and **shape change** (centroid-aligned IoU with the
  previous frame's mask and with the nearest reference's);
* **motion**: the centroid's speed per dense frame relative to the object's size;
* **colour agreement**: the references' colour histogram of the track against this frame's mask
  (Bhattacharyya distance), and the share of the mask whose colour a competing segment explains better;
* **boundary contrast**: the image gradient along the mask's boundary against the frame's mean (a
  boundary that follows no edge has drifted);
* size, compactness (thin objects lose parts), and the share of the boundary on the image border.

All work runs on a copy subsampled to at most ``WORK_SIDE`` pixels on the longest side (objects
and their boundaries, not single pixels, decide a mask's IoU). The model that turns features into
probabilities is :mod:`annotator.review.error_model`; measured figures: ``docs/review.md``.

Contract: :func:`video_features` reads an open ``Video`` (labels, frame images, the
``CONFIDENCE_ARRAY`` maps, frame states and provenance) and returns one :class:`PairFeatures`
per machine-made (frame, track) pair; :func:`pixel_features` returns an ``(H', W', P)`` float32
stack for one frame at work size. Pure numpy / OpenCV / scipy; no Qt, no stage imports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from annotator.project import FrameState
from annotator.project.array_names import CONFIDENCE_ARRAY

#: longest side of the working copy of each frame
WORK_SIDE = 320
#: colour histogram: levels per RGB channel (8 -> 512 bins) and the additive smoothing per bin
COLOUR_LEVELS = 8
COLOUR_PRIOR = 0.5
#: a gap without a second reference counts as this many times its distance (a chain never pulled back)
ONE_SIDED_FACTOR = 2.0

PAIR_FEATURES = (
    "log_ref_distance", "gap_share", "one_sided", "conf_mean", "low_share", "area_change", "absent",
    "iou_prev", "iou_ref", "motion", "colour_distance", "colour_foreign", "boundary_contrast",
    "log_area", "compactness", "border_share",
)
PIXEL_FEATURES = ("unconfident", "log_boundary_distance", "boundary_distance_rel", "colour_margin",
                  "p_own", "p_near", "p_near_close", "unconfident_p")

_MACHINE_STATES = (FrameState.UNLABELLED, FrameState.PROPAGATED, FrameState.PREANNOTATED)


@dataclass(frozen=True)
class PairFeatures:
    """The signals of one machine-made (frame, track) mask; ``values`` follow :data:`PAIR_FEATURES`."""

    frame: int
    track: int
    values: np.ndarray = field(compare=False)
    area: int = 0  # pixels of the mask at full size (0: the track is expected here but absent)


# ----------------------------------------------------------------- small pure helpers
def work_scale(height: int, width: int, side: int = WORK_SIDE) -> float:
    """Factor from full size to the working copy (<= 1)."""
    return min(1.0, side / max(height, width, 1))


def shrink_label(label: np.ndarray, scale: float) -> np.ndarray:
    """Nearest-neighbour subsample of a label map (ids stay ids)."""
    if scale >= 1.0:
        return label
    h, w = label.shape
    return cv2.resize(label, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_NEAREST)


def shrink_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-averaged resize of an image or map to ``shape`` (rows, cols)."""
    if image.shape[:2] == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def colour_bins(image: np.ndarray, levels: int = COLOUR_LEVELS) -> np.ndarray:
    """HxW int bin index of each RGB pixel in a ``levels``^3 histogram."""
    q = (image.astype(np.int32) * levels) // 256
    return (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]


def colour_histograms(label: np.ndarray, bins: np.ndarray, nbins: int = COLOUR_LEVELS ** 3
                      ) -> dict[int, np.ndarray]:
    """Normalised, smoothed colour histogram of every id of a label map (void 0 included)."""
    ids, inv = np.unique(label.ravel(), return_inverse=True)
    counts = np.bincount(inv * nbins + bins.ravel(), minlength=len(ids) * nbins).reshape(len(ids), nbins)
    counts = counts.astype(np.float64) + COLOUR_PRIOR
    counts /= counts.sum(axis=1, keepdims=True)
    return {int(i): counts[k] for k, i in enumerate(ids)}


def bhattacharyya(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger-type distance in [0, 1] of two normalised histograms (0 = the same colours)."""
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))


def aligned_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks after moving ``b``'s centroid onto ``a``'s (shape, not position)."""
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    dy, dx = int(round(ya.mean() - yb.mean())), int(round(xa.mean() - xb.mean()))
    yb, xb = yb + dy, xb + dx
    h, w = a.shape
    ok = (yb >= 0) & (yb < h) & (xb >= 0) & (xb < w)
    inter = int(np.count_nonzero(a[yb[ok], xb[ok]]))
    return inter / (na + nb - inter)


def boundary_contrast(gradient: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient magnitude on a mask's inner boundary over the frame's mean gradient."""
    if not mask.any():
        return 0.0
    edge = mask & ~ndimage.binary_erosion(mask, border_value=1)
    mean = float(gradient.mean()) + 1e-6
    return float(gradient[edge].mean() / mean) if edge.any() else 0.0


def image_gradient(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of an RGB image's grey level, float32."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def colour_loglik(label: np.ndarray, bins: np.ndarray, hists: Mapping[int, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: log-likelihood of its colour under its own id's reference histogram, and under
    the best competing id's (ids without a histogram get the uniform one; with fewer than two
    histograms the competitor is the uniform one)."""
    nbins = COLOUR_LEVELS ** 3
    uniform = np.float32(-np.log(nbins))
    ids = sorted(hists)
    if not ids:
        full = np.full(label.shape, uniform, np.float32)
        return full, full.copy()
    table = np.log(np.stack([hists[i] for i in ids])).astype(np.float32)
    lut = np.full(max(int(label.max()) if label.size else 0, max(ids)) + 1, -1, np.int64)
    lut[np.array(ids)] = np.arange(len(ids))
    own_k = lut[label]
    own = np.where(own_k >= 0, table[np.maximum(own_k, 0), bins], uniform)
    if len(ids) < 2:
        return own.astype(np.float32), np.full(label.shape, uniform, np.float32)
    # best and second-best id per bin: a pixel's competitor is the best id that is not its own
    order = np.argsort(-table, axis=0)
    best_k, best_v = order[0], table[order[0], np.arange(nbins)]
    second_v = table[order[1], np.arange(nbins)]
    comp = np.where(own_k == best_k[bins], second_v[bins], best_v[bins])
    return own.astype(np.float32), comp.astype(np.float32)


# ----------------------------------------------------------------- reading a video
@dataclass
class _Frame:
    """One frame's working copy."""

    label: np.ndarray
    image: np.ndarray
    conf: np.ndarray | None
    bins: np.ndarray
    gradient: np.ndarray

    def stats(self) -> dict[int, tuple[int, float, float]]:
        """id -> (area, cy, cx) at work size."""
        ids, inv, area = np.unique(self.label.ravel(), return_inverse=True, return_counts=True)
        h, w = self.label.shape
        yy, xx = np.divmod(np.arange(h * w), w)
        cy = np.bincount(inv, yy) / area
        cx = np.bincount(inv, xx) / area
        return {int(i): (int(a), float(y), float(x)) for i, a, y, x in zip(ids, area, cy, cx, strict=True)}


def load_work_frame(video: Any, index: int, scale: float) -> _Frame:
    """A frame's label, image and stored confidence at work size."""
    label = shrink_label(video.read_label(index), scale)
    shape = label.shape
    image = shrink_image(np.asarray(video.read_frame(index)), shape)
    conf_raw = video.load_array(CONFIDENCE_ARRAY, index)
    conf = None if conf_raw is None else shrink_image(conf_raw.astype(np.float32) / 255.0, shape)
    return _Frame(label, image, conf, colour_bins(image), image_gradient(image))


def reference_frames(video: Any) -> list[int]:
    """Frames a person vouches for as a whole (labelled, not by a machine)."""
    return [i for i in range(video.num_frames)
            if video.frame_state(i) not in _MACHINE_STATES and video.has_label(i)]


def machine_pairs(video: Any, frame: int, expected: set[int]) -> list[int]:
    """Tracks on a frame a machine made (present, or expected from both references yet absent)."""
    prov = video.provenance(frame)
    present = set(video.frame_tracks(frame))
    return sorted(t for t in present | expected if not (t in prov and prov[t].is_human) and t in video.tracks)


class _RefCache:
    """Working copies and colour models of the reference frames, loaded on demand."""

    def __init__(self, video: Any, scale: float) -> None:
        self.video, self.scale = video, scale
        self.frames: dict[int, _Frame] = {}
        self.hists: dict[int, dict[int, np.ndarray]] = {}
        self.stats: dict[int, dict[int, tuple[int, float, float]]] = {}

    def get(self, index: int) -> _Frame:
        if index not in self.frames:
            if len(self.frames) > 8:  # refs are visited in time order: keep the recent ones only
                for k in sorted(self.frames)[:4]:
                    del self.frames[k], self.hists[k], self.stats[k]
            f = load_work_frame(self.video, index, self.scale)
            self.frames[index] = f
            self.hists[index] = colour_histograms(f.label, f.bins)
            self.stats[index] = f.stats()
        return self.frames[index]

    def colour_model(self, left: int | None, right: int | None) -> dict[int, np.ndarray]:
        """Mean histogram of each id over the gap's references."""
        out: dict[int, list[np.ndarray]] = {}
        for r in (left, right):
            if r is None:
                continue
            self.get(r)
            for i, h in self.hists[r].items():
                out.setdefault(i, []).append(h)
        return {i: np.mean(hs, axis=0) for i, hs in out.items()}


def _gap(refs: list[int], frame: int) -> tuple[int | None, int | None]:
    left = max((r for r in refs if r < frame), default=None)
    right = min((r for r in refs if r > frame), default=None)
    return left, right


def pair_values(frame: int, track: int, cur: _Frame, prev: _Frame | None, refs: _RefCache,
                left: int | None, right: int | None, model: Mapping[int, np.ndarray],
                own: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """The :data:`PAIR_FEATURES` of one (frame, track) mask (see the module docstring)."""
    mask = cur.label == track
    area = int(np.count_nonzero(mask))
    d_left = frame - left if left is not None else None
    d_right = right - frame if right is not None else None
    dists = [d for d in (d_left, d_right) if d is not None]
    dist = min(dists) if dists else 1
    one_sided = float(len(dists) < 2)
    gap = (d_left + d_right) if len(dists) == 2 else ONE_SIDED_FACTOR * dist
    ref_area: list[tuple[int, float]] = []
    for r, d in ((left, d_left), (right, d_right)):
        if r is not None:
            refs.get(r)
            ref_area.append((d, float(refs.stats[r].get(track, (0, 0.0, 0.0))[0])))
    if len(ref_area) == 2:
        (da, aa), (db, ab) = ref_area
        expect = (aa * db + ab * da) / (da + db)
    else:
        expect = ref_area[0][1] if ref_area else float(area)
    area_change = abs(np.log((area + 4.0) / (expect + 4.0)))
    nearest = left if (d_left is not None and (d_right is None or d_left <= d_right)) else right
    iou_ref = aligned_iou(mask, refs.get(nearest).label == track) if nearest is not None else 1.0
    prev_mask = prev.label == track if prev is not None else None
    iou_prev = aligned_iou(mask, prev_mask) if prev_mask is not None else iou_ref
    motion = 0.0
    if prev is not None and area and prev_mask is not None and prev_mask.any():
        ys, xs = np.nonzero(mask)
        py, px = np.nonzero(prev_mask)
        motion = float(np.hypot(ys.mean() - py.mean(), xs.mean() - px.mean()) / np.sqrt(area))
    if area:
        conf_mean = float(cur.conf[mask].mean()) if cur.conf is not None else 1.0
        low_share = float(np.mean(cur.conf[mask] < 0.5)) if cur.conf is not None else 0.0
        hist = np.bincount(cur.bins[mask], minlength=COLOUR_LEVELS ** 3).astype(np.float64) + COLOUR_PRIOR
        ref_hist = model.get(track)
        colour_distance = bhattacharyya(hist / hist.sum(), ref_hist) if ref_hist is not None else 1.0
        colour_foreign = float(np.mean(own[mask] < comp[mask]))
        contrast = boundary_contrast(cur.gradient, mask)
        edge = mask & ~ndimage.binary_erosion(mask)
        perimeter = int(np.count_nonzero(edge))
        compactness = perimeter * perimeter / (4 * np.pi * area)
        h, w = mask.shape
        border = np.zeros_like(mask)
        border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
        border_share = float(np.count_nonzero(edge & border) / max(perimeter, 1))
    else:
        conf_mean, low_share, colour_distance, colour_foreign = 0.0, 1.0, 1.0, 1.0
        contrast, compactness, border_share = 0.0, 1.0, 0.0
    return np.array([np.log1p(dist), dist / max(gap, 1.0), one_sided, conf_mean, low_share, area_change,
                     float(area == 0), iou_prev, iou_ref, min(motion, 5.0), colour_distance, colour_foreign,
                     min(contrast, 10.0), np.log1p(area), min(np.log1p(compactness), 5.0), border_share],
                    np.float32)


def iter_video_features(video: Any, frames: list[int] | None = None
                        ) -> Iterator[tuple[int, _Frame, list[PairFeatures], np.ndarray, np.ndarray]]:
    """Per machine-made frame in time order: (frame, its working copy, its pairs' features, own and
    competing colour log-likelihood maps); the error map reuses the working copy."""
    scale = work_scale(video.height, video.width)
    refs = reference_frames(video)
    ref_set = set(refs)
    cache = _RefCache(video, scale)
    prev: _Frame | None = None
    prev_index = -2
    full_px = 1.0 / (scale * scale)
    for i in frames if frames is not None else range(video.num_frames):
        if i in ref_set or not video.has_label(i):
            prev, prev_index = (cache.get(i) if i in ref_set else None), i
            continue
        left, right = _gap(refs, i)
        expected: set[int] = set()
        if left is not None and right is not None:
            cache.get(left), cache.get(right)
            expected = ({t for t in cache.stats[left] if t} & {t for t in cache.stats[right] if t})
        tracks = machine_pairs(video, i, expected)
        cur = load_work_frame(video, i, scale)
        model = cache.colour_model(left, right)
        own, comp = colour_loglik(cur.label, cur.bins, model)
        use_prev = prev if prev_index == i - 1 else None
        pairs = [PairFeatures(i, t, pair_values(i, t, cur, use_prev, cache, left, right, model, own, comp),
                              int(round(np.count_nonzero(cur.label == t) * full_px))) for t in tracks]
        yield i, cur, pairs, own, comp
        prev, prev_index = cur, i


def video_features(video: Any, frames: list[int] | None = None) -> list[PairFeatures]:
    """Features of every machine-made (frame, track) pair of a video (``frames``: only those)."""
    return [p for _i, _f, pairs, _o, _c in iter_video_features(video, frames) for p in pairs]


def pixel_features(frame: _Frame, own: np.ndarray, comp: np.ndarray, p_bad: Mapping[int, float]) -> np.ndarray:
    """``(H', W', len(PIXEL_FEATURES))`` float32 signals of each work-size pixel being wrong.

    Errors sit near boundaries (a drifted or leaking mask is wrong along its edge, not in the
    middle of a road), where the colour fits another segment better, where the propagator was
    unsure, and on or next to a track the pair estimate doubts (``p_bad``: track -> probability).
    """
    label = frame.label
    edge = np.zeros(label.shape, bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[1:, :] != label[:-1, :]
    dist = ndimage.distance_transform_edt(~edge) if edge.any() else np.full(label.shape, 1e3)
    ids, inv, area = np.unique(label.ravel(), return_inverse=True, return_counts=True)
    rel = dist / np.sqrt(area[inv].reshape(label.shape))
    p_lut = np.array([float(p_bad.get(int(i), 0.0)) for i in ids], np.float32)
    p_own = p_lut[inv].reshape(label.shape)
    p_near = ndimage.grey_dilation(p_own, size=(15, 15))
    unconf = 1.0 - frame.conf if frame.conf is not None else np.zeros(label.shape, np.float32)
    margin = np.clip(own - comp, -6.0, 6.0)
    return np.stack([unconf, np.log1p(dist), np.minimum(rel, 2.0), margin, p_own, p_near,
                     p_near * np.exp(-dist / 5.0), unconf * p_own], axis=-1).astype(np.float32)
