"""Multi-label Potts energy minimisation on an arbitrary graph by alpha-expansion (PyMaxflow).

The global gap propagator (``propagation.global_gap``) labels every unsure pixel of a gap at once:
nodes are pixels of several frames, edges link spatial neighbours and flow-linked pixels of
consecutive frames. The energy is

    E(l) = sum_p U[p, l_p] + sum_(p,q) w_pq [l_p != l_q]

(Potts, so every expansion move is submodular and solved exactly by one min cut; Boykov, Veksler
and Zabih 2001). Each move is built with vectorised numpy and PyMaxflow's array calls: no Python
loop over pixels or edges.
"""

from __future__ import annotations

import maxflow
import numpy as np


def potts_energy(unary: np.ndarray, edges: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    """E(labels) of the Potts energy above (for tests and for checking that a move never raises it)."""
    n = np.arange(len(labels))
    cut = labels[edges[:, 0]] != labels[edges[:, 1]] if len(edges) else np.zeros(0, bool)
    return float(unary[n, labels].sum() + weights[cut].sum())


def _expand(unary: np.ndarray, edges: np.ndarray, weights: np.ndarray, labels: np.ndarray,
            alpha: int) -> np.ndarray:
    """One alpha-expansion move: every node keeps its label or switches to ``alpha``; the exact best
    move by a min cut (x_p = 1: take alpha)."""
    n = len(labels)
    e0 = unary[np.arange(n), labels].astype(np.float64)  # cost of keeping
    e1 = unary[:, alpha].astype(np.float64)  # cost of switching
    src = e1.copy()  # paid when x_p = 1 (node on the sink side: its source edge is cut)
    snk = e0.copy()  # paid when x_p = 0
    pair = np.zeros(0)
    if len(edges):
        p, q = edges[:, 0], edges[:, 1]
        lp, lq = labels[p], labels[q]
        w = weights.astype(np.float64)
        a = w * (lp != lq)  # E(0, 0)
        b = w * (lp != alpha)  # E(0, 1)
        c = w * (alpha != lq)  # E(1, 0)
        # E = A + (C - A) x_p + (D - C) x_q + (B + C - A - D)(1 - x_p) x_q, with D = E(1, 1) = 0
        cp = c - a
        np.add.at(src, p, np.maximum(cp, 0))
        np.add.at(snk, p, np.maximum(-cp, 0))
        np.add.at(src, q, np.maximum(-c, 0))
        np.add.at(snk, q, np.maximum(c, 0))
        pair = b + c - a  # >= 0 for a metric (Potts)
    low = np.minimum(src, snk)
    g = maxflow.Graph[float](n, len(edges))
    nodes = g.add_nodes(n)
    if len(edges):
        keep = pair > 0
        g.add_edges(nodes[edges[keep, 0]], nodes[edges[keep, 1]], pair[keep], np.zeros(int(keep.sum())))
    g.add_grid_tedges(np.asarray(nodes), src - low, snk - low)
    g.maxflow()
    take = g.get_grid_segments(np.asarray(nodes))
    out = labels.copy()
    out[take] = alpha
    return out


def alpha_expansion(unary: np.ndarray, edges: np.ndarray, weights: np.ndarray, init: np.ndarray | None = None,
                    rounds: int = 2) -> np.ndarray:
    """Labels that (locally) minimise the Potts energy.

    Args:
        unary: N x K float costs (any real values; a very large value forbids a label).
        edges: E x 2 int node pairs (each undirected edge once).
        weights: E float >= 0, the cost of giving the two ends different labels.
        init: N int labels to start from (default: the unary minimum).
        rounds: passes over all labels (stops early when a pass changes nothing).

    Returns:
        N int64 labels in [0, K). With K = 2 the result is the exact minimum.
    """
    unary = np.asarray(unary, np.float64)
    n, k = unary.shape
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    weights = np.asarray(weights, np.float64).reshape(-1)
    if len(weights) != len(edges):
        raise ValueError(f"{len(edges)} edges but {len(weights)} weights")
    if (weights < 0).any():
        raise ValueError("Potts weights must be >= 0")
    labels = (np.argmin(unary, axis=1) if init is None else np.asarray(init, np.int64)).copy()
    if n == 0 or k < 2:
        return labels
    for _ in range(max(1, rounds)):
        changed = False
        for alpha in range(k):
            new = _expand(unary, edges, weights, labels, alpha)
            if (new != labels).any():
                changed, labels = True, new
        if not changed:
            break
    return labels
