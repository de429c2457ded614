"""The global stage of a gap: every unsure pixel of all frames between two references labelled at once.

A flow chain decides each target from the step before, so an error made where the flow breaks is
carried to every later frame. Here the frames of one gap (the references at both ends, the
targets between them) form one Potts energy, minimised by alpha-expansion
(``propagation.global_graph_cut``):

* **unary** per pixel and track: the flow chains' votes (temporal weight x confidence, as the
  fusion uses them), mixed, where the chains are unsure, with the posterior of a bilateral grid
  over (t, y, x, colour) (``propagation.global_bilateral``) into which the references (all their
  pixels) and the confident target pixels are splatted: Maerki et al.'s bilateral-space
  appearance model, both ends of the gap at once;
* **pairwise**: 4-neighbours within a frame and flow-linked pixels of consecutive frames (DIS
  between the gap's frames at the label grid, with a forward-backward check), each weighted by
  colour similarity (contrast-sensitive Potts, as in GrabCut);
* **hard constraints**: reference pixels and confident target pixels are fixed; their edges to
  solved pixels become unary terms. Only a band around the unsure pixels is solved, so the cost
  follows the unsure area, not the gap's size, and the memory is bounded per gap.

The result keeps one owner per pixel (a label map per frame, ids of the references only). Its
confidence is the input confidence where the label stayed, and the mixed posterior of the new
label where it changed (lower than the flow's where the solve overruled it: the review estimate
reads it as such). Figures: ``docs/propagation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from propagation.global_bilateral import BilateralGrid, GridSpec
from propagation.global_graph_cut import alpha_expansion


@dataclass(frozen=True)
class GlobalConfig:
    """Tunables of the global stage (chosen on the ten DAVIS sequences and the demo at once)."""

    unsure_below: float = 0.6  # target pixels below this fused confidence are solved (with a band)
    band: int = 3  # dilation (label-grid px) of the unsure pixels: the solved region
    spatial: float = 1.0  # weight of a 4-neighbour edge of equal colour
    temporal: float = 0.5  # weight of a flow link of equal colour
    appearance: float = 0.5  # share of the bilateral posterior where the chains have confidence 0
    splat_above: float = 0.6  # target pixels at or above this confidence join the appearance model
    blur_passes: int = 1
    evidence: float = 4.0  # grid mass at which the appearance posterior is fully trusted
    floor: float = 0.05  # vote a zero-confidence chain still gets (its temporal prior)
    keep: float = 0.5  # share of the frame's current (refined) label in the flow vote
    rounds: int = 2  # alpha-expansion passes
    grid: GridSpec = field(default_factory=GridSpec)


@dataclass
class GapFrame:
    """One frame of a gap at the label grid, in time order.

    ``image`` HxWx3 uint8 RGB; ``label`` HxW uint16 (a reference's labels, or a target's current
    labels); ``conf`` HxW float32 in [0, 1] (1 on references); ``cands`` the chains' (label,
    confidence, temporal weight) on a target, empty on a reference; ``fixed``: a reference.
    """

    image: np.ndarray
    label: np.ndarray
    conf: np.ndarray
    cands: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)
    fixed: bool = False


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)


def _links(g0: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flow links frame 0 -> frame 1: (source pixel, target pixel, forward-backward reliability)."""
    dis = _dis()
    f01 = dis.calc(g0, g1, None)
    f10 = dis.calc(g1, g0, None)
    h, w = g0.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = xs + f01[..., 0], ys + f01[..., 1]
    back = cv2.remap(f10, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = ((f01 + back) ** 2).sum(axis=2)
    tol = 0.01 * ((f01 ** 2).sum(axis=2) + (back ** 2).sum(axis=2)) + 0.5
    rel = np.exp(-err / tol).ravel()
    qx, qy = np.rint(mx).astype(np.int64).ravel(), np.rint(my).astype(np.int64).ravel()
    inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h) & (rel > 0.05)
    src = np.nonzero(inside)[0]
    return src, qy[inside] * w + qx[inside], rel[inside].astype(np.float32)


