"""Cityscapes-VPS VPQ (VPSNet ``tools/eval_vpq.py``): vectors computed by hand from the released rules.

Vector CV1 (id switch, 6 annotated frames, 2x4 pixels): road (stuff, GT id 1) on the top row, one
car (GT id 2) on the bottom row; the prediction gives the car id 5 on frames 0-2 and id 6 on 3-5.
  k=0  (1 frame,  6 windows): car tp 6                    -> PQ_car 1
  k=5  (2 frames, 5 windows): window 2 splits 4/4 px, IoU 4/8 = 0.5 is not > 0.5: fn 1, fp 2;
                              car tp 4, iou 4             -> 4 / 5.5 = 0.727273
  k=10 (3 frames, 4 windows): IoU 1, 8/12, 8/12, 1, fp 2  -> 3.333333 / 5 = 0.666667
  k=15 (4 frames, 3 windows): IoU 12/16 TP + fp; 8/16 fn + 2 fp; 12/16 TP + fp
                              tp 2, iou 1.5, fp 4, fn 1   -> 1.5 / 4.5 = 0.333333
  road PQ 1 at every k; VPQ all = mean_k (1 + PQ_car) / 2 = 84.090909, things 68.181818, stuff 100.
Vector CV2 (two crowd regions of one class): the FP is measured against the crowd region inserted
last into the window's segment list only (``crowd_labels_dict[cat] = gt_label``).
"""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.metrics.cityscapes_vps import (
    annotated_positions,
    k_of,
    official_chunks,
    score_cityscapes_vps,
    video_stats,
)
from annotator.metrics.types import Categories, Segment, VideoPair, make_frame
from annotator.taxonomy import cityscapes_vps_taxonomy

ROAD, PERSON, CAR = 0, 11, 13
CATS = Categories.from_taxonomy(cityscapes_vps_taxonomy())


def _switch_video() -> VideoPair:
    gt, pred = [], []
    for t in range(6):
        g = np.array([[1, 1, 1, 1], [2, 2, 2, 2]], np.int32)
        car = 5 if t < 3 else 6
        p = np.array([[1, 1, 1, 1], [car] * 4], np.int32)
        gt.append(make_frame(g, {1: ROAD, 2: CAR}, f"f{t}"))
        pred.append(make_frame(p, {1: ROAD, car: CAR}, f"f{t}"))
    return VideoPair("0001", gt, pred)


def test_cv1_id_switch_per_k_and_final():
    res = score_cityscapes_vps([_switch_video()], CATS)
    assert list(res.per_k) == [0, 5, 10, 15]
    car = {k: res.per_class[k][CAR] for k in res.per_k}
    assert (car[0]["tp"], car[0]["fp"], car[0]["fn"]) == (6, 0, 0)
    assert (car[5]["tp"], car[5]["fp"], car[5]["fn"]) == (4, 2, 1)
    assert (car[10]["tp"], car[10]["fp"], car[10]["fn"]) == (4, 2, 0)
    assert (car[15]["tp"], car[15]["fp"], car[15]["fn"]) == (2, 4, 1)
    assert car[10]["iou"] == pytest.approx(1 + 2 / 3 + 2 / 3 + 1)
    expected_car = [1.0, 4 / 5.5, (10 / 3) / 5, 1.5 / 4.5]
    for k, pq in zip((0, 5, 10, 15), expected_car, strict=True):
        assert res.per_k[k]["things"].pq == pytest.approx(pq)
        assert res.per_k[k]["stuff"].pq == pytest.approx(1.0)
        assert res.per_k[k]["all"].pq == pytest.approx((1 + pq) / 2)
    assert res.vpq["all"] == pytest.approx(84.0909091, abs=1e-6)
    assert res.vpq["things"] == pytest.approx(68.1818182, abs=1e-6)
    assert res.vpq["stuff"] == pytest.approx(100.0)
    text = res.text({CAR: "car"})
    assert "vpq_all:84.0909" in text and "vpq_thing:68.1818" in text


def test_window_loop_equals_shared_engine_when_rules_coincide():
    pair = _switch_video()
    _, a = video_stats(pair, CATS)
    _, b = video_stats(pair, CATS, force_window_loop=True)
    for L in (1, 2, 3, 4):
        for name in ("iou", "tp", "fp", "fn"):
            assert np.allclose(getattr(a.by_length[L], name), getattr(b.by_length[L], name)), (L, name)


def _crowd_video(order: tuple[int, ...], frames: int = 1) -> VideoPair:
    # rows: crowd A (id 20), crowd B (id 21), person (id 3); prediction 7 lies on crowd A only
    g = np.array([[20] * 4, [21] * 4, [3] * 4], np.int32)
    p = np.array([[7] * 4, [0] * 4, [8] * 4], np.int32)
    segs = {20: Segment(PERSON, iscrowd=True), 21: Segment(PERSON, iscrowd=True), 3: Segment(PERSON)}
    gt = [make_frame(g, {i: segs[i] for i in order}, f"f{t}") for t in range(frames)]
    pred = [make_frame(p, {7: PERSON, 8: PERSON}, f"f{t}") for t in range(frames)]
    return VideoPair("0002", gt, pred)


