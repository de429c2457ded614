"""The official test vectors (metric_vectors.md): T1-T12 and deeplab2's STQ unit tests.

Clips are built here: 8 frames of 4x8, wall (cat 0) on columns 0-3, sky (cat 28) on 4-7,
person A (cat 60) rows 0-1 x cols 0-1, person B (cat 60) rows 2-3 x cols 6-7.
"""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.metrics import Categories, Segment, VideoPair, make_frame, score_pairs
from annotator.metrics.stq import stq_encoded
from annotator.taxonomy import vipseg_taxonomy

WALL, SKY, PERSON, CAR = 0, 28, 60, 48
CATS = Categories.from_taxonomy(vipseg_taxonomy())
W_ID, S_ID, A_ID, B_ID = 1, 2, 3, 4


def base_map() -> np.ndarray:
    m = np.zeros((4, 8), np.int64)
    m[:, :4] = W_ID
    m[:, 4:] = S_ID
    m[0:2, 0:2] = A_ID
    m[2:4, 6:8] = B_ID
    return m


BASE_CATS = {W_ID: WALL, S_ID: SKY, A_ID: PERSON, B_ID: PERSON}


def clip(maps, cats_per_frame, areas=None):
    frames = []
    for t, (m, cats) in enumerate(zip(maps, cats_per_frame, strict=True)):
        segs = {}
        for sid, c in cats.items():
            if not (m == sid).any() and areas is None:
                continue
            area = None if areas is None else areas.get(sid)
            segs[sid] = Segment(c, area=area)
        frames.append(make_frame(m, segs, name=f"{t:05d}"))
    return frames


def gt_clip(n=8, m=None, cats=None, areas=None):
    m = base_map() if m is None else m
    cats = BASE_CATS if cats is None else cats
    return clip([m.copy() for _ in range(n)], [cats] * n, areas)


def run(gt, pred, mode="official", windows=(1, 2, 4, 6, 8)):
    return score_pairs([VideoPair("v", gt, pred)], CATS, windows=windows, mode=mode)


def check_vpq(rep, all_, thing=None, stuff=None):
    assert rep.vpq.vpq["all"] == pytest.approx(all_, abs=1e-3)
    if thing is not None:
        assert rep.vpq.vpq["things"] == pytest.approx(thing, abs=1e-3)
    if stuff is not None:
        assert rep.vpq.vpq["stuff"] == pytest.approx(stuff, abs=1e-3)


def check_stq(rep, stq, aq=None, iou=None):
    assert rep.stq.stq == pytest.approx(stq, abs=1e-5)
    if aq is not None:
        assert rep.stq.aq == pytest.approx(aq, abs=1e-4)
    if iou is not None:
        assert rep.stq.sq == pytest.approx(iou, abs=1e-5)


def test_t1_identical():
    rep = run(gt_clip(), gt_clip())
    check_vpq(rep, 100, 100, 100)
    check_stq(rep, 1, 1, 1)
    assert rep.mode == "official"


def test_t2_renamed_ids():
    ren = {W_ID: 17, S_ID: 900, A_ID: 5, B_ID: 77}
    m = np.vectorize(ren.get)(base_map())
    pred = clip([m] * 8, [{ren[k]: v for k, v in BASE_CATS.items()}] * 8)
    rep = run(gt_clip(), pred)
    check_vpq(rep, 100, 100, 100)
    check_stq(rep, 1, 1, 1)


def swapped_pred():
    m0 = base_map()
    m1 = m0.copy()
    m1[m0 == A_ID] = B_ID
    m1[m0 == B_ID] = A_ID
    return clip([m0] * 4 + [m1] * 4, [BASE_CATS] * 8)


def test_t3_swap_from_frame_4():
    rep = run(gt_clip(), swapped_pred())
    check_vpq(rep, 83.3143, 49.9429, 100)
    per_l = [100 * rep.vpq.per_length[L]["all"].pq for L in (1, 2, 4, 6, 8)]
    assert per_l == pytest.approx([100, 95.238, 88.0, 66.667, 66.667], abs=0.05)
    check_stq(rep, 0.57735, 0.3333, 1)


def test_t4_extra_false_positive_person():
    m = base_map()
    m[0, 4:6] = 9
    pred = clip([m] * 8, [{**BASE_CATS, 9: PERSON}] * 8)
    rep = run(gt_clip(), pred)
    check_vpq(rep, 87.7778, 80, 91.6667)
    check_stq(rep, 0.93690, 1, 0.87778)


