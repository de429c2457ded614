"""The ``sam2`` dense backend: every track of a gap's references carried by SAM 2, both ways, fused.

Why it is built this way:

* One gap at a time (the targets between two references, or before the first / after the last):
  only that gap's frames are read and held, so memory does not grow with the video; the engine
  (:class:`models.sam2.Sam2VideoEngine`) also keeps video and state on the CPU and caps its
  memory bank.
* Every track of the left reference (things and stuff alike: a panoptic frame has no background)
  is one SAM 2 object, prompted with its mask and tracked forward; every track of the right
  reference is tracked backward from there. Object ids are 1..K per pass, mapped to track ids
  and back (:class:`TrackMap`), so any track id (up to 65535) works and SAM 2 never sees ours.
* Per pass a pixel goes to the object with the highest probability if that is >= 0.5 (else void,
  0); its confidence is that probability (void: one minus the highest). The two passes are fused
  per pixel with the flow backend's own rule (``FusionMixin._fuse``: temporal weight x confidence,
  agreement floor), so confidences mean the same across backends for the review flags.
* Human tracks: frames with human tracks are references and never targets (the dense stage keeps
  them bit for bit and re-propagates only the machine tracks around them); here every track of a
  reference is a prompt, human-drawn or not, so no human track is dropped from a gap.
* Progress and cancel per frame and pass; a cancel raises before anything is returned, so the
  caller never receives part of a gap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from models.sam2 import Sam2VideoEngine, VideoConfig, sam2_availability
from models.weights import CheckpointError, missing_message, resolve_checkpoint
from propagation.base import FrameSource, PropagationResult, Propagator, Reference
from propagation.flow_config import FlowConfig
from propagation.flow_fusion import FusionMixin

#: a pixel belongs to an object when SAM 2's probability for it reaches this
MASK_THRESHOLD = 0.5


class TrackMap:
    """One SAM 2 object id per track of a pass, both ways (object ids 1..K in track-id order)."""

    def __init__(self, tracks: np.ndarray) -> None:
        self.tracks = np.asarray(sorted(int(t) for t in tracks if int(t) != 0), np.int64)
        self.to_object = {int(t): i + 1 for i, t in enumerate(self.tracks)}
        self.to_track = {o: t for t, o in self.to_object.items()}

    def __len__(self) -> int:
        return len(self.tracks)

    def masks(self, label: np.ndarray) -> dict[int, np.ndarray]:
        """Object id -> bool mask of its track on ``label``."""
        return {o: label == t for t, o in self.to_object.items()}

    def labels(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``probs`` (K, H, W) of objects 1..K -> (HxW uint16 track ids, float32 confidence)."""
        best = probs.argmax(axis=0)
        top = np.take_along_axis(probs, best[None], axis=0)[0]
        ids = np.concatenate([[0], self.tracks]).astype(np.uint16)
        inside = top >= MASK_THRESHOLD
        lab = np.where(inside, ids[best + 1], 0).astype(np.uint16)
        conf = np.where(inside, top, 1.0 - top).astype(np.float32)
        return lab, conf


class _Fusion(FusionMixin):
    """The flow backend's per-pixel fusion rule, with its default agreement floor."""

    def __init__(self) -> None:
        self.config = FlowConfig()


def _gaps(ref_idx: list[int], targets: list[int]) -> list[tuple[int | None, int | None, list[int]]]:
    groups: dict[tuple[int | None, int | None], list[int]] = {}
    for t in sorted(set(targets)):
        left = max((r for r in ref_idx if r < t), default=None)
        right = min((r for r in ref_idx if r > t), default=None)
        groups.setdefault((left, right), []).append(t)
    return [(a, b, ts) for (a, b), ts in sorted(groups.items(), key=lambda kv: kv[1][0])]


