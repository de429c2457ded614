"""Automatic review flags: each injected error kind is found, clean videos stay quiet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator.review import (
    Flag,
    FlagConfig,
    VideoLabels,
    compute_flags,
    dedupe,
    detect_flags,
    next_flag,
    on_new_reference,
    rank,
    visible,
)
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import SCENARIOS, generate_demo_video

TAX = vipseg_taxonomy()
CAR = 48


def _dense(scenario: str, seed: int = 7, frames: int = 51, pan: float = 0.0):
    demo = generate_demo_video(seed=seed, num_frames=frames, scenario=scenario, pan=pan)
    return [demo.labels[s].copy() for s in demo.dense_indices(5.0)], dict(demo.tracks)


@pytest.fixture(scope="module")
def videos():
    return {s: _dense(s) for s in SCENARIOS}


def _src(labels, cats, machine=None, conf=None) -> VideoLabels:
    return VideoLabels(len(labels), cats, lambda t: t in cats and TAX.is_thing(cats[t]), lambda i: labels[i],
                       machine=lambda i: (machine or {}).get(i, set()), confidence=lambda i: (conf or {}).get(i),
                       names=lambda c: TAX.get(c).name)


def _flags(labels, cats, **kw) -> list[Flag]:
    return visible(detect_flags(_src(labels, cats, **kw)))


def _hit(flags, tracks, frames) -> bool:
    return any(set(f.tracks) & set(tracks) and any(abs(a - b) <= 1 for a in (f.frames or (f.frame,)) for b in frames)
               for f in flags)


def _present(labels, t, frames, min_area=150) -> bool:
    return all(np.count_nonzero(labels[i] == t) >= min_area for i in frames)


def test_clean_ground_truth_has_no_visible_flags(videos):
    for scenario, (labels, cats) in videos.items():
        assert _flags(labels, cats) == [], scenario
    labels, cats = _dense("mixed", seed=3, frames=51, pan=1.5)  # panning camera: the stuff moves too
    assert _flags(labels, cats) == []


def test_identity_switch_is_found_at_every_frame(videos):
    labels, cats = videos["crossing"]
    tried = found = 0
    for f in range(1, len(labels) - 1):
        if not (_present(labels, 5, [f - 1, f]) and _present(labels, 6, [f - 1, f])):
            continue
        bad = [lab.copy() for lab in labels]
        for i in range(f, len(bad)):
            m5, m6 = bad[i] == 5, bad[i] == 6
            bad[i][m5], bad[i][m6] = 6, 5
        flags = _flags(bad, cats)
        tried += 1
        found += _hit(flags, (5, 6), (f,))
        if f == 3:
            kinds = {fl.kind for fl in flags if set(fl.tracks) == {5, 6}}
            assert "identity_switch" in kinds
    assert tried >= 5 and found / tried >= 0.9


def test_dropped_mask_void_or_filled_is_found(videos):
    from scipy.ndimage import distance_transform_edt

    labels, cats = videos["mixed"]
    tried = found = 0
    for t in (5, 7):
        for f in range(1, len(labels) - 1, 2):
            if not _present(labels, t, [f - 1, f, f + 1]):
                continue
            for void in (True, False):
                bad = [lab.copy() for lab in labels]
                hole = bad[f] == t
                if void:
                    bad[f][hole] = 0
                else:
                    _, (iy, ix) = distance_transform_edt(hole, return_indices=True)
                    bad[f][hole] = bad[f][iy[hole], ix[hole]]
                flags = _flags(bad, cats)
                tried += 1
                found += _hit(flags, (t,), (f,)) or (void and any(fl.kind == "unlabelled" and fl.frame == f
                                                                  for fl in flags))
                if not void and t == 5 and f == 5:
                    assert any(fl.kind == "dropped" and fl.track == 5 and fl.frame == 5 for fl in flags)
    assert tried >= 10 and found / tried >= 0.9


def test_area_jump_grow_and_shrink_is_found(videos):
    labels, cats = videos["occlusion"]
    k3 = np.ones((3, 3), np.uint8)
    tried = found = 0
    for t in (5, 6, 7):
        for f in range(1 + t % 2, len(labels) - 1, 2):
            if not _present(labels, t, [f - 1, f, f + 1]):
                continue
            for grow in (True, False):
                bad = [lab.copy() for lab in labels]
                mask = (bad[f] == t).astype(np.uint8)
                if grow:
                    bad[f][cv2.dilate(mask, k3, iterations=3) > 0] = t
                else:
                    keep = cv2.erode(mask, k3, iterations=2)
                    if keep.sum() > 0.6 * mask.sum():
                        keep = cv2.erode(mask, k3, iterations=4)
                    bad[f][(mask > 0) & (keep == 0)] = 3  # the pixels go to the grass
                ratio = np.count_nonzero(bad[f] == t) / mask.sum()
                if 0.65 < ratio < 1.5:
                    continue  # not a jump worth flagging
                tried += 1
                flags = _flags(bad, cats)
                found += _hit(flags, (t,), (f,))
    assert tried >= 8 and found / tried >= 0.9


def test_wrong_class_over_a_span_is_a_class_flip(videos):
    labels, cats = videos["mixed"]
    bad = [lab.copy() for lab in labels]
    cats2 = {**cats, 20: CAR}
    for i in (4, 5, 6):
        bad[i][bad[i] == 5] = 20
    flags = _flags(bad, cats2)
    flips = [f for f in flags if f.kind == "class_flip"]
    assert any(set(f.tracks) == {5, 20} and f.frame == 4 for f in flips)
    assert "person" in flips[0].reason and "car" in flips[0].reason
    assert all(set(f.tracks) & {5, 20} for f in flags)  # nothing else flagged
    # the flip back is seen too where the object is not mostly hidden (crossing, frames 3-4)
    labels, cats = videos["crossing"]
    bad = [lab.copy() for lab in labels]
    for i in (3, 4):
        bad[i][bad[i] == 6] = 20
    flips = [f for f in _flags(bad, {**cats, 20: CAR}) if f.kind == "class_flip"]
    pair = [f for f in flips if set(f.tracks) == {6, 20}]
    # a short span is one flag from its start to its end
    assert pair and pair[0].frame == 3 and {3, 5} <= set(pair[0].frames)


def test_unlabelled_pixels_and_fragments(videos):
    labels, cats = videos["enter_leave"]
    bad = [lab.copy() for lab in labels]
    bad[6][10:40, 10:60] = 0
    bad[3][5:9, 150:155] = 5  # a speck of track 5 far from its body
    flags = detect_flags(_src(bad, cats))
    assert any(f.kind == "unlabelled" and f.frame == 6 and f.score >= 0.5 for f in flags)
    frag = [f for f in flags if f.kind == "fragment" and f.frame == 3 and f.track == 5]
    assert frag and frag[0].score < FlagConfig().min_score  # a hint, shown on demand


def test_low_confidence_only_for_machine_tracks(videos):
    labels, cats = videos["mixed"]
    h, w = labels[0].shape
    conf = {4: np.zeros((h // 4, w // 4), np.float32)}
    machine = {4: {5, 6}}
    flags = detect_flags(_src(labels, cats, machine=machine, conf=conf))
    low = {f.track for f in flags if f.kind == "low_confidence"}
    assert low == {5, 6}
    assert all(f.score < FlagConfig().min_score for f in flags if f.kind == "low_confidence")
    none = detect_flags(_src(labels, cats, machine={}, conf=conf))  # human frame: stale map ignored
    assert not [f for f in none if f.kind == "low_confidence"]


def test_dedupe_rank_and_navigation():
    a = Flag("low_iou", 5, 3, 0.6, "x", (4, 5))
    b = Flag("area_jump", 5, 3, 0.7, "y", (4, 5, 6))
    c = Flag("identity_switch", 9, 3, 0.9, "z", (8, 9), 4)
    d = Flag("identity_switch", 9, 4, 0.8, "z", (8, 9), 3)
    e = Flag("unlabelled", 2, 0, 0.55, "v", (2,))
    out = rank(dedupe([a, b, c, d, e]))
    assert [f.kind for f in out] == ["identity_switch", "area_jump", "unlabelled"]
    assert out[1].score == 0.7 and out[0].score == 0.9
    assert next_flag(out, 5).frame == 9 and next_flag(out, 9).frame == 2  # wraps around
    assert next_flag(out, 5, forward=False).frame == 2
    assert next_flag(out, 0, track=4).frame == 9 and next_flag(out, 0, track=99) is None
    assert Flag.from_json(c.to_json()) == c


def test_project_video_flags_and_reference_rule(tmp_path):
    from annotator.project import FrameState, Project
    from annotator.review.store import ReviewStore
    from annotator.stages.propagate import FLAGS_ARRAY, load_confidence, store_confidence
    from resources.demo import write_demo_project

    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("mixed",), num_frames=51, source=None,
                              state=FrameState.PROPAGATED)
    with Project.open(path).open_video("demo_mixed") as v:
        lab = v.read_label(6)
        v.write_label(6, np.where(lab == 7, 0, lab).astype(np.uint16))  # a dropped mask, left void
        store_confidence(v, 6, np.zeros(v.shape, np.float32))
        v.save_array(FLAGS_ARRAY, 6, np.zeros((0, 6), np.int32))
        flags = compute_flags(v)
        assert any(f.frame == 6 and f.kind in ("dropped", "unlabelled") for f in visible(flags))
        assert any(f.kind == "low_confidence" and f.frame == 6 for f in flags)
        store = ReviewStore(v)
        store.set_flags(flags)
        removed = on_new_reference(v, 6)
        assert load_confidence(v, 6) is None and v.load_array(FLAGS_ARRAY, 6) is None
        assert any("review flag" in r for r in removed)
        store.reload()
        assert all(6 not in (f.frame, *f.frames) for f in store.flags)


def test_track_tube_crops_the_track_on_every_frame(tmp_path):
    from annotator.project import Project
    from annotator.review import track_tube
    from resources.demo import write_demo_project

    path = write_demo_project(tmp_path / "t.vpsproj", scenarios=("crossing",), num_frames=21, source=None)
    with Project.open(path).open_video("demo_crossing", readonly=True) as v:
        tube = track_tube(v, 7, cell=64)
        assert [c.frame for c in tube] == v.track_frames(7) and tube
        sides = {(c.box[2] - c.box[0], c.box[3] - c.box[1]) for c in tube}
        assert len(sides) == 1  # one crop size over the whole tube
        for c in tube:
            assert max(c.image.shape[:2]) == 64 and c.image.shape[:2] == c.mask.shape and c.mask.any()
            lab = v.read_label(c.frame)
            ys, xs = np.nonzero(lab == 7)
            assert c.box[0] <= xs.min() and xs.max() < c.box[2] and c.box[1] <= ys.min() and ys.max() < c.box[3]
        assert track_tube(v, 7, frames=[]) == []


def test_progress_cancel_and_frame_range(videos):
    from annotator.jobs import Cancelled, CancelToken

    labels, cats = videos["crossing"]
    bad = [lab.copy() for lab in labels]
    bad[8][bad[8] == 7] = 0  # an error outside the range below
    calls = []
    flags = detect_flags(_src(bad, cats), frame_range=(0, 5), progress=lambda d, t, m: calls.append((d, t)))
    assert calls[-1] == (6, 6) and all(f.frame <= 5 for f in flags)
    assert any(f.frame == 8 for f in visible(detect_flags(_src(bad, cats))))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        detect_flags(_src(bad, cats), cancel=token)
