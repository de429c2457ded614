"""The SAM network as two halves: the image encoder (seconds per frame) and the prompt decoder (~0.1 s).

Predictions follow SAM's own demo: positive/negative clicks and/or a box, three candidate masks
with predicted IoU scores to cycle through, and the chosen candidate's low-resolution logits fed
back as ``mask_input`` for the next click. The decoder runs with one torch thread while the
background encoder holds the cores (two OpenMP threads on 2 busy cores measured ~4x slower), and
full-size masks are upsampled only for the candidate shown.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError
from annotator.jobs import CancelToken, check_cancel
from models.prompts import check_box
from models.sam.cache import Embedding
from models.sam.checkpoint import SAM_KINDS
from models.weights import (
    CheckpointError,
    compare_state_dict,
    load_state_dict,
    load_state_dict_of,
    sha256_file,
)


class SamPrediction:
    """Candidate masks for one prompt (best-scored first is *not* implied: use :meth:`best`).

    Why lazy full-size masks: upsampling a 256x256 logit map to 720p costs tens of milliseconds,
    and the canvas shows one candidate at a time; :meth:`mask` upsamples only the one asked for.
    """

    def __init__(self, scores: np.ndarray, logits: np.ndarray,
                 upsample: Callable[[np.ndarray], np.ndarray] | None = None,
                 masks: np.ndarray | None = None) -> None:
        self.scores = np.asarray(scores, np.float32)  # (N,) predicted IoU; N = 3 with multimask, else 1
        self.logits = np.asarray(logits, np.float32)  # (N, 256, 256): feed one back as prev_logits
        if upsample is None and masks is None:
            raise ValueError("SamPrediction needs masks or an upsample function")
        self._upsample = upsample
        self._masks: dict[int, np.ndarray] = {} if masks is None else {i: m for i, m in enumerate(masks)}

    def best(self) -> int:
        return int(np.argmax(self.scores))

    def __len__(self) -> int:
        return len(self.scores)

    def mask(self, i: int) -> np.ndarray:
        """Candidate ``i`` as a bool mask of the frame's size (computed on first use)."""
        i = range(len(self))[i]
        if i not in self._masks:
            assert self._upsample is not None
            self._masks[i] = self._upsample(self.logits[i])
        return self._masks[i]

    @property
    def masks(self) -> np.ndarray:
        """All candidates, bool (N, H, W)."""
        return np.stack([self.mask(i) for i in range(len(self))])



