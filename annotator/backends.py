"""Which model backends are active, in words a user can act on (status bar, `info`, logs).

Why one place: the GUI must say clearly whether SAM and the memory propagator are usable or why not
(no checkpoint, file missing) and which optical-flow speed profile propagation runs at, and it must
never import torch to find out at start-up. The checks here only resolve paths (CLI flag >
environment variable > the effective settings, see ``models.weights`` and
``annotator.project.settings``); loading a checkpoint happens when the tool is first used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from annotator.project.settings import DEFAULT_SPEED, canonical
from models.sam import planned_decoder, sam_availability
from models.weights import availability
from propagation.factory import dense_backend


@dataclass(frozen=True)
class BackendStatus:
    """Short texts for the status bar plus the full reasons for its tooltip."""

    sam_ready: bool
    sam_text: str          # e.g. "SAM: vit_b" or "SAM: off (no checkpoint)"
    propagator: str        # the backend propagation uses: "flow" or "memory"
    propagator_text: str   # e.g. "propagation: optical flow (fast)"
    details: str           # multi-line reasons (paths, where they came from, how to configure)
    speed: str = DEFAULT_SPEED  # the flow profile dense propagation runs at (settings' propagation_speed)
    sam_decoder_text: str = ""  # e.g. "SAM decoder: onnxruntime (CPU)" (the loaded engine says for sure)

    @property
    def summary(self) -> str:
        return f"{self.sam_text}  |  {self.propagator_text}"


def backend_status(settings: Mapping[str, Any] | None = None, sam_checkpoint: str | os.PathLike[str] | None = None,
                   stcn_checkpoint: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None) -> BackendStatus:
    """Resolve the SAM and STCN checkpoints and describe what each tool will use.

    ``settings`` is the effective settings mapping (``annotator.project.settings.effective``); its
    ``propagation_speed`` is the flow profile named in the texts.
    """
    sam_ok, sam_kind, sam_reason = sam_availability(sam_checkpoint, settings, env)
    mem_ok, mem_reason = availability("stcn", stcn_checkpoint, settings, env)
    speed = str(canonical(settings or {}).get("propagation_speed") or DEFAULT_SPEED)
    wanted = dense_backend(canonical(settings or {}))
    use_memory = mem_ok and wanted == "memory"
    sam_text = f"SAM: {sam_kind.removeprefix('sam_')}" if sam_ok else "SAM: off (no checkpoint)"
    if use_memory:
        prop_text = "propagation: STCN memory"
    elif mem_ok:
        prop_text = f"propagation: flow, {speed} (STCN available)"
    else:
        prop_text = f"propagation: optical flow ({speed})"
    decoder = planned_decoder(canonical(settings or {}))
    details = "\n".join([sam_reason, decoder.text + (f" ({decoder.reason})" if decoder.reason else ""),
                         f"memory propagation: {mem_reason}",
                         f"optical-flow speed profile: {speed} (setting 'propagation_speed': fast, balanced "
                         "or quality)",
                         "optical-flow propagation and GrabCut/polygon/brush always work without weights."])
    return BackendStatus(sam_ok, sam_text, "memory" if use_memory else "flow", prop_text, details, speed,
                         decoder.text if sam_ok else "")
