"""SAM 2 networks from the ``sam2`` package's own builder and configs, loaded from validated files.

Why through the package: its classes *are* the network (no port), so what our engines compute is
SAM 2's output by construction; we only choose the configuration, load the weights ourselves
(``weights_only=True`` through :mod:`models.weights`, every key and shape checked first: the
package's loader would ``torch.load`` the file itself and log a bare ``RuntimeError``), pick the
device and run it under bfloat16 autocast on CUDA, as SAM 2's README recommends.

``image_size`` (default: the config's 1024) exists for tests and benchmarks: the weights do not
depend on it, and a 256-pixel network runs the same code about 16 times faster.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.sam2.checkpoint import CONFIGS, KIND, identify
from models.weights import CheckpointError, compare_state_dict, load_state_dict, sha256_file

INSTALL_HINT = "install the optional extra: pip install 'vps-annotator[sam2]' (or pip install sam2==1.1.0)"


def sam2_installed() -> tuple[bool, str]:
    """``(True, "")`` when the ``sam2`` package imports, else ``(False, why)`` for the status bar."""
    try:
        import sam2.build_sam  # noqa: F401 - optional dependency, imported only to probe it
    except ImportError as exc:
        return False, f"the sam2 package is not installed ({exc}); {INSTALL_HINT}"
    except Exception as exc:  # noqa: BLE001 - a broken install (hydra, config search path) is a reason too
        return False, f"the sam2 package does not import ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    return True, ""


def _require_sam2() -> None:
    ok, why = sam2_installed()
    if not ok:
        raise CheckpointError(f"SAM 2 is unavailable: {why}")


def default_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``: nothing requires a GPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def autocast(device: Any) -> Iterator[None]:
    """bfloat16 autocast on CUDA (SAM 2's recommendation), nothing on the CPU (float32 there)."""
    import torch

    if str(device).startswith("cuda"):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def _overrides(image_size: int | None) -> list[str]:
    """Hydra overrides for a smaller input (the RoPE memory attention is laid out on the 1/16 grid)."""
    if not image_size or image_size == 1024:
        return []
    if image_size % 64:
        raise ValueError(f"SAM 2 image_size must be a multiple of 64, got {image_size}")
    g = image_size // 16
    return [f"++model.image_size={image_size}",
            f"++model.memory_attention.layer.self_attention.feat_sizes=[{g},{g}]",
            f"++model.memory_attention.layer.cross_attention.feat_sizes=[{g},{g}]"]


def build_network(config: str, video: bool = True, device: str = "cpu", image_size: int | None = None) -> Any:
    """The package's network of ``config`` (a :data:`CONFIGS` name) with its random initialisation.

    ``video=True``: ``sam2.sam2_video_predictor.SAM2VideoPredictor`` (``build_sam2_video_predictor``,
    with the package's video post-processing options); else ``SAM2Base`` (``build_sam2``) for the
    image predictor. Tests build random networks here; users go through :func:`load_network`.
    """
    _require_sam2()
    if config not in CONFIGS:
        raise CheckpointError(f"unknown SAM 2 configuration {config!r}; use one of {', '.join(CONFIGS)}")
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    builder = build_sam2_video_predictor if video else build_sam2
    return builder(CONFIGS[config], None, device=device, hydra_overrides_extra=_overrides(image_size))


@functools.lru_cache(maxsize=8)
def expected_shapes(config: str) -> dict[str, Any]:
    """Every key of ``config``'s network with a meta tensor of its shape (built on the meta device).

    Hiera turns a ``torch.linspace`` into Python floats while it is built (``.item()``), which the
    meta device cannot do, so that one factory runs on the CPU.
    """
    _require_sam2()
    import torch
    from torch.overrides import TorchFunctionMode

    class _LinspaceOnCpu(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = dict(kwargs or {})
            if func is torch.linspace:
                kwargs["device"] = "cpu"
            return func(*args, **kwargs)

    with torch.device("meta"), _LinspaceOnCpu():
        net = build_network(config, video=False, device="meta")
    return dict(net.state_dict())


def load_state(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any], str]:
    """``(config name, state dict, sha256)`` of a validated SAM 2 checkpoint.

    Raises :class:`CheckpointError` for anything :func:`models.weights.load_state_dict` refuses
    (missing, truncated, not plain weights, another model kind, a renamed key or changed shape -
    named -, damaged values) and when the ``sam2`` package is missing.
    """
    _require_sam2()
    p = Path(path).expanduser()
    state = load_state_dict(p, KIND)  # weights_only=True, keys + every shape + damage checked there
    config, why = identify(state)
    if config is None:  # the registry's key check passed, so this cannot happen; say so if it does
        raise CheckpointError(f"checkpoint {p} is not a SAM 2 checkpoint: {why}")
    return config, state, sha256_file(p)


def load_network(path: str | os.PathLike[str], video: bool = True, device: str | None = None,
                 image_size: int | None = None) -> tuple[Any, str, str]:
    """``(network, config name, sha256)``: the package's network with the file's weights, strictly.

    ``device=None`` picks CUDA when present. Never downloads: without a file there is no network.
    """
    config, state, sha = load_state(path)
    net = build_network(config, video=video, device="cpu", image_size=image_size)
    load_strict(net, state, f"checkpoint {Path(path).expanduser()}", config)
    return net.to(device or default_device()).eval(), config, sha


def load_strict(net: Any, state: Mapping[str, Any], source: str, config: str) -> None:
    """``net.load_state_dict(state, strict=True)`` with the problem named as a :class:`CheckpointError`."""
    problem = compare_state_dict(net.state_dict(), state)
    if problem:
        raise CheckpointError(f"{source} does not fit a {config} network: {problem}")
    try:
        net.load_state_dict(dict(state), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source} does not fit a {config} network: {str(e).splitlines()[0]}") from e
