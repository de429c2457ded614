"""Mode registry, per-stage minutes and the new tools' prices of the effort robot."""

import pytest

from annotator.errors import InputError
from annotator.robot.costs import KINDS, STAGES, ActionLog, CostModel
from annotator.robot.evaluate import MODES, Mode, Robot, check_modes, register_mode


def test_stage_seconds_split_the_total_and_unknown_stages_count_as_repair():
    log = ActionLog(CostModel())
    log.add("vertex", 10, stage="keyframes")
    log.add("correction", 1, stage="association")
    log.add("inspect_frame", 3, stage="inspection")
    log.add("brush_stroke", 2, stage="fix")
    log.add("repropagate", 1, stage="somewhere")
    st = log.stage_seconds()
    assert set(st) == set(STAGES)
    assert sum(st.values()) == pytest.approx(log.seconds())
    m = log.model
    assert st["keyframes"] == pytest.approx(10 * m.vertex)
    assert st["identity"] == pytest.approx(m.correction)
    assert st["repair"] == pytest.approx(2 * m.brush_stroke + m.repropagate)


def test_new_tool_kinds_are_priced_and_scissors_price_adds_up():
    m = CostModel()
    for kind in ("scissors_ring", "scissors_anchor", "superpixel_click", "refine", "refine_stroke", "snap",
                 "cut_stroke", "draft_accept", "repropagate", "undo"):
        assert kind in KINDS and m.price(kind) > 0
    assert m.scissors_seconds(5) == pytest.approx(m.scissors_ring + 5 * m.scissors_anchor)


def test_mode_registry_is_extensible_and_refuses_unknown_names():
    assert {"pipeline", "copy", "hand"} <= set(MODES)
    assert MODES["pipeline"].baseline == "hand" and MODES["hand"].baseline is None
    with pytest.raises(InputError):
        check_modes(["nosuch"])
    try:
        register_mode(Mode("test-extra", "a test mode", Robot.run_hand, baseline=None))
        check_modes(["test-extra"])
    finally:
        MODES.pop("test-extra", None)
