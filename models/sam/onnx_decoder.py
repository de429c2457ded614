"""SAM 1's prompt encoder + mask decoder exported to ONNX and run with onnxruntime, torch as fallback.

Why: the click path is the part of SAM a person waits for. The same decoder run by onnxruntime
took about 2.5x less time per click than torch's on 2 CPU cores (figures: ``docs/sam.md``,
``bench/bench_sam_click.py``), while the image embedding stays torch's (the background worker
computes it, on CUDA when present).

How the export works: segment-anything's own :class:`segment_anything.utils.onnx.SamOnnxModel`
(traceable prompt embedding, the same network weights) traced by ``torch.onnx.export``, once per
checkpoint. The graph stops at the 256x256 low-resolution logits and the predicted IoUs of all
four mask tokens: SamOnnxModel's own upscaling to the frame's size is left out because torch's
tracer bakes the example frame size into the crop (a decoder exported at 720p would be wrong at
any other size), and because the canvas upsamples only the candidate it shows
(:class:`~models.sam.model.SamPrediction`, SAM's own ``postprocess_masks``). Multimask output
takes tokens 1-3, single-mask token 0, exactly as segment-anything's ``MaskDecoder.forward``.

The cache: ``cache_dir/<model key>/decoder-v<EXPORT_VERSION>-opset<OPSET>.onnx`` beside that
checkpoint's embeddings (:func:`models.sam.cache.decoder_path`), with a JSON sidecar holding the
checkpoint's full sha256, the ONNX file's sha256 and the exporter's versions. A file whose hash
or checkpoint does not match the sidecar (torn write, edited, other weights) is exported again;
``cache_dir=None`` exports into memory. Nothing here downloads anything.

Fallback: without onnxruntime, without ``onnx`` (needed only to export) or when the export fails,
``sam_decoder="auto"`` runs the torch decoder and :class:`DecoderChoice` says why, for the status
bar; ``"onnx"`` refuses with that reason instead; ``"torch"`` never tries onnxruntime.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError
from models.prompts import check_box
from models.sam.cache import Embedding, decoder_path
from models.sam.model import SamModel, SamPrediction

EXPORT_VERSION = 1  # bump when the exported graph's inputs or outputs change
OPSET = 17
DECODER_MODES = ("auto", "onnx", "torch")
INPUT_NAMES = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
OUTPUT_NAMES = ("iou_predictions", "low_res_masks")
LOW_RES = 256  # side of SAM's low-resolution logits (mask_input and low_res_masks)


class DecoderUnavailable(InputError):
    """The ONNX decoder cannot run here (package missing, export failed); the message says why."""


@dataclass(frozen=True)
class DecoderChoice:
    """Which decoder runs SAM clicks, on which device, and why (status bar and tooltip)."""

    backend: str  # "onnxruntime" or "torch"
    device: str   # "CPU" / "CUDA" (onnxruntime providers) or "cpu" / "cuda" (torch devices)
    reason: str = ""  # why this one (e.g. why not onnxruntime), empty when it is what was asked

    @property
    def text(self) -> str:
        return f"SAM decoder: {self.backend} ({self.device})"


def tag() -> str:
    """The part of the cached file name that changes with the graph's layout."""
    return f"v{EXPORT_VERSION}-opset{OPSET}"


def check_mode(mode: str) -> str:
    if mode not in DECODER_MODES:
        raise InputError(f"sam_decoder must be one of {', '.join(DECODER_MODES)}, not {mode!r}")
    return mode


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def planned_decoder(settings: Mapping[str, Any] | None = None) -> DecoderChoice:
    """What :func:`open_decoder` will most likely choose, found without importing torch or onnxruntime
    (the window's status bar at start-up). The device of onnxruntime is a guess from the installed
    distribution (``onnxruntime-gpu`` carries the CUDA provider); the loaded engine says for sure."""
    mode = str((settings or {}).get("sam_decoder") or "auto")
    if mode == "torch":
        return DecoderChoice("torch", "cuda if present", "setting sam_decoder = torch")
    if not _has("onnxruntime"):
        return DecoderChoice("torch", "cuda if present", "onnxruntime is not installed (pip install onnxruntime)")
    gpu = False
    with contextlib.suppress(metadata.PackageNotFoundError):
        gpu = bool(metadata.version("onnxruntime-gpu"))
    return DecoderChoice("onnxruntime", "CUDA if present" if gpu else "CPU", "")


