"""Property tests of VPQ/STQ and a cross-check of the fast engine against the slow reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.metrics import Categories, Segment, VideoPair, make_frame, score_pairs
from annotator.metrics.reference import reference_stq, reference_vpq

# categories: 0,1 stuff; 2,3 things
CATS = Categories({0: False, 1: False, 2: True, 3: True})
SEG_CAT = {1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}  # id -> category; stuff listed first


def random_video(rng: np.random.Generator, T: int, h: int = 6, w: int = 7, void: float = 0.1):
    """A clip whose segments move a little each frame (blocky, so tubes overlap across frames)."""
    frames = []
    base = rng.integers(1, 7, size=(h // 2 + 1, w // 2 + 1))
    for _ in range(T):
        noise = rng.random(base.shape) < 0.2
        base = np.where(noise, rng.integers(1, 7, size=base.shape), base)
        m = np.kron(base, np.ones((2, 2), np.int64))[:h, :w]
        m = np.where(rng.random((h, w)) < void, 0, m)
        frames.append(m)
    return frames


def to_frames(maps, cat=SEG_CAT, names=None):
    out = []
    for t, m in enumerate(maps):
        present = [i for i in cat if (m == i).any()]
        out.append(make_frame(m, {i: Segment(cat[i]) for i in present}, name=str(t)))
    return out


videos_st = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 9))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(videos_st)
def test_prediction_equal_to_gt_is_perfect(params):
    seed, T = params
    rng = np.random.default_rng(seed)
    maps = random_video(rng, T)
    pair = VideoPair("v", to_frames(maps), to_frames(maps))
    rep = score_pairs([pair], CATS)
    assert rep.vpq.vpq["all"] == pytest.approx(100)
    assert rep.stq.sq == pytest.approx(1)
    # clean mode: STQ 1 whatever is listed first (official mode may make a thing listed first crowd)
    assert score_pairs([pair], CATS, mode="clean").stq.stq == pytest.approx(1)


@SETTINGS
@given(videos_st, st.permutations([1, 2, 3, 4, 5, 6]))
def test_consistent_renaming_changes_nothing(params, perm):
    seed, T = params
    rng = np.random.default_rng(seed)
    gt = random_video(rng, T)
    pred = random_video(rng, T)
    new = {i: 100 + 7 * p for i, p in zip(range(1, 7), perm, strict=True)}
    lut = np.zeros(7, np.int64)
    for k, v in new.items():
        lut[k] = v
    renamed = [lut[m] for m in pred]
    a = score_pairs([VideoPair("v", to_frames(gt), to_frames(pred))], CATS)
    b = score_pairs([VideoPair("v", to_frames(gt), to_frames(renamed, {new[k]: c for k, c in SEG_CAT.items()}))],
                    CATS)
    assert a.vpq.vpq == pytest.approx(b.vpq.vpq)
    assert (a.stq.stq, a.stq.aq, a.stq.sq) == pytest.approx((b.stq.stq, b.stq.aq, b.stq.sq))


@SETTINGS
@given(videos_st, st.integers(0, 8))
def test_swapping_two_ids_from_t_never_raises_vpq(params, t0):
    seed, T = params
    rng = np.random.default_rng(seed)
    maps = random_video(rng, T)
    swapped = []
    for t, m in enumerate(maps):
        m = m.copy()
        if t >= t0:
            a, b = m == 3, m == 4
            m[a], m[b] = 4, 3
        swapped.append(m)
    perfect = score_pairs([VideoPair("v", to_frames(maps), to_frames(maps))], CATS)
    after = score_pairs([VideoPair("v", to_frames(maps), to_frames(swapped))], CATS)
    assert after.vpq.vpq["all"] <= perfect.vpq.vpq["all"] + 1e-9


@SETTINGS
@given(st.lists(videos_st, min_size=2, max_size=4), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_video_order(vids, rnd):
    pairs = []
    for i, (seed, T) in enumerate(vids):
        rng = np.random.default_rng(seed)
        pairs.append(VideoPair(f"v{i}", to_frames(random_video(rng, T)), to_frames(random_video(rng, T))))
    shuffled = pairs[:]
    rnd.shuffle(shuffled)
    a, b = score_pairs(pairs, CATS), score_pairs(shuffled, CATS)
    assert a.vpq.vpq == pytest.approx(b.vpq.vpq, abs=1e-9)
    assert (a.stq.stq, a.stq.aq, a.stq.sq) == pytest.approx((b.stq.stq, b.stq.aq, b.stq.sq), abs=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(videos_st, min_size=1, max_size=3), st.sampled_from([0.0, 0.1, 0.3]))
def test_engine_equals_reference_implementation(vids, void):
    pairs, ref_videos = [], []
    for i, (seed, T) in enumerate(vids):
        rng = np.random.default_rng(seed)
        g = to_frames(random_video(rng, T, void=void))
        p = to_frames(random_video(rng, T, void=void))
        pairs.append(VideoPair(f"v{i}", g, p))
        ref_videos.append((g, p))
    windows = tuple(L for L in (1, 2, 4, 6, 8) if max(T for _, T in vids) >= L)
    rep = score_pairs(pairs, CATS, windows=windows)
    try:
        ref = reference_vpq(ref_videos, CATS, windows)
    except ZeroDivisionError:  # the official algorithm crashes where a group is empty
        ref = None
    if ref is not None:
        for k in ("all", "things", "stuff"):
            assert rep.vpq.vpq[k] == pytest.approx(ref[k], abs=1e-9)
    rs = reference_stq(ref_videos, CATS)
    assert rep.stq.sq == pytest.approx(rs["iou"], abs=1e-12)
    assert rep.stq.aq == pytest.approx(rs["aq"], abs=1e-12)
    assert rep.stq.stq == pytest.approx(rs["stq"], abs=1e-12)


def test_workers_give_the_same_result():
    rng = np.random.default_rng(3)
    pairs = [VideoPair(f"v{i}", to_frames(random_video(rng, 6)), to_frames(random_video(rng, 6))) for i in range(3)]
    a = score_pairs(pairs, CATS)
    b = score_pairs(pairs, CATS, workers=2)
    assert a.vpq.vpq == pytest.approx(b.vpq.vpq, abs=1e-12)
    assert a.stq.stq == pytest.approx(b.stq.stq, abs=1e-12)
    assert [v.video_id for v in b.videos] == ["v0", "v1", "v2"]


@pytest.mark.parametrize("scale", [700, 1_000_003])  # lookup-table path, hash path (RGB-sized ids)
def test_large_ids_give_the_same_scores(scale):
    rng = np.random.default_rng(5)
    gmaps, pmaps = random_video(rng, 5), random_video(rng, 5)
    big = {i: i * scale + 65536 for i in range(1, 7)}
    lut = np.zeros(7, np.int64)
    for k, v in big.items():
        lut[k] = v
    big_cat = {big[k]: c for k, c in SEG_CAT.items()}
    small = score_pairs([VideoPair("v", to_frames(gmaps), to_frames(pmaps))], CATS)
    large = score_pairs([VideoPair("v", to_frames([lut[m] for m in gmaps], big_cat),
                                   to_frames([lut[m] for m in pmaps], big_cat))], CATS)
    assert large.vpq.vpq == pytest.approx(small.vpq.vpq, abs=1e-12)
    assert (large.stq.stq, large.stq.aq, large.stq.sq) == pytest.approx((small.stq.stq, small.stq.aq, small.stq.sq))
