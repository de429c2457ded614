"""Building blocks with detectron2's parameter layout, in plain PyTorch.

Why not detectron2: it cannot be installed here and its deformable convolution is a CUDA kernel.
The released Clip-PanoFCN checkpoint stores parameters under detectron2's module names
(``conv.norm.weight``, ``dcnv2.weight``, ``offset_mask_conv.bias`` ...), so these modules keep
exactly those attribute names: the checkpoint then loads with ``strict=True`` and no renaming.

* :class:`FrozenBatchNorm2d` - batch norm with fixed statistics; its four tensors are *buffers*
  (no ``num_batches_tracked``), as in the detectron2 backbones.
* :class:`NormConv2d` - ``nn.Conv2d`` with an optional ``norm`` submodule and activation applied
  after the convolution (detectron2's ``layers.Conv2d``).
* :class:`ModulatedDeformConv` - DCNv2 (Zhu et al. 2019) written with ``grid_sample``: each of the
  k*k kernel taps is sampled at its learned fractional offset with bilinear interpolation (zero
  outside the image, like the CUDA kernel), scaled by its modulation mask, and the taps are
  contracted with the weight. Runs on any device.
* :class:`ModulatedDeformConvWithOff` - the offset/mask predicting wrapper used by the position head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Activation = Callable[[torch.Tensor], torch.Tensor] | None


class FrozenBatchNorm2d(nn.Module):
    """Per-channel affine transform from fixed batch-norm statistics (weights never train)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.full((num_features,), 1.0 - eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + shift.reshape(1, -1, 1, 1).to(x.dtype)


def group_norm(channels: int) -> nn.GroupNorm:
    """detectron2's ``get_norm("GN", C)``: 32 groups."""
    return nn.GroupNorm(32, channels)


class NormConv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional ``norm`` module and activation (names as detectron2)."""

    def __init__(self, *args, norm: nn.Module | None = None, activation: Activation = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def deform_sample(x: torch.Tensor, offset: torch.Tensor, kernel_size: int, stride: int = 1,
                  padding: int = 1, dilation: int = 1) -> torch.Tensor:
    """Sample ``x`` at the deformed tap positions: returns ``(N, C, k*k, Ho, Wo)``.

    ``offset`` is ``(N, 2*k*k, Ho, Wo)`` with channel ``2*t`` the row (y) shift and ``2*t+1`` the
    column (x) shift of tap ``t`` (row-major over the kernel), the layout of the DCN kernels.
    """
    n, c, h, w = x.shape
    ho, wo = offset.shape[-2:]
    k = kernel_size
    dtype, dev = x.dtype, x.device
    base_y = torch.arange(ho, device=dev, dtype=dtype) * stride - padding
    base_x = torch.arange(wo, device=dev, dtype=dtype) * stride - padding
    tap = torch.arange(k, device=dev, dtype=dtype) * dilation
    # positions (k*k, Ho, Wo) before the learned shift
    py = (tap.view(k, 1, 1, 1) + base_y.view(1, 1, ho, 1)).expand(k, k, ho, wo).reshape(k * k, ho, wo)
    px = (tap.view(1, k, 1, 1) + base_x.view(1, 1, 1, wo)).expand(k, k, ho, wo).reshape(k * k, ho, wo)
    off = offset.reshape(n, k * k, 2, ho, wo)
    sy = py.unsqueeze(0) + off[:, :, 0]
    sx = px.unsqueeze(0) + off[:, :, 1]
    # grid_sample with align_corners=True maps -1..1 onto pixel centres 0..size-1; zeros padding
    # gives each out-of-image neighbour weight zero, exactly the DCN bilinear rule
    gx = sx * (2.0 / max(w - 1, 1)) - 1.0
    gy = sy * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).reshape(n, k * k * ho, wo, 2)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled.reshape(n, c, k * k, ho, wo)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None, stride: int = 1, padding: int = 1,
                            dilation: int = 1) -> torch.Tensor:
    """DCNv2: ``sum_t w_t * mask_t * x(p + p_t + offset_t)`` (one deformable group, no conv groups)."""
    out_c, in_c, k, _ = weight.shape
    cols = deform_sample(x, offset, k, stride, padding, dilation)  # N, C, k*k, Ho, Wo
    cols = cols * mask.unsqueeze(1)
    n, _, kk, ho, wo = cols.shape
    out = torch.matmul(weight.reshape(out_c, in_c * kk), cols.reshape(n, in_c * kk, ho * wo))
    out = out.reshape(n, out_c, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


class ModulatedDeformConv(nn.Module):
    """Deformable convolution v2 with ``weight``/``bias``/``norm`` named as in detectron2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = True, norm: nn.Module | None = None,
                 activation: Activation = None) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                    self.dilation)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class ModulatedDeformConvWithOff(nn.Module):
    """A 3x3 conv predicting 2*k*k offsets and k*k masks (sigmoid), then the DCNv2 on the input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = True, norm: nn.Module | None = None,
                 activation: Activation = None) -> None:
        super().__init__()
        kk = kernel_size * kernel_size
        # default conv init as in the released code (no zero init: a constant tensor would read as damage)
        self.offset_mask_conv = nn.Conv2d(in_channels, 3 * kk, kernel_size, stride, padding)
        self.dcnv2 = ModulatedDeformConv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                         bias=bias, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset_mask_conv(x)
        kk2 = 2 * om.shape[1] // 3
        # the first two thirds are the (y, x) offsets, the last third the modulation masks
        return self.dcnv2(x, om[:, :kk2], torch.sigmoid(om[:, kk2:]))