# --------------------------------------------------------------------------- export
def _low_res_module(net: Any) -> Any:
    """segment-anything's SamOnnxModel cut before its frame-size upscaling (see the module docstring)."""
    import torch
    from segment_anything.utils.onnx import SamOnnxModel

    class LowResSamOnnx(SamOnnxModel):
        def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,  # type: ignore[override]
                    point_labels: torch.Tensor, mask_input: torch.Tensor,
                    has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sparse = self._embed_points(point_coords, point_labels)
            dense = self._embed_masks(mask_input, has_mask_input)
            masks, scores = self.model.mask_decoder.predict_masks(
                image_embeddings=image_embeddings, image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
            return scores, masks

    return LowResSamOnnx(net, return_single_mask=False).eval()


def export_decoder(net: Any) -> bytes:
    """Trace SAM's prompt encoder + mask decoder of ``net`` (a segment-anything ``Sam``) to ONNX bytes.

    Inputs: ``image_embeddings`` float32 (1, 256, 64, 64); ``point_coords`` float32 (1, N, 2) in the
    1024-side input frame; ``point_labels`` float32 (1, N): 1 positive, 0 negative, 2/3 box corners,
    -1 padding; ``mask_input`` float32 (1, 1, 256, 256); ``has_mask_input`` float32 (1,). Outputs:
    ``iou_predictions`` (1, 4) and ``low_res_masks`` (1, 4, 256, 256). ``N`` is dynamic. Needs the
    ``onnx`` package (torch's exporter writes through it); raises :class:`DecoderUnavailable` otherwise.
    """
    if not _has("onnx"):
        raise DecoderUnavailable("the onnx package is not installed (pip install onnx; needed once per "
                                 "checkpoint to export SAM's decoder)")
    import torch

    module = _low_res_module(net)
    embed = net.prompt_encoder.embed_dim
    side = net.prompt_encoder.image_embedding_size
    dev = next(net.parameters()).device  # traced where the weights are: the graph holds no device
    dummy = tuple(t.to(dev) for t in (
        torch.randn(1, embed, *side), torch.randint(0, 1024, (1, 5, 2)).float(),
        torch.randint(0, 4, (1, 5)).float(), torch.randn(1, 1, 4 * side[0], 4 * side[1]), torch.tensor([1.0])))
    buf = io.BytesIO()
    axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constant Python floats (sqrt of a width)
            torch.onnx.export(module, dummy, buf, export_params=True, opset_version=OPSET,
                              do_constant_folding=True, input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), dynamic_axes=axes, dynamo=False)
    except Exception as exc:  # the exporter raises many kinds; all mean "no ONNX decoder"
        raise DecoderUnavailable(f"exporting SAM's decoder to ONNX failed ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return buf.getvalue()


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "segment-anything", "onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _cached_bytes(path: Path, checkpoint_sha256: str) -> tuple[bytes | None, str]:
    """The cached export if it is the one made for these weights and intact, else ``(None, why)``."""
    try:
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "not exported yet"
    except (OSError, ValueError) as exc:
        return None, f"cached decoder unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("checkpoint_sha256") != checkpoint_sha256:
        return None, "cached decoder was exported from other weights"
    if meta.get("onnx_sha256") != hashlib.sha256(data).hexdigest():
        return None, f"cached decoder {path.name} is damaged (its sha256 differs from the one recorded)"
    return data, ""


def _store(path: Path, data: bytes, checkpoint_sha256: str) -> str:
    """Write the export and its sidecar atomically; returns an error text (empty when stored)."""
    meta = {"export_version": EXPORT_VERSION, "opset": OPSET, "checkpoint_sha256": checkpoint_sha256,
            "onnx_sha256": hashlib.sha256(data).hexdigest(), "versions": _versions()}
    stamp = f".{os.getpid()}.{threading.get_ident()}.tmp"
    written = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, blob in ((path, data), (_sidecar(path), json.dumps(meta, indent=1).encode())):
            tmp = target.with_name(target.name + stamp)
            written.append(tmp)
            tmp.write_bytes(blob)
            os.replace(tmp, target)
    except OSError as exc:
        for tmp in written:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return f"decoder cache {path.parent} not writable ({exc.strerror or exc})"
    return ""


# --------------------------------------------------------------------------- running
class OnnxSamDecoder:
    """An onnxruntime session over the exported decoder (arrays in, arrays out; thread-safe).

    ``threads``: intra-op threads per call, one session per count asked for (the click path asks
    for one thread while the background encoder holds the cores, all of them otherwise, as the
    torch decoder does). Spinning threads are turned off: on 2 shared cores they steal time from
    the encoder between clicks.
    """

    def __init__(self, model_bytes: bytes, providers: Sequence[str] | None = None, path: Path | None = None,
                 exports: int = 0) -> None:
        import onnxruntime as ort

        self._ort = ort
        self._bytes = model_bytes
        self.path = path  # the cached file, None when exported into memory
        self.exports = exports  # how many times this decoder was exported while opening (0: cache hit)
        self.cache_note = ""  # why it was exported (not cached yet, damaged, not writable), empty on a hit
        available = ort.get_available_providers()
        wanted = providers or (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else [])
        self.providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.session(os.cpu_count() or 1)  # fail here (damaged graph), not at the first click

    @property
    def device(self) -> str:
        return "CUDA" if self.session(os.cpu_count() or 1).get_providers()[0] == "CUDAExecutionProvider" else "CPU"

    def session(self, threads: int) -> Any:
        threads = max(1, int(threads))
        with self._lock:
            sess = self._sessions.get(threads)
            if sess is None:
                so = self._ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = self._ort.InferenceSession(self._bytes, so, providers=self.providers)
                self._sessions[threads] = sess
        return sess

    def decode(self, features: np.ndarray, coords: np.ndarray, labels: np.ndarray,
               mask_input: np.ndarray | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All four mask tokens for one prompt.

        ``features`` (1, 256, 64, 64) any float dtype; ``coords`` float (N, 2) in the 1024-side
        input frame, padding/box corners included; ``labels`` (N,) as in :func:`export_decoder`;
        ``mask_input`` (256, 256) logits or None. Returns ``(scores (4,), logits (4, 256, 256))`` float32.
        """
        has = mask_input is not None
        feed = {
            "image_embeddings": np.ascontiguousarray(features, np.float32),
            "point_coords": np.ascontiguousarray(coords, np.float32).reshape(1, -1, 2),
            "point_labels": np.ascontiguousarray(labels, np.float32).reshape(1, -1),
            "mask_input": (np.ascontiguousarray(mask_input, np.float32).reshape(1, 1, LOW_RES, LOW_RES) if has
                           else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)),
            "has_mask_input": np.array([1.0 if has else 0.0], np.float32),
        }
        scores, logits = self.session(threads or os.cpu_count() or 1).run(list(OUTPUT_NAMES), feed)
        return scores[0], logits[0]


def load_or_export(model: SamModel, cache_dir: str | os.PathLike[str] | None,
                   providers: Sequence[str] | None = None) -> OnnxSamDecoder:
    """The ONNX decoder of ``model``'s weights: from the cache when intact, else exported (and cached).

    A damaged or foreign cached file is exported again and replaced; if the fresh export cannot be
    loaded either, :class:`DecoderUnavailable` says so. Needs onnxruntime (and ``onnx`` to export).
    """
    if not _has("onnxruntime"):
        raise DecoderUnavailable("onnxruntime is not installed (pip install onnxruntime)")
    path = decoder_path(cache_dir, model.model_key, tag()) if cache_dir is not None else None
    data, why = _cached_bytes(path, model.sha256) if path is not None else (None, "no cache")
    if data is not None:
        try:
            return OnnxSamDecoder(data, providers, path)
        except Exception:  # noqa: BLE001 - a graph onnxruntime refuses: export it again below
            data = None
    data = export_decoder(model.net)
    store_error = _store(path, data, model.sha256) if path is not None else ""
    try:
        decoder = OnnxSamDecoder(data, providers, path if path is not None and not store_error else None, 1)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
        raise DecoderUnavailable(f"onnxruntime cannot load SAM's exported decoder ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    decoder.cache_note = store_error or why
    return decoder


def open_decoder(model: SamModel, cache_dir: str | os.PathLike[str] | None,
                 mode: str = "auto") -> tuple[OnnxSamDecoder | None, DecoderChoice]:
    """Pick the click decoder for ``mode`` (:data:`DECODER_MODES`): ``(onnx decoder or None, choice)``.

    ``None`` means the torch decoder (``SamModel.predict``); ``choice.reason`` says why when
    onnxruntime was wanted but cannot run. ``mode="onnx"`` raises :class:`DecoderUnavailable` instead.
    """
    torch_device = str(model.device.type) if hasattr(model, "device") else "cpu"
    if check_mode(mode) == "torch":
        return None, DecoderChoice("torch", torch_device, "setting sam_decoder = torch")
    try:
        decoder = load_or_export(model, cache_dir)
    except DecoderUnavailable as exc:
        if mode == "onnx":
            raise DecoderUnavailable(f"SAM decoder: onnxruntime was asked for (sam_decoder = onnx) but {exc}; "
                                     "set sam_decoder to auto or torch") from exc
        return None, DecoderChoice("torch", torch_device, f"{exc}; clicks use the torch decoder")
    return decoder, DecoderChoice("onnxruntime", decoder.device, "")


# --------------------------------------------------------------------------- prompts
def onnx_prompt(model: SamModel, emb: Embedding, points: Sequence[tuple[float, float]] | np.ndarray | None,
                labels: Sequence[int] | np.ndarray | None, box: Sequence[float] | None,
                prev_logits: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Clicks, box and fed-back logits in the exported graph's convention: ``(coords (N, 2), labels (N,),
    mask_input or None)``; the same checks and messages as :meth:`SamModel.predict`.

    Points come first, then the box's two corners (labels 2, 3); without a box one padding point
    (label -1) ends the list, which is what segment-anything's prompt encoder does.
    """
    h, w = emb.original_size
    has_points = points is not None and len(points) > 0
    if not has_points and box is None:
        raise InputError("SAM needs at least one click or a box")
    coords: list[np.ndarray] = []
    labs: list[np.ndarray] = []
    if has_points:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
        if len(lab) != len(pts):
            raise InputError(f"SAM: {len(pts)} clicks but {len(lab)} labels")
        if not np.isin(lab, (0, 1)).all():
            raise InputError("SAM click labels must be 1 (positive) or 0 (negative)")
        if not np.isfinite(pts).all() or (pts < -0.5).any() or (pts[:, 0] > w - 0.5).any() \
                or (pts[:, 1] > h - 0.5).any():
            raise InputError(f"SAM: a click lies outside the {w}x{h} frame")
        coords.append(model.transform.apply_coords(pts, (h, w)))
        labs.append(lab.astype(np.float32))
    if box is not None:
        x0, y0, x1, y1 = check_box(box, (h, w), "SAM box")
        corners = model.transform.apply_boxes(np.array([[x0, y0, x1, y1]], np.float64), (h, w)).reshape(2, 2)
        coords.append(corners)
        labs.append(np.array([2.0, 3.0], np.float32))
    else:
        coords.append(np.zeros((1, 2)))
        labs.append(np.array([-1.0], np.float32))
    mask = None
    if prev_logits is not None:
        mask = np.asarray(prev_logits, np.float32)
        if mask.shape[-2:] != (LOW_RES, LOW_RES) or mask.size != LOW_RES * LOW_RES:
            raise InputError(f"SAM: previous logits must be 256x256, got {mask.shape}")
    return np.concatenate(coords).astype(np.float32), np.concatenate(labs), mask


def predict_onnx(model: SamModel, decoder: OnnxSamDecoder, emb: Embedding,
                 points: Sequence[tuple[float, float]] | np.ndarray | None = None,
                 labels: Sequence[int] | np.ndarray | None = None, box: Sequence[float] | None = None,
                 prev_logits: np.ndarray | None = None, multimask: bool = True) -> SamPrediction:
    """:meth:`SamModel.predict`'s contract with the decoder run by onnxruntime (same candidates, same
    lazy upsampling by SAM's own ``postprocess_masks``)."""
    coords, labs, mask = onnx_prompt(model, emb, points, labels, box, prev_logits)
    scores, logits = decoder.decode(emb.features, coords, labs, mask, model._decoder_thread_count())
    keep = slice(1, None) if multimask else slice(0, 1)
    return SamPrediction(scores[keep], logits[keep], upsample=lambda logit: model.upsample(logit, emb))
