"""The review queue: order, partition, the sample rule, suggestions, sure gaps, error map, bulk accept."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.project import FrameState, Project
from annotator.review import (
    accept_rest,
    build_queue,
    pixel_error_map,
    sample_size,
    suggest_keyframes,
    sure_gaps,
)


def _video(tmp_path):
    proj = Project.create(tmp_path / "q.vpsproj")
    video = proj.create_video("v", [f"{i:03d}" for i in range(8)], 48, 64, keyframes=[0, 7])
    rng = np.random.default_rng(0)
    t = video.new_track(60).id
    for i in range(8):
        img = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
        img[10:30, 10 + i:30 + i] = 220
        video.write_frame_image(i, img)
        lab = np.zeros((48, 64), np.uint16)
        if i in (0, 7):
            lab[10:30, 10 + i:30 + i] = t
            video.write_label(i, lab, FrameState.MANUAL, {t: FrameState.MANUAL})
        else:
            shift = 0 if i < 4 else 12  # frames 4-6 drifted far off the object
            lab[10:30, 10 + i + shift:30 + i + shift] = t
            if i == 5:
                lab[:] = 0  # dropped although both references show it
            video.write_label(i, lab, FrameState.PROPAGATED, {t: FrameState.PROPAGATED} if lab.any() else {})
    video.save()
    return video, t


def test_sample_size_rule():
    assert sample_size(0) == 0
    assert sample_size(5) == 5  # a small rest is looked at whole
    assert sample_size(10_000) == 22  # ln(0.1) / ln(0.9) ~ 21.9
    big = sample_size(10_000, confidence=0.95, max_rate=0.05)
    assert 55 <= big <= 60
    with pytest.raises(InputError):
        sample_size(10, confidence=1.5)


def test_queue_partition_order_and_accept(tmp_path):
    video, t = _video(tmp_path)
    q = build_queue(video, {"review_queue_p": 0.5})
    pairs = {(i.frame, i.track) for i in q.items} | set(q.rest)
    assert pairs == {(i, t) for i in range(1, 7)}
    assert not {(i.frame, i.track) for i in q.items} & set(q.rest)
    gains = [i.gain for i in q.items]
    assert gains == sorted(gains, reverse=True)
    assert set(q.sample) <= set(q.rest) and len(q.sample) == sample_size(len(q.rest))
    # the dropped mask is doubted more than a mask matching both references
    assert q.p_bad[(5, t)] > q.p_bad[(1, t)]
    with pytest.raises(InputError):
        accept_rest(video, q)
    with pytest.raises(InputError):
        accept_rest(video, q, sample_errors=1)
    done = accept_rest(video, q, sample_errors=0)
    queued = {i.frame for i in q.items}
    assert all(video.frame_state(f) == FrameState.REVIEWED for f in done)
    assert not set(done) & queued


def test_suggestions_gaps_and_error_map(tmp_path):
    video, t = _video(tmp_path)
    sugg = suggest_keyframes(video, max_count=2, settings={"keyframe_cost_masks": 0.0})
    assert sugg and all(0 < s.frame < 7 for s in sugg)
    assert [s.gain for s in sugg] == sorted((s.gain for s in sugg), reverse=True)
    for a, b in sure_gaps(video):
        assert 0 < a <= b < 7
    m = pixel_error_map(video, 4)
    assert m.shape == (48, 64) and m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1
    assert not pixel_error_map(video, 0).any()  # a reference frame: nothing doubted
