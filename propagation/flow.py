"""Optical-flow propagator: label maps carried along DIS flow chains, no learned weights.

Why it is built this way:

* Flow is computed between consecutive *source* frames (``FrameSource.read_source_frames``) when the
  source has more frames than the 5 fps samples: small steps follow fast motion far better (DAVIS
  2016 J&F 0.89 vs 0.76 for a chain over the 5 fps samples). ``max_steps`` can cap the steps
  per dense interval for speed.
* Labels are not warped step by step (nearest-neighbour warping of a label map drifts: a motion of
  0.3 px per frame rounds to 0 at every step). Instead each chain composes a *coordinate map*
  (where every pixel of the current frame came from in the reference) with bilinear sampling,
  and the reference label is sampled once, at its own resolution, for each target.
* Each chain carries a per-pixel confidence: the product, along the trajectory, of the
  forward-backward consistency of every flow step (inconsistent = occluded or badly matched).
  Pixels whose trajectory leaves the frame get confidence 0. DIS runs without its variational
  refinement, which smooths the flow across object boundaries (on the ten DAVIS sequences it
  costs 0.03 J&F), and at a half-resolution finest level with a 3 px patch stride.
* Photometric check (``photo_sigma``): each chain's confidence is multiplied, per target pixel, by how
  well the target's colour matches the reference image at the point the chain says the pixel came
  from. Flow that bleeds across an object boundary (textureless road next to a car) passes the
  forward-backward check but lands on another surface; this is what exposes it (fast profile on
  the demo: mean J 0.920 -> 0.935).
* Between two references the forward chain (from the left) and the backward chain (from the
  right) are fused per pixel by ``temporal weight x chain confidence``; occluded pixels are thus
  left to the more confident side, and a track present in only one reference fades where the
  other chain is more trusted.
* Boundaries and unsure pixels are refined with an edge-aware (guided) filter of the per-track
  soft scores steered by the target image, plus per-track colour histograms where both chains
  lost the pixel, so mask edges snap to image edges (DAVIS J&F 0.84 -> 0.89).
* Work sizes: flow runs with the longest side in [min_side, max_side] (small frames are upscaled:
  DIS patches are too coarse for small objects); labels are fused and refined with the longest
  side at most ``label_side`` and upsampled (nearest) to the frame size at the end.
* Thin parts (``thin_tiles``): what a reduced label grid cannot hold (kite lines, poles, ropes:
  ``propagation.thin_parts``) is found in the references, followed along the chains, and the tiles
  it lands in are sampled, fused and refined again at full size (at most THIN_TILE_SHARE of a
  frame's tiles; not on frames where the shape guard repaired a track). DAVIS kite-surf at the fast
  profile: 0.612 -> 0.656, the other nine unchanged; the cost is nothing on frames without thin
  parts and about 75 ms CPU per frame on kite-surf.
* Every target then passes the shape guard (``propagation.shape_guard``): a track whose area is
  off by more than 1.3x from what both the keyframes and its own robust affine motion predict
  (``propagation.motion_model``) is replaced by the other chain's mask or by the keyframe shape
  warped by that motion (an explosion is clipped to it), and the event is returned in
  ``GuardedResult.events`` for the review flags. On the ten DAVIS 2016 sequences it changes only
  scooter-black (fast 1 frame, quality 5): 0.573 -> 0.607 (fast), 0.518 -> 0.634 (balanced),
  0.524 -> 0.627 (quality before GrabCut); the other nine are unchanged, as are the demo scores.
* Candidates measured on all ten sequences for issue 15 and kept as options (off unless a profile
  sets them; figures are J&F, fast profile, overall of ten): ``graphcut`` (GrabCut per object on
  unsure pixels: +0.01, car-roundabout +0.06, dance-twirl -0.05 at fast; on in ``quality``,
  +0.013 there), ``jump`` (non-successive transfer as in JumpCut: car-roundabout +0.07 but
  dance-twirl -0.15, overall -0.03), ``detail`` (full-size re-sampling of a reduced label grid:
  kite-surf +0.06, dog -0.03), ``motion_prior`` (motion-warped keyframe in unsure pixels:
  overall -0.13, eats deforming objects). Plain knobs (steps per interval, refinement radius,
  colour thresholds, forward-backward tolerance, label and flow sizes) move the overall by at most
  +-0.01 and none helps every sequence; see the issue-15 note in the README table. Tried and
  removed in a later round (issue 15's note has the figures): min instead of product of the
  per-step consistency, painting the references' thin parts at full size over a reduced grid,
  dropping detached components that only one chain supports, and voting over chains with 0, 2 and
  3 steps per interval.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import cv2
import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from propagation.base import FrameSource, PropagationResult, Propagator, Reference
from propagation.motion_model import MODELS, fit_motions, warp_mask
from propagation.shape_guard import ChainEvidence, GuardConfig, GuardedResult, GuardEvent, guard_frame
from propagation.thin_parts import thin_mask

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

#: confidence given to reference pixels of tracks that no human drew on that reference
UNTRUSTED_REFERENCE_WEIGHT = 0.5
#: boundary refinement works on tiles of this size (pixels) that contain boundary pixels
TILE = 64
#: at most this share of a frame's tiles (and at least 8) is redone at full size for thin parts
#: (FlowConfig.thin_tiles)
THIN_TILE_SHARE = 0.25


@dataclass
class FlowConfig:
    """Tunables of the flow propagator. The defaults are the plain chain (the preset's own DIS settings, no
    photometric check: association and the 5 fps baseline use them); the named PROFILES add to them."""

    preset: str = "ultrafast"  # DIS preset: ultrafast | fast | medium
    max_side: int = 854  # working size: longest side of the frames used for flow
    min_side: int = 640  # small frames are upscaled to this longest side for flow: DIS patches are
    #                      8 px wide at its finest level, too coarse for small objects in small frames
    label_side: int = 854  # longest side at which labels are fused and refined (0 = full size);
    #                        larger frames get their label maps upsampled (nearest) at the end
    max_steps: int = 0  # at most this many flow steps per dense interval (0 = every source frame)
    use_source: bool = True  # chain over source frames between the dense samples
    finest_scale: int | None = None  # DIS finest pyramid level (None = the preset's; 0 = full size)
    patch_stride: int | None = None  # DIS patch stride (None = the preset's)
    variational_iters: int | None = None  # DIS variational refinement iterations (None = the preset's)
    fb_alpha: float = 0.01  # forward-backward tolerance: alpha * |motion|^2 + beta (px^2)
    fb_beta: float = 0.5
    bidirectional: bool = True  # fuse a backward chain from the right reference
    refine: bool = True  # edge-aware boundary refinement
    refine_radius: int = 4  # guided filter radius in label-grid pixels
    refine_eps: float = 1e-3  # guided filter regulariser (image intensities in [0, 1])
    colour_weight: float = 0.5  # weight of the colour model where the chains are unsure (0 = off)
    colour_below: float = 0.3  # chain confidence below which the colour model is consulted
    refine_floor: float = 0.05  # score a zero-confidence chain still gets (its temporal prior)
    edge_below: float = 0.6  # refine label edges only where the fused confidence is below this (> 1: all);
    #                          = agree_floor: edges both chains agree on stay (same DAVIS/demo scores, faster)
    agree_floor: float = 0.6  # fused confidence where both chains agree is at least this
    threads: int = 2  # worker threads for the two chains and the per-target work (1 = serial)
    motion_prior: float = 0.0  # > 0: where a chain is unsure (conf < colour_below), its label comes from
    #                             the reference warped by each track's robust motion, with this confidence
    detail: bool = False  # with a reduced label grid: re-sample the chains at full size where the grid's
    #                       refinement kept the fused label (thin structures survive the upsampling)
    jump: bool = False  # non-successive transfer (JumpCut): also flow each target straight to its references
    #                     and fuse those labels as extra candidates (no drift; fails on large motion)
    jump_vote: bool = True  # direct transfers vote as extra candidates (else: replace unsure chain pixels)
    graphcut: int = 0  # > 0: GrabCut iterations per thing-sized track on unsure pixels (per-object colour GMMs
    #                    + graph cut, after the guided refinement; 0 = off)
    graphcut_sure: float = 0.5  # pixels at or above this fused confidence are fixed for the graph cut
    guard: bool = True  # shape guard: catch collapsed / exploded track masks (propagation.shape_guard)
    guard_explode: float = 1.3  # area above this x the keyframe and the motion estimates = explosion
    guard_collapse: float = 0.67  # area below this x both estimates = collapse
    guard_model: str = "affine"  # whole-track motion model of the guard: affine | similarity | homography
    guard_clip: bool = True  # explosion without a chain fallback: clip to the warped shape (else replace)
    photo_sigma: float = 0.0  # > 0: chain confidence x exp(-d^2 / 2 sigma^2), d = colour distance between the
    #                           target and the reference image sampled where the chain says the pixel came from
    thin_tiles: bool = False  # with a reduced label grid: redo at full size the tiles where the references'
    #                           thin parts (propagation.thin_parts) land, so lines and poles survive
    photo_blur: int = 1  # box-blur radius (label-grid px) of both images before the colour comparison

    def guard_config(self) -> GuardConfig:
        """The shape guard's settings from this profile."""
        return GuardConfig(enabled=self.guard, explode=self.guard_explode, collapse=self.guard_collapse,
                           model=self.guard_model, clip=self.guard_clip)

    @classmethod
    def profile(cls, name: str) -> FlowConfig:
        """A named speed/quality profile (``--speed`` in the CLI)."""
        if name not in PROFILES:
            raise ValueError(f"unknown flow profile {name!r}; choose one of {', '.join(PROFILES)}")
        return cls(**PROFILES[name])

    @classmethod
    def fast(cls) -> FlowConfig:
        """The speed profile: coarser flow and smaller label grid (the 720p budget of 10 frames/s)."""
        return cls.profile("fast")