@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads; torch keeps this setting per calling thread."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class SamModel:
    """A SAM network built from a validated checkpoint (CPU by default), encoder and decoder halves."""

    #: torch threads for the prompt decoder (set per calling thread, restored after). ``"auto"``: all
    #: cores while no embedding is being computed (2 threads: 75 ms vs 124 ms per click on 2 idle
    #: cores), one thread while the background encoder holds the cores (2 OpenMP threads on 2 busy
    #: cores measured ~4x slower than one).
    DECODER_THREADS: int | str | None = "auto"

    def __init__(self, checkpoint: str | os.PathLike[str], kind: str | None = "sam_vit_b", device: str = "cpu",
                 decoder_threads: int | str | None = DECODER_THREADS) -> None:
        """Load a SAM checkpoint strictly; ``kind=None`` takes the size from the file (e.g. ``VPS_SAM_CHECKPOINT``).

        Contract: ``checkpoint`` is a segment-anything state dict of size ``kind`` (``sam_vit_b`` /
        ``_l`` / ``_h``), read with ``weights_only=True`` and fully validated by
        :mod:`models.weights` (keys and shapes against segment-anything's network, damaged values);
        raises :class:`CheckpointError` naming the problem. ``sha256`` identifies the weights (the
        embedding cache key). ``decoder_threads``: see :attr:`DECODER_THREADS`.
        """
        import torch
        from segment_anything import sam_model_registry

        self.checkpoint = Path(checkpoint)
        if kind is None:
            kind, state = load_state_dict_of(self.checkpoint, SAM_KINDS)
        elif kind not in SAM_KINDS:
            raise CheckpointError(f"unknown SAM kind {kind!r}; use one of {', '.join(SAM_KINDS)}")
        else:
            state = load_state_dict(self.checkpoint, kind)
        self.kind = kind
        self.sha256 = sha256_file(self.checkpoint)
        net = sam_model_registry[kind[len("sam_"):]](checkpoint=None)
        problem = compare_state_dict(net.state_dict(), state)
        if problem:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not fit a {kind} network: {problem}")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not fit a {kind} network: "
                                  f"{str(e).splitlines()[0]}") from e
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        from segment_anything.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(net.image_encoder.img_size)
        self._decoder_lock = threading.Lock()
        self.decoder_threads = decoder_threads  # None: leave torch's setting alone; "auto": see above
        self._encoding = 0  # embeddings in progress (any thread); read by _decoder_thread_count
        self._encoding_lock = threading.Lock()
        self._pe: Any = None

    def _decoder_thread_count(self) -> int | None:
        if self.decoder_threads != "auto":
            return self.decoder_threads  # type: ignore[return-value]
        return 1 if self._encoding else (os.cpu_count() or 1)

    def _dense_pe(self) -> Any:
        """The prompt encoder's positional encoding of the 64x64 grid: constant, so computed once."""
        if self._pe is None:
            self._pe = self.net.prompt_encoder.get_dense_pe()
        return self._pe

    @property
    def model_key(self) -> str:
        return f"{self.kind}-{self.sha256[:16]}"

    def embed(self, image: np.ndarray, cancel: CancelToken | None = None) -> Embedding:
        """Run the image encoder on an RGB uint8 frame; ``cancel`` is checked between encoder blocks."""
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"SAM needs an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        hooks = []
        if cancel is not None:
            me = threading.get_ident()

            def pre_hook(module: Any, args: Any) -> None:
                if threading.get_ident() == me:  # another thread's embed has its own token
                    check_cancel(cancel)

            hooks = [b.register_forward_pre_hook(pre_hook) for b in self.net.image_encoder.blocks]
        with self._encoding_lock:
            self._encoding += 1
        try:
            check_cancel(cancel)
            with torch.inference_mode():
                feats = self.net.image_encoder(self.net.preprocess(x))
        finally:
            with self._encoding_lock:
                self._encoding -= 1
            for h in hooks:
                h.remove()
        return Embedding(feats.cpu().numpy().astype(np.float16), (image.shape[0], image.shape[1]),
                         (int(resized.shape[0]), int(resized.shape[1])))

    def predict(self, emb: Embedding, points: Sequence[tuple[float, float]] | np.ndarray | None = None,
                labels: Sequence[int] | np.ndarray | None = None, box: Sequence[float] | None = None,
                prev_logits: np.ndarray | None = None, multimask: bool = True) -> SamPrediction:
        """Decode masks for clicks (``labels`` 1 = positive, 0 = negative) and/or a box (x0, y0, x1, y1).

        ``prev_logits`` (256x256, one candidate of the previous :class:`SamPrediction`) refines the
        previous result as in SAM's demo. Clicks outside the frame and boxes outside it are errors.
        """
        import torch

        h, w = emb.original_size
        has_points = points is not None and len(points) > 0
        if not has_points and box is None:
            raise InputError("SAM needs at least one click or a box")
        coords_t = labels_t = box_t = mask_t = None
        if has_points:
            pts = np.asarray(points, np.float64).reshape(-1, 2)
            lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise InputError(f"SAM: {len(pts)} clicks but {len(lab)} labels")
            if not np.isin(lab, (0, 1)).all():
                raise InputError("SAM click labels must be 1 (positive) or 0 (negative)")
            if not np.isfinite(pts).all() or (pts[:, 0] < -0.5).any() or (pts[:, 1] < -0.5).any() \
                    or (pts[:, 0] > w - 0.5).any() or (pts[:, 1] > h - 0.5).any():
                raise InputError(f"SAM: a click lies outside the {w}x{h} frame")
            c = self.transform.apply_coords(pts, (h, w))
            coords_t = torch.as_tensor(c, dtype=torch.float32, device=self.device)[None]
            labels_t = torch.as_tensor(lab, dtype=torch.int64, device=self.device)[None]
        if box is not None:
            x0, y0, x1, y1 = check_box(box, (h, w), "SAM box")
            b = self.transform.apply_boxes(np.array([[x0, y0, x1, y1]], np.float64), (h, w))
            box_t = torch.as_tensor(b, dtype=torch.float32, device=self.device)
        if prev_logits is not None:
            pl = np.asarray(prev_logits, np.float32)
            if pl.shape[-2:] != (256, 256) or pl.size != 256 * 256:
                raise InputError(f"SAM: previous logits must be 256x256, got {pl.shape}")
            mask_t = torch.as_tensor(pl.reshape(1, 1, 256, 256), device=self.device)
        feats = torch.as_tensor(emb.features, device=self.device).float()
        net = self.net
        with self._decoder_lock, torch.inference_mode(), _torch_threads(self._decoder_thread_count()):
            sparse, dense = net.prompt_encoder(points=(coords_t, labels_t) if coords_t is not None else None,
                                               boxes=box_t, masks=mask_t)
            low, iou = net.mask_decoder(image_embeddings=feats, image_pe=self._dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=multimask)
        return SamPrediction(iou[0].cpu().numpy(), low[0].cpu().numpy(),
                             upsample=lambda logit: self.upsample(logit, emb))

    def upsample(self, logit: np.ndarray, emb: Embedding) -> np.ndarray:
        """One 256x256 low-res logit map -> bool mask at the frame's size (SAM's own postprocessing)."""
        import torch

        t = torch.as_tensor(np.ascontiguousarray(logit, np.float32), device=self.device)[None, None]
        with torch.inference_mode(), _torch_threads(self._decoder_thread_count()):
            full = self.net.postprocess_masks(t, emb.input_size, emb.original_size)
        return (full[0, 0] > self.net.mask_threshold).cpu().numpy()
