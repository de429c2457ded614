"""Shape guard and motion model on synthetic data: collapsed or exploded masks are caught and replaced."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.stages.evaluate import region_j
from propagation.base import Reference
from propagation.motion_model import TrackMotion, fit_motions, warp_mask
from propagation.shape_guard import COLLAPSE, EXPLOSION, ChainEvidence, GuardConfig, guard_frame

H, W = 120, 160


def _square(x0: int, y0: int, size: int = 24, k: int = 2) -> np.ndarray:
    lab = np.ones((H, W), np.uint16)  # track 1: background stuff
    lab[y0:y0 + size, x0:x0 + size] = k
    return lab


def _coords(dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """Coordinate map of a motion ref -> target: x_t = scale * x_r + dx (so x_r = (x_t - dx) / scale)."""
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return np.dstack([(xs - dx) / scale, (ys - dy) / scale]).astype(np.float32)


def _chain(name: str, ref: np.ndarray, label: np.ndarray, coords: np.ndarray, weight: float = 1.0,
           conf: np.ndarray | None = None, index: int = 0) -> ChainEvidence:
    c = np.ones((H, W), np.float32) if conf is None else conf
    return ChainEvidence(name, index, ref, label, c, coords, weight)


def test_fit_motion_recovers_an_affine_map_despite_outliers():
    ref = _square(40, 40, 30)
    coords = _coords(12.0, -5.0, 1.2)
    label = ref[np.clip(np.round(coords[..., 1]).astype(int), 0, H - 1),
                np.clip(np.round(coords[..., 0]).astype(int), 0, W - 1)]
    coords = coords.copy()
    rng = np.random.default_rng(0)
    bad = rng.random((H, W)) < 0.2  # a fifth of the correspondences are garbage
    coords[bad] += rng.normal(0, 15, (int(bad.sum()), 2)).astype(np.float32)
    fits = fit_motions(coords, np.ones((H, W), np.float32), label, [2])
    m = fits[2]
    assert m.support > 0.6
    assert m.matrix[:2, :2] == pytest.approx(np.diag([1.2, 1.2]), abs=0.05)
    assert m.matrix[:2, 2] == pytest.approx([12.0, -5.0], abs=1.5)
    warped = warp_mask(ref == 2, m, (H, W))
    assert warped.sum() == pytest.approx(30 * 30 * 1.44, rel=0.1)


def test_fit_motion_needs_enough_confident_pixels():
    ref = _square(40, 40, 4)  # 16 pixels: fewer than min_points
    assert fit_motions(_coords(0, 0), np.ones((H, W), np.float32), ref, [2]) == {}
    ref = _square(40, 40, 30)
    assert fit_motions(_coords(0, 0), np.zeros((H, W), np.float32), ref, [2]) == {}  # nothing confident


def test_explosion_after_the_last_keyframe_is_clipped_to_the_moving_shape():
    """One-sided chain (extrapolation): uncovered background dragged along doubles the mask."""
    ref = _square(30, 40)
    truth = _square(50, 40)  # moved 20 px right
    exploded = truth.copy()
    exploded[40:64, 20:50] = 2  # the trail the object left behind, carried along by the flow
    conf = np.ones((H, W), np.float32)
    conf[40:64, 20:50] = 0.05  # forward-backward check failed there
    ch = _chain("forward", ref, exploded, _coords(20, 0), conf=conf)
    out, out_conf, events = guard_frame(7, exploded, conf, [ch])
    assert [e.kind for e in events] == [EXPLOSION]
    assert events[0].frame == 7 and events[0].track == 2 and "forward motion" in events[0].reason
    assert events[0].fallback
    assert region_j(out == 2, truth == 2) > 0.85
    assert region_j(exploded == 2, truth == 2) < 0.5  # the test itself is not trivial
    # pixels the track lost went back to the background track, not to void
    assert set(np.unique(out[40:64, 20:50]).tolist()) <= {1, 2} and (out[40:64, 20:48] == 1).all()
    assert out_conf[out == 2].max() <= GuardConfig().fallback_conf


def test_explosion_without_clipping_takes_the_warped_keyframe_shape():
    ref = _square(30, 40)
    truth = _square(50, 40)
    exploded = truth.copy()
    exploded[20:90, 10:110] = 2
    conf = np.where(exploded != truth, 0.0, 1.0).astype(np.float32)
    ch = _chain("forward", ref, exploded, _coords(20, 0), conf=conf)
    out, _, events = guard_frame(3, exploded, conf, [ch], GuardConfig(clip=False))
    assert events and events[0].kind == EXPLOSION and "warped" in events[0].fallback
    assert region_j(out == 2, truth == 2) > 0.9


def test_collapse_of_the_fusion_falls_back_to_a_chain():
    """Both chains hold the object (unsure), their fusion kept one pixel: take the nearer chain."""
    left, right = _square(30, 40), _square(70, 40)
    truth = _square(50, 40)
    fused = np.ones((H, W), np.uint16)
    fused[50, 60] = 2
    low = np.full((H, W), 0.3, np.float32)
    fw = _chain("forward", left, truth, _coords(20, 0), 0.6, low, 0)
    bw = _chain("backward", right, truth, _coords(-20, 0), 0.4, low, 10)
    out, _, events = guard_frame(4, fused, low, [fw, bw])
    assert [e.kind for e in events] == [COLLAPSE]
    assert "forward chain" in events[0].fallback
    assert region_j(out == 2, truth == 2) == pytest.approx(1.0)


def test_collapse_without_any_evidence_is_reported_and_kept():
    """Both chains lost the object and no motion can be fitted: maybe it is hidden; flag, do not invent."""
    left, right = _square(30, 40), _square(70, 40)
    gone = np.ones((H, W), np.uint16)
    zero = np.zeros((H, W), np.float32)
    fw = _chain("forward", left, gone, _coords(20, 0), 0.5, zero, 0)
    bw = _chain("backward", right, gone, _coords(-20, 0), 0.5, zero, 10)
    out, _, events = guard_frame(5, gone, zero, [fw, bw])
    assert (out == gone).all()
    assert len(events) == 1 and events[0].kind == COLLAPSE and events[0].fallback == ""
    assert "kept" in events[0].reason


def test_plausible_masks_and_scale_changes_pass_untouched():
    ref = _square(30, 30, 30)
    coords = _coords(10, 5, 1.4)  # the object approaches: area x 1.96
    grown = ref[np.clip(np.round(coords[..., 1]).astype(int), 0, H - 1),
                np.clip(np.round(coords[..., 0]).astype(int), 0, W - 1)]
    conf = np.ones((H, W), np.float32)
    out, out_conf, events = guard_frame(2, grown, conf, [_chain("forward", ref, grown, coords)])
    assert events == [] and out is grown and out_conf is conf
    disabled = GuardConfig(enabled=False)
    tiny = np.ones((H, W), np.uint16)
    assert guard_frame(2, tiny, conf, [_chain("forward", ref, tiny, coords)], disabled)[2] == []


def test_event_box_scales_to_the_frame():
    ref = _square(30, 40)
    exploded = _square(50, 40)
    exploded[40:64, 20:50] = 2
    conf = np.where(exploded == 2, 1.0, 1.0).astype(np.float32)
    conf[40:64, 20:50] = 0.0
    _, _, events = guard_frame(1, exploded, conf, [_chain("forward", ref, exploded, _coords(20, 0), conf=conf)])
    x0, y0, x1, y1 = events[0].bbox
    assert (x0, y0) == (20, 40) and x1 >= 74 and y1 >= 64
    big = events[0].scaled(2.0, 2.0)
    assert big.bbox[:2] == (40, 80) and big.kind == events[0].kind and big.reason == events[0].reason


def test_track_motion_properties():
    m = TrackMotion(np.array([[2.0, 0, 0], [0, 0.5, 0], [0, 0, 1]]), 30, 40)
    assert m.support == pytest.approx(0.75) and m.scale == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fit_motions(_coords(0, 0), np.ones((H, W), np.float32), _square(1, 1), [2], model="spline")


# ------------------------------------------------------------------ wired into the flow propagator
class _Clip:
    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def read_frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        return self.frames[start:stop + 1]


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[:h, :w]


def _sliding_square(n: int, step: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    bg, fg = _textured(H, W, 1), _textured(24, 24, 2) // 2 + 120
    frames, labels = [], []
    for t in range(n):
        img, lab = bg.copy(), np.ones((H, W), np.uint16)
        x0 = 20 + step * t
        img[40:64, x0:x0 + 24] = fg
        lab[40:64, x0:x0 + 24] = 2
        frames.append(img)
        labels.append(lab)
    return frames, labels


class _DraggingFlow:
    """Wraps ``FlowPropagator._sample`` so that, from target frame 4 on, the chain also drags the
    background the square uncovered (label 2 on a growing trail, confidence ~0): the explosion."""

    def __init__(self, prop, frames_from: int = 4) -> None:
        self.prop, self.frames_from = prop, frames_from
        self.orig = prop._sample
        prop._sample = self.sample
        self.calls = 0

    def sample(self, ref, coords, conf, shape):
        lab, c, grid = self.orig(ref, coords, conf, shape)
        mask = lab == 2
        cols = np.nonzero(mask.any(axis=0))[0]
        if cols.size and cols[0] > 20 + 3 * self.frames_from - 2:
            lab, c = lab.copy(), c.copy()
            trail = np.zeros_like(mask)
            trail[40:64, 2:cols[0]] = True
            lab[trail], c[trail] = 2, 0.02
        return lab, c, grid


def test_flow_extrapolation_catches_a_dragged_mask_and_reports_it():
    from propagation.flow import FlowPropagator

    frames, labels = _sliding_square(9)
    clip = _Clip(frames)
    targets = list(range(1, 9))
    plain = FlowPropagator(guard=False, refine=False)  # no refinement: the guard alone must catch it
    _DraggingFlow(plain)
    bad = plain.propagate(clip, [Reference(0, labels[0])], targets)
    guarded = FlowPropagator(refine=False)
    _DraggingFlow(guarded)
    res = guarded.propagate(clip, [Reference(0, labels[0])], targets)
    limit = GuardConfig().explode  # the square keeps its size: the keyframe's area is the truth's
    exploded = [t for t in targets if (bad.labels[t] == 2).sum() > limit * (labels[t] == 2).sum()]
    assert exploded and exploded[-1] == 8  # the dragging wrapper does make the mask explode
    assert sorted(res.events) == exploded  # exactly the exploded frames are named...
    for t in targets:
        truth = labels[t] == 2
        if t in exploded:  # ...and replaced by something of the right size and place
            area = int((res.labels[t] == 2).sum())
            assert GuardConfig().collapse * truth.sum() <= area <= limit * truth.sum(), (t, area)
            assert region_j(res.labels[t] == 2, truth) > region_j(bad.labels[t] == 2, truth) + 0.2, t
            (e,) = res.events[t]
            assert e.kind == EXPLOSION and e.track == 2 and "forward motion" in e.reason and e.bbox[2] > e.bbox[0]
        else:
            assert np.array_equal(res.labels[t], bad.labels[t])


def test_flow_extrapolation_degrades_gracefully():
    """Real DIS flow, one reference, 8 frames of extrapolation: the uncovered background behind the
    square slowly joins its mask; the guard stops the growth and names the frames where it did."""
    from propagation.flow import FlowPropagator

    frames, labels = _sliding_square(9)
    targets = list(range(1, 9))
    res = FlowPropagator().propagate(_Clip(frames), [Reference(0, labels[0])], targets)
    plain = FlowPropagator(guard=False).propagate(_Clip(frames), [Reference(0, labels[0])], targets)
    limit = GuardConfig().explode
    for t in targets:
        truth = labels[t] == 2
        assert region_j(res.labels[t] == 2, truth) > 0.7, t
        assert region_j(res.labels[t] == 2, truth) >= region_j(plain.labels[t] == 2, truth) - 1e-9, t
        assert GuardConfig().collapse * truth.sum() <= (res.labels[t] == 2).sum() <= limit * truth.sum()
        if (plain.labels[t] == 2).sum() > limit * truth.sum():
            assert [e.kind for e in res.events[t]] == [EXPLOSION]
        else:
            assert t not in res.events and np.array_equal(res.labels[t], plain.labels[t])


def test_a_track_missing_from_one_reference_may_vanish():
    """It entered between the references: an empty mask near the one without it is no collapse."""
    left = np.ones((H, W), np.uint16)  # the object is not there yet
    right = _square(70, 40)
    gone = np.ones((H, W), np.uint16)
    conf = np.ones((H, W), np.float32)
    fw = _chain("forward", left, gone, _coords(0, 0), 0.8, conf, 0)
    bw = _chain("backward", right, _square(60, 40), _coords(-10, 0), 0.2, conf, 10)
    out, _, events = guard_frame(2, gone, conf, [fw, bw])
    assert events == [] and (out == gone).all()
    # the same frame with the object in both references is a collapse; where the fusion was unsure
    # the backward chain's mask replaces it, where it was sure of the background it is an occlusion
    fw = _chain("forward", _square(50, 40), gone, _coords(0, 0), 0.8, conf, 0)
    out, _, events = guard_frame(2, gone, conf, [fw, bw])
    assert [e.kind for e in events] == [COLLAPSE] and events[0].fallback == "" and (out == gone).all()
    unsure = np.full((H, W), 0.2, np.float32)
    out, _, events = guard_frame(2, gone, unsure, [fw, bw])
    assert [e.kind for e in events] == [COLLAPSE] and (out == 2).sum() == 24 * 24


def test_a_chain_fallback_must_be_where_the_motion_puts_the_object():
    left, right = _square(30, 40), _square(70, 40)
    truth = _square(50, 40)
    fused = np.ones((H, W), np.uint16)  # the fusion lost the object
    elsewhere = _square(120, 80)  # the nearer chain: the right size in the wrong place, unsure
    fw_conf = np.where(elsewhere == 2, 0.0, 1.0).astype(np.float32)
    fw = _chain("forward", left, elsewhere, _coords(20, 0), 0.6, fw_conf, 0)
    bw = _chain("backward", right, truth, _coords(-20, 0), 0.4, None, 10)  # its motion puts it at ``truth``
    out, _, events = guard_frame(3, fused, np.full((H, W), 0.2, np.float32), [fw, bw])  # fusion unsure
    assert [e.kind for e in events] == [COLLAPSE]
    assert events[0].fallback == "the backward chain alone"
    assert region_j(out == 2, truth == 2) == pytest.approx(1.0)