#: Named profiles, chosen on all ten DAVIS 2016 sequences of ../shared/data/davis2016 (24 fps,
#: keyframes every 5th dense frame, 5 fps targets; J&F per sequence in the README table) and the
#: 4 demo scenarios (25 fps source); the candidates and their ten-sequence figures are in issue 15's
#: note. Every profile runs DIS without its variational refinement (it smooths flow across object
#: boundaries: the ``fast`` preset, ultrafast plus 5 refinement steps, was 0.031 worse than ultrafast on
#: the ten) at half-resolution finest level with a 3 px patch stride, and weighs each chain by the
#: photometric check. The fast profile's 2 steps per dense interval and 480 px grids are what the
#: 720p budget of 10 dense frames/s allows with that flow. The shape guard is on in every profile.
_FLOW = {"finest_scale": 1, "patch_stride": 3, "variational_iters": 0, "photo_sigma": 20.0, "refine_radius": 3,
         "thin_tiles": True}
PROFILES: dict[str, dict[str, object]] = {
    "fast": {"preset": "ultrafast", **_FLOW, "max_side": 480, "label_side": 480, "max_steps": 2},
    "balanced": {"preset": "ultrafast", **_FLOW},
    "quality": {"preset": "ultrafast", **_FLOW, "label_side": 0, "graphcut": 2},
}