def test_t5_prediction_on_gt_void_is_ignored():
    g = base_map()
    g[0:2, 4:6] = 0
    p = base_map()
    p[0:2, 4:6] = 9
    rep = run(gt_clip(m=g), clip([p] * 8, [{**BASE_CATS, 9: PERSON}] * 8))
    check_vpq(rep, 100)
    check_stq(rep, 1, 1, 1)


def test_t6_predicted_void_counts_as_class_in_official_stq():
    p = base_map()
    p[0, 4:6] = 0
    gt, pred = gt_clip(), clip([p] * 8, [BASE_CATS] * 8)
    rep = run(gt, pred)
    check_vpq(rep, 94.4444, 100, 91.6667)
    check_stq(rep, 0.84163, 1, 0.70833)
    # clean mode: void is not a class of its own -> mean IoU over wall, sky, person
    clean = run(gt, pred, mode="clean")
    assert clean.stq.sq == pytest.approx((1 + 10 / 12 + 1) / 3, abs=1e-9)
    assert clean.vpq.vpq["all"] == pytest.approx(94.4444, abs=1e-3)


def test_t7_wrong_class():
    pred = clip([base_map()] * 8, [{**BASE_CATS, B_ID: CAR}] * 8)
    rep = run(gt_clip(), pred)
    check_vpq(rep, 66.6667, 33.3333, 100)
    check_stq(rep, 0.79057, 1, 0.625)


def test_t8_short_video_leaves_lengths_out():
    rep = run(gt_clip(3), gt_clip(3))
    check_vpq(rep, 100, 100, 100)
    check_stq(rep, 1, 1, 1)
    assert sorted(rep.vpq.per_length) == [1, 2]
    assert any("L=4" in n for n in rep.vpq.notes)


def test_t9_first_listed_thing_is_crowd_in_official_stq():
    first = {A_ID: PERSON, W_ID: WALL, S_ID: SKY, B_ID: PERSON}
    gt = clip([base_map()] * 8, [first] * 8)
    rep = run(gt, swapped_pred())
    check_vpq(rep, 83.3143)
    check_stq(rep, 0.70711, 0.5, 1)
    clean = run(gt, swapped_pred(), mode="clean")
    assert clean.stq.aq == pytest.approx(1 / 3, abs=1e-9)


def test_t10_no_things():
    m = np.zeros((4, 8), np.int64)
    m[:, :4] = W_ID
    m[:, 4:] = S_ID
    cats = {W_ID: WALL, S_ID: SKY}
    rep = run(gt_clip(m=m, cats=cats), gt_clip(m=m, cats=cats))
    check_vpq(rep, 100, None, 100)
    assert rep.vpq.vpq["things"] is None
    assert any("things" in n for n in rep.vpq.notes)
    check_stq(rep, 0, 0, 1)
    clean = run(gt_clip(m=m, cats=cats), gt_clip(m=m, cats=cats), mode="clean")
    assert clean.stq.aq is None and clean.stq.stq == 1.0 and clean.stq.notes


def test_t11_prediction_covers_gt_void_next_to_person():
    # A 1-pixel-wide void strip (rows 0-1, column 2) beside A; the prediction of A covers it.
    g = base_map()
    g[0:2, 2] = 0
    p = base_map()
    p[0:2, 2] = A_ID
    rep = run(gt_clip(m=g), clip([p] * 8, [BASE_CATS] * 8))
    check_vpq(rep, 100)
    check_stq(rep, 0.91287, 0.8333, 1)


def test_t12_gt_json_area_is_used_by_official_vpq():
    areas = {W_ID: 24, S_ID: 12, A_ID: 4, B_ID: 4}  # wall really has 12 pixels per frame
    gt = gt_clip(areas=areas)
    rep = run(gt, gt_clip())
    check_vpq(rep, 66.6667)
    check_stq(rep, 1, 1, 1)
    assert rep.vpq.per_class[1][WALL]["fn"] == 8 and rep.vpq.per_class[1][WALL]["fp"] == 8
    assert run(gt, gt_clip(), mode="clean").vpq.vpq["all"] == pytest.approx(100)


# --- deeplab2 numpy STQ unit tests --------------------------------------------------------------

def _track(values):
    return [np.array([[v]]) for v in values]


