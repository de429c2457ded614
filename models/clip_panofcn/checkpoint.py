"""Loading Clip-PanoFCN checkpoints: the released ``model_final.pth`` or one saved by this tool.

Everything about files (missing, truncated, not a checkpoint, damaged values, sha256) is
:mod:`models.weights`; this module says what a Clip-PanoFCN state dict must look like: exactly the
keys and shapes of :class:`ClipPanoFCN` built with the file's configuration (the released R50 one
unless the file carries a ``clip_panofcn_config`` entry, as files saved by :func:`save_checkpoint`
do). The comparison runs on the meta device (no memory, no random init), so ``weights check`` can
afford it, and a file that passes loads with ``strict=True``. Random weights are never used for a
user: without a valid file there is no model.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from annotator.store import atomic_write_bytes
from models.clip_panofcn.network import ClipPanoFCN, ClipPanoFCNConfig, default_pixel_mean
from models.weights import CheckpointError, compare_state_dict, load_state_dict_and_meta

CONFIG_KEY = "clip_panofcn_config"
KIND = "clip_panofcn"


def config_from_meta(raw: Any) -> ClipPanoFCNConfig:
    """The architecture a file declares (``{"clip_panofcn_config": {...}}``), else the released R50."""
    doc = raw.get(CONFIG_KEY) if isinstance(raw, dict) else None
    if doc is None:
        return ClipPanoFCNConfig()
    if not isinstance(doc, dict):
        raise CheckpointError(f"'{CONFIG_KEY}' in the checkpoint is not a mapping")
    known = {f.name for f in fields(ClipPanoFCNConfig)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise CheckpointError(f"'{CONFIG_KEY}' in the checkpoint has unknown fields {unknown}")
    try:
        return ClipPanoFCNConfig(**doc)
    except TypeError as e:
        raise CheckpointError(f"'{CONFIG_KEY}' in the checkpoint is invalid: {e}") from e


def expected_state_dict(config: ClipPanoFCNConfig | None = None) -> dict[str, torch.Tensor]:
    """Every key of the network with its shape (meta tensors)."""
    with torch.device("meta"):
        return ClipPanoFCN(config).state_dict()


def check_clip_panofcn(sd: dict[str, Any], raw: Any = None, source: str = "checkpoint") -> None:
    """The ``clip_panofcn`` kind's structure check (:mod:`models.kinds`): ``sd`` must hold exactly the
    keys and shapes of the network ``raw`` (the file's top-level object) configures; raise
    :class:`CheckpointError` naming the first wrong shapes / unexpected / missing keys."""
    config = config_from_meta(raw)
    problem = compare_state_dict(expected_state_dict(config), sd)
    if problem:
        raise CheckpointError(f"{source} does not fit the Clip-PanoFCN {config.name} network: {problem}. "
                              "Use the released model_final.pth of VIPSeg's ClipPanoFCN (detectron2 names, "
                              "loaded without renaming) or a checkpoint saved by this tool")


def load_clip_panofcn(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> ClipPanoFCN:
    """The Clip-PanoFCN network the checkpoint at ``path`` describes, with its weights, in eval mode.

    Contract: the file is a ``clip_panofcn`` checkpoint (the released ``model_final.pth`` or one
    written by :func:`save_checkpoint`); it is read with ``weights_only=True`` and fully validated by
    :func:`models.weights.load_state_dict_and_meta` (keys and shapes against the network its
    ``clip_panofcn_config`` declares, else the released R50; damaged values), converted to float32
    and loaded with ``strict=True`` on ``device``. Raises :class:`CheckpointError` otherwise.
    """
    sd, meta = load_state_dict_and_meta(path, KIND)
    config = config_from_meta(meta)
    with torch.device("meta"):
        model = ClipPanoFCN(config)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    model.pixel_mean = default_pixel_mean()  # a non-persistent buffer: still on the meta device
    return model.to(device).eval()


def save_checkpoint(model: ClipPanoFCN, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``{"model": state_dict, "clip_panofcn_config": {...}, **extra}`` atomically."""
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), CONFIG_KEY: asdict(model.config), **(extra or {})}, buf)
    p = Path(path)
    atomic_write_bytes(p, buf.getvalue())
    return p
