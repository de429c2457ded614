"""Flow propagator: motion follows the image, confidence drops on occlusion, demo quality target."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.jobs import Cancelled, CancelToken
from annotator.stages.evaluate import region_j, score_labels
from propagation.base import CopyPropagator, Reference
from propagation.flow import FlowConfig, FlowPropagator, guided_filter
from resources.demo import SCENARIOS, generate_demo_video


class Clip:
    """In-memory FrameSource: dense frame i is source frame ``dense[i]``."""

    def __init__(self, frames: list[np.ndarray], dense: list[int]) -> None:
        self.frames, self.dense = frames, dense
        self.source_reads = 0

    @property
    def num_frames(self) -> int:
        return len(self.dense)

    def read_frame(self, index: int) -> np.ndarray:
        return self.frames[self.dense[index]]

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        self.source_reads += 1
        return self.frames[self.dense[start]:self.dense[stop] + 1]


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[:h, :w]


def _moving_square(n: int = 6, step: int = 3, h: int = 96, w: int = 128):
    """A textured square sliding right by ``step`` px per frame over a static textured background."""
    bg = _textured(h, w, 1)
    fg = _textured(32, 32, 2) // 2 + 120
    frames, labels = [], []
    for t in range(n):
        img, lab = bg.copy(), np.ones((h, w), np.uint16)
        x0 = 20 + step * t
        img[30:62, x0:x0 + 32] = fg
        lab[30:62, x0:x0 + 32] = 2
        frames.append(img)
        labels.append(lab)
    return frames, labels


def test_follows_a_moving_square_forward_only():
    frames, labels = _moving_square()
    clip = Clip(frames, list(range(len(frames))))
    res = FlowPropagator().propagate(clip, [Reference(0, labels[0])], [1, 2, 3, 4, 5])
    for t in range(1, 6):
        assert res.labels[t].shape == labels[t].shape and res.labels[t].dtype == np.uint16
        assert region_j(res.labels[t] == 2, labels[t] == 2) > 0.8
        assert res.confidence[t].dtype == np.float32
        assert res.confidence[t].min() >= 0 and res.confidence[t].max() <= 1
    # the copy baseline is clearly worse at the end of the clip: the test can tell motion from none
    copy = CopyPropagator().propagate(clip, [Reference(0, labels[0])], [5])
    assert region_j(copy.labels[5] == 2, labels[5] == 2) < 0.7


def test_bidirectional_gap_and_track_only_in_one_reference():
    frames, labels = _moving_square(n=7)
    right = labels[6].copy()
    right[:8, :8] = 3  # a track that exists only in the right reference
    clip = Clip(frames, list(range(7)))
    res = FlowPropagator().propagate(clip, [Reference(0, labels[0]), Reference(6, right)], [1, 2, 3, 4, 5])
    assert sorted(res.labels) == [1, 2, 3, 4, 5]
    for t in range(1, 6):
        assert region_j(res.labels[t] == 2, labels[t] == 2) > 0.9
    assert (res.labels[5] == 3).sum() > 20  # near the right reference the new track is carried back


def test_confidence_is_low_where_the_object_disoccludes():
    frames, labels = _moving_square(n=2, step=8)
    clip = Clip(frames, [0, 1])
    res = FlowPropagator(refine=False).propagate(clip, [Reference(0, labels[0])], [1])
    conf = res.confidence[1]
    uncovered = np.zeros_like(conf, bool)
    uncovered[34:58, 22:26] = True  # background revealed behind the square's left edge
    static = np.zeros_like(conf, bool)
    static[70:90, 80:120] = True
    assert conf[static].mean() > 0.8
    assert conf[uncovered].mean() < conf[static].mean() - 0.3


def test_reduced_label_size_returns_full_size_labels():
    frames, labels = _moving_square(h=96, w=128)
    clip = Clip(frames, list(range(len(frames))))
    prop = FlowPropagator(max_side=64, label_side=64)
    res = prop.propagate(clip, [Reference(0, labels[0]), Reference(5, labels[5])], [2, 3])
    for t in (2, 3):
        assert res.labels[t].shape == (96, 128) and res.confidence[t].shape == (96, 128)
        assert region_j(res.labels[t] == 2, labels[t] == 2) > 0.8


def test_source_frames_are_used_and_capped():
    demo = generate_demo_video(seed=2, num_frames=11, height=72, width=128, scenario="crossing")
    dense = [0, 5, 10]
    clip = Clip(demo.frames, dense)
    prop = FlowPropagator(max_steps=2)
    chain = prop._read_chain(clip, 0, 2, None, None)
    assert clip.source_reads == 2 and len(chain.grays) == 5  # 2 steps per dense interval
    assert chain.positions == {0: 0, 1: 2, 2: 4}
    full = FlowPropagator(max_steps=0)._read_chain(clip, 0, 2, None, None)
    assert len(full.grays) == 11
    dense_only = FlowPropagator(use_source=False)._read_chain(clip, 0, 2, None, None)
    assert len(dense_only.grays) == 3


def test_progress_and_cancel():
    frames, labels = _moving_square()
    clip = Clip(frames, list(range(len(frames))))
    calls: list[tuple[int, int]] = []
    FlowPropagator().propagate(clip, [Reference(0, labels[0]), Reference(3, labels[3])], [1, 2, 4, 5],
                               progress=lambda d, t, m: calls.append((d, t)))
    assert calls and calls[-1] == (4, 4)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        FlowPropagator().propagate(clip, [Reference(0, labels[0])], [1, 2], cancel=token)


def test_invalid_options_and_inputs():
    with pytest.raises(ValueError, match="preset"):
        FlowPropagator(preset="warp9")
    with pytest.raises(ValueError, match="unknown flow option"):
        FlowPropagator(speed=3)
    with pytest.raises(ValueError, match="guard motion model"):
        FlowPropagator(guard_model="spline")
    frames, labels = _moving_square(n=3)
    clip = Clip(frames, [0, 1, 2])
    with pytest.raises(ValueError):
        FlowPropagator().propagate(clip, [], [1])
    with pytest.raises(ValueError):
        FlowPropagator().propagate(clip, [Reference(0, labels[0])], [0, 1])
    assert FlowConfig.fast().preset in ("ultrafast", "fast")


def test_guided_filter_keeps_edges_and_flattens_noise():
    guide = np.zeros((40, 40), np.float32)
    guide[:, 20:] = 1.0
    rng = np.random.default_rng(0)
    src = guide + rng.normal(0, 0.2, guide.shape).astype(np.float32)
    out = guided_filter(guide, np.dstack([src, 1 - src]), 3, 1e-3)
    assert out.shape == (40, 40, 2)
    assert np.abs(out[:, :, 0] - guide)[:, 2:-2].mean() < np.abs(src - guide)[:, 2:-2].mean() / 2
    assert out[:, 17, 0].mean() < 0.2 and out[:, 22, 0].mean() > 0.8  # the edge stays sharp


def _demo_scores(config: dict) -> list:
    scores = []
    for n, scenario in enumerate(SCENARIOS):
        demo = generate_demo_video(seed=n, num_frames=51, height=180, width=320, scenario=scenario)
        dense = demo.dense_indices(5.0)  # 11 dense frames at 5 fps from the 25 fps clip
        keys = list(range(0, len(dense), 5))  # 1 fps keyframes
        gt = {i: demo.labels[s] for i, s in enumerate(dense)}
        targets = [i for i in gt if i not in keys]
        res = FlowPropagator(**config).propagate(Clip(demo.frames, dense), [Reference(k, gt[k]) for k in keys],
                                                 targets)
        scores.append(score_labels(res.labels, {t: gt[t] for t in targets}, scenario))
    return scores


@pytest.mark.slow
def test_demo_videos_reach_mean_j_085_from_1fps_keyframes():
    scores = _demo_scores({})
    mean_j = float(np.mean([s.j for s in scores]))
    assert mean_j >= 0.85, {s.name: round(s.j, 3) for s in scores}
    assert min(s.j for s in scores) >= 0.8, {s.name: round(s.j, 3) for s in scores}


@pytest.mark.slow
def test_fast_profile_on_the_demo_needs_its_photometric_check():
    """The default (fast) profile reaches mean J 0.93 on the four demo scenarios (0.934 measured);
    without the photometric check it falls to 0.911, below the issue-15 bar."""
    from propagation.flow import PROFILES

    with_check = np.mean([s.j for s in _demo_scores(dict(PROFILES["fast"]))])
    without = np.mean([s.j for s in _demo_scores({**PROFILES["fast"], "photo_sigma": 0.0})])
    assert with_check >= 0.93 and with_check > without + 0.01, (with_check, without)


def test_threads_do_not_change_the_result():
    frames, labels = _moving_square(n=7)
    clip = Clip(frames, list(range(7)))
    refs = [Reference(0, labels[0]), Reference(6, labels[6])]
    serial = FlowPropagator(threads=1).propagate(clip, refs, [1, 2, 3, 4, 5])
    parallel = FlowPropagator(threads=2).propagate(clip, refs, [1, 2, 3, 4, 5])
    for t in range(1, 6):
        assert np.array_equal(serial.labels[t], parallel.labels[t])
        assert np.array_equal(serial.confidence[t], parallel.confidence[t])


@pytest.mark.parametrize("options", [{"jump": True}, {"graphcut": 2}, {"detail": True, "label_side": 64},
                                     {"motion_prior": 0.4}])
def test_optional_candidates_follow_the_square(options):
    """The candidates measured for issue 15 (non-successive transfer, GrabCut, full-size detail,
    motion prior) each still follow a moving square from two references."""
    frames, labels = _moving_square(n=7)
    clip = Clip(frames, list(range(7)))
    refs = [Reference(0, labels[0]), Reference(6, labels[6])]
    res = FlowPropagator(**options).propagate(clip, refs, [1, 2, 3, 4, 5])
    for t in range(1, 6):
        assert res.labels[t].shape == labels[t].shape and res.labels[t].dtype == np.uint16
        assert region_j(res.labels[t] == 2, labels[t] == 2) > 0.8, (options, t)


@pytest.mark.parametrize("option", ["detail", "thin_tiles"])
def test_a_thin_line_that_a_reduced_label_grid_loses_is_kept(option):
    h, w = 96, 128
    bg = _textured(h, w, 3)
    frames, labels = [], []
    for t in range(5):
        img, lab = bg.copy(), np.ones((h, w), np.uint16)
        lab[8:88, 40 + t] = 2  # a 1-px wide pole drifting right
        img[8:88, 40 + t] = (255, 0, 0)
        frames.append(img)
        labels.append(lab)
    clip = Clip(frames, list(range(5)))
    refs = [Reference(0, labels[0]), Reference(4, labels[4])]
    base = {"label_side": 48, "refine": False}
    coarse = FlowPropagator(**base).propagate(clip, refs, [1, 2, 3])
    fine = FlowPropagator(**base, **{option: True}).propagate(clip, refs, [1, 2, 3])
    j_coarse = np.mean([region_j(coarse.labels[t] == 2, labels[t] == 2) for t in (1, 2, 3)])
    j_fine = np.mean([region_j(fine.labels[t] == 2, labels[t] == 2) for t in (1, 2, 3)])
    assert j_fine > j_coarse + 0.2, (j_coarse, j_fine)


def test_dis_options_reach_the_flow_estimator():
    dis = FlowPropagator(preset="medium", finest_scale=2, patch_stride=4, variational_iters=0)._dis()
    assert (dis.getFinestScale(), dis.getPatchStride(), dis.getVariationalRefinementIterations()) == (2, 4, 0)
    preset = FlowPropagator(preset="medium")._dis()  # no override: the preset's own values
    assert (preset.getFinestScale(), preset.getVariationalRefinementIterations()) == (1, 5)


def test_photometric_check_is_high_on_the_same_surface_and_low_on_another():
    img = _textured(64, 96, 4)
    prop = FlowPropagator(photo_sigma=20)
    ys, xs = np.mgrid[0:64, 0:96].astype(np.float32)
    same = prop._photo_consistency(img, prop._blurred(img), np.dstack([xs, ys]))
    assert same.shape == (64, 96) and same.dtype == np.float32
    assert same.min() > 0.99
    other = img.copy()
    other[:, 48:] = 255 - other[:, 48:]  # the right half of the reference shows another surface
    mixed = prop._photo_consistency(img, prop._blurred(other), np.dstack([xs, ys]))
    assert mixed[:, :44].mean() > 0.99 and mixed[:, 52:].mean() < 0.5


def test_photometric_check_settles_references_that_disagree():
    """Two references name the same static region differently (3 on the left, 2 on the right); the
    flow is equally consistent for both chains (the source frames are identical), but only the right
    reference's image shows the colours the target has there. Without the check the tie goes to the
    forward chain; with it the chain whose reference colours match the target wins."""
    frames, labels = _moving_square(n=3, step=0)
    left_img, left_lab = frames[0].copy(), labels[0].copy()
    left_img[30:62, 20:52] = 255 - left_img[30:62, 20:52]  # the left reference shows another surface there
    left_lab[left_lab == 2] = 3

    class Clip2(Clip):
        def read_frame(self, index: int) -> np.ndarray:
            return left_img if index == 0 else super().read_frame(index)

    clip = Clip2(frames, [0, 1, 2])
    refs = [Reference(0, left_lab), Reference(2, labels[2])]
    inside = labels[1] == 2
    plain = FlowPropagator(refine=False).propagate(clip, refs, [1])
    photo = FlowPropagator(refine=False, photo_sigma=20).propagate(clip, refs, [1])
    assert region_j(plain.labels[1] == 3, inside) > 0.9  # the tie, without the check
    assert region_j(photo.labels[1] == 2, inside) > 0.9
    assert region_j(photo.labels[1] == 1, labels[1] == 1) > 0.95  # the background is untouched


def test_thin_tiles_keep_a_pole_through_the_full_pipeline():
    """With refinement and the photometric check on, as in the profiles: a pole drifting over a
    textured background survives a 48 px label grid only when its tiles are redone at full size
    (3 px wide: the guided filter's refinement, radius 3, does not keep 1 px structures anyway)."""
    h, w = 96, 128
    bg = _textured(h, w, 5)
    frames, labels = [], []
    for t in range(5):
        img, lab = bg.copy(), np.ones((h, w), np.uint16)
        lab[8:88, 40 + t:43 + t] = 2
        img[8:88, 40 + t:43 + t] = (255, 0, 0)
        frames.append(img)
        labels.append(lab)
    clip = Clip(frames, list(range(5)))
    refs = [Reference(0, labels[0]), Reference(4, labels[4])]
    base = {"label_side": 48, "photo_sigma": 20.0, "refine_radius": 3}
    js = {}
    for on in (False, True):
        res = FlowPropagator(**base, thin_tiles=on).propagate(clip, refs, [1, 2, 3])
        js[on] = np.mean([region_j(res.labels[t] == 2, labels[t] == 2) for t in (1, 2, 3)])
    assert js[True] > 0.6 and js[True] > js[False] + 0.4, js