@pytest.mark.parametrize("pred, expected", [
    ([1, 1, 1, 1, 1], (1.0, 1.0, 1.0)),
    ([1, 1, 2, 2, 2], (0.72111026, 0.52, 1.0)),
    ([1, 2, 2, 2, 2], (0.82462113, 0.68, 1.0)),
    ([1, 2, 3, 4, 5], (0.447213596, 0.2, 1.0)),
    ([1, 2, 1, 2, 2], (0.72111026, 0.52, 1.0)),
    ([1 << 16, 1, 1, 1, 1], (0.50596443, 0.64, 0.4)),
])
def test_deeplab2_basic(pred, expected):
    res = stq_encoded(_track([1, 1, 1, 1, 1]), _track(pred), 2, [0])
    assert (res.stq, res.aq, res.sq) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("pred, expected", [
    ([1, 1, 1, 1, 1, 1], (1.0, 1.0, 1.0)),
    ([2, 2, 2, 2, 1, 1], (0.72111026, 0.52, 1.0)),
    ([2, 2, 1 << 16, 1, 1, 1], (0.40824829, 0.4, 5 / 12)),
])
def test_deeplab2_crowd_first(pred, expected):
    res = stq_encoded(_track([0, 1, 1, 1, 1, 1]), _track(pred), 2, [0])
    assert (res.stq, res.aq, res.sq) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("pred, expected", [
    ([1, 1, 1, 1, 1], (0.56568542, 0.8, 0.4)),
    ([2, 2, 2, 1, 1], (0.42426407, 0.45, 0.4)),
    ([2, 2, 1 << 16, 1, 1], (0.3, 0.3, 0.3)),
])
def test_deeplab2_sky_first(pred, expected):
    res = stq_encoded(_track([1 << 16, 1, 1, 1, 1]), _track(pred), 2, [0])
    assert (res.stq, res.aq, res.sq) == pytest.approx(expected, abs=1e-6)


def _rows(text):
    return np.array([[int(c) for c in row] for row in text.split()])


GT_SEM = ["00000000 00000000 00020111 02222111 22222211 22222221 22222221 22222211",
          "00000000 00000000 02001100 22211110 22221111 22222111 22222111 22221111",
          "00000000 00000000 00000000 20111000 22111100 22211110 22211111 22211111"]
GT_INST = ["00000000 00000000 00020000 02222000 22222200 22222220 22222220 22222200",
           "00000000 00000000 02000000 22200000 22220000 22222000 22222000 22220000",
           "00000000 00000000 00000000 20000000 22000000 22200000 22200000 22200000"]
PR_SEM = ["00000000 00000000 00000100 00022111 02222211 22222221 22222221 22222221",
          "00000000 00000000 00001100 02221111 22221111 22222111 22222211 22222111",
          "00000000 00000000 00001000 00111100 22211100 22211111 22221111 22221111"]
PR_INST = ["00000000 00000000 00000000 00022000 02222100 22222110 22221110 22221110",
           "00000000 00000000 00000000 02220000 22220000 22222000 22221100 22221000",
           "00000000 00000000 00000000 00000000 22200000 22200000 22220000 22220000"]


def test_deeplab2_complex_example():
    gt = [(_rows(s) << 16) + _rows(i) for s, i in zip(GT_SEM, GT_INST, strict=True)]
    pr = [(_rows(s) << 16) + _rows(i) for s, i in zip(PR_SEM, PR_INST, strict=True)]
    res = stq_encoded(gt, pr, 3, [2])
    assert res.stq == pytest.approx(0.66841773352, abs=1e-8)
    assert res.aq == pytest.approx(0.55366581415, abs=1e-8)
    assert res.sq == pytest.approx(0.8069529580309542, abs=1e-8)


# --- input validation ----------------------------------------------------------------------------

def test_prediction_id_missing_from_json_is_an_error():
    p = base_map()
    p[0, 5] = 42
    with pytest.raises(InputError, match="42"):
        run(gt_clip(), clip([p] * 8, [BASE_CATS] * 8, areas={}))


def test_prediction_json_id_missing_from_png_is_an_error():
    pred = gt_clip()
    pred[3].segments[99] = Segment(PERSON)
    with pytest.raises(InputError, match="99"):
        run(gt_clip(), pred)


def test_size_mismatch_is_an_error():
    gt = gt_clip()
    pred = clip([np.ones((4, 9), np.int64)] * 8, [{1: WALL}] * 8)
    with pytest.raises(InputError, match="9x4"):
        run(gt, pred)
