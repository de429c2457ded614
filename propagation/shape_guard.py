"""Shape guard: catch a propagated track whose mask collapsed or exploded, and fall back.

Why: a flow chain can lose an object (both chains unsure, their fusion keeps almost nothing: a
6,761-pixel person came out as 1 pixel) or drag uncovered background along with it (a mask
several times the object's size, worst after the last keyframe where no second chain corrects
it). Both are visible in one number, the track's area, once there is an independent estimate of
what the area should be:

* the **motion** of the object: the confident correspondences of each chain give a robust affine
  map of the whole track (``propagation.motion_model``); the reference mask warped by it has the
  area the object should have now, including a scale change or a partial exit from the frame;
* the **keyframes**: between two references the area changes roughly geometrically in time.

A track is an *explosion* when its area is above ``explode`` x what the keyframes predict *and*
above ``explode`` x what the motion of every chain predicts (a *collapse*: below ``collapse`` x
both, and only if every reference holds the track: one that is missing from a reference may
really have entered or left). Both must
agree: the keyframes alone cannot tell a legitimate scale change after the last keyframe from a
dragged mask, and an affine map alone misjudges a spinning dancer whose area the keyframes
bracket well (figures: ``docs/propagation.md``). The keyframe
test is a cheap bincount; the motion fit runs only for the tracks that fail it. Fallbacks, first that
fits the expected size: each chain's own mask (the fusion, not the chains, may have lost the
object) if it lies where the motion puts the object and, for a collapse, on pixels the fusion
was unsure about (confidently another track's pixels mean the object is hidden); then, for an
explosion only, the reference shape warped by the robust motion (clipped: the chain's outline
kept inside the dilated warped shape). A collapse with no such chain is left alone (the object
may really be hidden: the motion says where it would be, not that it is visible) but reported. Every judged track becomes a :class:`GuardEvent` naming kind, reason and fallback, which
``annotator.stages.propagate`` stores with the review flags: an annotator has to look there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from propagation.base import PropagationResult
from propagation.motion_model import TrackMotion, fit_motions, warp_mask

COLLAPSE = "collapse"
EXPLOSION = "explosion"


@dataclass
class GuardConfig:
    """Tunables of the guard (chosen on the ten DAVIS sequences: ``docs/propagation.md``)."""

    enabled: bool = True
    explode: float = 1.3  # area above this x both estimates = explosion (why 1.3: docs/propagation.md)
    collapse: float = 0.67  # area below this x both estimates = collapse
    min_area: int = 64  # expected areas (label-grid px) below this are not judged (too noisy)
    model: str = "affine"  # motion model: affine | similarity | homography
    min_support: float = 0.5  # inlier share a motion fit needs to be believed
    min_points: int = 24  # confident track pixels a motion fit needs
    min_overlap: float = 0.5  # IoU a chain's mask needs with the motion-warped shape to be a fallback
    unsure_below: float = 0.5  # fused confidence below which a pixel counts as unsure (collapse fallbacks)
    clip: bool = True  # an explosion with no chain fallback: clip to the dilated warped shape (else replace)
    clip_margin: float = 0.08  # dilation of the warped shape for clipping, x sqrt(expected area)
    fallback_conf: float = 0.3  # confidence of pixels a fallback decided (below the review threshold)


@dataclass
class ChainEvidence:
    """What one chain says about a target frame, on the label grid."""

    name: str  # "forward" (from the left reference) or "backward"
    ref_index: int
    ref_label: np.ndarray  # the reference's label map on the label grid
    label: np.ndarray  # the reference label carried to the target
    conf: np.ndarray  # the chain's confidence
    coords: np.ndarray  # H x W x 2: where each target pixel came from in ``ref_label``
    weight: float  # temporal weight of the chain (1 for a one-sided chain)


@dataclass
class GuardEvent:
    """A track on a target frame whose propagated mask the guard judged implausible."""

    frame: int
    track: int
    kind: str  # COLLAPSE | EXPLOSION
    area: int  # the track's area as propagated (label-grid pixels)
    expected: int  # what the motion / keyframes say
    fallback: str  # what replaced the mask ("" = nothing fitted: left as is)
    reason: str  # one line for the review flags panel
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 (exclusive), label grid

    def scaled(self, sy: float, sx: float) -> GuardEvent:
        """The event with its bounding box on another grid (the frame's size)."""
        x0, y0, x1, y1 = self.bbox
        box = (int(x0 * sx), int(y0 * sy), int(np.ceil(x1 * sx)), int(np.ceil(y1 * sy)))
        return GuardEvent(self.frame, self.track, self.kind, self.area, self.expected, self.fallback,
                          self.reason, box)


@dataclass
class GuardedResult(PropagationResult):
    """A propagation result that also names the frames where the shape guard stepped in."""

    events: dict[int, list[GuardEvent]] = field(default_factory=dict)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return (0, 0, 0, 0)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _keyframe_expectation(k: int, chains: list[ChainEvidence], ref_areas: list[np.ndarray]) -> float:
    """Area of track k the keyframes predict: geometric interpolation in time between two
    references that hold it, else the area in the one that does (0 if none)."""
    vals = [(float(a[k]) if k < len(a) else 0.0, c.weight) for c, a in zip(chains, ref_areas, strict=True)]
    have = [(a, w) for a, w in vals if a > 0]
    if not have:
        return 0.0
    if len(have) == 1:
        return have[0][0]
    wsum = sum(w for _, w in have) or 1.0
    return float(np.exp(sum(w * np.log(a) for a, w in have) / wsum))


def guard_frame(frame: int, label: np.ndarray, conf: np.ndarray, chains: list[ChainEvidence],
                config: GuardConfig | None = None) -> tuple[np.ndarray, np.ndarray, list[GuardEvent]]:
    """Check every track of a propagated label map against keyframes and motion; fix what is off.

    Returns the (possibly) corrected label map and confidence, and one event per judged track.
    ``label`` and ``conf`` are not modified in place.
    """
    cfg = config or GuardConfig()
    if not cfg.enabled or not chains:
        return label, conf, []
    n_ids = int(max(label.max(), *(c.ref_label.max() for c in chains))) + 1
    area = np.bincount(label.ravel(), minlength=n_ids)
    ref_areas = [np.bincount(c.ref_label.ravel(), minlength=n_ids) for c in chains]
    tracks = sorted({int(t) for a in ref_areas for t in np.nonzero(a)[0]} - {0})
    suspects: list[tuple[int, float]] = []
    for k in tracks:
        key = _keyframe_expectation(k, chains, ref_areas)
        if key < cfg.min_area:
            continue
        r = area[k] / key
        # a collapse needs every reference to hold the track: one missing from a reference may
        # really be gone (it entered or left between them; measured on the demo's enter_leave)
        in_all = all(k < len(a) and a[k] > 0 for a in ref_areas)
        if r > cfg.explode or (r < cfg.collapse and in_all):  # the keyframes disagree; does the motion too?
            suspects.append((k, key))
    if not suspects:
        return label, conf, []
    ids = [k for k, _ in suspects]
    motions = [fit_motions(c.coords, c.conf, c.label, ids, cfg.model, min_points=cfg.min_points)
               for c in chains]
    out_lab, out_conf = label, conf
    events: list[GuardEvent] = []
    for k, key in suspects:
        ev = _judge(frame, k, key, int(area[k]), out_lab, out_conf, chains, motions, cfg)
        if ev is None:
            continue
        event, mask = ev
        if mask is not None:
            if out_lab is label:
                out_lab, out_conf = label.copy(), conf.copy()
            _apply(out_lab, out_conf, k, mask, chains, cfg.fallback_conf)
        events.append(event)
    return out_lab, out_conf, events


def _judge(frame: int, k: int, key: float, a: int, label: np.ndarray, conf: np.ndarray,
           chains: list[ChainEvidence], motions: list[dict[int, TrackMotion]], cfg: GuardConfig
           ) -> tuple[GuardEvent, np.ndarray | None] | None:
    shape = label.shape
    warped: list[tuple[ChainEvidence, TrackMotion, np.ndarray]] = []
    for c, ms in zip(chains, motions, strict=True):
        m = ms.get(k)
        if m is not None and m.support >= cfg.min_support:
            warped.append((c, m, warp_mask(c.ref_label == k, m, shape)))
    kind = EXPLOSION if a > cfg.explode * key else COLLAPSE
    source = f"the keyframes ({int(key)} px)"
    expected = key
    lo = hi = key
    if warped:
        sizes = [int(w.sum()) for _, _, w in warped]
        lo, hi = min(sizes), max(sizes)
        wsum = sum(c.weight for c, _, _ in warped) or 1.0
        expected = float(np.exp(sum(c.weight * np.log(max(n, 1)) for (c, _, _), n in zip(warped, sizes, strict=True))
                                / wsum))
        if hi < cfg.min_area:
            return None  # the motion says the track (nearly) left the frame: nothing to judge
        # any one chain's motion that explains the area is enough (two chains may see the object
        # differently, e.g. partly hidden at one reference: measured on the demo's crossing)
        if (kind == EXPLOSION and a <= cfg.explode * hi) or (kind == COLLAPSE and a >= cfg.collapse * lo):
            return None  # the object's own motion explains the change (scale, exit, deformation)
        source += " and " + " and ".join(f"the {c.name} motion ({int(w.sum())} px, {m.support:.0%} inliers, "
                                          f"from frame {c.ref_index + 1})" for c, m, w in warped)  # numbered as in the window
    ratio = a / expected
    lo_ok, hi_ok = cfg.collapse * min(lo, key), cfg.explode * max(hi, key)

    def fits(n: int) -> bool:
        return lo_ok <= n <= hi_ok

    mask: np.ndarray | None = None
    fallback = ""
    unsure = conf < cfg.unsure_below

    def where_moved(m: np.ndarray) -> bool:
        """A fallback must be where the motion says the object is (if a motion was fitted), and a
        collapse may only be undone on pixels the fusion was unsure about: confidently another
        track's pixels mean the object is hidden there (measured on the demo's mixed scenario)."""
        if kind == COLLAPSE:
            gain = m & (label != k)
            if np.count_nonzero(gain & unsure) < 0.5 * np.count_nonzero(gain):
                return False
        if not warped:
            return True
        w = max(warped, key=lambda x: x[0].weight)[2]
        inter = np.count_nonzero(m & w)
        return inter >= cfg.min_overlap * np.count_nonzero(m | w)

    if len(chains) > 1:  # a single chain's mask is the fused one: no alternative there
        for c in sorted(chains, key=lambda c: -c.weight):
            cm = c.label == k
            if fits(int(cm.sum())) and where_moved(cm):
                mask, fallback = cm, f"the {c.name} chain alone"
                break
    if mask is None and warped:
        c, m, w = max(warped, key=lambda x: (x[0].weight, x[1].support))
        if kind == EXPLOSION and cfg.clip:
            r = max(1, int(round(cfg.clip_margin * np.sqrt(expected))))
            grown = cv2.dilate(w.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
            clipped = (label == k) & (grown > 0)
            if fits(int(clipped.sum())):
                mask, fallback = clipped, f"clipped to the {c.name} motion-warped keyframe shape"
        if mask is None and kind == EXPLOSION:
            # not for a collapse: the motion tells where the object would be, not that it is
            # visible (an occluded track came back whole on the demo's mixed scenario)
            mask, fallback = w, f"the keyframe shape warped by the {c.name} motion ({cfg.model})"
    what = "grew to" if kind == EXPLOSION else "shrank to"
    reason = (f"track {k} {what} {a} px, {ratio:.2f}x what {source} predict"
              + (f"; replaced by {fallback}" if mask is not None else "; no fallback fits (occluded?), kept"))
    box = _bbox((label == k) | (mask if mask is not None else False))
    return GuardEvent(frame, k, kind, a, int(expected), fallback, reason, box), mask


def _apply(label: np.ndarray, conf: np.ndarray, k: int, mask: np.ndarray, chains: list[ChainEvidence],
           fallback_conf: float) -> None:
    """Make ``mask`` the pixels of track k, in place. Pixels k loses take the best other label the
    chains offer there (by weight x confidence), else the nearest other label of the frame."""
    old = label == k
    lose = old & ~mask
    label[mask] = k
    if lose.any():
        best = np.zeros(label.shape, label.dtype)
        score = np.full(label.shape, -1.0, np.float32)
        for c in chains:
            s = np.where(c.label != k, c.conf * c.weight, -1.0).astype(np.float32)
            take = s > score
            best[take], score[take] = c.label[take], s[take]
        have = lose & (score >= 0)
        label[have] = best[have]
        rest = lose & ~have
        if rest.any():
            valid = label != k
            if valid.any():
                _, (iy, ix) = distance_transform_edt(~valid, return_indices=True)
                label[rest] = label[iy[rest], ix[rest]]
            else:
                label[rest] = 0
    changed = mask ^ old
    conf[changed | mask] = np.minimum(conf[changed | mask], fallback_conf)
