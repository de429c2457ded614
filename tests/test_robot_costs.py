"""Cost model and action log of the simulated annotator: prices, totals, breakdowns."""

import pytest

from annotator.robot.costs import KINDS, ActionLog, CostModel


def test_every_kind_has_a_price_and_totals_add_up():
    model = CostModel(vertex=1.0, polygon=2.0, pick=3.0, brush_stroke=4.0, erase=5.0, correction=6.0,
                      inspect_frame=7.0, inspect_segment=8.0, run=9.0)
    log = ActionLog(model)
    for n, kind in enumerate(KINDS, start=1):
        log.add(kind, units=n)
    expected = sum(model.price(k) * n for n, k in enumerate(KINDS, start=1))
    assert log.seconds() == pytest.approx(expected)
    assert log.minutes == pytest.approx(expected / 60)
    rows = log.breakdown()
    assert set(rows) == set(KINDS)
    assert sum(r["seconds"] for r in rows.values()) == pytest.approx(log.seconds())
    assert log.units()["inspect_segment"] == list(KINDS).index("inspect_segment") + 1
    assert log.count() == len(KINDS)
    assert log.seconds("vertex") == pytest.approx(1.0)


def test_stage_filter_and_polygon_price():
    model = CostModel()
    log = ActionLog(model)
    log.add("vertex", 10, stage="keyframes")
    log.add("polygon", 1, stage="keyframes")
    log.add("brush_stroke", 2, stage="fix")
    assert log.seconds(stage="keyframes") == pytest.approx(model.polygon_seconds(10))
    assert log.seconds(stage="fix") == pytest.approx(2 * model.brush_stroke)
    assert model.polygon_seconds(10) == pytest.approx(model.polygon + 10 * model.vertex)


def test_unknown_kind_and_negative_units_refused():
    log = ActionLog()
    with pytest.raises(KeyError):
        log.add("teleport")
    with pytest.raises(ValueError):
        log.add("vertex", -1)
    assert log.actions == []