class Sam2Propagator(Propagator):
    """Dense propagation by SAM 2's video predictor, forward and backward per gap, fused."""

    name = "sam2"

    def __init__(self, engine: Sam2VideoEngine) -> None:
        """``engine``: from :meth:`from_checkpoint` (users) or built around a network (tests)."""
        self.engine = engine
        self._fusion = _Fusion()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str] | None, device: str | None = None,
                        config: VideoConfig | None = None,
                        settings: Mapping[str, Any] | None = None) -> Sam2Propagator:
        """Load SAM 2 from ``path``, else ``VPS_SAM2_CHECKPOINT``, else ``settings``' checkpoints.

        Raises :class:`CheckpointError` (an ``InputError``) naming why the backend is unavailable:
        no checkpoint configured, no ``sam2`` package, or a file that is missing, damaged or no
        SAM 2 checkpoint. Never downloads anything and never runs random weights.
        """
        src = resolve_checkpoint("sam2", path, settings)
        if src is None:
            raise CheckpointError(f"the sam2 backend is unavailable: {missing_message('sam2')}")
        ok, _kind, reason = sam2_availability(src.path, None, {})
        if not ok:
            raise CheckpointError(f"the sam2 backend is unavailable: {reason}")
        return cls(Sam2VideoEngine.from_checkpoint(src.path, device=device, config=config))

    @property
    def device_name(self) -> str:
        return self.engine.device_name

    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PropagationResult:
        """Label every target from the references around it (see the module docstring).

        Args: as :meth:`propagation.base.Propagator.propagate` (frames HxWx3 uint8 RGB; references
        with HxW uint16 labels; targets are dense indices, none a reference).

        Returns:
            ``PropagationResult``: ``labels[t]`` HxW uint16 (only track ids of the gap's references,
            0 where no object reaches probability 0.5), ``confidence[t]`` HxW float32 in [0, 1].

        Raises:
            ValueError: no references, a target that is a reference, or references of different sizes.
            annotator.jobs.Cancelled: on cancel (checked before every frame of every pass).
        """
        if not references:
            raise ValueError("propagation needs at least one reference frame")
        refs = {r.index: r for r in references}
        if set(targets) & set(refs):
            raise ValueError("targets must not include reference frames")
        shape = next(iter(refs.values())).label.shape
        if any(r.label.shape != shape for r in refs.values()):
            raise ValueError("references must all have the same size")
        gaps = _gaps(sorted(refs), targets)
        total = sum(len(ts) * ((a is not None) + (b is not None)) for a, b, ts in gaps)
        done = 0
        labels: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        for left, right, ts in gaps:
            lo = left if left is not None else ts[0]
            hi = right if right is not None else ts[-1]
            idx = list(range(lo, hi + 1))
            images = []
            for i in idx:  # a long gap takes a while to read: cancel between frames
                check_cancel(cancel)
                images.append(frames.read_frame(i))
            wanted = set(ts)
            passes: dict[int, list[tuple[np.ndarray, np.ndarray, float]]] = {t: [] for t in ts}
            n = max(hi - lo, 1)
            for ref, reverse in ((refs.get(left) if left is not None else None, False),
                                 (refs.get(right) if right is not None else None, True)):
                if ref is None:
                    continue
                tmap = TrackMap(np.unique(ref.label))
                two_sided = left is not None and right is not None
                for pos, lab, c in self._pass(images, ref, tmap, reverse, cancel):
                    t = idx[pos]
                    if t not in wanted:
                        continue
                    weight = ((t - lo) / n if reverse else (hi - t) / n) if two_sided else 1.0
                    passes[t].append((lab, c, weight))
                    done += 1
                    if progress:
                        progress(done, total, f"frame {t} ({'backward' if reverse else 'forward'})")
            for t in ts:
                lab, c = self._fusion._fuse(passes[t])
                labels[t], conf[t] = lab.astype(np.uint16), np.clip(c, 0, 1).astype(np.float32)
            self.engine.clear_cache()  # the next gap shares at most its first frame with this one
        return PropagationResult(labels, conf)

    def _pass(self, images: list[np.ndarray], ref: Reference, tmap: TrackMap, reverse: bool,
              cancel: CancelToken | None):
        """``(position, labels, confidence)`` of every frame of one direction."""
        if len(tmap) == 0:  # an empty reference: nothing to carry, every pixel certainly void
            for pos in range(len(images)):
                check_cancel(cancel)
                yield pos, np.zeros(ref.label.shape, np.uint16), np.ones(ref.label.shape, np.float32)
            return
        for pos, probs in self.engine.track(images, tmap.masks(ref.label), reverse=reverse, cancel=cancel):
            lab, c = tmap.labels(probs)
            yield pos, lab, c


def sam2_backend_availability(path: str | os.PathLike[str] | None = None,
                              settings: Mapping[str, Any] | None = None,
                              env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """``(available, reason)`` of the sam2 backend for the status bar (cheap: nothing is loaded)."""
    ok, _kind, reason = sam2_availability(path, settings, env)
    if not ok:
        return False, f"SAM 2 propagation unavailable: {reason.removeprefix('SAM 2 unavailable: ')}"
    return True, f"SAM 2 propagation ready: {reason}"
