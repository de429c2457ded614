"""The flow chain of the flow propagator: frames read at working size, DIS flows between neighbours,
and per-reference coordinate maps composed along the chain with their forward-backward confidence.

Labels are never warped step by step (nearest-neighbour warping drifts: 0.3 px per frame rounds to 0
at every step); each chain composes a coordinate map (where every pixel of a target came from in the
reference) by bilinear sampling, and the reference label is sampled once, at its own resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from annotator.jobs import CancelToken, check_cancel
from propagation.base import FrameSource, Reference
from propagation.flow_config import PRESETS, UNTRUSTED_REFERENCE_WEIGHT, FlowConfig


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



class FlowChainMixin:
    """The chain half of ``FlowPropagator``: sizes, frame reading, DIS flows, coordinate maps and the
    sampling of a reference label through them. Needs ``self.config`` (a ``FlowConfig``)."""

    config: FlowConfig

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
