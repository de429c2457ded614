"""Association core without a video: overlap tables, Hungarian matching rules, metrics, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.stages.association import (
    AssociationConfig,
    CarriedMap,
    Match,
    Prediction,
    identity_metrics,
    match_segments,
    overlap,
    review_flags,
)
from propagation.factory import association_propagator

PERSON, CAR, SKY = 60, 48, 28
THINGS = {PERSON, CAR}


def is_thing(c: int) -> bool:
    return c in THINGS


def test_overlap_equals_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 7, (30, 40)).astype(np.uint16) * 3  # sparse ids with gaps, void = 0
    b = rng.integers(0, 5, (30, 40)).astype(np.uint16) + 10
    b[:5] = 0
    ov = overlap(a, b)
    assert list(ov.rows) == sorted(set(np.unique(a).tolist()) - {0})
    assert list(ov.cols) == sorted(set(np.unique(b).tolist()) - {0})
    for i, r in enumerate(ov.rows):
        for j, c in enumerate(ov.cols):
            inter = int(((a == r) & (b == c)).sum())
            assert ov.inter[i, j] == inter
            ra = int(((a == r) & (b != 0)).sum())  # void on the keyframe does not count
            assert ov.row_area[i] == ra
            cb = int((b == c).sum())
            assert ov.col_area[j] == cb
            assert ov.iou[i, j] == pytest.approx(inter / (ra + cb - inter))


def _boxes(shape, boxes: dict[int, tuple[int, int, int, int]], background: int = 0) -> np.ndarray:
    lab = np.full(shape, background, np.uint16)
    for tid, (y0, y1, x0, x1) in boxes.items():
        lab[y0:y1, x0:x1] = tid
    return lab


def test_hungarian_picks_the_global_best_and_respects_categories():
    # carried: tracks 1, 2 (persons) and 3 (car); keyframe segments 11, 12 (persons), 13 (car)
    carried = _boxes((40, 60), {1: (0, 10, 0, 10), 2: (0, 10, 8, 18), 3: (20, 30, 0, 10)})
    segs = _boxes((40, 60), {11: (0, 10, 9, 19), 12: (0, 10, 1, 11), 13: (20, 30, 1, 11)})
    cats = {1: PERSON, 2: PERSON, 3: CAR, 11: PERSON, 12: PERSON, 13: CAR}
    got = {m.segment: m.track for m in match_segments([CarriedMap(carried, 0)], segs, cats, is_thing)}
    assert got == {11: 2, 12: 1, 13: 3}
    # the car segment turned into a person segment: never matched to the car track
    cats2 = {**cats, 13: PERSON}
    got2 = {m.segment: m.track for m in match_segments([CarriedMap(carried, 0)], segs, cats2, is_thing)}
    assert got2[13] is None


def test_threshold_and_new_tracks():
    carried = _boxes((20, 40), {1: (0, 10, 0, 10)})
    segs = _boxes((20, 40), {5: (0, 10, 6, 16)}, background=9)  # IoU 4/16 = 0.25
    cats = {1: PERSON, 5: PERSON, 9: SKY}
    (m, _) = match_segments([CarriedMap(carried, 0)], segs, cats, is_thing, threshold=0.3)
    assert m.track is None and m.iou == pytest.approx(0.25)
    (m, _) = match_segments([CarriedMap(carried, 0)], segs, cats, is_thing, threshold=0.2)
    assert m.track == 1 and m.criterion == "iou"
    # carried pixels the annotator left void on the keyframe do not count against the track
    (m,) = match_segments([CarriedMap(carried, 0)], np.where(segs == 9, 0, segs), cats, is_thing)
    assert m.track == 1 and m.iou == pytest.approx(0.4)


def test_containment_keeps_a_half_hidden_object():
    carried = _boxes((20, 40), {1: (0, 20, 0, 20)})
    segs = _boxes((20, 40), {5: (0, 5, 0, 20)}, background=9)  # a quarter visible: IoU 0.25, contained 1
    cats = {1: PERSON, 5: PERSON, 9: SKY}
    (m, _) = match_segments([CarriedMap(carried, 0)], segs, cats, is_thing, containment=0.0)
    assert m.track is None
    (m, _) = match_segments([CarriedMap(carried, 0)], segs, cats, is_thing, containment=0.5)
    assert m.track == 1 and m.criterion == "containment"


def test_proximity_round_uses_predictions_only_within_radius():
    segs = _boxes((40, 80), {5: (10, 20, 40, 50)})  # centroid (14.5, 44.5), area 100
    cats = {1: PERSON, 2: PERSON, 5: PERSON}
    empty = CarriedMap(np.zeros((40, 80), np.uint16), 0)
    near = {1: Prediction(15.0, 40.0, 100.0, 0), 2: Prediction(15.0, 75.0, 100.0, 0)}
    (m,) = match_segments([empty], segs, cats, is_thing, predictions=near, proximity=2.0)
    assert m.track == 1 and m.criterion == "proximity"
    far = {2: Prediction(15.0, 75.0, 100.0, 0, lost=True)}
    (m,) = match_segments([empty], segs, cats, is_thing, predictions=far, proximity=2.0)
    assert m.track is None
    (m,) = match_segments([empty], segs, cats, is_thing, predictions=near, proximity=0.0)
    assert m.track is None


def test_stuff_goes_by_class_without_hungarian():
    carried = _boxes((20, 40), {1: (0, 10, 0, 40)}, background=0)
    segs = _boxes((20, 40), {7: (0, 5, 0, 20), 8: (0, 5, 20, 40)}, background=9)  # sky in two regions
    cats = {1: SKY, 7: SKY, 8: SKY, 9: 18}
    got = match_segments([CarriedMap(carried, 3)], segs, cats, is_thing, stuff_tracks={SKY: 1})
    assert {m.segment: m.track for m in got} == {7: 1, 8: 1, 9: None}
    assert all(m.stuff and m.source == 3 for m in got[:2])
    assert got[0].iou == pytest.approx(0.5)  # the whole carried sky region vs both sky segments
    got = match_segments([CarriedMap(carried, 3)], segs, cats, is_thing, stuff_tracks={})
    assert all(m.track is None for m in got)  # first sky of the video: the caller creates the track


def test_bad_input_is_refused():
    carried = CarriedMap(np.ones((10, 10), np.uint16), 0)
    with pytest.raises(InputError, match="different sizes"):
        match_segments([carried], np.ones((10, 12), np.uint16), {1: PERSON}, is_thing)
    with pytest.raises(InputError, match=r"segments \[9\] have no class"):
        match_segments([carried], np.full((10, 10), 9, np.uint16), {1: PERSON}, is_thing)
    with pytest.raises(InputError, match=r"carried tracks \[1\] have no class"):
        match_segments([carried], np.full((10, 10), 2, np.uint16), {2: PERSON}, is_thing)
    with pytest.raises(InputError):
        AssociationConfig(threshold=0.0)
    with pytest.raises(InputError):
        AssociationConfig(max_gap=-1)


def test_empty_keyframe_matches_nothing():
    carried = CarriedMap(np.ones((10, 10), np.uint16), 0)
    assert match_segments([carried], np.zeros((10, 10), np.uint16), {1: PERSON}, is_thing) == []


def test_identity_metrics_counts_switches_and_correct_fraction():
    g = {k: _boxes((10, 20), {1: (0, 5, 0, 5), 2: (5, 10, 10, 15)}) for k in range(4)}
    p = {k: _boxes((10, 20), {7: (0, 5, 0, 5), 8: (5, 10, 10, 15)}) for k in range(4)}
    assert identity_metrics(g, p) == {"switches": 0, "correct": 8, "instances": 8, "fraction_correct": 1.0,
                                      "objects": 2}
    for k in (2, 3):  # identities swapped from frame 2 on: two switches, half the instances wrong
        p[k] = _boxes((10, 20), {8: (0, 5, 0, 5), 7: (5, 10, 10, 15)})
    m = identity_metrics(g, p)
    assert m["switches"] == 2 and m["correct"] == 4 and m["fraction_correct"] == 0.5
    p[3] = _boxes((10, 20), {7: (0, 5, 0, 5), 8: (5, 10, 10, 15)})  # and back: two more switches
    assert identity_metrics(g, p, things=[1])["switches"] == 2
    with pytest.raises(InputError):
        identity_metrics({0: g[0]}, {0: g[0][:5]})


def test_review_flags():
    ms = [Match(5, 10, 1, PERSON, "matched", 0.4, 0), Match(5, 11, 2, PERSON, "matched", 0.9, 0),
          Match(5, 12, 3, PERSON, "new", 0.1), Match(0, 13, 4, PERSON, "new", 0.0),
          Match(5, 0, 6, PERSON, "vanished", 0.0, 0), Match(10, 14, 6, PERSON, "reidentified", 0.7, 0),
          Match(5, 15, 7, SKY, "stuff", 0.1, 0)]
    flags = review_flags(ms, is_thing, 0.5, first_keyframe=0)
    assert [(f.kind, f.frame, f.track) for f in flags] == [
        ("low_iou", 5, 1), ("new_track", 5, 3), ("vanished", 5, 6), ("reappeared", 10, 6)]


@pytest.mark.parametrize("offset", [0, 60000])  # small ids: direct joint table; huge ids: compacted
def test_overlap_paths_agree_and_row_hints(offset, monkeypatch):
    import propagation.matching as matching

    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (25, 30)).astype(np.uint16)
    b = (rng.integers(0, 4, (25, 30)) * 7).astype(np.uint16)
    b[b > 0] += offset
    ref = overlap(a, b)
    monkeypatch.setattr(matching, "_DIRECT_BINS", 0)
    forced = overlap(a, b)
    for x, y in ((ref.rows, forced.rows), (ref.cols, forced.cols), (ref.inter, forced.inter),
                 (ref.row_area, forced.row_area), (ref.col_area, forced.col_area)):
        np.testing.assert_array_equal(x, y)
    hinted = overlap(a, b, rows=np.array([1, 2, 3, 4, 5, 40]))  # 40 is not on the map: dropped
    np.testing.assert_array_equal(hinted.rows, ref.rows)
    np.testing.assert_array_equal(hinted.inter, ref.inter)


def test_gate_vetoes_weak_matches_against_measured_motion():
    """Crossing: the propagator handed each track the other's segment with a middling overlap."""
    segs = _boxes((30, 60), {11: (10, 20, 10, 20), 12: (10, 20, 40, 50)}, background=9)
    carried = _boxes((30, 60), {1: (10, 20, 14, 24), 2: (10, 20, 36, 46)})  # IoU 6/14 = 0.43 each
    cats = {1: PERSON, 2: PERSON, 11: PERSON, 12: PERSON, 9: SKY}
    preds = {1: Prediction(14.5, 44.5, 100.0, 0, moving=True), 2: Prediction(14.5, 14.5, 100.0, 0, moving=True)}
    args = ([CarriedMap(carried, 0)], segs, cats, is_thing, 0.3, None, 0.5, preds, 2.0)
    plain = {m.segment: (m.track, m.criterion) for m in match_segments(*args)}
    assert plain[11] == (1, "iou") and plain[12] == (2, "iou")
    gated = {m.segment: (m.track, m.criterion) for m in match_segments(*args, gate=2.5, gate_below=0.5)}
    assert gated[11] == (2, "proximity") and gated[12] == (1, "proximity")
    # a strong overlap is trusted over the motion model; so is a guess without measured velocity
    assert {m.segment: m.track for m in match_segments(*args, gate=2.5, gate_below=0.4)} == {11: 1, 12: 2, 9: None}
    still = {t: Prediction(p.cy, p.cx, p.area, 0) for t, p in preds.items()}
    args2 = ([CarriedMap(carried, 0)], segs, cats, is_thing, 0.3, None, 0.5, still, 2.0)
    assert {m.segment: m.track for m in match_segments(*args2, gate=2.5)} == {11: 1, 12: 2, 9: None}


