"""The PanopticFCN heads, with the module names of the released code.

* :class:`SemanticFPN` (``semantic_fpn.p2..p5``): each level through 3x3 conv + GN + ReLU blocks,
  upsampled x2 after each block until stride 4, summed.
* :class:`FeatureEncoder` (``feature_encoder.encode_head.encode_head_head_{1,2,3}``): coord conv
  (two extra channels), three 3x3 convs to 64 channels, no norm: the high-resolution features the
  kernels are applied to.
* :class:`PositionHead` (``position_head.position_head.position_head_head_{1,2,3}``, ``out_inst``,
  ``out_sem``): three modulated deformable convs with GN, then thing-centre and stuff-region maps.
* :class:`KernelHead` (``kernel_head.kernel_head.kernel_head_head_{1,2,3}``, ``out_conv``): coord
  conv + three GN convs + a 3x3 output: a 256-d kernel-weight map per level.
* :class:`EmbedExtractor` (``thing_generator.embed_extractor``, ``stuff_generator.embed_extractor``):
  a 1x1 conv turning 256-d kernel weights into 64-d kernels for the encoded features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.clip_panofcn.layers import ModulatedDeformConvWithOff, NormConv2d, group_norm


def _normal_(t: torch.Tensor, std: float) -> None:
    """In-place N(0, std) init; skipped on the meta device, where ``normal_`` drags in sympy (~10 s)."""
    if t.device.type != "meta":
        nn.init.normal_(t, std=std)


def coord_features(x: torch.Tensor) -> torch.Tensor:
    """Append two coordinate channels in [-1, 1]: first the row position, then the column position
    (the order of the released ``coord_conv``; the trained kernels depend on it)."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([x, ys, xs], dim=1)


class SingleHead(nn.Module):
    """``num_convs`` 3x3 conv(+norm)+ReLU layers named ``{name}_head_{k}``; optional coord input."""

    def __init__(self, in_channels: int, dims: int, num_convs: int, name: str, deform: bool = False,
                 coord: bool = False, norm: bool = False) -> None:
        super().__init__()
        self.coord = coord
        self._names = []
        for k in range(num_convs):
            cin = in_channels if k == 0 else dims
            gn = group_norm(dims) if norm else None
            if deform:
                conv: nn.Module = ModulatedDeformConvWithOff(cin, dims, 3, 1, 1, bias=not norm, norm=gn,
                                                             activation=F.relu)
            else:
                conv = NormConv2d(cin, dims, 3, padding=1, bias=not norm, norm=gn, activation=F.relu)
            self.add_module(f"{name}_head_{k + 1}", conv)
            self._names.append(f"{name}_head_{k + 1}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coord:
            x = coord_features(x)
        for n in self._names:
            x = getattr(self, n)(x)
        return x


class SemanticFPN(nn.Module):
    """Merge P2-P5 into one stride-4 map (Panoptic FPN's semantic branch, GN, 256 channels)."""

    def __init__(self, in_channels: int = 256, dims: int = 256, strides: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__()
        self.levels = [f"p{i + 2}" for i in range(len(strides))]
        for level, stride in zip(self.levels, strides, strict=True):
            ops: list[nn.Module] = []
            n = max(1, int(math.log2(stride)) - 2)  # blocks until stride 4
            for k in range(n):
                ops.append(NormConv2d(in_channels if k == 0 else dims, dims, 3, padding=1, bias=False,
                                      norm=group_norm(dims), activation=F.relu))
                if stride != 4:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(level, nn.Sequential(*ops))

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        out = None
        for level in self.levels:
            y = getattr(self, level)(feats[level])
            out = y if out is None else out + y
        assert out is not None
        return out


class FeatureEncoder(nn.Module):
    def __init__(self, in_channels: int = 256, dims: int = 64, num_convs: int = 3) -> None:
        super().__init__()
        self.encode_head = SingleHead(in_channels + 2, dims, num_convs, "encode_head", coord=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_head(x)


class PositionHead(nn.Module):
    """Thing-centre heatmaps (one per thing class) and stuff-region maps (class 0 = "thing")."""

    def __init__(self, in_channels: int = 256, dims: int = 256, num_convs: int = 3, thing_classes: int = 58,
                 stuff_classes: int = 67, deform: bool = True, bias_value: float = -2.19) -> None:
        super().__init__()
        self.position_head = SingleHead(in_channels, dims, num_convs, "position_head", deform=deform, norm=True)
        self.out_inst = nn.Conv2d(dims, thing_classes, 3, padding=1)
        self.out_sem = nn.Conv2d(dims, stuff_classes, 3, padding=1)
        for layer in (self.out_inst, self.out_sem):
            _normal_(layer.weight, 0.01)
            nn.init.constant_(layer.bias, bias_value)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.position_head(x)
        return self.out_inst(x), self.out_sem(x)


class KernelHead(nn.Module):
    def __init__(self, in_channels: int = 256, dims: int = 256, num_convs: int = 3) -> None:
        super().__init__()
        self.kernel_head = SingleHead(in_channels + 2, dims, num_convs, "kernel_head", coord=True, norm=True)
        self.out_conv = nn.Conv2d(dims, dims, 3, padding=1)
        _normal_(self.out_conv.weight, 0.01)
        _normal_(self.out_conv.bias, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.kernel_head(x))


class EmbedExtractor(nn.Module):
    """Holds ``embed_extractor``: kernel weights (N, 256, K, 1) -> kernels (K, 64)."""

    def __init__(self, in_channels: int = 256, dims: int = 64) -> None:
        super().__init__()
        self.embed_extractor = nn.Conv2d(in_channels, dims, 1)
        _normal_(self.embed_extractor.weight, 0.01)
        _normal_(self.embed_extractor.bias, 0.01)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` (K, 256) -> kernels (K, 64)."""
        if weights.shape[0] == 0:
            return weights.new_zeros((0, self.embed_extractor.out_channels))
        w = self.embed_extractor.weight.flatten(1)
        return weights @ w.t() + self.embed_extractor.bias
