"""Label-map operations on demo label maps: paint modes, erase, fill, move, delete, copy, locks."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.editing import (
    CopyTrackFromFrame,
    DeleteTrackOnFrame,
    EditContext,
    EditError,
    Erase,
    FillRegion,
    MovePixels,
    Paint,
    PaintMode,
    Region,
    ReplaceLabel,
)
from annotator.editing.operations import apply_change, connected_region
from resources.demo import generate_demo_video


@pytest.fixture(scope="module")
def demo():
    return generate_demo_video(seed=3, num_frames=12, height=90, width=160, scenario="mixed")


def _apply(label, op, ctx):
    out = label.copy()
    return apply_change(out, op.apply(label, ctx)), op


def _ctx(demo, locked=(), read=None):
    return EditContext(locked=frozenset(locked), tracks=demo.tracks, read_label=read)


def _box_mask(shape, y0, x0, y1, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("mode", list(PaintMode))
def test_paint_modes_keep_invariant_and_locks(demo, mode):
    label = demo.labels[0].copy()
    label[:10] = 0  # some void to exercise only_unlabelled
    mask = _box_mask(label.shape, 0, 20, 60, 120)
    locked = {1}
    new, _ = _apply(label, Paint(mask, 5, mode), _ctx(demo, locked))
    assert new.dtype == np.uint16 and new.shape == label.shape
    assert np.array_equal(new[~mask], label[~mask])  # nothing outside the mask changes
    assert np.array_equal(new == 1, label == 1)  # locked track untouched
    if mode == PaintMode.ONLY_UNLABELLED:
        expect = np.where(mask & (label == 0), 5, label)
    else:
        expect = np.where(mask & (label != 1), 5, label)
    assert np.array_equal(new, expect)


def test_paint_change_is_minimal_box(demo):
    label = demo.labels[0]
    mask = _box_mask(label.shape, 30, 40, 35, 48)
    change = Paint(mask, 7).apply(label, _ctx(demo))
    new = apply_change(label.copy(), change)
    diff = np.argwhere(new != label)
    assert change.y0 == diff[:, 0].min() and change.x0 == diff[:, 1].min()
    assert change.after.shape == (diff[:, 0].max() - change.y0 + 1, diff[:, 1].max() - change.x0 + 1)
    # painting what is already there is a no-op
    assert Paint(new == 7, 7).apply(new, _ctx(demo)) is None


def test_paint_into_locked_unknown_or_void_track_is_an_error(demo):
    label = demo.labels[0]
    mask = _box_mask(label.shape, 0, 0, 5, 5)
    with pytest.raises(EditError, match="locked"):
        Paint(mask, 5).apply(label, _ctx(demo, locked={5}))
    with pytest.raises(EditError, match="does not exist"):
        Paint(mask, 999).apply(label, _ctx(demo))
    with pytest.raises(EditError, match="between 1"):
        Paint(mask, 0).apply(label, _ctx(demo))


def test_region_outside_image_is_a_noop(demo):
    label = demo.labels[0]
    r = Region(500, 500, np.ones((4, 4), bool))
    assert Paint(r, 5).apply(label, _ctx(demo)) is None
    assert Erase(r).apply(label, _ctx(demo)) is None
    r2 = Region(-2, -2, np.ones((4, 4), bool))  # partly outside: clipped
    new, _ = _apply(label, Paint(r2, 5), _ctx(demo))
    assert (new[:2, :2] == 5).all() and np.array_equal(new[2:], label[2:])


def test_erase_all_or_one_track_keeps_locked(demo):
    label = demo.labels[4]
    mask = np.ones(label.shape, bool)
    new, _ = _apply(label, Erase(mask), _ctx(demo, locked={2}))
    assert np.array_equal(new, np.where(label == 2, 2, 0))
    new, _ = _apply(label, Erase(mask, track_id=3), _ctx(demo))
    assert np.array_equal(new, np.where(label == 3, 0, label))
    with pytest.raises(EditError, match="locked"):
        Erase(mask, track_id=3).apply(label, _ctx(demo, locked={3}))


def test_fill_region_connected_component(demo):
    label = demo.labels[0].copy()
    label[40:50, 60:70] = 0  # a void hole
    new, _ = _apply(label, FillRegion((65, 45), 6), _ctx(demo))
    assert (new[40:50, 60:70] == 6).all()
    assert np.array_equal(new[label != 0], label[label != 0])
    # filling with the id already there: defined no-op
    assert FillRegion((65, 45), 6).apply(new, _ctx(demo)) is None
    with pytest.raises(EditError, match="outside"):
        FillRegion((500, 5), 6).apply(label, _ctx(demo))
    with pytest.raises(EditError, match="locked"):
        FillRegion((5, 5), 6).apply(label, _ctx(demo, locked={int(label[5, 5])}))


def test_connected_region_respects_connectivity():
    m = np.zeros((5, 5), bool)
    m[1, 1] = m[2, 2] = True  # diagonal neighbours
    assert connected_region(m, (1, 1), 4).mask.sum() == 1
    assert connected_region(m, (1, 1), 8).mask.sum() == 2
    with pytest.raises(EditError):
        connected_region(m, (1, 1), 6)


def test_move_pixels_and_delete_on_frame(demo):
    label = demo.labels[6]
    ids = [int(i) for i in np.unique(label) if i]
    a, b = ids[0], ids[-1]
    new, _ = _apply(label, MovePixels(a, b), _ctx(demo))
    assert not (new == a).any() and np.array_equal(new == b, (label == a) | (label == b))
    half = _box_mask(label.shape, 0, 0, label.shape[0], label.shape[1] // 2)
    new, _ = _apply(label, MovePixels(a, b, mask=half), _ctx(demo))
    assert np.array_equal(new == a, (label == a) & ~half)
    new, _ = _apply(label, DeleteTrackOnFrame(a), _ctx(demo))
    assert np.array_equal(new, np.where(label == a, 0, label))
    with pytest.raises(EditError, match="locked"):
        DeleteTrackOnFrame(a).apply(label, _ctx(demo, locked={a}))
    with pytest.raises(EditError, match="locked"):
        MovePixels(a, b).apply(label, _ctx(demo, locked={b}))
    assert MovePixels(a, a).apply(label, _ctx(demo)) is None
    assert DeleteTrackOnFrame(999).apply(label, _ctx(demo)) is None  # absent here: no-op


def test_copy_track_from_other_frame(demo):
    src, dst = demo.labels[0], demo.labels[10]
    thing = max(int(i) for i in np.unique(src))
    ctx = _ctx(demo, read=lambda i: demo.labels[i])
    new, _ = _apply(dst, CopyTrackFromFrame(thing, 0), ctx)
    assert np.array_equal(new == thing, src == thing)
    untouched = (src != thing) & (dst != thing)
    assert np.array_equal(new[untouched], dst[untouched])
    # only_unlabelled: the copied mask does not take other tracks' pixels
    new2, _ = _apply(dst, CopyTrackFromFrame(thing, 0, PaintMode.ONLY_UNLABELLED), ctx)
    assert np.array_equal(new2 == thing, (src == thing) & ((dst == 0) | (dst == thing)))
    # locked tracks keep their pixels under the copied mask
    other = int(dst[src == thing][0]) if (dst[src == thing] != thing).any() else 1
    new3, _ = _apply(dst, CopyTrackFromFrame(thing, 0), _ctx(demo, {other}, lambda i: demo.labels[i]))
    assert np.array_equal(new3 == other, dst == other)
    with pytest.raises(EditError, match="no access"):
        CopyTrackFromFrame(thing, 0).apply(dst, _ctx(demo))


def test_replace_label_keeps_locked_and_checks_ids(demo):
    a, b = demo.labels[0], demo.labels[11]
    new, _ = _apply(a, ReplaceLabel(b), _ctx(demo, {1}))
    assert np.array_equal(new == 1, a == 1)
    assert np.array_equal(new[(a != 1) & (b != 1)], b[(a != 1) & (b != 1)])
    bad = b.copy()
    bad[0, 0] = 777
    with pytest.raises(EditError, match="not tracks"):
        ReplaceLabel(bad).apply(a, _ctx(demo))
    with pytest.raises(EditError):
        ReplaceLabel(b[:10]).apply(a, _ctx(demo))


def test_full_frame_mask_of_wrong_size_is_an_error(demo):
    label = demo.labels[0]
    with pytest.raises(EditError, match="but the frame is"):
        Paint(np.ones((10, 10), bool), 5).apply(label, _ctx(demo))
    with pytest.raises(EditError, match="2-D"):
        Erase(np.ones((2, 90, 160), bool)).apply(label, _ctx(demo))