def test_segment_centroids_exact_and_sampled():
    from annotator.stages.association import segment_centroids

    lab = _boxes((40, 60), {3: (10, 20, 0, 30), 5: (30, 31, 51, 52), 7: (0, 40, 40, 50)})
    ids = np.array([3, 5, 7])
    cy, cx, area = segment_centroids(lab, ids)
    np.testing.assert_allclose(cy, [14.5, 30, 19.5])
    np.testing.assert_allclose(cx, [14.5, 51, 44.5])
    np.testing.assert_array_equal(area, [300, 1, 400])
    sy, sx, sa = segment_centroids(lab, ids, step=2)  # the 1-pixel segment 5 is missed by sampling
    np.testing.assert_allclose(sy, cy, atol=1.0)
    np.testing.assert_allclose(sx, cx, atol=1.0)
    np.testing.assert_allclose(sa, area, rtol=0.1)
    assert sa[1] == 1 and sx[1] == 51


def test_make_propagator_falls_back_to_copy(monkeypatch):
    import sys

    assert association_propagator("copy").name == "copy"
    with pytest.raises(InputError, match="flow or copy"):
        association_propagator("memory")
    monkeypatch.setitem(sys.modules, "propagation.flow", None)  # flow unavailable: import fails
    assert association_propagator().name == "copy"
    with pytest.raises(InputError, match="--propagator copy"):
        association_propagator("flow")
