"""Which SAM the click and box tools run: the setting ``sam_model`` ("sam" or "sam2").

Why one place: the window's resource manager, the status bar and the effort robot must agree on
the model; both answer with the same shapes as :func:`models.sam.sam_availability` and
:func:`models.sam.open_sam_engine`, so their callers need no branch of their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from models.sam import SamEngine, open_sam_engine, sam_availability
from models.sam2.image import open_sam2_engine, sam2_availability

SAM_MODELS = ("sam", "sam2")
DEFAULT_SAM_MODEL = "sam"


def chosen(settings: Mapping[str, Any] | None) -> str:
    """The settings' ``sam_model`` when it names one of :data:`SAM_MODELS`, else ``"sam"``."""
    name = str((settings or {}).get("sam_model") or DEFAULT_SAM_MODEL)
    return name if name in SAM_MODELS else DEFAULT_SAM_MODEL


def tool_availability(cli_path: str | os.PathLike[str] | None = None, settings: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None) -> tuple[bool, str, str]:
    """``(available, kind, reason)`` of the model the settings choose (cheap: nothing is loaded)."""
    if chosen(settings) == "sam2":
        return sam2_availability(cli_path, settings, env)
    return sam_availability(cli_path, settings, env)


def open_tool_engine(cache_dir: str | os.PathLike[str] | None, cli_path: str | os.PathLike[str] | None = None,
                     settings: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                     device: str | None = None) -> SamEngine:
    """The SAM tool's engine on the model the settings choose; :class:`CheckpointError` says why not."""
    if chosen(settings) == "sam2":
        return open_sam2_engine(cache_dir, cli_path, settings, env, device=device)
    return open_sam_engine(cache_dir, cli_path, settings, env, device=device or "cpu")
