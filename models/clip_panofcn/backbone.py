"""ResNet-50 + FPN (P2-P7) with detectron2's module names (``backbone.bottom_up.*``, ``fpn_*``, ``top_block``).

The released model uses detectron2's ResNet with frozen batch norm and the stride of each stage's
first block on the 1x1 convolution (``STRIDE_IN_1X1``, the MSRA layout), an FPN of 256 channels on
res2-res5 without norm, and RetinaNet-style P6/P7 computed from P5 (PanopticFCN's
``LastLevelP6P7fromP5``). The input must be padded to a multiple of 32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.clip_panofcn.layers import FrozenBatchNorm2d, NormConv2d

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


#: backbone normalisation: the released model freezes batch norm (ImageNet statistics); the small
#: variant trained from scratch on a few videos needs a norm that trains (GroupNorm, 8 groups)
_NORM = {"frozen_bn": FrozenBatchNorm2d, "gn": lambda c: nn.GroupNorm(8, c)}
_norm_kind = ["frozen_bn"]


def _conv(cin: int, cout: int, k: int, stride: int = 1, relu: bool = False) -> NormConv2d:
    return NormConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, norm=_NORM[_norm_kind[0]](cout),
                      activation=F.relu if relu else None)


class BasicStem(nn.Module):
    """7x7/2 convolution, ReLU, 3x3/2 max pool: stride 4."""

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv(3, out_channels, 7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 (stride here, MSRA style) -> 3x3 -> 1x1, projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, bottleneck: int, stride: int) -> None:
        super().__init__()
        self.shortcut = _conv(cin, cout, 1, stride) if cin != cout else None
        self.conv1 = _conv(cin, bottleneck, 1, stride)
        self.conv2 = _conv(bottleneck, bottleneck, 3, 1)
        self.conv3 = _conv(bottleneck, cout, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        return F.relu_(out + (self.shortcut(x) if self.shortcut is not None else x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34, used by the small trainable variant)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.shortcut = _conv(cin, cout, 1, stride) if cin != cout or stride != 1 else None
        self.conv1 = _conv(cin, cout, 3, stride)
        self.conv2 = _conv(cout, cout, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        return F.relu_(out + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    """Stages ``res2``..``res5`` as ``nn.Sequential`` of blocks, outputs at strides 4, 8, 16, 32."""

    def __init__(self, depth: int = 50, width: int = 64, norm: str = "frozen_bn") -> None:
        super().__init__()
        if norm not in _NORM:
            raise ValueError(f"unknown backbone norm {norm!r}")
        _norm_kind[0] = norm
        try:
            self._build(depth, width)
        finally:
            _norm_kind[0] = "frozen_bn"

    def _build(self, depth: int, width: int) -> None:
        self.stem = BasicStem(width)
        bottleneck = depth >= 50
        cin = width
        self.out_channels: dict[str, int] = {}
        for i, n in enumerate(RESNET_BLOCKS[depth]):
            name = f"res{i + 2}"
            cout = width * (2 ** i) * (4 if bottleneck else 1)
            blocks: list[nn.Module] = []
            for b in range(n):
                stride = 2 if (b == 0 and i > 0) else 1
                if bottleneck:
                    blocks.append(BottleneckBlock(cin, cout, width * (2 ** i), stride))
                else:
                    blocks.append(BasicBlock(cin, cout, stride))
                cin = cout
            self.add_module(name, nn.Sequential(*blocks))
            self.out_channels[name] = cout

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        out = {}
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            out[name] = x
        return out


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5), P7 = conv3x3/2(relu(P6))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p6 = self.p6(p5)
        return p6, self.p7(F.relu(p6))


class FPN(nn.Module):
    """Feature pyramid: ``fpn_lateral{2..5}`` (1x1) and ``fpn_output{2..5}`` (3x3), nearest top-down, sum."""

    size_divisibility = 32

    def __init__(self, bottom_up: ResNet, out_channels: int = 256) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        for stage in (2, 3, 4, 5):
            cin = bottom_up.out_channels[f"res{stage}"]
            self.add_module(f"fpn_lateral{stage}", nn.Conv2d(cin, out_channels, 1))
            self.add_module(f"fpn_output{stage}", nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.top_block = LastLevelP6P7(out_channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.bottom_up(x)
        prev = self.fpn_lateral5(feats["res5"])
        out = {"p5": self.fpn_output5(prev)}
        for stage in (4, 3, 2):
            lateral = getattr(self, f"fpn_lateral{stage}")(feats[f"res{stage}"])
            prev = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            out[f"p{stage}"] = getattr(self, f"fpn_output{stage}")(prev)
        out["p6"], out["p7"] = self.top_block(out["p5"])
        return {k: out[k] for k in ("p2", "p3", "p4", "p5", "p6", "p7")}
