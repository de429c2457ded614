"""The SAM engine: a model plus its embedding cache, opened from the configured checkpoint.

``open_sam_engine`` resolves the checkpoint (CLI flag > environment variable > the effective
settings the caller passes), validates it and builds the engine; without one it raises a
:class:`CheckpointError` saying why SAM is unavailable, and the weight-free tools still work.
Never downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from models.sam.cache import Embedding, EmbeddingCache, frame_hash
from models.sam.checkpoint import SAM_KINDS
from models.sam.model import SamModel, SamPrediction
from models.weights import CheckpointError, availability, resolve_checkpoint


def sam_availability(cli_path: str | os.PathLike[str] | None = None, settings: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None, kinds: Sequence[str] = SAM_KINDS) -> tuple[bool, str, str]:
    """``(available, kind, reason)``: the first SAM kind with a configured, existing checkpoint.

    The GUI greys out the SAM tool and shows ``reason`` when nothing is configured.
    """
    reasons = []
    for kind in kinds:
        ok, reason = availability(kind, cli_path, settings, env)
        if ok:
            return True, kind, reason
        reasons.append(reason)
    return False, "", ("SAM tool unavailable: " + reasons[0]) if reasons else "SAM tool unavailable"


class SamEngine:
    """Model + cache: ``embedding(image)`` returns a cached embedding or computes it; ``predict`` decodes."""

    def __init__(self, model: SamModel, cache_dir: str | os.PathLike[str] | None, memory_items: int = 16) -> None:
        self.model = model
        self.cache = EmbeddingCache(cache_dir, memory_items)

    def key(self, image: np.ndarray) -> str:
        return f"{self.model.model_key}/{frame_hash(image)}"

    def cached(self, image: np.ndarray) -> Embedding | None:
        return self.cache.get(self.key(image))

    def embedding(self, image: np.ndarray, cancel: CancelToken | None = None) -> Embedding:
        key = self.key(image)
        emb = self.cache.get(key)
        if emb is None:
            emb = self.cache.put(key, self.model.embed(image, cancel))
        return emb

    def predict(self, emb: Embedding, **prompt: Any) -> SamPrediction:
        return self.model.predict(emb, **prompt)


def embedding_order(num_frames: int, current: int | None = None, keyframes: Iterable[int] = ()) -> list[int]:
    """Frames in the order embeddings are wanted: current, keyframes in order, then the rest."""
    order: list[int] = []
    seen: set[int] = set()
    for f in ([current] if current is not None else []) + list(keyframes) + list(range(num_frames)):
        if f is not None and 0 <= int(f) < num_frames and int(f) not in seen:
            seen.add(int(f))
            order.append(int(f))
    return order


def precompute_embeddings(engine: SamEngine, load_image: Callable[[int], np.ndarray], frames: Sequence[int],
                          progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> int:
    """Embed ``frames`` into the engine's cache (e.g. a video's keyframes overnight); returns how many
    were computed (cache hits cost nothing). Raises :class:`Cancelled` when ``cancel`` is set."""
    computed = 0
    for n, f in enumerate(frames):
        check_cancel(cancel)
        if progress is not None:
            progress(n, len(frames), f"frame {f}")
        image = load_image(f)
        if engine.cached(image) is None:
            engine.embedding(image, cancel)
            computed += 1
    if progress is not None:
        progress(len(frames), len(frames), "done")
    return computed


def default_cache_dir(project_path: str | os.PathLike[str]) -> Path:
    """Where a project keeps SAM embeddings (shared by its videos: entries are keyed by frame content)."""
    return Path(project_path) / "cache" / "sam_embeddings"


def open_sam_engine(cache_dir: str | os.PathLike[str] | None, cli_path: str | os.PathLike[str] | None = None,
                    settings: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                    device: str = "cpu", memory_items: int = 16) -> SamEngine:
    """Build the SAM engine from the configured checkpoint (flag > env > settings), validated.

    Raises :class:`CheckpointError` saying why SAM is unavailable and how to configure it; the
    caller (GUI) disables the SAM tool with that message. Never downloads anything.
    """
    ok, kind, reason = sam_availability(cli_path, settings, env)
    if not ok:
        raise CheckpointError(reason)
    src = resolve_checkpoint(kind, cli_path, settings, env)
    assert src is not None
    # a generic source (flag, VPS_SAM_CHECKPOINT) may hold any size: let the file say which
    specific = src.origin.startswith("settings") or src.origin.endswith(f"VPS_{kind.upper()}_CHECKPOINT")
    return SamEngine(SamModel(src.path, kind if specific else None, device), cache_dir, memory_items)
