"""STCN inference network (Cheng et al., "Rethinking Space-Time Networks with Improved Memory
Coverage for Efficient Video Object Segmentation", NeurIPS 2021), written for this tool.

Why this module looks the way it does:

* Module names and tensor shapes follow the released ``stcn.pth`` exactly (``key_encoder.res2``,
  ``key_proj.key_proj``, ``key_comp``, ``value_encoder.fuser.attention.ChannelGate.mlp.1``,
  ``decoder.up_16_8.skip_conv`` ...), so a user-supplied checkpoint loads with ``strict=True``.
  The released value encoder is a ResNet-18 whose convolutions all carry a bias (the authors'
  ``mod_resnet``), while the key encoder is torchvision's ResNet-50 (no conv biases); both are
  built here from torchvision constructors with ``weights=None`` - nothing is ever downloaded.
* Memory readout is split out of the module (:func:`topk_affinity`, :func:`readout`) because
  the propagator owns the memory bank: keys are shared by every object, values are per object,
  so one affinity per query frame serves any number of objects and object batches.
* The top-k affinity is kept *sparse* (k entries per query pixel): the readout then costs
  ``k x HW x C`` instead of ``N x HW x C`` multiply-adds and gives the same numbers as STCN's
  dense scatter-then-bmm.
* Features that do not depend on the object (the query's f16/f8/f4, the frame's key f16) are
  convolved once per frame and broadcast instead of being copied per object as the released code
  does; same weights, same results (up to float rounding), far fewer multiply-adds per object.
* Loading goes through :mod:`models.weights` (missing / truncated / non-checkpoint files, the
  ``module.`` prefix and ``{"network": sd}`` nesting) and then checks every key and shape here
  (:func:`check_state_dict`, also the ``stcn`` kind's structure check in :mod:`models.kinds`),
  so a wrong file fails with a message naming the offending key instead of a torch traceback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import nn
from torchvision.models import resnet18, resnet50

from models.weights import CheckpointError, load_state_dict

KEY_DIM = 64  # channels of the memory/query keys
VALUE_DIM = 512  # channels of the memory values (per object)
STRIDE = 16  # frames are padded to a multiple of this
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- building blocks


def _conv_cat(conv: nn.Conv2d, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """``conv(cat([x, shared], 1))`` with the ``shared`` half convolved once and broadcast.

    Convolution is linear in its input channels, so the part of the weights that sees features
    common to every object (the query's or the frame's key features) is applied to one copy only;
    at 480p this removes about 40% of the decoder's and half of the fusion block's multiply-adds per object.
    """
    cx = x.shape[1]
    out = F.conv2d(x, conv.weight[:, :cx], conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return out + F.conv2d(shared, conv.weight[:, cx:], None, conv.stride, conv.padding, conv.dilation,
                          conv.groups)


class ResBlock(nn.Module):
    """Pre-activation residual block; a 3x3 conv adapts the skip path when the width changes."""

    def __init__(self, indim: int, outdim: int | None = None) -> None:
        super().__init__()
        outdim = indim if outdim is None else outdim
        self.downsample = None if indim == outdim else nn.Conv2d(indim, outdim, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(indim, outdim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(outdim, outdim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        """Block on ``x``, or on ``cat([x, shared], 1)`` when ``shared`` (batch 1, broadcast) is given."""
        if shared is None:
            r = self.conv2(F.relu(self.conv1(F.relu(x))))
            return x + r if self.downsample is None else self.downsample(x) + r
        if self.downsample is None:
            raise ValueError("a shared input needs a block that changes width")
        r = self.conv2(F.relu(_conv_cat(self.conv1, F.relu(x), F.relu(shared))))
        return _conv_cat(self.downsample, x, shared) + r


class _BasicConv(nn.Module):
    """A bare conv wrapped in a module so the state-dict key is ``spatial.conv.*`` as released."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP over global average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Index 0 is a flatten and 2 a ReLU, so the linear layers are ``mlp.1`` and ``mlp.3``.
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(),
                                 nn.Linear(channels // reduction, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(att)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: a 7x7 conv over the channel-wise max and mean maps."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _BasicConv(2, 1, kernel_size=7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """Convolutional block attention module (channel gate, then spatial gate)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels)  # noqa: N815 - released key name
        self.SpatialGate = SpatialGate()  # noqa: N815 - released key name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusionBlock(nn.Module):
    """Fuses the mask-aware value features with the key encoder's f16 (image semantics)."""

    def __init__(self, indim: int, outdim: int) -> None:
        super().__init__()
        self.block1 = ResBlock(indim, outdim)
        self.attention = CBAM(outdim)
        self.block2 = ResBlock(outdim, outdim)

    def forward(self, x: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """``x`` Kx256 per object, ``f16`` 1x1024 (or Kx1024) shared key features."""
        x = self.block1(x, f16)
        return self.block2(x + self.attention(x))


def _biased(conv: nn.Conv2d, in_channels: int | None = None) -> nn.Conv2d:
    """A conv like ``conv`` but with a bias (the released value encoder has biases everywhere)."""
    return nn.Conv2d(conv.in_channels if in_channels is None else in_channels, conv.out_channels,
                     conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, bias=True)


class KeyEncoder(nn.Module):
    """ResNet-50 up to layer3: f16 (1024 ch), f8 (512), f4 (256)."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.res2 = net.layer1  # released name
        self.layer2 = net.layer2
        self.layer3 = net.layer3

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class ValueEncoder(nn.Module):
    """ResNet-18 up to layer3 on image + object mask + other-objects mask, fused with key f16."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet18(weights=None)
        for layer in (net.layer1, net.layer2, net.layer3):
            for block in layer:
                block.conv1 = _biased(block.conv1)
                block.conv2 = _biased(block.conv2)
                if block.downsample is not None:
                    block.downsample[0] = _biased(block.downsample[0])
        self.conv1 = _biased(net.conv1, in_channels=5)
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.fuser = FeatureFusionBlock(1024 + 256, VALUE_DIM)

    def forward(self, image: torch.Tensor, key_f16: torch.Tensor, mask: torch.Tensor,
                other_masks: torch.Tensor) -> torch.Tensor:
        """``image`` 1x3 or Kx3, ``mask``/``other_masks`` Kx1, ``key_f16`` 1x1024 (shared) -> Kx512."""
        k = mask.shape[0]
        x = torch.cat([image.expand(k, -1, -1, -1), mask, other_masks], dim=1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fuser(x, key_f16)


class KeyProjection(nn.Module):
    """f16 -> 64-d key used for the L2 affinity."""

    def __init__(self, indim: int, keydim: int) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(indim, keydim, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight.data)
        nn.init.zeros_(self.key_proj.bias.data)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.key_proj(x)


class UpsampleBlock(nn.Module):
    """Decoder step: upsample x2 and add a projected skip feature."""

    def __init__(self, skip_c: int, up_c: int, out_c: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_c, up_c, kernel_size=3, padding=1)
        self.out_conv = ResBlock(up_c, out_c)

    def forward(self, skip_f: torch.Tensor, up_f: torch.Tensor) -> torch.Tensor:
        """``skip_f`` may have batch 1 (the query's features, shared by every object): it is
        projected once and broadcast over the objects of ``up_f``."""
        x = self.skip_conv(skip_f) + F.interpolate(up_f, size=skip_f.shape[-2:], mode="bilinear",
                                                   align_corners=False)
        return self.out_conv(x)


class Decoder(nn.Module):
    """Readout (1024 ch at 1/16) -> one logit map per object at full (padded) resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.compress = ResBlock(1024, 512)
        self.up_16_8 = UpsampleBlock(512, 512, 256)
        self.up_8_4 = UpsampleBlock(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, kernel_size=3, padding=1)

    def forward(self, readout_values: torch.Tensor, f16_thin: torch.Tensor, f8: torch.Tensor,
                f4: torch.Tensor) -> torch.Tensor:
        """Per-object readout Kx512 plus the query's f16_thin, f8, f4 (batch 1, shared)."""
        x = self.compress(readout_values, f16_thin)
        x = self.up_16_8(f8, x)
        x = self.up_8_4(f4, x)
        x = self.pred(F.relu(x))
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- the network


class STCN(nn.Module):
    """The STCN inference network; memory handling lives in :mod:`propagation.memory`."""

    def __init__(self) -> None:
        super().__init__()
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder()
        self.key_proj = KeyProjection(1024, keydim=KEY_DIM)
        self.key_comp = nn.Conv2d(1024, 512, kernel_size=3, padding=1)
        self.decoder = Decoder()

    def encode_key(self, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``frame`` Bx3xHxW normalised -> (key Bx64xH/16xW/16, f16_thin Bx512, f16 Bx1024, f8, f4)."""
        f16, f8, f4 = self.key_encoder(frame)
        return self.key_proj(f16), self.key_comp(f16), f16, f8, f4

    def encode_value(self, frame: torch.Tensor, f16: torch.Tensor, masks: torch.Tensor,
                     others: torch.Tensor) -> torch.Tensor:
        """Memory values of K objects on one frame.

        ``frame`` 1x3xHxW, ``f16`` 1x1024xhxw (its key features), ``masks`` and ``others`` Kx1xHxW
        (the object's probability and the summed probability of every other object).
        Returns Kx512xhxw.
        """
        return self.value_encoder(frame, f16, masks, others)

    def decode(self, readout_values: torch.Tensor, f16_thin: torch.Tensor, f8: torch.Tensor,
               f4: torch.Tensor) -> torch.Tensor:
        """Kx512xhxw memory readout + the query's features -> Kx1xHxW logits (before sigmoid)."""
        return self.decoder(readout_values, f16_thin, f8, f4)


# --------------------------------------------------------------------------- memory readout


def topk_affinity(mem_keys: torch.Tensor, query_keys: torch.Tensor, top_k: int = 20) -> torch.Tensor:
    """Sparse affinity ``HW x N`` between query pixels and memory pixels.

    ``mem_keys`` is CKxN (N = memory frames x h x w), ``query_keys`` CKxHW. The similarity is the
    negative squared Euclidean distance scaled by 1/sqrt(CK); the query's own norm is constant per
    query pixel and cancels in the softmax, so it is left out (as in STCN). Only the ``top_k``
    largest similarities per query pixel are kept and softmax-normalised; every row sums to 1.
    """
    ck, n = mem_keys.shape
    sim = (2 * query_keys.t() @ mem_keys - mem_keys.pow(2).sum(0, keepdim=True)) / math.sqrt(ck)  # HW x N
    k = min(top_k, n)
    values, indices = torch.topk(sim, k=k, dim=1)
    weights = torch.softmax(values, dim=1)
    hw = sim.shape[0]
    rows = torch.arange(hw, device=sim.device).repeat_interleave(k)
    return torch.sparse_coo_tensor(torch.stack([rows, indices.reshape(-1)]), weights.reshape(-1),
                                   size=(hw, n), check_invariants=False).coalesce()


def readout(affinity: torch.Tensor, mem_values: torch.Tensor) -> torch.Tensor:
    """Weighted sum of memory values: ``affinity`` HWxN (sparse), ``mem_values`` KxCVxN -> KxCVxHW."""
    k, cv, n = mem_values.shape
    flat = mem_values.permute(2, 0, 1).reshape(n, k * cv)  # N x (K*CV)
    out = torch.sparse.mm(affinity, flat)  # HW x (K*CV)
    return out.reshape(-1, k, cv).permute(1, 2, 0)


def aggregate(probs: torch.Tensor) -> torch.Tensor:
    """Soft aggregation of K independent object probabilities into K+1 exclusive ones.

    ``probs`` Kx... (sigmoid outputs). Background = product of (1 - p); all K+1 are turned into
    logits and renormalised with a softmax, so the result sums to 1 at every pixel and index 0 is
    the background. Objects must all be present in ``probs`` at once (this couples them).
    """
    bg = torch.prod(1 - probs, dim=0, keepdim=True)
    p = torch.cat([bg, probs], dim=0).clamp(1e-7, 1 - 1e-7)
    return torch.softmax(torch.log(p / (1 - p)), dim=0)


def normalize_image(rgb: torch.Tensor) -> torch.Tensor:
    """HxWx3 uint8 RGB tensor -> 1x3xHxW float normalised with the ImageNet statistics."""
    x = rgb.permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
    return ((x - mean) / std)[None]


# --------------------------------------------------------------------------- checkpoints


def build_stcn(seed: int | None = None) -> STCN:
    """A network with random weights - for tests and benchmarks only, never for users' videos."""
    if seed is not None:
        torch.manual_seed(seed)
    return STCN().eval()


def _describe_shape(shape: Any) -> str:
    return "x".join(str(int(s)) for s in shape) if len(shape) else "scalar"


def check_state_dict(model: nn.Module, sd: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """Adapt harmless differences and report real ones as a :class:`CheckpointError`.

    Accepted adaptations: a stage-0 (single-object) ``value_encoder.conv1.weight`` with 4 input
    channels gets a zero channel for the other-objects mask (as STCN's own evaluation does), and
    missing ``num_batches_tracked`` buffers (older PyTorch) are filled in. Anything else - a
    missing or unexpected key, a tensor of the wrong shape - is an error naming the keys.
    """
    expected = model.state_dict()
    sd = dict(sd)
    w = sd.get("value_encoder.conv1.weight")
    if isinstance(w, torch.Tensor) and w.ndim == 4 and w.shape[1] == 4:
        sd["value_encoder.conv1.weight"] = torch.cat([w, torch.zeros_like(w[:, :1])], dim=1)
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong_shape = [(k, sd[k], expected[k]) for k in expected
                   if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != expected[k].shape)]
    if not (missing or unexpected or wrong_shape):
        return sd

    def listing(items: list[str], limit: int = 5) -> str:
        more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more

    problems = []
    if wrong_shape:
        problems.append("wrong shape for " + listing([
            f"'{k}' ({_describe_shape(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}, "
            f"expected {_describe_shape(e.shape)})" for k, v, e in wrong_shape]))
    if unexpected:
        problems.append("unexpected keys " + listing([f"'{k}'" for k in unexpected]))
    if missing:
        problems.append("missing keys " + listing([f"'{k}'" for k in missing]))
    raise CheckpointError(f"{source} does not match the STCN network: {'; '.join(problems)}. Use the "
                          "released stcn.pth (or a checkpoint saved from this network's state_dict)")


def load_stcn(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> STCN:
    """The STCN network with the weights of the checkpoint at ``path``, in eval mode on ``device``.

    Contract: ``path`` is a ``stcn`` checkpoint (the released ``stcn.pth`` or a state dict saved
    from :class:`STCN`; ``{"network": sd}`` nesting and ``module.`` prefixes are accepted). It is
    read with ``weights_only=True`` through :func:`models.weights.load_state_dict` (missing,
    truncated, foreign or damaged files raise :class:`CheckpointError` naming the problem), checked
    key by key with :func:`check_state_dict`, converted to float32 and loaded with ``strict=True``.
    Random weights are never returned: without a valid file there is no model.
    """
    sd = load_state_dict(path, "stcn")
    with torch.device("meta"):  # no time spent on random init: every tensor comes from the file
        model = STCN()
    sd = check_state_dict(model, sd, source=f"checkpoint {path}")
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}  # fp16 checkpoints
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device).eval()


def default_device() -> str:
    """``cuda`` when a GPU is usable, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"
