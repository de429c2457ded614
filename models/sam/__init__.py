"""Segment Anything as an annotation tool: clicks/box -> 3 candidate masks, with cached embeddings.

Why the split into encoder and decoder halves: SAM's image encoder costs seconds per frame on a
CPU while the prompt decoder costs ~0.1 s, so the tool is only interactive if the embedding is
ready before the user clicks. Embeddings are therefore computed by a background
:class:`EmbeddingWorker` in priority order (current frame, then keyframes, then the rest), kept
as float16 in a memory LRU and on disk keyed by (model kind, checkpoint sha256, frame hash) -
a changed frame or other weights can never reuse a stale embedding - and a cached one loads in
milliseconds.

Predictions follow SAM's own demo: positive/negative clicks and/or a box, three candidate masks
with predicted IoU scores to cycle through, and the chosen candidate's low-resolution logits fed
back as ``mask_input`` for the next click.

Interactivity on 2 cores: the decoder runs with one torch thread (two OpenMP threads on busy
cores measured ~4x slower), full-size masks are upsampled only for the candidate shown, and the
worker thread runs at a lower OS priority so that a click is not starved by the encoder.

No network access: the checkpoint comes from ``models.weights``; without one the tool reports
why it is unavailable (:func:`sam_availability`, :func:`open_sam_engine`) and the weight-free
tools still work.
Modules: ``checkpoint`` (the three SAM kinds and their checks, declared in :mod:`models.kinds`),
``model`` (:class:`SamModel`: encoder and decoder halves, :class:`SamPrediction`), ``cache``
(:class:`Embedding`, :class:`EmbeddingCache`), ``onnx_decoder`` (the click decoder exported to
ONNX and run by onnxruntime, torch's as fallback: :class:`DecoderChoice`), ``engine`` (:class:`SamEngine`, opening it from
the configured checkpoint, precomputing), ``worker`` (:class:`EmbeddingWorker`). Callers import
from this face.
"""

from models.sam.cache import EMBED_VERSION, FEATURE_SHAPE, Embedding, EmbeddingCache, frame_hash
from models.sam.checkpoint import SAM_KINDS
from models.sam.engine import (
    SamEngine,
    default_cache_dir,
    embedding_order,
    open_sam_engine,
    precompute_embeddings,
    sam_availability,
)
from models.sam.model import SamModel, SamPrediction
from models.sam.onnx_decoder import DecoderChoice, DecoderUnavailable, OnnxSamDecoder, planned_decoder
from models.sam.worker import EmbeddingWorker

__all__ = [
    "EMBED_VERSION", "FEATURE_SHAPE", "SAM_KINDS", "DecoderChoice", "DecoderUnavailable", "OnnxSamDecoder",
    "planned_decoder", "Embedding", "EmbeddingCache", "EmbeddingWorker", "SamEngine",
    "SamModel", "SamPrediction", "default_cache_dir", "embedding_order", "frame_hash", "open_sam_engine",
    "precompute_embeddings", "sam_availability",
]
