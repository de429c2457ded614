"""The global gap stage (issue 27, off by default): the Potts solver is exact on two labels, and a
propagator with the stage on follows a moving square between two references with ids kept."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from annotator.stages.evaluate import region_j
from propagation.base import Reference
from propagation.flow import FlowConfig, FlowPropagator
from propagation.global_graph_cut import alpha_expansion, potts_energy
from tests.test_propagation_flow import Clip, _moving_square


def test_two_label_expansion_is_the_exact_minimum():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = 6
        unary = rng.uniform(0, 3, (n, 2))
        edges = np.array([(i, j) for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.5], np.int64)
        edges = edges.reshape(-1, 2)
        weights = rng.uniform(0, 2, len(edges))
        got = alpha_expansion(unary, edges, weights)
        best = min(potts_energy(unary, edges, weights, np.array(c)) for c in itertools.product(range(2), repeat=n))
        assert abs(potts_energy(unary, edges, weights, got) - best) < 1e-9


def test_global_stage_follows_a_square_between_both_references(monkeypatch):
    import propagation.flow as flow

    calls = []
    solve = flow.solve_gap
    monkeypatch.setattr(flow, "solve_gap", lambda *a, **k: calls.append(1) or solve(*a, **k))
    frames, labels = _moving_square(n=7)
    clip = Clip(frames, list(range(7)))
    config = dataclasses.replace(FlowConfig.profile("fast"), global_gap=True)
    res = FlowPropagator(config).propagate(clip, [Reference(0, labels[0]), Reference(6, labels[6])],
                                           [1, 2, 3, 4, 5])
    for t in range(1, 6):
        assert set(np.unique(res.labels[t])) <= {1, 2}  # only the references' ids
        assert region_j(res.labels[t] == 2, labels[t] == 2) > 0.9
        assert res.confidence[t].min() >= 0 and res.confidence[t].max() <= 1
    assert calls  # the gap went through the global solve, not only the chains


def test_global_backend_is_built_by_name():
    from propagation.factory import BACKENDS, make_propagator

    assert "global" in BACKENDS
    engine = make_propagator("global", speed="fast")
    assert isinstance(engine, FlowPropagator) and engine.config.global_gap
    assert not make_propagator("flow", speed="fast").config.global_gap
