"""Fusion and refinement of the flow propagator: the per-pixel choice between chains, edge-aware
boundary refinement (guided filter + per-track colour model), the photometric check, thin-part tiles
redone at full size, and the optional GrabCut / motion-prior / detail steps (off unless a profile sets
them; their figures are in ``docs/propagation.md``).
"""

from __future__ import annotations

import cv2
import numpy as np

from propagation.base import Reference
from propagation.flow_chain import _rescaled, _resize_label, _trusted
from propagation.flow_config import THIN_TILE_SHARE, TILE, FlowConfig
from propagation.motion_model import fit_motions, warp_mask


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



class FusionMixin:
    """The fusion/refinement half of ``FlowPropagator``. Needs ``self.config`` (a ``FlowConfig``) and
    ``self._sample`` (``FlowChainMixin``)."""

    config: FlowConfig

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

        Nearest upsampling of the reduced grid loses what is thinner than a grid cell (kite lines;
        figures in ``docs/propagation.md``). Where
        refinement and guard left the fused label alone, the chains are re-sampled and fused at
        full size instead; elsewhere the reduced grid's decision is upsampled.
        """
        cands = [(*self._sample(ref, *res, shape)[:2], wt) for ref, res, wt in chains]
        full, _ = self._fuse(cands)
        up = _resize_label(lab, shape)
        kept = up == _resize_label(fused, shape)
        return np.where(kept, full, up).astype(lab.dtype)

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
