"""STCN network (models/stcn.py): released state-dict layout, strict loading and its errors,
tensor shapes, sparse top-k readout and soft aggregation. Random weights only (no downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from annotator.errors import InputError
from models.stcn import (
    STCN,
    aggregate,
    build_stcn,
    check_state_dict,
    load_stcn,
    normalize_image,
    readout,
    topk_affinity,
)
from models.weights import CheckpointError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the tiny frames here gain nothing from more, and the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net() -> STCN:
    return build_stcn(seed=0)


@pytest.fixture(scope="module")
def ckpt(net: STCN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stcn") / "stcn.pth"
    torch.save(net.state_dict(), path)
    return path


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- layout


def test_state_dict_matches_released_layout(net: STCN) -> None:
    """A few keys and shapes of the released stcn.pth (hkchengrex/STCN) pin the layout."""
    sd = net.state_dict()
    expected = {
        "key_encoder.conv1.weight": (64, 3, 7, 7),
        "key_encoder.res2.0.conv1.weight": (64, 64, 1, 1),
        "key_encoder.layer3.5.conv3.weight": (1024, 256, 1, 1),
        "key_proj.key_proj.weight": (64, 1024, 3, 3),
        "key_comp.weight": (512, 1024, 3, 3),
        "value_encoder.conv1.weight": (64, 5, 7, 7),
        "value_encoder.conv1.bias": (64,),
        "value_encoder.layer1.0.conv1.bias": (64,),
        "value_encoder.layer3.0.downsample.0.bias": (256,),
        "value_encoder.fuser.block1.downsample.weight": (512, 1280, 3, 3),
        "value_encoder.fuser.attention.ChannelGate.mlp.1.weight": (32, 512),
        "value_encoder.fuser.attention.ChannelGate.mlp.3.weight": (512, 32),
        "value_encoder.fuser.attention.SpatialGate.spatial.conv.weight": (1, 2, 7, 7),
        "value_encoder.fuser.block2.conv2.weight": (512, 512, 3, 3),
        "decoder.compress.downsample.weight": (512, 1024, 3, 3),
        "decoder.up_16_8.skip_conv.weight": (512, 512, 3, 3),
        "decoder.up_16_8.out_conv.downsample.weight": (256, 512, 3, 3),
        "decoder.up_8_4.skip_conv.weight": (256, 256, 3, 3),
        "decoder.pred.weight": (1, 256, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert "key_encoder.conv1.bias" not in sd  # torchvision ResNet-50: no conv biases
    assert not any(k.startswith(("key_encoder.layer4", "key_encoder.fc", "value_encoder.layer4")) for k in sd)
    assert "decoder.up_8_4.out_conv.downsample.weight" not in sd  # 256 -> 256 needs no projection
    assert {k.split(".")[0] for k in sd} == {"key_encoder", "value_encoder", "key_proj", "key_comp", "decoder"}


# ----------------------------------------------------------------------------- loading


def test_load_strict_roundtrip(net: STCN, ckpt: Path) -> None:
    loaded = load_stcn(ckpt)
    _assert_same_weights(net, loaded)
    assert not loaded.training


def test_load_module_prefix_nested_under_network(net: STCN, tmp_path: Path) -> None:
    path = tmp_path / "dp.pth"
    torch.save({"network": {f"module.{k}": v for k, v in net.state_dict().items()}, "it": 5}, path)
    _assert_same_weights(net, load_stcn(path))


def test_wrong_key_is_named(net: STCN, tmp_path: Path) -> None:
    sd = dict(net.state_dict())
    sd["decoder.pred.weightz"] = sd.pop("decoder.pred.weight")
    path = tmp_path / "bad_key.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_stcn(path)
    msg = str(err.value)
    assert "unexpected keys 'decoder.pred.weightz'" in msg
    assert "missing keys 'decoder.pred.weight'" in msg
    assert str(path) in msg
    assert isinstance(err.value, InputError)


def test_wrong_shape_is_named(net: STCN, tmp_path: Path) -> None:
    sd = dict(net.state_dict())
    sd["key_proj.key_proj.weight"] = torch.zeros(32, 1024, 3, 3)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"'key_proj\.key_proj\.weight' \(32x1024x3x3, expected 64x1024x3x3\)"):
        load_stcn(path)


def test_truncated_file(ckpt: Path, tmp_path: Path) -> None:
    data = ckpt.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_stcn(path)


def test_missing_file_and_foreign_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_stcn(tmp_path / "nope.pth")
    path = tmp_path / "sam.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(2, 3, 1, 1)}, path)
    with pytest.raises(CheckpointError, match="not a stcn checkpoint"):
        load_stcn(path)


def test_check_state_dict_adapts_stage0_and_old_buffers(net: STCN) -> None:
    """A single-object (4-channel) value encoder gets a zero channel; missing BN counters are filled."""
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    w = sd["value_encoder.conv1.weight"]
    sd["value_encoder.conv1.weight"] = w[:, :4].clone()
    fixed = check_state_dict(net, sd)
    assert fixed["value_encoder.conv1.weight"].shape == w.shape
    assert torch.equal(fixed["value_encoder.conv1.weight"][:, :4], w[:, :4])
    assert not fixed["value_encoder.conv1.weight"][:, 4].any()
    model = STCN()
    model.load_state_dict(fixed, strict=True)


def test_check_state_dict_lists_many_problems_briefly(net: STCN) -> None:
    sd = {f"x.{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        check_state_dict(net, sd, source="checkpoint X")
    msg = str(err.value)
    assert msg.startswith("checkpoint X does not match the STCN network")
    assert "more)" in msg and len(msg) < 2000


# ----------------------------------------------------------------------------- shapes


def test_output_shapes(net: STCN) -> None:
    frame = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        key, f16_thin, f16, f8, f4 = net.encode_key(frame)
        assert key.shape == (1, 64, 4, 6)
        assert f16_thin.shape == (1, 512, 4, 6)
        assert f16.shape == (1, 1024, 4, 6)
        assert f8.shape == (1, 512, 8, 12)
        assert f4.shape == (1, 256, 16, 24)
        masks = (torch.rand(3, 1, 64, 96) > 0.5).float()
        values = net.encode_value(frame, f16, masks, masks.sum(0, keepdim=True) - masks)
        assert values.shape == (3, 512, 4, 6)
        logits = net.decode(values, f16_thin, f8, f4)
        assert logits.shape == (3, 1, 64, 96)
        assert torch.isfinite(logits).all()


def test_normalize_image() -> None:
    rgb = torch.full((2, 3, 3), 255, dtype=torch.uint8)
    x = normalize_image(rgb)
    assert x.shape == (1, 3, 2, 3)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                       (1 - 0.406) / 0.225]))


# ----------------------------------------------------------------------------- readout


def _dense_reference(mk: torch.Tensor, qk: torch.Tensor, top_k: int) -> torch.Tensor:
    """STCN's own formulation: dense N x HW affinity, top-k softmax scattered back (N x HW)."""
    a = mk.pow(2).sum(0).unsqueeze(1)
    b = 2 * (mk.t() @ qk)
    aff = (-a + b) / math.sqrt(mk.shape[0])
    values, indices = torch.topk(aff, k=top_k, dim=0)
    out = torch.zeros_like(aff)
    out.scatter_(0, indices, torch.softmax(values, dim=0))
    return out


