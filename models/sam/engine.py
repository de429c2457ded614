"""The SAM engine: a model plus its embedding cache, opened from the configured checkpoint.

``open_sam_engine`` resolves the checkpoint (CLI flag > environment variable > the effective
settings the caller passes), validates it and builds the engine; without one it raises a
:class:`CheckpointError` saying why SAM is unavailable, and the weight-free tools still work.
Never downloads anything.

The click path chooses its decoder once, when the engine opens (settings ``sam_decoder``:
``auto`` | ``onnx`` | ``torch``, :mod:`models.sam.onnx_decoder`): onnxruntime where it can run,
torch's otherwise, and :attr:`SamEngine.decoder_choice` says which and why. The embedding stays
torch's, on CUDA when present (``sam_device``: ``auto`` | ``cpu`` | ``cuda``); SAM 1 runs in
float32 (its released predictor has no bfloat16 path, and the cached embeddings are keyed by the
weights, not by the precision).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from models.sam.cache import Embedding, EmbeddingCache, frame_hash
from models.sam.checkpoint import SAM_KINDS
from models.sam.model import SamModel, SamPrediction
from models.sam.onnx_decoder import DecoderChoice, OnnxSamDecoder, check_mode, open_decoder, predict_onnx
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


SAM_DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    name = name or "auto"
    if name not in SAM_DEVICES:
        raise InputError(f"sam_device must be one of {', '.join(SAM_DEVICES)}, not {name!r}")
    if name == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        raise InputError("sam_device = cuda but torch sees no CUDA GPU here; set sam_device to auto or cpu")
    return "cpu"


class SamEngine:
    """Model + cache: ``embedding(image)`` returns a cached embedding or computes it; ``predict`` decodes.

    ``decoder`` (``auto`` | ``onnx`` | ``torch``) picks the click decoder here, once: an export
    into ``cache_dir`` may take a second or two, which belongs in the job that opens the engine,
    not in the first click. The default ``torch`` keeps engines built around other models (tests,
    fakes) free of onnxruntime.
    """

    def __init__(self, model: SamModel, cache_dir: str | os.PathLike[str] | None, memory_items: int = 16,
                 decoder: str = "torch") -> None:
        self.model = model
        self.cache = EmbeddingCache(cache_dir, memory_items)
        self.onnx: OnnxSamDecoder | None = None
        if check_mode(decoder) == "torch":
            device = getattr(getattr(model, "device", None), "type", "cpu")
            self.decoder_choice = DecoderChoice("torch", str(device), "")
        else:
            self.onnx, self.decoder_choice = open_decoder(model, cache_dir, decoder)

    @property
    def decoder_text(self) -> str:
        """E.g. ``SAM decoder: onnxruntime (CPU)``: for the status bar (the reason goes in its tooltip)."""
        return self.decoder_choice.text

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
        """``SamModel.predict``'s contract, decoded by the chosen decoder (:attr:`decoder_choice`)."""
        if self.onnx is not None:
            return predict_onnx(self.model, self.onnx, emb, **prompt)
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
                    device: str | None = None, memory_items: int = 16, decoder: str | None = None) -> SamEngine:
    """Build the SAM engine from the configured checkpoint (flag > env > settings), validated.

    Raises :class:`CheckpointError` saying why SAM is unavailable and how to configure it; the
    caller (GUI) disables the SAM tool with that message. Never downloads anything. ``device``
    and ``decoder`` default to the settings' ``sam_device`` and ``sam_decoder`` (both ``auto``):
    see the module docstring.
    """
    ok, kind, reason = sam_availability(cli_path, settings, env)
    if not ok:
        raise CheckpointError(reason)
    src = resolve_checkpoint(kind, cli_path, settings, env)
    assert src is not None
    # a generic source (flag, VPS_SAM_CHECKPOINT) may hold any size: let the file say which
    specific = src.origin.startswith("settings") or src.origin.endswith(f"VPS_{kind.upper()}_CHECKPOINT")
    settings = settings or {}
    dev = resolve_device(device or str(settings.get("sam_device") or "auto"))
    mode = check_mode(decoder or str(settings.get("sam_decoder") or "auto"))  # before loading the weights
    return SamEngine(SamModel(src.path, kind if specific else None, dev), cache_dir, memory_items, mode)
