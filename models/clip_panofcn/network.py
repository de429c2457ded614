"""The Clip-PanoFCN network (VIPSeg's clip baseline on PanopticFCN) and its released configuration.

Top-level module names are those of the released ``VideoPanopticFCN`` (``backbone``,
``semantic_fpn``, ``position_head``, ``kernel_head``, ``feature_encoder``, ``thing_generator``,
``stuff_generator``), so ``model_final.pth`` loads with ``strict=True``. The released config
(``configs/video_vpsw_PanopticFCN-R50-3x.yaml``) has ``USE_CLIPFUSE: False``: no ClipFuseHead
weights exist in it, and clip-level fusion happens on the kernels at inference time
(:mod:`models.clip_panofcn.inference`).

:meth:`ClipPanoFCN.forward` runs the dense part on a batch of frames (one clip) and returns the
per-level centre/region/kernel-weight maps plus the encoded features; everything after that is
cheap tensor bookkeeping done by the inference module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.clip_panofcn.backbone import FPN, ResNet
from models.clip_panofcn.heads import EmbedExtractor, FeatureEncoder, KernelHead, PositionHead, SemanticFPN

#: RGB 0-255 pixel mean of the released config (PIXEL_STD is 1)
PIXEL_MEAN = (123.675, 116.28, 103.53)
#: FPN levels the heads run on (FEATURE_ENCODER.IN_FEATURES of the released code)
HEAD_LEVELS = ("p3", "p4", "p5", "p6", "p7")


def default_pixel_mean() -> torch.Tensor:
    return torch.tensor(PIXEL_MEAN, dtype=torch.float32, device="cpu").view(1, 3, 1, 1)


@dataclass(frozen=True)
class ClipPanoFCNConfig:
    """Architecture; the defaults are the released R50 model for VIPSeg (58 things, 66 stuff + 1)."""

    depth: int = 50
    width: int = 64  # stem / first-stage width (64 for the real ResNets)
    fpn_channels: int = 256
    head_dims: int = 256  # position/kernel head width (KERNEL_HEAD.CONVS_DIM)
    encoder_dims: int = 64  # FEATURE_ENCODER.CONVS_DIM: the kernel length
    thing_classes: int = 58
    stuff_classes: int = 67  # channel 0 is "any thing" (STUFF.WITH_THING)
    deform: bool = True  # modulated deformable convs in the position head
    backbone_norm: str = "frozen_bn"  # "gn" for the small variant trained from scratch

    @property
    def name(self) -> str:
        return f"R{self.depth}" + ("" if self.width == 64 else f"-w{self.width}") + \
            ("" if self.backbone_norm == "frozen_bn" else f"-{self.backbone_norm}")


#: the small variant trained on a project's own videos on CPU (about 3 M parameters)
SMALL_CONFIG = ClipPanoFCNConfig(depth=18, width=32, fpn_channels=64, head_dims=64, encoder_dims=32, deform=False,
                                 backbone_norm="gn")


class ClipPanoFCN(nn.Module):
    """Backbone + heads; ``forward(images)`` on a normalised, 32-padded batch of one clip."""

    def __init__(self, config: ClipPanoFCNConfig | None = None) -> None:
        super().__init__()
        c = config or ClipPanoFCNConfig()
        self.config = c
        self.backbone = FPN(ResNet(c.depth, c.width, c.backbone_norm), c.fpn_channels)
        self.semantic_fpn = SemanticFPN(c.fpn_channels, c.fpn_channels)
        self.position_head = PositionHead(c.fpn_channels, c.head_dims, 3, c.thing_classes, c.stuff_classes,
                                          deform=c.deform)
        self.kernel_head = KernelHead(c.fpn_channels, c.head_dims, 3)
        self.feature_encoder = FeatureEncoder(c.fpn_channels, c.encoder_dims, 3)
        self.thing_generator = EmbedExtractor(c.head_dims, c.encoder_dims)
        self.stuff_generator = EmbedExtractor(c.head_dims, c.encoder_dims)
        self.register_buffer("pixel_mean", default_pixel_mean(), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8/float RGB ``(T, 3, H, W)`` in 0-255 -> mean-subtracted, zero-padded to a multiple of 32."""
        x = frames.to(self.pixel_mean.dtype) - self.pixel_mean
        h, w = x.shape[-2:]
        d = FPN.size_divisibility
        ph, pw = (d - h % d) % d, (d - w % d) % d
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward(self, images: torch.Tensor) -> dict[str, object]:
        feats = self.backbone(images)
        encoded = self.feature_encoder(self.semantic_fpn(feats))
        centers, regions, weights = [], [], []
        for level in HEAD_LEVELS:
            ctr, reg = self.position_head(feats[level])
            centers.append(ctr)
            regions.append(reg)
            weights.append(self.kernel_head(feats[level]))
        return {"centers": centers, "regions": regions, "weights": weights, "encoded": encoded}


def build_model(config: ClipPanoFCNConfig | None = None, seed: int | None = None) -> ClipPanoFCN:
    """A network in eval mode (random weights: load a checkpoint before using it on real data)."""
    if seed is not None:
        torch.manual_seed(seed)
    return ClipPanoFCN(config).eval()
