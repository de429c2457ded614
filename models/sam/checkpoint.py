"""The three SAM kinds (vit_b, vit_l, vit_h): how their checkpoints are told apart and checked.

Why its own module: :mod:`models.kinds` declares the kinds at start-up from these checks without
importing torch; the structure check builds the network on the meta device (no memory, no random
init) only when a file is validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.weights import CheckpointError, KeyCheck, StructureCheck, compare_state_dict

SAM_KINDS = ("sam_vit_b", "sam_vit_l", "sam_vit_h")
#: image-encoder width and block count of each size (they identify the size in a file)
SIZES: dict[str, tuple[int, int]] = {"sam_vit_b": (768, 12), "sam_vit_l": (1024, 24), "sam_vit_h": (1280, 32)}
HINT = "the official segment-anything release (sam_vit_{s}_*.pth)"
#: tensors SAM initialises to zeros, so an untrained or lightly trained file may hold them constant
CONSTANT_ALLOWED = ("pos_embed", "rel_pos_h", "rel_pos_w")


def key_check(embed_dim: int, depth: int) -> KeyCheck:
    """Key check for a SAM image-encoder size: the patch embedding width and block count identify it."""

    def check(keys: list[str], sd: Mapping[str, Any]) -> str | None:
        for prefix in ("image_encoder.", "prompt_encoder.", "mask_decoder."):
            if not any(k.startswith(prefix) for k in keys):
                return f"no '{prefix}*' weights (a SAM checkpoint has image_encoder, prompt_encoder, mask_decoder)"
        w = sd.get("image_encoder.patch_embed.proj.weight")
        if w is None or not hasattr(w, "shape"):
            return "no 'image_encoder.patch_embed.proj.weight'"
        found_dim = int(w.shape[0])
        blocks = {k.split(".")[2] for k in keys if k.startswith("image_encoder.blocks.")}
        found_depth = len(blocks)
        if found_dim != embed_dim or found_depth != depth:
            size = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}.get(found_dim, f"width {found_dim}")
            return (f"image encoder is {size} ({found_dim} wide, {found_depth} blocks), "
                    f"expected {embed_dim} wide with {depth} blocks")
        return None

    return check


def structure_check(kind: str) -> StructureCheck:
    """Structure check of a SAM size: every key and shape of segment-anything's network of that size."""

    def check(sd: Mapping[str, Any], raw: Any, source: str) -> None:
        import torch
        from segment_anything import sam_model_registry

        with torch.device("meta"):
            expected = sam_model_registry[kind[len("sam_"):]](checkpoint=None).state_dict()
        problem = compare_state_dict(expected, sd)
        if problem:
            raise CheckpointError(f"{source} does not fit a {kind} network: {problem}")

    return check
