"""The propagator factory, beside the engines it builds (as sam2's ``build_sam.py``).

Every caller that needs a propagator (the ``propagate`` and ``eval-propagation`` commands, the
window's propagate and associate jobs, batch, the effort robot, VSPW import) asks here, so a
backend name and a speed profile mean the same engine everywhere.

- :func:`make_propagator` builds a dense-propagation backend: ``flow`` (weight-free optical
  flow, profile ``fast`` / ``balanced`` / ``quality``), ``memory`` (STCN, needs a checkpoint) or
  ``global`` (experimental, issue 27: the flow profile with every gap also solved as one graph
  cut, ``propagation.global_gap``; it does not beat ``flow`` yet, see docs/propagation.md).
- :func:`association_propagator` builds the propagator association carries tracks with: plain
  optical flow (it only needs each track roughly where it lands on the next keyframe), falling
  back to copying when flow cannot be built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annotator.errors import InputError
from propagation.base import CopyPropagator, Propagator

#: dense backends, in the order the CLI and the window list them
BACKENDS = ("flow", "memory", "global")
#: the dense backend when the settings name none
DEFAULT_BACKEND = "flow"
#: flow profiles (``propagation.flow.PROFILES``)
SPEEDS = ("fast", "balanced", "quality")
#: Dense propagation default: the profile that meets the 720p budget (>= 10 frames/s on 2 cores);
#: README's table has its DAVIS figures beside the slower profiles.
DEFAULT_SPEED = "fast"


def dense_backend(settings: Mapping[str, Any] | None) -> str:
    """The dense backend the effective settings ask for: ``settings["propagation_backend"]`` when
    it names one of :data:`BACKENDS`, else :data:`DEFAULT_BACKEND`.

    One rule for the window's propagate job, ``main.py propagate`` / ``batch ... propagate``
    without ``--backend``, and the status bar, so they never disagree about what runs (a project
    says ``flow`` since its creation; older files may say ``"propagator"``, read as this key by
    ``annotator.project.settings``). ``memory`` still needs an STCN checkpoint: without one,
    :func:`make_propagator` refuses with the reason rather than silently running flow.
    """
    name = str((settings or {}).get("propagation_backend") or DEFAULT_BACKEND)
    return name if name in BACKENDS else DEFAULT_BACKEND


def make_propagator(backend: str | None, checkpoint: str | None = None, preset: str | None = None,
                    speed: str | None = None, settings: Mapping[str, Any] | None = None) -> Propagator:
    """Build a dense-propagation backend.

    Args:
        backend: ``"flow"``, ``"memory"`` or ``"global"`` (:data:`BACKENDS`); ``None`` = :func:`dense_backend`
            of ``settings``.
        checkpoint: STCN checkpoint path for ``memory`` (else ``VPS_STCN_CHECKPOINT`` or the
            settings' ``checkpoints``); the memory backend never runs random weights.
        preset: overrides the DIS optical-flow preset of the profile (``flow`` only).
        speed: flow profile (:data:`SPEEDS`); ``None`` takes ``settings["propagation_speed"]``, else
            :data:`DEFAULT_SPEED`.
        settings: the effective settings (defaults < user < project).

    Returns:
        A :class:`propagation.base.Propagator`. Raises ``InputError`` for an unknown backend or
        a memory backend this installation cannot import.
    """
    if backend is None:
        backend = dense_backend(settings)
    if backend == "flow":
        from propagation.flow import FlowConfig, FlowPropagator

        config = FlowConfig.profile(speed or str((settings or {}).get("propagation_speed", DEFAULT_SPEED)))
        return FlowPropagator(config, preset=preset) if preset else FlowPropagator(config)
    if backend == "global":
        import dataclasses

        from propagation.flow import FlowConfig, FlowPropagator

        config = FlowConfig.profile(speed or str((settings or {}).get("propagation_speed", DEFAULT_SPEED)))
        config = dataclasses.replace(config, global_gap=True)
        return FlowPropagator(config, preset=preset) if preset else FlowPropagator(config)
    if backend == "memory":
        try:
            from propagation.memory import MemoryPropagator
        except ImportError as exc:  # the memory backend (torch, models.stcn) is not installed
            raise InputError(f"the memory backend is not available in this installation ({exc}); "
                             "use --backend flow") from exc
        return MemoryPropagator.from_checkpoint(checkpoint, settings=settings)
    raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def association_propagator(name: str | None = None) -> Propagator:
    """The propagator association carries tracks with: ``flow``, ``copy``, or ``None`` = flow,
    falling back to copy when flow cannot be built (copy has no motion model but keeps
    association usable)."""
    if name not in (None, "flow", "copy"):
        raise InputError(f"unknown propagator {name!r} for association; choose flow or copy")
    if name != "copy":
        try:
            from propagation.flow import FlowPropagator

            return FlowPropagator()
        except Exception as exc:  # noqa: BLE001 - any failure to build flow means: use copy
            if name == "flow":
                raise InputError(f"the flow propagator is not available ({exc}); use --propagator copy") from None
    return CopyPropagator()
