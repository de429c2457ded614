"""Clip-PanoFCN building blocks on hand-built tensors: DCNv2 via grid_sample, frozen BN, candidates,
kernel fusion, mask ranking, panoptic merge, cross-clip matching, channel mapping. No full model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.errors import InputError
from annotator.taxonomy import vipseg_taxonomy
from models.clip_panofcn.categories import channel_map
from models.clip_panofcn.inference import (
    ClipResult,
    ClipSegment,
    InferenceConfig,
    fuse_stuff_kernels,
    fuse_thing_kernels,
    merge_panoptic,
    rank_things,
    stuff_candidates,
    thing_candidates,
)
from models.clip_panofcn.layers import FrozenBatchNorm2d, ModulatedDeformConvWithOff, modulated_deform_conv2d
from models.clip_panofcn.tracking import ClipTracker, match_with_limit
from models.clip_panofcn.video import clip_ranges

torch.manual_seed(0)


def _inputs(h: int = 7, w: int = 9, cin: int = 4, cout: int = 5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, cin, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64)
    return x, wt, b


def _offset(n: int, h: int, w: int, dy: float, dx: float) -> torch.Tensor:
    off = torch.zeros(n, 9, 2, h, w, dtype=torch.float64)
    off[:, :, 0], off[:, :, 1] = dy, dx
    return off.reshape(n, 18, h, w)


def test_dcn_with_zero_offsets_is_a_convolution():
    x, wt, b = _inputs()
    n, _, h, w = x.shape
    ones = torch.ones(n, 9, h, w, dtype=torch.float64)
    ref = F.conv2d(x, wt, b, padding=1)
    out = modulated_deform_conv2d(x, _offset(n, h, w, 0, 0), ones, wt, b)
    assert torch.allclose(out, ref, atol=1e-10)
    half = modulated_deform_conv2d(x, _offset(n, h, w, 0, 0), ones * 0.5, wt, None)
    assert torch.allclose(half, F.conv2d(x, wt, None, padding=1) * 0.5, atol=1e-10)


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -1), (2, 1), (-1, -2)])
def test_dcn_integer_offset_is_a_shifted_convolution(dy, dx):
    """Every tap shifted by (dy, dx) = the convolution centred at p + (dy, dx), zeros outside the image."""
    x, wt, b = _inputs()
    n, _, h, w = x.shape
    pad = 3
    full = F.conv2d(F.pad(x, (pad, pad, pad, pad)), wt, b)  # valid conv: centre (i, j) -> x(i + 1 - pad, ...)
    ref = full[:, :, pad - 1 + dy: pad - 1 + dy + h, pad - 1 + dx: pad - 1 + dx + w]
    out = modulated_deform_conv2d(x, _offset(n, h, w, dy, dx), torch.ones(n, 9, h, w, dtype=torch.float64), wt, b)
    assert torch.allclose(out, ref, atol=1e-10)


def test_dcn_half_pixel_offset_interpolates_bilinearly():
    x, wt, _ = _inputs()
    n, _, h, w = x.shape
    ones = torch.ones(n, 9, h, w, dtype=torch.float64)
    a = modulated_deform_conv2d(x, _offset(n, h, w, 0, 1), ones, wt, None)
    c = modulated_deform_conv2d(x, _offset(n, h, w, 0, 0), ones, wt, None)
    mid = modulated_deform_conv2d(x, _offset(n, h, w, 0, 0.5), ones, wt, None)
    assert torch.allclose(mid, (a + c) / 2, atol=1e-10)
    assert not torch.allclose(a, c)


def test_dcn_module_splits_offsets_and_masks_like_the_release():
    """offset_mask_conv output: channels 0..17 offsets (y, x per tap), 18..26 mask logits."""
    m = ModulatedDeformConvWithOff(4, 5, bias=True).double()
    x, _, _ = _inputs()
    with torch.no_grad():
        m.offset_mask_conv.weight.zero_()
        m.offset_mask_conv.bias.zero_()
        m.offset_mask_conv.bias[18:] = 50.0  # sigmoid -> 1
        m.offset_mask_conv.bias[0:18:2] = 1.0  # y offsets of every tap
        out = m(x)
    n, _, h, w = x.shape
    ref = modulated_deform_conv2d(x, _offset(n, h, w, 1, 0), torch.ones(n, 9, h, w, dtype=torch.float64),
                                  m.dcnv2.weight, m.dcnv2.bias)
    assert torch.allclose(out, ref, atol=1e-8)


def test_frozen_batchnorm_equals_batchnorm_in_eval():
    bn = torch.nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(6))
        bn.running_var.copy_(torch.rand(6) + 0.5)
    fb = FrozenBatchNorm2d(6)
    for k in ("weight", "bias", "running_mean", "running_var"):
        getattr(fb, k).copy_(getattr(bn, k))
    x = torch.randn(2, 6, 4, 5)
    assert torch.allclose(fb(x), bn(x), atol=1e-5)
    assert {n for n, _ in fb.named_parameters()} == set()  # frozen: buffers only, as detectron2


def test_thing_candidates_take_the_kernel_weight_at_the_peak():
    t, c, h, w = 2, 3, 8, 10
    logits = torch.full((t, c, h, w), -10.0)
    logits[0, 1, 2, 3] = 5.0  # class 1 peak in frame 0
    logits[1, 2, 6, 7] = 4.0  # class 2 peak in frame 1
    weights = torch.randn(t, 16, h, w)
    wts, cls, sc = thing_candidates(logits, weights, pool=3, top_num=100, thres=0.05)
    assert cls.tolist() == [1, 2]
    assert torch.allclose(wts[0], weights[0, :, 2, 3]) and torch.allclose(wts[1], weights[1, :, 6, 7])
    # smoothed score: (sigmoid(peak) + 3x3 mean) / 2
    s = torch.sigmoid(torch.tensor(5.0))
    expect = (s + (s + 8 * torch.sigmoid(torch.tensor(-10.0))) / 9) / 2
    assert torch.isclose(sc[0], expect, atol=1e-6)


def test_stuff_candidates_average_weights_over_the_clip_map():
    t, c, h, w = 2, 4, 3, 4
    logits = torch.full((t, c, h, w), -5.0)
    logits[:, 2] = 3.0
    logits[1, 3, 0, :] = 6.0  # class 3 wins one row of frame 1
    weights = torch.randn(t, 8, h, w)
    wts, cls, sc = stuff_candidates(logits, weights, thres=0.05)
    assert cls.tolist() == [2, 3]
    mask3 = torch.zeros(t, h, w)
    mask3[1, 0, :] = 1
    expect3 = (weights * mask3.unsqueeze(1)).sum((0, 2, 3)) / (t * h * w)  # the released average pool
    assert torch.allclose(wts[1], expect3, atol=1e-6)
    assert torch.isclose(sc[1], torch.sigmoid(torch.tensor(6.0)))


def test_thing_kernel_fusion_merges_similar_same_class_kernels():
    k = torch.tensor([[1.0, 0.0], [0.99, 0.05], [1.0, 0.0], [0.0, 1.0], [0.98, 0.1]])
    cls = torch.tensor([7, 7, 3, 7, 7])
    sc = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    fused, fc, fs = fuse_thing_kernels(k, cls, sc, 0.9)
    assert fc.tolist() == [7, 3, 7] and torch.allclose(fs, torch.tensor([0.9, 0.7, 0.6]))
    assert torch.allclose(fused[0], (k[0] + k[1] + k[4]) / 3)  # same class, cos >= 0.9
    assert torch.allclose(fused[1], k[2]) and torch.allclose(fused[2], k[3])  # other class / dissimilar


def test_stuff_kernel_fusion_averages_per_class():
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    fused, cls, sc = fuse_stuff_kernels(k, torch.tensor([4, 1, 4]), torch.tensor([0.2, 0.5, 0.4]))
    assert cls.tolist() == [1, 4]
    assert torch.allclose(fused, torch.tensor([[3.0, 4.0], [3.0, 4.0]]))
    assert torch.allclose(sc, torch.tensor([0.5, 0.3]))


def test_rank_things_rescores_by_mask_quality():
    probs = torch.zeros(3, 1, 4, 4)
    probs[0, 0, :2] = 0.5  # weak mask
    probs[1, 0, :2] = 0.95  # strong mask
    probs[2] = 0.1  # empty after thresholding -> score 0
    scores = torch.tensor([0.9, 0.6, 0.8])
    order = rank_things(probs, torch.tensor([0, 0, 1]), scores, InferenceConfig())
    assert order.tolist() == [1, 0]
    assert torch.allclose(scores[:2], torch.tensor([0.9 * 0.5, 0.6 * 0.95]))


def test_merge_panoptic_overlap_rule_and_stuff_area():
    t, h, w = 2, 4, 6
    a = np.zeros((t, h, w), bool)
    a[:, :2, :3] = True
    b = np.zeros((t, h, w), bool)
    b[0, :2, :3] = True  # frame 0: fully covered by a -> skipped there
    b[1, 2:, :3] = True  # frame 1: free -> painted
    c = np.zeros((t, h, w), bool)
    c[0, :2, :3] = True  # covered on its only frame -> no segment at all
    sem = np.zeros((t, h, w), np.int32)
    sem[:, :, 3:] = 5
    sem[0, 3, 0] = 9  # a 1-pixel stuff class: below the area limit
    pan, things, stuff = merge_panoptic([a, b, c], [0.9, 0.8, 0.7], sem, 0.5, 2)
    assert things == [0, 1] and stuff == [5]
    assert (pan[a] == 1).all() and (pan[1][2:, :3] == 2).all() and not (pan[0] == 2).any()
    assert (pan[:, :, 3:] == 3).all() and pan[0, 3, 0] == 0


def test_match_with_limit_leaves_costly_pairs_unmatched():
    cost = np.array([[0.05, 0.9], [0.8, 0.35], [0.2, 0.1]])
    assert sorted(match_with_limit(cost, 0.3)) == [(0, 0), (2, 1)]
    assert match_with_limit(np.zeros((0, 2)), 0.3) == []


def _clip(frames, segs):
    return ClipResult(frames, np.zeros((len(frames), 2, 2), np.int32), segs)


def test_tracker_keeps_identity_across_clips_and_starts_new_instances():
    e1, e2, e3 = np.eye(3, dtype=np.float32)
    tr = ClipTracker(cost_limit=0.3, mem_weight=0.8)
    k = tr.assign(_clip([0, 1], [ClipSegment(1, True, 4, 0.9, e1), ClipSegment(2, True, 4, 0.8, e2),
                                 ClipSegment(3, False, 2, 1.0)]))
    assert k == {1: ("thing", 4, 0), 2: ("thing", 4, 1), 3: ("stuff", 2, 0)}
    # next clip: the two objects in swapped order, slightly changed, plus a new one and another class
    k = tr.assign(_clip([2, 3], [ClipSegment(1, True, 4, 0.9, e2 + 0.1 * e3), ClipSegment(2, True, 4, 0.8, e1),
                                 ClipSegment(3, True, 4, 0.7, e3), ClipSegment(4, True, 9, 0.7, e1)]))
    assert k == {1: ("thing", 4, 1), 2: ("thing", 4, 0), 3: ("thing", 4, 2), 4: ("thing", 9, 0)}
    mem = tr.memory[4][1]
    assert np.isclose(np.linalg.norm(mem), 1.0) and mem[2] > 0  # 0.8 * memory + 0.2 * new, normalised


def test_clip_ranges_and_channel_map():
    assert clip_ranges(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert clip_ranges(2, 3) == [[0, 1]]
    tax = vipseg_taxonomy()
    cmap = channel_map(tax, 58, 67)
    things = sorted(c.id for c in tax if c.isthing)
    stuff = sorted(c.id for c in tax if not c.isthing)
    assert cmap.thing(0) == things[0] and cmap.thing(57) == things[-1]
    assert cmap.stuff(1) == stuff[0] and cmap.stuff(66) == stuff[-1]
    assert cmap.channel_of(stuff[3]) == (False, 4)
    with pytest.raises(InputError, match="58 things"):
        channel_map(tax, 58, 60)