def test_cv2_only_the_last_crowd_region_of_a_class_counts():
    # B inserted last: the FP on crowd A is not excused -> tp 1, fp 1, PQ 2/3
    res = score_cityscapes_vps([_crowd_video((20, 21, 3))], CATS)
    pc = res.per_class[0][PERSON]
    assert (pc["tp"], pc["fp"], pc["fn"]) == (1, 1, 0)
    assert res.per_k[0]["things"].pq == pytest.approx(2 / 3)
    # A inserted last: more than half of the FP lies on it -> ignored, PQ 1
    res = score_cityscapes_vps([_crowd_video((21, 20, 3))], CATS)
    assert res.per_class[0][PERSON]["fp"] == 0
    assert res.per_k[0]["things"].pq == pytest.approx(1.0)
    # one frame: k = 5, 10, 15 and the stuff group do not exist; left out and said so
    assert list(res.per_k) == [0] and res.per_k[0]["stuff"] is None
    assert res.vpq["stuff"] is None and any("k=5" in n for n in res.notes)
    assert any("do not have 6 annotated frames" in n for n in res.notes)


def test_cv3_void_and_single_crowd_excuse_a_prediction():
    g = np.array([[0, 0, 9, 9], [3, 3, 3, 3]], np.int32)
    p = np.array([[7, 7, 7, 7], [8, 8, 8, 8]], np.int32)
    frames = [(make_frame(g, {9: Segment(PERSON, iscrowd=True), 3: Segment(PERSON)}),
               make_frame(p, {7: PERSON, 8: PERSON})) for _ in range(6)]
    pair = VideoPair("0003", [a for a, _ in frames], [b for _, b in frames])
    res = score_cityscapes_vps([pair], CATS)
    for k in (0, 5, 10, 15):
        pc = res.per_class[k][PERSON]
        assert (pc["fp"], pc["fn"]) == (0, 0)
        assert pc["tp"] == 6 - k // 5
    assert res.vpq["things"] == pytest.approx(100.0)


def test_json_area_of_gt_is_used_as_the_released_script_does():
    # GT car claims area 8 in the JSON but has 4 pixels: IoU 4 / (4 + 8 - 4) = 0.5, not a match
    g = np.array([[1, 1, 1, 1], [2, 2, 2, 2]], np.int32)
    gt = [make_frame(g, {1: ROAD, 2: Segment(CAR, area=8)})] * 6
    pred = [make_frame(g, {1: ROAD, 2: CAR})] * 6
    res = score_cityscapes_vps([VideoPair("0004", gt, pred)], CATS)
    assert res.per_class[0][CAR]["tp"] == 0 and res.per_class[0][CAR]["fn"] == 6
    clean = score_cityscapes_vps([VideoPair("0004", gt, pred)], CATS, mode="clean")
    assert clean.per_class[0][CAR]["tp"] == 6


def test_official_chunking_and_helpers():
    a = _switch_video()
    b = VideoPair("0005", a.gt[:3], a.pred[:3])
    c = VideoPair("0006", a.gt[3:], a.pred[3:])
    chunks = official_chunks([b, c])
    assert len(chunks) == 1 and len(chunks[0].gt) == 6
    same = score_cityscapes_vps([b, c], CATS, grouping="official")
    assert same.vpq["all"] == pytest.approx(84.0909091, abs=1e-6)
    per_video = score_cityscapes_vps([b, c], CATS)
    assert per_video.vpq["all"] != pytest.approx(same.vpq["all"])
    assert [k_of(n) for n in (1, 2, 3, 4)] == [0, 5, 10, 15]
    assert annotated_positions(list(range(3, 33))) == [0, 5, 10, 15, 20, 25]
    with pytest.raises(InputError):
        score_cityscapes_vps([b], CATS, grouping="bogus")


def test_unknown_category_is_an_error():
    g = np.array([[1, 1]], np.int32)
    pair = VideoPair("0007", [make_frame(g, {1: ROAD})], [make_frame(g, {1: 99})])
    with pytest.raises(InputError, match="unknown category"):
        score_cityscapes_vps([pair], CATS)


def test_project_ground_truth_counts_every_fifth_source_frame(tmp_path):
    from annotator.metrics.cityscapes_vps import open_pairs, score_pair_source
    from annotator.project import FrameState, Project, SourceInfo

    proj = Project.create(tmp_path / "p.vpsproj", taxonomy=cityscapes_vps_taxonomy())
    n = 11  # source frames 0..10 all present: annotated ones are 0, 5, 10
    src = SourceInfo(kind="folder", path="x", fps=17.0, num_source_frames=n, source_indices=list(range(n)),
                     original_size=(2, 4))
    video = proj.create_video("v", [f"f{i:02d}" for i in range(n)], 2, 4, source=src)
    road, car = video.new_track(ROAD), video.new_track(CAR)
    for i in range(n):
        video.write_label(i, np.array([[road.id] * 4, [car.id] * 4], np.uint16), state=FrameState.REVIEWED)
    video.save()
    video.close()
    pairs = open_pairs(proj.path, proj.path)
    assert pairs.gt.frame_names("v") == ["f00", "f05", "f10"]
    res = score_pair_source(pairs)
    assert list(res.per_k) == [0, 5, 10]  # 3 annotated frames: no window of k = 15
    assert res.per_class[0][CAR]["tp"] == 3 and res.vpq["all"] == pytest.approx(100.0)
    with pytest.raises(InputError, match="project against a project"):
        open_pairs(proj.path, tmp_path)
