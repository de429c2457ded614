"""The propagator interface shared by association (carry keyframe k0 to k1) and dense propagation.

A propagator takes reference frames with label maps and returns, for each target frame, a label
map plus a per-pixel confidence in [0, 1]. Backends: ``CopyPropagator`` (here, no motion model),
``propagation.flow.FlowPropagator`` (optical flow, no weights) and
``propagation.memory.MemoryPropagator`` (STCN-style, needs a checkpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel


class FrameSource(Protocol):
    """Read access to a video's frames; ``annotator.project.Video`` implements it."""

    @property
    def num_frames(self) -> int: ...

    def read_frame(self, index: int) -> np.ndarray:
        """Dense frame ``index`` as an HxWx3 uint8 RGB image."""
        ...

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        """All source frames from dense frame ``start`` to dense frame ``stop`` inclusive, in time
        order (``start < stop``), resized to the dense frame size. When the source has no frames
        between the two dense samples this is just ``[frame(start), frame(stop)]``."""
        ...


@dataclass
class Reference:
    """A frame whose label map is trusted (a keyframe or a human-refined frame)."""

    index: int
    label: np.ndarray  # HxW uint16 track ids
    fixed_tracks: frozenset[int] = field(default_factory=frozenset)  # tracks drawn by a human here


@dataclass
class PropagationResult:
    """Label map and confidence for every target frame."""

    labels: dict[int, np.ndarray]  # target index -> HxW uint16
    confidence: dict[int, np.ndarray]  # target index -> HxW float32 in [0, 1]


class Propagator(ABC):
    """Turns reference label maps into label maps of target frames."""

    #: short backend name shown in the GUI status bar and CLI (``flow``, ``memory``, ``copy``)
    name: str = "abstract"

    @abstractmethod
    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PropagationResult:
        """Label every target index from the references.

        Args:
            frames: the video (``FrameSource``): dense frames HxWx3 uint8 RGB, all of one size.
            references: at least one ``Reference`` (``index``; ``label`` HxW uint16 track ids, 0 =
                void; ``fixed_tracks``: the tracks a human drew there).
            targets: dense frame indices to label; never a reference index.
            progress: optional ``progress(done, total, text)``.
            cancel: checked between frames; a cancel raises ``annotator.jobs.Cancelled``.

        Returns:
            ``PropagationResult`` with ``labels[t]`` (HxW uint16, ids of the references) and
            ``confidence[t]`` (HxW float32 in [0, 1]) for every target ``t``. Backends with a
            shape guard return its subclass ``GuardedResult`` (``events[t]``).

        Raises:
            ValueError: no references (or, for some backends, a target that is a reference).
        """


class CopyPropagator(Propagator):
    """Copies the temporally nearest reference: the no-motion baseline and fallback."""

    name = "copy"

    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PropagationResult:
        if not references:
            raise ValueError("propagation needs at least one reference frame")
        labels: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        for n, t in enumerate(targets):
            check_cancel(cancel)
            ref = min(references, key=lambda r: (abs(r.index - t), r.index))
            labels[t] = ref.label.copy()
            conf[t] = np.ones(ref.label.shape, dtype=np.float32)
            if progress:
                progress(n + 1, len(targets), f"frame {t}")
        return PropagationResult(labels, conf)
