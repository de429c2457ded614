"""The panoptic paint order (issue 23 item 1) in the engine: stuff takes only void pixels, a thing
takes stuff, void and other things, locks stay absolute; ``Paint.protected`` counts what was kept."""

from __future__ import annotations

import numpy as np

from annotator.editing import EditContext, FillRegion, Paint, PaintMode, Region
from annotator.editing.operations import apply_change

THING, OTHER_THING, STUFF, OTHER_STUFF, LOCKED = 1, 2, 3, 4, 5


def _label() -> np.ndarray:
    lab = np.zeros((20, 30), np.uint16)
    lab[:, :10] = STUFF
    lab[2:8, 12:18] = THING
    lab[12:18, 12:18] = OTHER_THING
    lab[:, 25:] = OTHER_STUFF
    lab[0:3, 20:23] = LOCKED
    return lab


def _ctx() -> EditContext:
    return EditContext(locked=frozenset({LOCKED}), tracks={1, 2, 3, 4, 5, 6})


def _paint(lab, tid, thing, mode=PaintMode.PANOPTIC):
    mask = np.ones(lab.shape, bool)
    return apply_change(lab.copy(), Paint(mask, tid, mode, thing=thing).apply(lab, _ctx()))


def test_stuff_paints_only_void_in_the_panoptic_order():
    lab = _label()
    new = _paint(lab, OTHER_STUFF, thing=False)
    np.testing.assert_array_equal(new, np.where(lab == 0, OTHER_STUFF, lab))
    assert (new == THING).sum() == (lab == THING).sum() and (new == STUFF).sum() == (lab == STUFF).sum()


def test_a_thing_takes_stuff_void_and_other_things_but_never_a_lock():
    lab = _label()
    new = _paint(lab, THING, thing=True)
    np.testing.assert_array_equal(new, np.where(lab == LOCKED, LOCKED, THING))
    # and ``replace`` lets stuff take a thing, as asked
    new = _paint(lab, STUFF, thing=False, mode=PaintMode.REPLACE)
    assert not (new == THING).any() and (new == LOCKED).sum() == 9


def test_protected_counts_the_pixels_kept_and_a_fully_protected_paint_is_a_no_op():
    lab = _label()
    on_thing = Region(2, 12, np.ones((6, 6), bool))
    op = Paint(on_thing, STUFF, PaintMode.PANOPTIC, thing=False)
    assert op.apply(lab, _ctx()) is None and op.protected(lab, _ctx()) == 36
    assert Paint(on_thing, OTHER_THING, PaintMode.PANOPTIC, thing=True).protected(lab, _ctx()) == 0
    assert Paint(Region(0, 20, np.ones((3, 3), bool)), THING).protected(lab, _ctx()) == 9  # locked
    assert Paint(on_thing, THING).protected(lab, _ctx()) == 0  # its own pixels are not "protected"


def test_fill_follows_the_paint_mode():
    lab = _label()
    refused = FillRegion((14, 4), OTHER_STUFF, mode=PaintMode.PANOPTIC, thing=False)
    assert refused.apply(lab, _ctx()) is None and refused.paint(lab).protected(lab, _ctx()) == 36
    filled = FillRegion((20, 10), OTHER_STUFF, mode=PaintMode.PANOPTIC, thing=False)
    new = apply_change(lab.copy(), filled.apply(lab, _ctx()))
    assert new[10, 20] == OTHER_STUFF and (new == THING).sum() == 36
    assert FillRegion((14, 4), STUFF).apply(lab, _ctx()) is not None  # default: replace, as before