def test_topk_affinity_matches_dense_stcn() -> None:
    g = torch.Generator().manual_seed(1)
    mk, qk = torch.randn(64, 300, generator=g), torch.randn(64, 40, generator=g)
    aff = topk_affinity(mk, qk, top_k=20)
    assert aff.shape == (40, 300) and aff.is_sparse
    dense = aff.to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(40), atol=1e-5)
    assert ((dense > 0).sum(1) == 20).all()
    assert torch.allclose(dense, _dense_reference(mk, qk, 20).t(), atol=1e-6)
    mv = torch.randn(3, 16, 300, generator=g)
    out = readout(aff, mv)
    assert out.shape == (3, 16, 40)
    assert torch.allclose(out, mv @ dense.t(), atol=1e-5)


def test_topk_larger_than_memory_uses_all() -> None:
    aff = topk_affinity(torch.randn(64, 5), torch.randn(64, 7), top_k=20).to_dense()
    assert ((aff > 0).sum(1) == 5).all()
    assert torch.allclose(aff.sum(1), torch.ones(7), atol=1e-5)


def test_affinity_prefers_nearest_key() -> None:
    mk = torch.eye(8)[:, :4] * 5  # 4 memory pixels with distinct keys
    qk = mk[:, [2]] + 0.01
    dense = topk_affinity(mk, qk, top_k=2).to_dense()
    assert int(dense.argmax()) == 2