def solve_gap(frames: list[GapFrame], config: GlobalConfig | None = None
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Label the non-fixed frames of a gap jointly.

    Args:
        frames: the gap in time order (``GapFrame``), all of one HxW; references ``fixed``.
        config: ``GlobalConfig`` (default: its defaults).

    Returns:
        One ``(label HxW uint16, confidence HxW float32)`` per non-fixed frame, in order. Labels
        are ids found in the frames' labels or candidates.
    """
    cfg = config or GlobalConfig()
    if not frames:
        return []
    h, w = frames[0].label.shape
    npx = h * w
    ids = np.unique(np.concatenate([f.label.ravel() for f in frames]
                                   + [c[0].ravel() for f in frames for c in f.cands]))
    k = len(ids)
    out_idx = [i for i, f in enumerate(frames) if not f.fixed]
    if k < 2 or not out_idx:
        return [(frames[i].label.copy(), frames[i].conf.copy()) for i in out_idx]

    def lab_idx(lab: np.ndarray) -> np.ndarray:
        return np.searchsorted(ids, lab.ravel()).astype(np.int64)

    cur = [lab_idx(f.label) for f in frames]  # current labels as 0..k-1, flat
    conf = [f.conf.ravel().astype(np.float32) for f in frames]

    # the solved pixels: a band around unsure target pixels
    solve = []
    for f, c in zip(frames, conf, strict=True):
        if f.fixed:
            solve.append(np.zeros(npx, bool))
            continue
        unsure = (c < cfg.unsure_below).reshape(h, w).astype(np.uint8)
        if cfg.band > 0:
            unsure = cv2.dilate(unsure, np.ones((2 * cfg.band + 1, 2 * cfg.band + 1), np.uint8))
        solve.append(unsure.ravel() > 0)
    if not any(s.any() for s in solve):
        return [(frames[i].label.copy(), frames[i].conf.copy()) for i in out_idx]

    # appearance: references and confident target pixels splatted into one bilateral grid
    grid = BilateralGrid(len(frames), (h, w), k, cfg.grid)
    cells = [grid.cells(t, f.image) for t, f in enumerate(frames)]
    for t, f in enumerate(frames):
        wt = np.ones(npx, np.float32) if f.fixed else np.where(conf[t] >= cfg.splat_above, conf[t], 0)
        grid.splat(cells[t], cur[t], wt.astype(np.float32))
    grid.blur(cfg.blur_passes)

    offsets = np.cumsum([0] + [npx] * len(frames))
    node_of = np.full(offsets[-1], -1, np.int64)
    flat_solve = np.concatenate(solve)
    n_nodes = int(flat_solve.sum())
    node_of[flat_solve] = np.arange(n_nodes)
    labels_all = np.concatenate(cur)
    unary = np.zeros((n_nodes, k), np.float64)
    mix_post = np.zeros((n_nodes, k), np.float32)

    for t, f in enumerate(frames):
        if not solve[t].any():
            continue
        sel = np.nonzero(solve[t])[0]
        votes = np.zeros((len(sel), k), np.float32)
        cmax = np.zeros(len(sel), np.float32)
        for cl, cc, wt in f.cands:
            li, cv = lab_idx(cl)[sel], cc.ravel()[sel]
            np.add.at(votes, (np.arange(len(sel)), li), wt * (cv + cfg.floor))
            cmax = np.maximum(cmax, cv)
        if not f.cands:  # no chains given: the current label is the vote
            votes[np.arange(len(sel)), cur[t][sel]] = 1.0
        votes /= votes.sum(axis=1, keepdims=True) + 1e-9
        votes *= 1 - cfg.keep
        votes[np.arange(len(sel)), cur[t][sel]] += cfg.keep
        post, mass = grid.slice(cells[t][sel])
        beta = cfg.appearance * (1 - np.clip(conf[t][sel], 0, 1)) * (mass / (mass + cfg.evidence))
        p = (1 - beta)[:, None] * votes + beta[:, None] * post
        rows = node_of[offsets[t] + sel]
        mix_post[rows] = p
        unary[rows] = -np.log(p + 1e-4)

    # pairwise terms: spatial 4-neighbours and flow links, contrast-sensitive
    imgs = [f.image.reshape(-1, 3).astype(np.float32) for f in frames]
    pairs_p, pairs_q, pairs_w = [], [], []
    idx = np.arange(npx).reshape(h, w)
    sq = []
    spatial = []
    for t in range(len(frames)):
        for a, b in ((idx[:, :-1].ravel(), idx[:, 1:].ravel()), (idx[:-1, :].ravel(), idx[1:, :].ravel())):
            keep = solve[t][a] | solve[t][b]
            a, b = a[keep], b[keep]
            d2 = ((imgs[t][a] - imgs[t][b]) ** 2).sum(axis=1)
            sq.append(d2)
            spatial.append((offsets[t] + a, offsets[t] + b, d2, cfg.spatial))
    grays = [cv2.cvtColor(np.ascontiguousarray(f.image), cv2.COLOR_RGB2GRAY) for f in frames]
    for t in range(len(frames) - 1):
        if not (solve[t].any() or solve[t + 1].any()):
            continue
        a, b, rel = _links(grays[t], grays[t + 1])
        keep = solve[t][a] | solve[t + 1][b]
        a, b, rel = a[keep], b[keep], rel[keep]
        d2 = ((imgs[t][a] - imgs[t + 1][b]) ** 2).sum(axis=1)
        spatial.append((offsets[t] + a, offsets[t + 1] + b, d2, cfg.temporal * rel))
    allsq = np.concatenate(sq) if sq else np.zeros(1)
    beta_c = 1.0 / (2 * max(float(allsq.mean()), 1e-6))
    for a, b, d2, lam in spatial:
        pairs_p.append(a)
        pairs_q.append(b)
        pairs_w.append(lam * np.exp(-beta_c * d2))
    gp, gq, gw = np.concatenate(pairs_p), np.concatenate(pairs_q), np.concatenate(pairs_w)
    np_, nq = node_of[gp], node_of[gq]
    both = (np_ >= 0) & (nq >= 0)
    # an edge to a fixed pixel is a unary term: cost w for every label but the fixed one
    for node, other in ((np_, gq), (nq, gp)):
        one = (node >= 0) & ~both
        rows, lab_o, ww = node[one], labels_all[other[one]], gw[one]
        np.add.at(unary, rows, ww[:, None])
        np.add.at(unary, (rows, lab_o), -ww)
    edges = np.stack([np_[both], nq[both]], axis=1)
    init = labels_all[flat_solve]
    sol = alpha_expansion(unary, edges, gw[both], init=init, rounds=cfg.rounds)

    results = []
    for t in out_idx:
        lab = cur[t].copy()
        c = conf[t].copy()
        sel = np.nonzero(solve[t])[0]
        if len(sel):
            rows = node_of[offsets[t] + sel]
            new = sol[rows]
            changed = new != lab[sel]
            lab[sel] = new
            c_sel = c[sel]
            c_sel[changed] = np.minimum(c_sel[changed], mix_post[rows[changed], new[changed]])
            c[sel] = c_sel
        results.append((ids[lab].reshape(h, w).astype(np.uint16), c.reshape(h, w)))
    return results
