"""STCN-style space-time memory propagator (the ``memory`` backend; needs a checkpoint).

Why it is built this way:

* One pass per gap between references. The memory starts with the gap's references (left and
  right keyframe, or the single one at either end of the video) and grows by every
  ``mem_every``-th processed frame, as in STCN's evaluation. Frames are processed in time order
  away from the left reference (towards the left when only a right reference exists).
* Keys are shared by every object, values are per object; one sparse top-k affinity per query
  frame therefore serves all objects. Network calls (value encoder, decoder) run on at most
  ``max_objects`` objects at a time - their cost and memory grow linearly with the number of
  objects - but the soft aggregation and the "other objects" masks always see every object, so
  the result does not depend on the batch size.
* Frames are resized so the short side is ``short_side`` (480, STCN's training resolution) and
  zero-padded to a multiple of 16; probabilities are upsampled back to the full frame before the
  per-pixel argmax, so the label maps come out at full size. The confidence of a pixel is the
  probability of its winning label after soft aggregation.
* Both references of a gap sit in the memory from the start, so the readout itself fuses the two
  sides (each query pixel attends to its best matches in either keyframe); no separate forward
  and backward passes are needed. Every track of a reference is memory, whether a human drew it
  or not: keeping human tracks untouched is the dense orchestration's job.
* Dense propagation calls :meth:`MemoryPropagator.propagate` once per gap, so the keyframe between
  two gaps is a reference twice; its encodings are cached by content (pixel and label hashes).
* Random weights would produce plausible-looking garbage, so users can only build this backend
  from a checkpoint (:meth:`MemoryPropagator.from_checkpoint`); passing a network object directly
  is for tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from models.stcn import (
    STCN,
    STRIDE,
    aggregate,
    default_device,
    load_stcn,
    normalize_image,
    topk_affinity,
)
from models.weights import CheckpointError, availability, missing_message, require_checkpoint
from propagation.base import FrameSource, PropagationResult, Propagator, Reference

#: reference encodings kept between calls (2 per reference: key features, values) - enough for the
#: keyframe shared by consecutive gaps; about 50 MB + 3 MB per object each at 480p
REFERENCE_CACHE_ITEMS = 6


@dataclass
class MemoryConfig:
    """Tunables of the memory propagator (defaults = STCN's published evaluation settings)."""

    short_side: int | None = 480  # working resolution: short side in pixels (None = frame size)
    top_k: int = 20  # memory pixels read per query pixel
    mem_every: int = 5  # every n-th processed frame of a pass joins the memory
    max_objects: int = 8  # objects per network call (bounds time and memory per call)
    max_memory_frames: int = 32  # beyond this the oldest non-reference memory frame is dropped
    max_long_side_ratio: float = 4.0  # the long side is at most this times short_side (thin frames)

    def __post_init__(self) -> None:
        for name in ("top_k", "mem_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"memory propagation: {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class _Encoded:
    """Key-encoder outputs of one (padded, working-size) frame."""

    image: torch.Tensor  # 1x3xHpxWp normalised
    key: torch.Tensor  # 1xCKxhxw
    f16_thin: torch.Tensor
    f16: torch.Tensor
    f8: torch.Tensor
    f4: torch.Tensor


class MemoryBank:
    """Keys (CK x N) and per-object values of the memory frames, N = frames x h x w.

    Values are stored per object chunk as ``N x (objects_in_chunk * CV)`` so that the readout of
    a chunk is a single sparse matrix product without copying the bank.
    """

    def __init__(self, chunks: list[slice], max_frames: int = 32) -> None:
        self.chunks = chunks
        self.max_frames = max(1, max_frames)
        self.keys: torch.Tensor | None = None  # CK x N
        self.values: list[torch.Tensor] = []  # per chunk: N x (k * CV)
        self.frames: list[int] = []  # frame index of each memory frame, in insertion order
        self.is_reference: list[bool] = []
        self.frame_size = 0  # h * w (the same for every frame of a pass)
        self.value_dim = 0

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def add(self, frame: int, key: torch.Tensor, values: torch.Tensor, reference: bool = False) -> None:
        """Add one frame: ``key`` CKxhxw (or 1xCKxhxw), ``values`` KxCVxhxw for all K objects."""
        key = key.reshape(key.shape[-3], -1)
        k, cv = values.shape[:2]
        self.frame_size, self.value_dim = key.shape[1], cv
        vals = values.reshape(k, cv, -1).permute(2, 0, 1)  # hw x K x CV
        parts = [vals[:, c].reshape(vals.shape[0], -1) for c in self.chunks]
        if self.keys is None:
            self.keys, self.values = key.contiguous(), [p.contiguous() for p in parts]
        else:
            self.keys = torch.cat([self.keys, key], dim=1)
            self.values = [torch.cat([old, new], dim=0) for old, new in zip(self.values, parts, strict=True)]
        self.frames.append(frame)
        self.is_reference.append(reference)
        while self.num_frames > self.max_frames and not all(self.is_reference):
            self._drop(self.is_reference.index(False))

    def _drop(self, pos: int) -> None:
        """Remove the ``pos``-th memory frame (the oldest propagated frame when over capacity)."""
        a, b = pos * self.frame_size, (pos + 1) * self.frame_size
        assert self.keys is not None
        self.keys = torch.cat([self.keys[:, :a], self.keys[:, b:]], dim=1)
        self.values = [torch.cat([v[:a], v[b:]], dim=0) for v in self.values]
        del self.frames[pos]
        del self.is_reference[pos]

    def affinity(self, query_key: torch.Tensor, top_k: int) -> torch.Tensor:
        """Sparse HW x N top-k affinity of a query key (CKxhxw) against the memory."""
        if self.keys is None:
            raise RuntimeError("memory bank is empty")
        return topk_affinity(self.keys, query_key.reshape(query_key.shape[-3], -1), top_k)

    def read(self, affinity: torch.Tensor, chunk: int, shape: tuple[int, int]) -> torch.Tensor:
        """Readout of one object chunk: k x CV x h x w."""
        vals = self.values[chunk]
        k = vals.shape[1] // self.value_dim
        out = torch.sparse.mm(affinity, vals)  # HW x (k * CV): same as models.stcn.readout, no copy
        return out.reshape(-1, k, self.value_dim).permute(1, 2, 0).reshape(k, self.value_dim, *shape)


def _digest(array: np.ndarray) -> bytes:
    """Content hash of an image or label map (cache key; ~1 ms per 720p frame)."""
    a = np.ascontiguousarray(array)
    return hashlib.blake2b(a.data, digest_size=16).digest() + repr((a.shape, a.dtype.str)).encode()


def _object_chunks(num_objects: int, max_objects: int) -> list[slice]:
    step = max(1, max_objects)
    return [slice(a, min(a + step, num_objects)) for a in range(0, num_objects, step)]


def _gaps(ref_indices: list[int], targets: list[int]) -> Iterator[tuple[list[int], list[int]]]:
    """Group targets by the references around them: yields (references of the gap, targets in
    processing order)."""
    groups: dict[tuple[int | None, int | None], list[int]] = {}
    for t in sorted(set(targets)):
        left = max((r for r in ref_indices if r < t), default=None)
        right = min((r for r in ref_indices if r > t), default=None)
        groups.setdefault((left, right), []).append(t)
    for (left, right), ts in sorted(groups.items(), key=lambda kv: kv[1][0]):
        refs = [r for r in (left, right) if r is not None]
        yield refs, (ts if left is not None else ts[::-1])


class MemoryPropagator(Propagator):
    """Label maps carried by an STCN space-time memory network."""

    name = "memory"

    def __init__(self, network: STCN | str | os.PathLike[str] | None = None, device: str | None = None,
                 config: MemoryConfig | None = None) -> None:
        """``network`` is a checkpoint path (loaded strictly) or, for tests and benchmarks only, an
        already built :class:`~models.stcn.STCN`. ``None`` is refused: there are no default weights."""
        self.device = torch.device(device or default_device())
        self.config = config or MemoryConfig()
        self.checkpoint: Path | None = None
        #: memory frames of each pass of the last ``propagate`` call, for diagnostics and tests
        self.last_memory: list[list[int]] = []
        self._cache: OrderedDict[tuple, Any] = OrderedDict()  # reference encodings, see _reference_memory
        if network is None:
            raise CheckpointError(missing_message("stcn"))
        if isinstance(network, STCN):
            self.net = network.to(self.device).eval()
        else:
            self.checkpoint = Path(network).expanduser()
            self.net = load_stcn(self.checkpoint, self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str] | None, device: str | None = None,
                        config: MemoryConfig | None = None,
                        settings: Mapping[str, Any] | None = None) -> MemoryPropagator:
        """Load the network from ``path``, else ``VPS_STCN_CHECKPOINT``, else ``settings``
        (``{"checkpoints": {"stcn": PATH}}``, see :mod:`models.weights`).

        Raises :class:`~models.weights.CheckpointError` (an ``InputError``) when no checkpoint is
        configured, or the file is missing, truncated or not an STCN checkpoint.
        """
        src = require_checkpoint("stcn", path, settings)
        return cls(src.path, device=device, config=config)

    # ------------------------------------------------------------------ frame preparation

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """Frame size the network sees (before padding): short side = ``config.short_side``."""
        short = self.config.short_side
        if not short:
            return height, width
        scale = min(short / min(height, width), short * self.config.max_long_side_ratio / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))

    @staticmethod
    def _padding(h: int, w: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding to a multiple of :data:`STRIDE`, split evenly."""
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2

    def _image(self, rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        if rgb.shape[:2] != (h, w):
            shrink = h * w < rgb.shape[0] * rgb.shape[1]
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x = normalize_image(torch.tensor(rgb, dtype=torch.uint8, device=self.device))  # copies (read-only frames)
        return F.pad(x, self._padding(h, w))

    def _masks(self, label: np.ndarray, objects: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """One-hot Kx1xHpxWp masks of ``objects`` on a label map at working size (nearest)."""
        h, w = size
        if label.shape != (h, w):
            label = cv2.resize(label.astype(np.uint16), (w, h), interpolation=cv2.INTER_NEAREST)
        onehot = torch.from_numpy(label.astype(np.int64)).to(self.device)[None] == torch.from_numpy(
            objects.astype(np.int64)).to(self.device)[:, None, None]
        return F.pad(onehot.float()[:, None], self._padding(h, w))

    def _encode(self, rgb: np.ndarray, size: tuple[int, int]) -> _Encoded:
        image = self._image(rgb, size)
        key, f16_thin, f16, f8, f4 = self.net.encode_key(image)
        return _Encoded(image, key, f16_thin, f16, f8, f4)

    # ------------------------------------------------------------------ network steps

    def _values(self, enc: _Encoded, masks: torch.Tensor, chunks: list[slice]) -> torch.Tensor:
        """Memory values KxCVxhxw of all objects; "others" = every other object's probability."""
        others = masks.sum(0, keepdim=True) - masks
        return torch.cat([self.net.encode_value(enc.image, enc.f16, masks[c], others[c]) for c in chunks])

    def segment(self, enc: _Encoded, bank: MemoryBank) -> torch.Tensor:
        """Aggregated probabilities (K+1)xHpxWp of a query frame; index 0 is the background."""
        aff = bank.affinity(enc.key, self.config.top_k)
        shape = tuple(enc.key.shape[-2:])
        logits = [self.net.decode(bank.read(aff, i, shape), enc.f16_thin, enc.f8, enc.f4)
                  for i in range(len(bank.chunks))]
        return aggregate(torch.sigmoid(torch.cat(logits))[:, 0])

    def _finish(self, probs: torch.Tensor, size: tuple[int, int], full: tuple[int, int],
                ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unpad, upsample to the full frame, argmax -> (uint16 track ids, float32 confidence)."""
        h, w = size
        left, _, top, _ = self._padding(h, w)
        p = probs[:, top:top + h, left:left + w]
        if (h, w) != full:
            p = F.interpolate(p[None], size=full, mode="bilinear", align_corners=False)[0]
        conf, idx = p.max(dim=0)
        return ids[idx.cpu().numpy()], conf.float().cpu().numpy().astype(np.float32)

    def _reference_memory(self, rgb: np.ndarray, label: np.ndarray, objects: np.ndarray,
                          size: tuple[int, int], chunks: list[slice]) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory key and values of a reference, cached by content.

        Dense propagation calls :meth:`propagate` once per gap, so the keyframe between two gaps
        is a reference of both calls: the cache (keyed by hashes of the pixels and of the label
        map, a few ms) saves its key encoding, and its value encoding when the objects match.
        """
        frame_id = (_digest(rgb), size)
        enc = self._cache_get(("key", frame_id))
        if enc is None:
            enc = self._cache_put(("key", frame_id), self._encode(rgb, size))
        val_id = ("values", frame_id, _digest(label), objects.tobytes())
        values = self._cache_get(val_id)
        if values is None:
            values = self._cache_put(val_id, self._values(enc, self._masks(label, objects, size), chunks))
        return enc.key, values

    def _cache_get(self, key: tuple) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    def _cache_put(self, key: tuple, value: Any) -> Any:
        self._cache[key] = value
        while len(self._cache) > REFERENCE_CACHE_ITEMS:
            self._cache.popitem(last=False)
        return value

    def clear_cache(self) -> None:
        """Forget cached reference encodings (they are also evicted automatically, LRU)."""
        self._cache.clear()

    # ------------------------------------------------------------------ propagation

    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PropagationResult:
        """Label every target from the references by space-time memory readout (one pass per gap).

        Args: as :meth:`propagation.base.Propagator.propagate` (frames HxWx3 uint8 RGB, references
        with HxW uint16 labels, target indices). A target that is also a reference keeps the
        reference's labels (confidence 1).

        Returns:
            ``PropagationResult``: ``labels[t]`` HxW uint16 at the full frame size, ``confidence[t]``
            HxW float32 in [0, 1] (the probability of the winning label after soft aggregation).
            ``last_memory`` then lists the memory frames of each pass. Raises ``ValueError``
            without references and ``annotator.jobs.Cancelled`` on cancel.
        """
        if not references:
            raise ValueError("propagation needs at least one reference frame")
        refs = {r.index: r for r in references}
        labels: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        todo = [t for t in targets if t not in refs]
        for t in targets:  # not expected, but harmless: a reference keeps its own labels
            if t in refs:
                labels[t] = refs[t].label.astype(np.uint16, copy=True)
                conf[t] = np.ones(labels[t].shape, np.float32)
        done = len(labels)
        total = len(set(targets))
        self.last_memory = []
        with torch.inference_mode():
            for gap_refs, order in _gaps(sorted(refs), todo):
                for t, lab, c in self._run_pass(frames, [refs[i] for i in gap_refs], order, cancel):
                    labels[t], conf[t] = lab, c
                    done += 1
                    if progress:
                        progress(done, total, f"frame {t}")
        return PropagationResult(labels, conf)

    def _run_pass(self, frames: FrameSource, refs: list[Reference], order: list[int],
                  cancel: CancelToken | None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Propagate one gap: memory = its references, then every ``mem_every``-th processed frame."""
        full = tuple(int(s) for s in refs[0].label.shape)
        size = self.working_size(*full)
        objects = np.unique(np.concatenate([np.unique(r.label) for r in refs]))
        objects = objects[objects != 0].astype(np.int64)
        ids = np.concatenate([[0], objects]).astype(np.uint16)
        if objects.size == 0:  # nothing to carry: every target is empty and certain
            for t in order:
                check_cancel(cancel)
                yield t, np.zeros(full, np.uint16), np.ones(full, np.float32)
            return
        chunks = _object_chunks(len(objects), self.config.max_objects)
        bank = MemoryBank(chunks, self.config.max_memory_frames)
        self.last_memory.append(bank.frames)
        for ref in refs:
            check_cancel(cancel)
            if ref.label.shape != full:
                raise ValueError(f"reference {ref.index} is {ref.label.shape}, expected {full}")
            key, values = self._reference_memory(frames.read_frame(ref.index), ref.label, objects, size, chunks)
            bank.add(ref.index, key, values, reference=True)
        for n, t in enumerate(order, start=1):
            check_cancel(cancel)
            enc = self._encode(frames.read_frame(t), size)
            probs = self.segment(enc, bank)
            label, confidence = self._finish(probs, size, full, ids)
            yield t, label, confidence
            if n % self.config.mem_every == 0 and n < len(order):
                bank.add(t, enc.key, self._values(enc, probs[1:, None], chunks))


def memory_availability(path: str | os.PathLike[str] | None = None, deep: bool = False,
                        settings: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """``(available, reason)`` of the memory backend for the GUI status bar.

    ``path`` overrides ``VPS_STCN_CHECKPOINT``, which overrides ``settings``; ``deep=True`` also
    loads the file and checks every key and shape (slow: the network is ~220 MB).
    """
    ok, reason = availability("stcn", cli_path=path, settings=settings)
    if not ok:
        return False, f"memory propagation unavailable: {reason}"
    if deep:
        src = require_checkpoint("stcn", path, settings)
        try:
            load_stcn(src.path, "cpu")
        except CheckpointError as e:
            return False, f"memory propagation unavailable: {e}"
    return True, f"memory propagation (STCN) ready: {reason}"