# ----------------------------------------------------------------------------- aggregation


def test_soft_aggregation_properties() -> None:
    g = torch.Generator().manual_seed(2)
    probs = torch.rand(4, 10, 12, generator=g)
    agg = aggregate(probs)
    assert agg.shape == (5, 10, 12)
    assert torch.allclose(agg.sum(0), torch.ones(10, 12), atol=1e-5)
    assert (agg >= 0).all() and (agg <= 1).all()
    # all objects unlikely -> background (index 0) wins; one confident object -> it wins
    low = aggregate(torch.full((3, 2, 2), 0.01))
    assert (low.argmax(0) == 0).all()
    one = torch.full((3, 2, 2), 0.01)
    one[1] = 0.99
    assert (aggregate(one).argmax(0) == 2).all()
    # the ranking among objects follows their independent probabilities
    ranked = agg[1:].argsort(0)
    assert torch.equal(ranked, probs.argsort(0))


def test_aggregation_is_permutation_equivariant() -> None:
    probs = torch.rand(3, 5, 5)
    perm = torch.tensor([2, 0, 1])
    a, b = aggregate(probs), aggregate(probs[perm])
    assert torch.allclose(a[1:][perm], b[1:], atol=1e-6)
    assert torch.allclose(a[0], b[0], atol=1e-6)


def test_shared_feature_shortcut_equals_concatenation(net: STCN) -> None:
    """Object-independent features are convolved once; the result equals STCN's concat-and-expand."""
    g = torch.Generator().manual_seed(3)
    k = 3
    frame = torch.randn(1, 3, 32, 48, generator=g)
    masks = (torch.rand(k, 1, 32, 48, generator=g) > 0.5).float()
    others = masks.sum(0, keepdim=True) - masks
    with torch.inference_mode():
        _, thin, f16, f8, f4 = net.encode_key(frame)
        ve, dec = net.value_encoder, net.decoder
        x = torch.cat([frame.expand(k, -1, -1, -1), masks, others], 1)
        x = ve.layer3(ve.layer2(ve.layer1(ve.maxpool(ve.relu(ve.bn1(ve.conv1(x)))))))
        x = ve.fuser.block1(torch.cat([x, f16.expand(k, -1, -1, -1)], 1))
        naive_values = ve.fuser.block2(x + ve.fuser.attention(x))
        values = net.encode_value(frame, f16, masks, others)
        assert torch.allclose(values, naive_values, rtol=1e-4, atol=1e-3 * float(naive_values.abs().max()))
        y = dec.compress(torch.cat([values, thin.expand(k, -1, -1, -1)], 1))
        y = dec.up_8_4(f4.expand(k, -1, -1, -1), dec.up_16_8(f8.expand(k, -1, -1, -1), y))
        naive_logits = torch.nn.functional.interpolate(dec.pred(torch.relu(y)), scale_factor=4, mode="bilinear")
        logits = net.decode(values, thin, f8, f4)
        assert torch.allclose(logits, naive_logits, atol=1e-4 * float(naive_logits.abs().max()) + 1e-5)
