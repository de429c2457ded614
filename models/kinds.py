"""The built-in model kinds, declared once: SAM (three sizes), STCN and Clip-PanoFCN.

Why a list apart from :mod:`models.weights`: the registry must not import the models it checks
(that was an import circle), and every kind must be known before anything resolves a checkpoint
(the status bar, ``main.py weights``, the settings dialog). ``models/__init__.py`` imports this
module, so whatever part of ``models`` is imported first, every kind is registered.

Each declaration holds the cheap key check that tells kinds apart and the structure check its
model provides (every key and shape against the network). The networks of STCN and Clip-PanoFCN
live in modules that import torch at the top, so their structure checks import them when a file
is validated, not at start-up (the GUI and the CLI start without torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.sam import checkpoint as sam
from models.sam2 import build as sam2_build
from models.sam2 import checkpoint as sam2
from models.weights import ModelKind, prefix_check, register_kind


def _stcn_structure(sd: Mapping[str, Any], raw: Any, source: str) -> None:
    """Every key and shape of :class:`models.stcn.STCN`, built on the meta device."""
    import torch

    from models.stcn import STCN, check_state_dict  # imports torch and torchvision: only when checking

    with torch.device("meta"):
        net = STCN()
    check_state_dict(net, sd, source=source)


def _clip_panofcn_structure(sd: Mapping[str, Any], raw: Any, source: str) -> None:
    """Every key and shape of the Clip-PanoFCN network the file's configuration describes."""
    from models.clip_panofcn.checkpoint import check_clip_panofcn  # imports torch: only when checking

    check_clip_panofcn(dict(sd), raw, source=source)


def _declare() -> None:
    for name in sam.SAM_KINDS:
        dim, depth = sam.SIZES[name]
        register_kind(ModelKind(name, f"Segment Anything, {name[4:]} image encoder", sam.key_check(dim, depth),
                                sam.HINT.format(s=name[-1]), env_aliases=("VPS_SAM_CHECKPOINT",),
                                check_structure=sam.structure_check(name),
                                constant_allowed=sam.CONSTANT_ALLOWED))
    register_kind(ModelKind("stcn", "STCN-style space-time memory network",
                            prefix_check(("key_encoder.", "value_encoder."), ("decoder.",)),
                            "the STCN release (stcn.pth, github.com/hkchengrex/STCN)",
                            check_structure=_stcn_structure))
    register_kind(ModelKind("clip_panofcn", "Clip-PanoFCN video panoptic pre-annotation",
                            prefix_check(("backbone.bottom_up.", "position_head.", "kernel_head.", "feature_encoder.",
                                          "thing_generator.", "stuff_generator.")),
                            "the ClipPanoFCN release of github.com/VIPSeg-Dataset/VIPSeg-Dataset "
                            "(model_final.pth, 'model weight for inference'), or train one on finished videos "
                            "with `main.py train-preannotator`",
                            check_structure=_clip_panofcn_structure))
    register_kind(ModelKind(sam2.KIND, "Segment Anything 2 / 2.1 (tiny, small, base+ or large; the file says which)",
                            sam2.key_check(), sam2.HINT,
                            check_structure=sam2.structure_check(sam2_build.expected_shapes),
                            constant_allowed=sam2.CONSTANT_ALLOWED))


_declare()