def _rescaled(xy: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates (x, y in the last axis) on a ``src`` (w, h) grid, expressed on a ``dst`` grid
    (pixel centres aligned, as cv2.resize does). Returns a new array."""
    out = np.empty_like(xy)
    out[..., 0] = (xy[..., 0] + 0.5) * (dst[0] / src[0]) - 0.5
    out[..., 1] = (xy[..., 1] + 0.5) * (dst[1] / src[1]) - 0.5
    return out


def _trusted(ref: Reference, lab: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Chain confidence x how much the reference is trusted for the track sampled there (tracks no
    human drew on the reference get UNTRUSTED_REFERENCE_WEIGHT)."""
    if ref.fixed_tracks:
        lut = np.full(int(max(ref.label.max(), lab.max())) + 1, UNTRUSTED_REFERENCE_WEIGHT, np.float32)
        lut[0] = 1.0
        fixed = [t for t in ref.fixed_tracks if t < len(lut)]
        lut[fixed] = 1.0
        conf = conf * lut[lab]
    return conf.astype(np.float32)


class _Chain:
    """Frames of a dense range [a, b] at working size, and the flows between neighbours."""

    def __init__(self, grays: list[np.ndarray], positions: dict[int, int]) -> None:
        self.grays = grays
        self.positions = positions  # dense index -> position in ``grays``
        self.fwd: list[np.ndarray] = []  # flow p -> p+1
        self.bwd: list[np.ndarray] = []  # flow p+1 -> p


def _shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize to ``size`` (w, h). Large reductions go through an integer factor first: OpenCV's
    area resize is several times faster for integer factors than for fractional ones."""
    img = np.ascontiguousarray(img)
    f = img.shape[1] // size[0]
    if f >= 2:
        img = cv2.resize(img, (img.shape[1] // f, img.shape[0] // f), interpolation=cv2.INTER_AREA)
    if (img.shape[1], img.shape[0]) != tuple(size):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def _gray(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Grey image at ``size`` (w, h), shrunk in colour first when much smaller (less to convert)."""
    rgb = np.ascontiguousarray(rgb)
    if size is not None:
        f = rgb.shape[1] // size[0]
        if f >= 2:
            rgb = cv2.resize(rgb, (rgb.shape[1] // f, rgb.shape[0] // f), interpolation=cv2.INTER_AREA)
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if size is not None and (g.shape[1], g.shape[0]) != size:
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    return g


def _resize_label(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to (height, width) (ids are never blended)."""
    if label.shape == tuple(shape):
        return label
    return cv2.resize(label, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide), with box filters: edge-preserving smoothing of ``src``.

    ``src`` may have several channels (H x W x K); the guide statistics are shared.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, borderType=cv2.BORDER_REFLECT)

    i = guide.astype(np.float32)
    mean_i = box(i)
    var_i = box(i * i) - mean_i * mean_i
    if src.ndim == 2:
        src = src[..., None]
    out = np.empty_like(src, dtype=np.float32)
    # cv2 filters at most 4 channels at a time efficiently; loop over channel blocks, not pixels
    for c0 in range(0, src.shape[2], 4):
        p = np.ascontiguousarray(src[..., c0:c0 + 4], dtype=np.float32)
        if p.shape[2] == 1:
            p = p[..., 0]
        ii = i if p.ndim == 2 else i[..., None]
        mi = mean_i if p.ndim == 2 else mean_i[..., None]
        vi = var_i if p.ndim == 2 else var_i[..., None]
        mean_p = box(p)
        cov = box(ii * p) - mi * mean_p
        a = cov / (vi + eps)
        b = mean_p - a * mi
        q = box(a) * ii + box(b)
        out[..., c0:c0 + 4] = q if q.ndim == 3 else q[..., None]
    return out


def _box_channels(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of every channel (cv2 handles at most 4 channels per call)."""
    out = np.empty_like(x)
    k = (2 * radius + 1, 2 * radius + 1)
    for c0 in range(0, x.shape[2], 4):
        blk = cv2.boxFilter(np.ascontiguousarray(x[..., c0:c0 + 4]), -1, k, borderType=cv2.BORDER_REFLECT)
        out[..., c0:c0 + 4] = blk.reshape(x.shape[0], x.shape[1], -1)
    return out


class ColourModel:
    """Per-track colour histograms of the references (16 levels per channel).

    Where both flow chains lost track of a pixel (occlusion, fast motion, blur) its colour still
    tells which of the tracks present nearby it most likely belongs to.
    """

    BITS = 4

    def __init__(self, samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
        nbins = 1 << (3 * self.BITS)
        n_ids = max(int(lab.max()) for _, lab in samples) + 1
        hist = np.zeros(n_ids * nbins, np.float64)
        for rgb, lab in samples:
            q = self.quantise(rgb).astype(np.int64)
            hist += np.bincount(lab.astype(np.int64).ravel() * nbins + q.ravel(), minlength=n_ids * nbins)
        hist = hist.reshape(n_ids, nbins) + 0.5  # a little mass everywhere: unseen colours stay possible
        self.lik = (hist / hist.sum(axis=1, keepdims=True)).astype(np.float32)

    def quantise(self, rgb: np.ndarray) -> np.ndarray:
        s = 8 - self.BITS
        r, g, b = (rgb[..., i].astype(np.uint16) >> s for i in range(3))
        return (r << (2 * self.BITS)) | (g << self.BITS) | b

    def posterior(self, q: np.ndarray, ids: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """P(track | colour) among ``ids``, H x W x len(ids), with an optional spatial prior."""
        known = ids[ids < len(self.lik)]
        lik = np.full(q.shape + (len(ids),), 1e-6, np.float32)
        pos = np.searchsorted(ids, known)
        lik[..., pos] = self.lik[known][:, q].transpose(1, 2, 0)
        if prior is not None:
            lik *= prior + 1e-3
        return lik / lik.sum(axis=2, keepdims=True)


class FlowPropagator(Propagator):
    """Dense propagation by optical-flow chains (the default backend: no weights needed)."""

    name = "flow"

    def __init__(self, config: FlowConfig | None = None, **overrides: object) -> None:
        cfg = replace(config) if config is not None else FlowConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise ValueError(f"unknown flow option {k!r}")
            setattr(cfg, k, v)
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
        if cfg.guard_model not in MODELS:
            raise ValueError(f"unknown guard motion model {cfg.guard_model!r}; choose one of {', '.join(MODELS)}")
        self.config = cfg

    # ------------------------------------------------------------------ public
    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PropagationResult:
        if not references:
            raise ValueError("propagation needs at least one reference frame")
        refs = {r.index: r for r in sorted(references, key=lambda r: r.index)}
        ref_idx = sorted(refs)
        targets = sorted(set(targets))
        if set(targets) & set(ref_idx):
            raise ValueError("targets must not include reference frames")
        groups: dict[tuple[int | None, int | None], list[int]] = {}
        for t in targets:
            left = max((r for r in ref_idx if r < t), default=None)
            right = min((r for r in ref_idx if r > t), default=None)
            if not self.config.bidirectional and left is not None:
                right = None
            groups.setdefault((left, right), []).append(t)
        labels: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        events: dict[int, list[GuardEvent]] = {}
        done = 0
        for (left, right), ts in groups.items():
            check_cancel(cancel)

            def tick(n: int, base: int = done, ts: list[int] = ts) -> None:
                if progress:
                    progress(base + n, len(targets), f"frame {ts[n - 1]}")

            res_l, res_c, res_e = self._propagate_gap(frames, refs.get(left) if left is not None else None,
                                                      refs.get(right) if right is not None else None, ts, cancel,
                                                      tick)
            labels.update(res_l)
            conf.update(res_c)
            events.update(res_e)
            done += len(ts)
            if progress:
                progress(done, len(targets), f"frames {ts[0]}-{ts[-1]}")
        return GuardedResult(labels, conf, events)

    # ------------------------------------------------------------------ internals
    def _working_size(self, h: int, w: int) -> tuple[int, int] | None:
        s = min(self.config.max_side / max(h, w), max(1.0, self.config.min_side / max(h, w)))
        if s == 1:
            return None
        return max(8, int(round(w * s))), max(8, int(round(h * s)))

    def _label_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) at which labels are fused and refined: never larger than the frame."""
        side = self.config.label_side
        if side <= 0 or max(h, w) <= side:
            return h, w
        s = side / max(h, w)
        return max(8, int(round(h * s))), max(8, int(round(w * s)))

    def _read_chain(self, frames: FrameSource, a: int, b: int, size: tuple[int, int] | None,
                    cancel: CancelToken | None) -> _Chain:
        grays: list[np.ndarray] = []
        positions: dict[int, int] = {}
        for i in range(a, b):
            check_cancel(cancel)
            if self.config.use_source:
                seg = frames.read_source_frames(i, i + 1)
                k = self.config.max_steps
                if k > 0 and len(seg) - 1 > k:
                    # evenly spaced subset that keeps both dense endpoints
                    pick = np.round(np.linspace(0, len(seg) - 1, k + 1)).astype(int)
                    seg = [seg[j] for j in pick]
            else:
                seg = [frames.read_frame(i), frames.read_frame(i + 1)]
            if not grays:
                grays.append(_gray(seg[0], size))
            positions[i] = len(grays) - 1
            grays.extend(_gray(f, size) for f in seg[1:])
        positions[b] = len(grays) - 1
        return _Chain(grays, positions)

    def _flows(self, chain: _Chain, cancel: CancelToken | None) -> None:
        dis = self._dis()
        for p in range(len(chain.grays) - 1):
            check_cancel(cancel)
            g0, g1 = chain.grays[p], chain.grays[p + 1]
            chain.fwd.append(dis.calc(g0, g1, None))
            chain.bwd.append(dis.calc(g1, g0, None))

    def _dis(self) -> cv2.DISOpticalFlow:
        """A DIS flow estimator with the profile's preset and overrides."""
        dis = cv2.DISOpticalFlow_create(PRESETS[self.config.preset])
        if self.config.finest_scale is not None:
            dis.setFinestScale(self.config.finest_scale)
        if self.config.patch_stride is not None:
            dis.setPatchStride(self.config.patch_stride)
        if self.config.variational_iters is not None:
            dis.setVariationalRefinementIterations(self.config.variational_iters)
        return dis

    def _run_chain(self, chain: _Chain, start: int, stops: list[int], forward: bool,
                   cancel: CancelToken | None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Coordinate map into the reference (working size) and confidence for each stop position.

        One 5-channel remap per step moves the opposite flow (for the forward-backward check), the
        coordinates and the confidence together: a third of the memory traffic of three remaps.
        """
        h, w = chain.grays[0].shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        buf = np.empty((h, w, 5), np.float32)
        buf[..., 2], buf[..., 3], buf[..., 4] = xs, ys, 1.0
        alpha, beta = self.config.fb_alpha, self.config.fb_beta
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        want = set(stops)
        p = start
        last = max(want) if forward else min(want)
        while (p < last) if forward else (p > last):
            check_cancel(cancel)
            if forward:
                back, fwd = chain.bwd[p], chain.fwd[p]
                p += 1
            else:
                back, fwd = chain.fwd[p - 1], chain.bwd[p - 1]
                p -= 1
            bx, by = cv2.split(back)
            mx, my = xs + bx, ys + by
            buf[..., :2] = fwd
            res = cv2.remap(buf, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            fx, fy, cx, cy, c = cv2.split(res)
            # forward-backward consistency; the tolerance grows with the motion (Sundaram et al. 2010)
            fx += bx
            fy += by
            err = fx * fx
            err += fy * fy
            fx -= bx
            fy -= by
            tol = bx * bx
            tol += by * by
            tol += fx * fx
            tol += fy * fy
            tol *= alpha
            tol += beta
            err /= tol
            np.negative(err, out=err)
            s = cv2.exp(err)
            s *= (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)  # left the frame
            c *= s
            buf = cv2.merge([fx, fy, cx, cy, c])
            if p in want:
                out[p] = (cv2.merge([cx, cy]), c.copy())
        return out

    @staticmethod
    def _sample(ref: Reference, coords: np.ndarray, conf: np.ndarray, shape: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference label at the chain's coordinates, on a ``shape`` grid; confidence x reference trust.

        ``coords`` are in flow-working pixels; they are rescaled to the reference's full size, so the
        reference label is read at its own resolution whatever the output grid is. Also returns the
        coordinates on the ``shape`` grid in ``shape``-grid pixels (the shape guard's motion fit).
        """
        H, W = shape
        h, w = coords.shape[:2]
        RH, RW = ref.label.shape
        if (h, w) != (H, W):
            coords = cv2.resize(coords, (W, H), interpolation=cv2.INTER_LINEAR)
            conf = cv2.resize(conf, (W, H), interpolation=cv2.INTER_LINEAR)
            grid = _rescaled(coords, (w, h), (W, H))
        else:
            grid = coords
        if (h, w) != (RH, RW):
            coords = _rescaled(coords, (w, h), (RW, RH))  # a new array: the caller's stays as it is
        lab = cv2.remap(np.asarray(ref.label, np.uint16), coords[..., 0], coords[..., 1], cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_REPLICATE)
        return lab, _trusted(ref, lab, conf), grid

    def _propagate_gap(self, frames: FrameSource, left: Reference | None, right: Reference | None,
                       targets: list[int], cancel: CancelToken | None, tick: Callable[[int], None] | None = None
                       ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, list[GuardEvent]]]:
        a = left.index if left is not None else min(targets)
        b = right.index if right is not None else max(targets)
        shape = (left or right).label.shape  # type: ignore[union-attr]
        size = self._working_size(*shape)
        lshape = self._label_size(*shape)
        small = lshape != shape
        chain = self._read_chain(frames, a, b, size, cancel)
        self._flows(chain, cancel)
        pos = [chain.positions[t] for t in targets]
        n = len(chain.grays) - 1

        # frames are read here, in the calling thread (a FrameSource need not be thread-safe), each once
        ref_full = {r.index: frames.read_frame(r.index) for r in (left, right) if r is not None}

        def image(rgb: np.ndarray) -> np.ndarray:
            return _shrink(rgb, lshape[::-1]) if small else rgb

        ref_img = {i: image(rgb) for i, rgb in ref_full.items()}  # at the label grid

        guard = self.config.guard_config()
        ref_small = {r.index: _resize_label(r.label, lshape) for r in (left, right) if r is not None}

        ref_imgs = ({i: self._blurred(rgb) for i, rgb in ref_img.items()}
                    if self.config.photo_sigma > 0 else {})

        thin_maps: dict[int, np.ndarray] = {}  # reference -> its thin parts, widened by a flow-grid cell
        if small and self.config.thin_tiles:
            factor = max(shape[0] / lshape[0], shape[1] / lshape[1])
            for r in (left, right):
                m = thin_mask(r.label, factor) if r is not None else None
                if m is not None:  # widened by a flow-grid cell, so a nearest look-up on that grid finds it
                    k = int(np.ceil(max(shape[0] / size[1], shape[1] / size[0]))) if size else 1
                    thin_maps[r.index] = cv2.dilate(m.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        full_refs = ({i: self._blurred(rgb) for i, rgb in ref_full.items()}
                     if thin_maps and self.config.photo_sigma > 0 else {})

        def finish(p: int, t: int, img: np.ndarray | None, full: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, list[GuardEvent]]:
            check_cancel(cancel)
            cands = []
            evidence: list[ChainEvidence] = []
            for ref, res, name, wt in ((left, fw, "forward", (n - p) / n), (right, bw, "backward", p / n)):
                if ref is None:
                    continue
                wt = wt if left is not None and right is not None else 1.0
                lab, c, grid = self._sample(ref, *res[p], lshape)
                if self.config.photo_sigma > 0 and img is not None:
                    c = c * self._photo_consistency(img, ref_imgs[ref.index], grid)
                if self.config.motion_prior > 0:
                    lab, c = self._motion_prior(ref_small[ref.index], lab, c, grid)
                cands.append((lab, c, wt))
                if self.config.jump:
                    jc, jconf = self._jump(chain.grays[chain.positions[t]], chain.grays[chain.positions[ref.index]])
                    jl, jconf, _ = self._sample(ref, jc, jconf, lshape)
                    if self.config.jump_vote:
                        cands.append((jl, jconf, wt))
                    else:  # the direct transfer only where it is surer than the chain
                        take = jconf > c
                        cands[-1] = (np.where(take, jl, lab), np.where(take, jconf, c), wt)
                evidence.append(ChainEvidence(name, ref.index, ref_small[ref.index], lab, c, grid, wt))
            lab, c = self._fuse(cands)
            fused = lab
            if img is not None:
                lab = self._refine(img, lab, c, cands, colours)
                if self.config.graphcut > 0:
                    lab = self._graphcut(img, lab, c, cands)
            lab, c, events = guard_frame(t, lab, c, evidence, guard)
            if small:
                sy, sx = shape[0] / lshape[0], shape[1] / lshape[1]
                events = [e.scaled(sy, sx) for e in events]
                lab = self._detail(lab, fused, chains_at(p), shape) if self.config.detail else _resize_label(lab, shape)
                if thin_maps and full is not None and not events:  # never undo a shape-guard repair
                    lab = self._thin_tiles(lab, full, chains_at(p), thin_maps, full_refs, colours)
                c = cv2.resize(c, shape[::-1], interpolation=cv2.INTER_LINEAR)
            return lab, c, events

        def chains_at(p: int) -> list[tuple[Reference, tuple[np.ndarray, np.ndarray], float]]:
            out = []
            if left is not None:
                out.append((left, fw[p], (n - p) / n if right is not None else 1.0))
            if right is not None:
                out.append((right, bw[p], p / n if left is not None else 1.0))
            return out


        labels: dict[int, np.ndarray] = {}
        confs: dict[int, np.ndarray] = {}
        events: dict[int, list[GuardEvent]] = {}
        # the two chains, then the targets, run in parallel: OpenCV and most numpy work release the
        # GIL, and the per-target work (sampling, fusion, refinement) is mostly single-threaded
        with ThreadPoolExecutor(max(1, self.config.threads)) as pool:
            fw_job = pool.submit(self._run_chain, chain, chain.positions[a], pos, True, cancel) if left is not None else None
            bw_job = pool.submit(self._run_chain, chain, chain.positions[b], pos, False, cancel) if right is not None else None
            colours = None
            if self.config.refine and self.config.colour_weight > 0:
                colours = ColourModel([(ref_img[r.index], _resize_label(r.label, lshape))
                                       for r in (left, right) if r is not None])
            want_img = self.config.refine or self.config.photo_sigma > 0
            fulls = [frames.read_frame(t) if want_img or thin_maps else None for t in targets]
            imgs = [image(rgb) if want_img else None for rgb in fulls]
            if not thin_maps:
                fulls = [None] * len(targets)  # only the thin-part tiles need full-size frames
            fw = fw_job.result() if fw_job else {}
            bw = bw_job.result() if bw_job else {}
            jobs = [pool.submit(finish, p, t, img, full)
                    for p, t, img, full in zip(pos, targets, imgs, fulls, strict=True)]
            for t, job in zip(targets, jobs, strict=True):
                labels[t], confs[t], ev = job.result()
                if ev:
                    events[t] = ev
                if tick:
                    tick(len(labels))
        return labels, confs, events

    def _blurred(self, rgb: np.ndarray) -> np.ndarray:
        """The image the photometric check compares (box-blurred: tolerates sub-pixel misalignment)."""
        r = self.config.photo_blur
        return cv2.blur(rgb, (2 * r + 1, 2 * r + 1)) if r > 0 else rgb

    def _photo_consistency(self, img: np.ndarray, ref_img: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """exp(-d^2 / 2 sigma^2) per pixel, d = mean absolute colour difference between the target and the
        reference sampled at the chain's coordinates (flow that bled across an object boundary maps a
        pixel onto the wrong surface, whose colour differs)."""
        warped = cv2.remap(ref_img, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(warped, self._blurred(img))
        d = cv2.transform(diff, np.full((1, 3), 1 / 3, np.float32)).astype(np.float32)
        return cv2.exp(cv2.multiply(d, d, scale=-0.5 / self.config.photo_sigma ** 2))

    def _thin_tiles(self, up: np.ndarray, rgb: np.ndarray,
                    chains: list[tuple[Reference, tuple[np.ndarray, np.ndarray], float]],
                    thin_maps: dict[int, np.ndarray], full_refs: dict[int, np.ndarray],
                    colours: ColourModel | None) -> np.ndarray:
        """Redo sampling, fusion and refinement at full size in the tiles where a reference's thin parts
        land (found on the flow grid with the thin masks widened by a grid cell); elsewhere the
        upsampled reduced-grid labels stay."""
        H, W = up.shape
        h, w = chains[0][1][0].shape[:2]
        hit = np.zeros((h, w), bool)
        for ref, (coords, _), _ in chains:
            widened = thin_maps.get(ref.index)
            if widened is None:
                continue
            rxy = _rescaled(coords, (w, h), widened.shape[::-1])
            hit |= cv2.remap(widened, rxy[..., 0], rxy[..., 1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
        ys, xs = np.nonzero(hit)
        if not len(ys):
            return up
        T = TILE
        m = 2 * self.config.refine_radius
        tiles, counts = np.unique(((ys + 0.5) * (H / h)).astype(np.int64) // T * 1_000_000
                                  + ((xs + 0.5) * (W / w)).astype(np.int64) // T, return_counts=True)
        cap = max(8, int(np.ceil(THIN_TILE_SHARE * (-(-H // T)) * (-(-W // T)))))
        if len(tiles) > cap:  # bound the cost on frames full of thin parts: the most-hit tiles first
            tiles = np.sort(tiles[np.argsort(-counts, kind="stable")[:cap]])
        out = up
        runs: list[tuple[int, int, int]] = []  # (tile row, first tile column, last tile column)
        for ty, tx in zip((tiles // 1_000_000).tolist(), (tiles % 1_000_000).tolist(), strict=True):
            if runs and runs[-1][0] == ty and runs[-1][2] == tx - 1:
                runs[-1] = (ty, runs[-1][1], tx)
            else:
                runs.append((ty, tx, tx))
        for ty, tx0, tx1 in runs:  # neighbouring tiles of a row in one go: fewer, larger numpy calls
            y0, x0, y1, x1 = ty * T, tx0 * T, min(H, ty * T + T), min(W, tx1 * T + T)
            Y0, X0, Y1, X1 = max(0, y0 - m), max(0, x0 - m), min(H, y1 + m), min(W, x1 + m)
            ys, xs = np.mgrid[Y0:Y1, X0:X1].astype(np.float32)
            mx, my = (xs + 0.5) * (w / W) - 0.5, (ys + 0.5) * (h / H) - 0.5
            crop = np.ascontiguousarray(rgb[Y0:Y1, X0:X1])
            cands = []
            for ref, (coords, conf), wt in chains:
                cxy = cv2.remap(coords, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                cf = cv2.remap(conf, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                cxy = _rescaled(cxy, (w, h), ref.label.shape[::-1])
                lab = cv2.remap(np.asarray(ref.label, np.uint16), cxy[..., 0], cxy[..., 1], cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_REPLICATE)
                cf = _trusted(ref, lab, cf)
                if ref.index in full_refs:
                    cf = cf * self._photo_consistency(crop, full_refs[ref.index], cxy)
                cands.append((lab, cf, wt))
            lab, conf = self._fuse(cands)
            if self.config.refine:
                lab = self._refine(crop, lab, conf, cands, colours)
            out[y0:y1, x0:x1] = lab[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]
        return out

    def _detail(self, lab: np.ndarray, fused: np.ndarray,
                chains: list[tuple[Reference, tuple[np.ndarray, np.ndarray], float]], shape: tuple[int, int]
                ) -> np.ndarray:
        """Full-size labels from a reduced label grid without losing thin structures.

        Nearest upsampling of the reduced grid loses what is thinner than a grid cell (kite lines:
        J 0.64 at most at a 480 px grid on DAVIS kite-surf, even from the ground truth). Where
        refinement and guard left the fused label alone, the chains are re-sampled and fused at
        full size instead; elsewhere the reduced grid's decision is upsampled.
        """
        cands = [(*self._sample(ref, *res, shape)[:2], wt) for ref, res, wt in chains]
        full, _ = self._fuse(cands)
        up = _resize_label(lab, shape)
        kept = up == _resize_label(fused, shape)
        return np.where(kept, full, up).astype(lab.dtype)

    def _jump(self, g_t: np.ndarray, g_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Direct flow target -> reference: coordinate map and forward-backward confidence."""
        dis = self._dis()
        f_tr = dis.calc(g_t, g_r, None)
        f_rt = dis.calc(g_r, g_t, None)
        h, w = g_t.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = xs + f_tr[..., 0], ys + f_tr[..., 1]
        back = cv2.remap(f_rt, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = ((f_tr + back) ** 2).sum(axis=2)
        tol = self.config.fb_alpha * ((f_tr ** 2).sum(axis=2) + (back ** 2).sum(axis=2)) + self.config.fb_beta
        conf = np.exp(-err / tol) * ((mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5))
        return np.dstack([mx, my]).astype(np.float32), conf.astype(np.float32)

    def _graphcut(self, rgb: np.ndarray, lab: np.ndarray, conf: np.ndarray,
                  cands: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
        """GrabCut (colour GMMs + graph cut) per thing-sized track, on a crop around it: confident
        pixels are fixed, unsure ones are decided by the object's and its surroundings' colours.
        Pixels a track loses take the best other label the chains offer there (else they stay)."""
        H, W = lab.shape
        sure = conf >= self.config.graphcut_sure
        ids, areas = np.unique(lab, return_counts=True)
        out = lab.copy()
        for k, a in zip(ids.tolist(), areas.tolist(), strict=True):
            mk = lab == k
            if a < 64 or a > 0.3 * H * W or np.count_nonzero(mk & ~sure) < 0.05 * a:
                continue
            ys, xs = np.nonzero(mk)
            m = int(0.15 * max(np.ptp(ys), np.ptp(xs))) + 8
            y0, y1, x0, x1 = max(0, ys.min() - m), min(H, ys.max() + m + 1), max(0, xs.min() - m), min(W, xs.max() + m + 1)
            sub_k, sub_s = mk[y0:y1, x0:x1], sure[y0:y1, x0:x1]
            gc = np.where(sub_k, np.where(sub_s, cv2.GC_FGD, cv2.GC_PR_FGD),
                          np.where(sub_s, cv2.GC_BGD, cv2.GC_PR_BGD)).astype(np.uint8)
            if not (gc == cv2.GC_FGD).any() and not (gc == cv2.GC_PR_FGD).any():
                continue
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            try:
                cv2.grabCut(np.ascontiguousarray(rgb[y0:y1, x0:x1]), gc, None, bgd, fgd, self.config.graphcut,
                            cv2.GC_INIT_WITH_MASK)
            except cv2.error:
                continue  # e.g. no background sample in the crop: leave the track as it is
            fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
            win = out[y0:y1, x0:x1]
            win[fg & ~sub_k] = k
            lose = sub_k & ~fg
            if lose.any():
                best = np.full(lose.shape, k, lab.dtype)
                score = np.full(lose.shape, -1.0, np.float32)
                for cl, cc, w in cands:
                    c_sub, l_sub = cc[y0:y1, x0:x1] * w, cl[y0:y1, x0:x1]
                    take = (l_sub != k) & (c_sub > score)
                    best[take], score[take] = l_sub[take], c_sub[take]
                win[lose] = best[lose]
        return out

    def _motion_prior(self, ref_label: np.ndarray, lab: np.ndarray, conf: np.ndarray, grid: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Unsure chain pixels take the label of the reference warped by each track's robust motion
        (tracks painted largest first, so small things end on top of the stuff around them)."""
        ids, areas = np.unique(ref_label, return_counts=True)
        fits = fit_motions(grid, conf, lab, ids, self.config.guard_model)
        if not fits:
            return lab, conf
        warped = np.zeros_like(lab)
        wconf = np.zeros(lab.shape, np.float32)
        for k in ids[np.argsort(-areas)]:
            m = fits.get(int(k))
            if m is None or m.support < 0.5:
                continue
            w = warp_mask(ref_label == k, m, lab.shape)
            warped[w] = k
            wconf[w] = self.config.motion_prior * m.support
        take = (conf < self.config.colour_below) & (wconf > conf)
        return np.where(take, warped, lab), np.where(take, wconf, conf).astype(np.float32)

    def _fuse(self, cands: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel choice between chains by temporal weight x confidence.

        Output confidence: where the chains agree, the probability that at least one is right, but
        at least ``agree_floor`` (two independent chains landing on the same track is evidence even
        where textureless regions make each flow step look inconsistent: on the demo this doubled
        the precision of the review flags at equal recall); where they disagree, the winner's
        margin scaled by its own confidence.
        """
        if len(cands) == 1:
            lab, c, _ = cands[0]
            return lab, c
        if len(cands) > 2:
            return self._fuse_many(cands)
        (lf, cf, wf), (lb, cb, wb) = cands
        sf, sb = cf * wf, cb * wb
        take_f = sf >= sb
        lab = np.where(take_f, lf, lb)
        agree = lf == lb
        win_s, lose_s = np.maximum(sf, sb), np.minimum(sf, sb)
        win_c = np.where(take_f, cf, cb)
        margin = (win_s - lose_s) / (win_s + lose_s + 1e-6)
        both = np.maximum(1 - (1 - cf) * (1 - cb), self.config.agree_floor)
        conf = np.where(agree, both, margin * win_c)
        return lab, conf.astype(np.float32)

    def _fuse_many(self, cands: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Fusion of more than two candidates: the label with the largest summed weight x confidence;
        confidence = its share of the total, at least ``agree_floor`` where all candidates agree."""
        scores = [c * w for _, c, w in cands]
        total = np.sum(scores, axis=0) + 1e-6
        best_lab, best_s = cands[0][0], np.full(total.shape, -1.0, np.float32)
        for lab_i, _, _ in cands:
            s_i = np.zeros(total.shape, np.float32)
            for (lab_j, _, _), s in zip(cands, scores, strict=True):
                s_i += np.where(lab_j == lab_i, s, 0)
            take = s_i > best_s
            best_lab, best_s = np.where(take, lab_i, best_lab), np.where(take, s_i, best_s)
        agree = np.logical_and.reduce([lab_j == cands[0][0] for lab_j, _, _ in cands[1:]])
        cmax = np.maximum.reduce([c for _, c, _ in cands])
        conf = np.where(agree, np.maximum(cmax, self.config.agree_floor), best_s / total * cmax)
        return best_lab, conf.astype(np.float32)

    def _refine(self, rgb: np.ndarray, lab: np.ndarray, conf: np.ndarray,
                cands: list[tuple[np.ndarray, np.ndarray, float]], colours: ColourModel | None = None
                ) -> np.ndarray:
        """Snap boundaries to image edges and settle unreliable pixels from their neighbours.

        Per-track scores (sum over chains of temporal weight x confidence) are smoothed with a
        guided filter steered by the target image, then the best track wins. Only pixels near an
        unsure label boundary (fused confidence < ``edge_below``), where the chains disagree, or
        where both chains lost the pixel (then the colour model votes) can change. Tile by tile,
        skipping tiles without such pixels and filtering only the tracks present in each tile, so
        the cost follows the boundary length, not the frame size times the number of tracks.
        """
        r = self.config.refine_radius
        k3 = np.ones((3, 3), np.uint8)
        unsure = np.zeros(lab.shape, np.uint8)
        for cl, _, _ in cands:
            c16 = cl.astype(np.uint16)
            unsure |= (cv2.dilate(c16, k3) != cv2.erode(c16, k3)).astype(np.uint8)
        if self.config.edge_below <= 1:
            unsure &= (conf < self.config.edge_below).astype(np.uint8)  # trusted edges stay as they are
        for cl, _, _ in cands[1:]:
            unsure |= (cands[0][0] != cl).astype(np.uint8)
        cmax = np.maximum.reduce([cc for _, cc, _ in cands])
        if colours is not None:
            unsure |= (cmax < self.config.colour_below).astype(np.uint8)
            qimg = colours.quantise(rgb)
        band = cv2.dilate(unsure, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        if not band.any():
            return lab
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
        weights = [(cl, w * (cc + self.config.refine_floor)) for cl, cc, w in cands]
        H, W = lab.shape
        T, m = TILE, 2 * r
        out = lab.copy()
        # tiles with band pixels, found on a coarse grid (no per-pixel Python work); one pass over
        # the whole frame was measured slower even with few tracks (the colour model's gathers)
        th, tw = -(-H // T), -(-W // T)
        padded = np.zeros((th * T, tw * T), np.uint8)
        padded[:H, :W] = band
        busy = padded.reshape(th, T, tw, T).max(axis=(1, 3))
        regions = [(ty * T, tx * T, min(H, ty * T + T), min(W, tx * T + T))
                   for ty, tx in zip(*np.nonzero(busy), strict=True)]
        for y0, x0, y1, x1 in regions:
            Y0, X0, Y1, X1 = max(0, y0 - m), max(0, x0 - m), min(H, y1 + m), min(W, x1 + m)
            ids = np.unique(np.concatenate([cl[Y0:Y1, X0:X1].ravel() for cl, _ in weights]))
            if len(ids) < 2:
                continue
            scores = np.zeros((Y1 - Y0, X1 - X0, len(ids)), np.float32)
            near = np.zeros_like(scores)
            for cl, wc in weights:
                onehot = (cl[Y0:Y1, X0:X1, None] == ids).astype(np.float32)
                scores += onehot * wc[Y0:Y1, X0:X1, None]
                near += onehot
            doubt = None
            if colours is not None:
                doubt = np.clip(1 - cmax[Y0:Y1, X0:X1] / self.config.colour_below, 0, 1)
            if doubt is not None and doubt.any():  # colour only where both chains are unsure
                # colour only arbitrates between tracks the chains put near the pixel
                near = _box_channels(near, m)
                post = colours.posterior(qimg[Y0:Y1, X0:X1], ids, near)
                scores += post * (self.config.colour_weight * doubt)[..., None]
            scores = guided_filter(gray[Y0:Y1, X0:X1], scores, r, self.config.refine_eps)
            best = ids[np.argmax(scores[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0], axis=2)].astype(lab.dtype)
            sub = band[y0:y1, x0:x1] > 0
            out[y0:y1, x0:x1][sub] = best[sub]
        return out
