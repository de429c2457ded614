"""The SAM 2 / SAM 2.1 checkpoints: which configuration a file holds, and whether it fits it.

Why its own module without torch at the top: :mod:`models.kinds` registers the ``sam2`` kind at
start-up (the GUI and the CLI start without torch), and one kind serves the eight released
networks (tiny, small, base+ and large of SAM 2 and SAM 2.1): the file itself says which one it
is - the Hiera trunk's width and block count give the size, the three tensors SAM 2.1 added
(``no_obj_embed_spatial``, ``obj_ptr_tpos_proj.*``) give the version - so a user configures one
path and never names a config. The structure check then compares every key and shape with the
network the ``sam2`` package builds from that config (on the meta device: no memory, no random
init), so a renamed key or a changed shape is refused by name before anything loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models.weights import CheckpointError, KeyCheck, StructureCheck, compare_state_dict

KIND = "sam2"
SIZES = ("tiny", "small", "base_plus", "large")
VERSIONS = ("2", "2.1")
#: (trunk width, trunk blocks) of each size, as in the package's configs (hieradet.Hiera)
TRUNK: dict[str, tuple[int, int]] = {"tiny": (96, 12), "small": (96, 16), "base_plus": (112, 24),
                                     "large": (144, 48)}
_LETTER = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
#: config name (the released file's stem, e.g. ``sam2.1_hiera_tiny``) -> the package's config file
CONFIGS: dict[str, str] = {f"sam{v}_hiera_{s}": f"configs/sam{v}/sam{v}_hiera_{_LETTER[s]}.yaml"
                           for v in VERSIONS for s in SIZES}
#: tensors only SAM 2.1 has
V21_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")
REQUIRED_PREFIXES = ("image_encoder.trunk.", "image_encoder.neck.", "sam_prompt_encoder.", "sam_mask_decoder.",
                     "memory_attention.", "memory_encoder.")
HINT = ("the SAM 2 / SAM 2.1 release of github.com/facebookresearch/sam2 (e.g. sam2.1_hiera_tiny.pt, "
        "its checkpoints/download_ckpts.sh lists them)")
#: tensors SAM 2 initialises to zeros (Hiera's position embeddings), constant in a random file
CONSTANT_ALLOWED = ("pos_embed",)


def config_name(size: str, version: str = "2.1") -> str:
    """``("tiny", "2.1")`` -> ``"sam2.1_hiera_tiny"``; :class:`CheckpointError` for an unknown one."""
    name = f"sam{version}_hiera_{size}"
    if name not in CONFIGS:
        raise CheckpointError(f"unknown SAM 2 configuration {size!r} / version {version!r}; sizes: "
                              f"{', '.join(SIZES)}, versions: {', '.join(VERSIONS)}")
    return name


def identify(sd: Mapping[str, Any]) -> tuple[str | None, str]:
    """``(config name, "")`` of the network a state dict holds, or ``(None, why not)``.

    Cheap (names and one shape): the trunk's patch-embedding width and block count name the
    size, the SAM 2.1 tensors the version. Every shape is compared by :func:`structure_check`.
    """
    keys = list(sd)
    missing = [p for p in REQUIRED_PREFIXES if not any(k.startswith(p) for k in keys)]
    if missing:
        return None, ("missing weights " + ", ".join(f"'{p}*'" for p in missing)
                      + " (a SAM 2 checkpoint has image_encoder.trunk, memory_attention, sam_mask_decoder, ...)")
    w = sd.get("image_encoder.trunk.patch_embed.proj.weight")
    if w is None or not hasattr(w, "shape") or len(w.shape) != 4:
        return None, "no 'image_encoder.trunk.patch_embed.proj.weight' of 4 dimensions"
    width = int(w.shape[0])
    depth = len({k.split(".")[3] for k in keys if k.startswith("image_encoder.trunk.blocks.")})
    size = next((s for s, t in TRUNK.items() if t == (width, depth)), None)
    if size is None:
        known = "; ".join(f"{s}: {t[0]} wide, {t[1]} blocks" for s, t in TRUNK.items())
        return None, f"Hiera trunk is {width} wide with {depth} blocks, which is no SAM 2 size ({known})"
    version = "2.1" if any(k in sd for k in V21_KEYS) else "2"
    return f"sam{version}_hiera_{size}", ""


def key_check() -> KeyCheck:
    """The registry's cheap check: the file names one of the eight SAM 2 configurations."""

    def check(keys: list[str], sd: Mapping[str, Any]) -> str | None:
        return identify(sd)[1] or None

    return check


def structure_check(expected_shapes: Callable[[str], Mapping[str, Any]]) -> StructureCheck:
    """Every key and shape against the ``sam2`` package's network of the identified configuration.

    ``expected_shapes(config)`` is ``models.sam2.build.expected_shapes``, passed in by the caller so
    this module (which the registry loads) never imports the builder, torch or sam2.
    """

    def check(sd: Mapping[str, Any], raw: Any, source: str) -> None:
        name, why = identify(sd)
        if name is None:
            raise CheckpointError(f"{source} is not a SAM 2 checkpoint: {why}")
        problem = compare_state_dict(expected_shapes(name), sd)
        if problem:
            raise CheckpointError(f"{source} does not fit a {name} network: {problem}")

    return check
