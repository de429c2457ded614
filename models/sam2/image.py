"""SAM 2's image predictor behind the SAM tool's engine protocol: embedding, prompt -> 3 candidates.

Why the same protocol as :class:`models.sam.SamModel` (``model_key``, ``embed``, ``predict``):
the SAM click and box tools, the background :class:`models.sam.EmbeddingWorker` and the disk
:class:`models.sam.EmbeddingCache` then serve SAM 2 unchanged - an engine is
``models.sam.SamEngine(Sam2ImageModel(...), cache_dir)``, and the cache key starts with the
model key (config + checkpoint sha256), so SAM 1 and SAM 2 embeddings never mix.

The network and the prompt decoding are the package's own (``SAM2ImagePredictor``): we set its
features from a cached :class:`models.sam.Embedding` (SAM 2's image embedding plus the two
high-resolution feature maps its decoder uses) and call its ``_predict``; clicks and boxes are
checked here with the same messages as SAM 1, the chosen candidate's low-resolution logits go back
as ``mask_input`` for the next click, as in SAM 2's notebooks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError
from annotator.jobs import CancelToken, check_cancel
from models.prompts import check_box
from models.sam import Embedding, SamEngine, SamPrediction
from models.sam2.build import autocast, default_device, load_network, sam2_installed
from models.sam2.checkpoint import KIND
from models.weights import CheckpointError, availability, resolve_checkpoint


def sam2_availability(cli_path: str | os.PathLike[str] | None = None, settings: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None) -> tuple[bool, str, str]:
    """``(available, kind, reason)`` like :func:`models.sam.sam_availability`: a configured, existing
    SAM 2 checkpoint and the ``sam2`` package (cheap: the file is loaded on first use)."""
    ok, reason = availability(KIND, cli_path, settings, env)
    if not ok:
        return False, "", f"SAM 2 unavailable: {reason}"
    installed, why = sam2_installed()
    if not installed:
        return False, "", f"SAM 2 unavailable: {why}"
    return True, KIND, reason


class Sam2ImageModel:
    """A SAM 2 network (the package's ``SAM2ImagePredictor``) with the SAM tool's model protocol."""

    def __init__(self, network: Any = None, checkpoint: str | os.PathLike[str] | None = None,
                 device: str | None = None, config: str = "", sha256: str = "") -> None:
        """From a validated ``checkpoint`` (:func:`models.sam2.build.load_network`) or, for tests and
        benchmarks, an already built ``network`` (``SAM2Base``; ``config``/``sha256`` name it).

        Raises :class:`CheckpointError` without either (there are no default weights).
        """
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        if network is None:
            if checkpoint is None:
                raise CheckpointError("SAM 2 needs a checkpoint; none was given")
            network, config, sha256 = load_network(checkpoint, video=False, device=device)
            self.checkpoint: Path | None = Path(checkpoint)
        else:
            self.checkpoint = None
            network = network.to(device or default_device()).eval()
        self.net = network
        self.config = config or "sam2"
        self.sha256 = sha256 or "random"
        self.kind = KIND
        self.device = next(network.parameters()).device
        self.predictor = SAM2ImagePredictor(network)
        s = int(network.image_size)
        self.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.low_res = s // 4  # side of the logits fed back (256 at the released 1024)
        self._lock = threading.Lock()  # the package's predictor holds one image's features at a time

    @property
    def model_key(self) -> str:
        return f"{self.config}-{self.sha256[:16]}"

    @property
    def device_name(self) -> str:
        return str(self.device)

    def embed(self, image: np.ndarray, cancel: CancelToken | None = None) -> Embedding:
        """Image embedding of an HxWx3 uint8 RGB frame; ``cancel`` is checked between trunk blocks.

        Returns an :class:`Embedding` whose ``features`` is SAM 2's image embedding (float16,
        1x256xS/16xS/16) and ``high_res`` its two finer maps (1x32xS/4xS/4, 1x64xS/8xS/8).
        """
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"SAM 2 needs an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        me = threading.get_ident()

        def pre_hook(module: Any, args: Any) -> None:
            if threading.get_ident() == me:  # another thread's embed has its own token
                check_cancel(cancel)

        hooks = ([b.register_forward_pre_hook(pre_hook) for b in self.net.image_encoder.trunk.blocks]
                 if cancel is not None else [])
        try:
            check_cancel(cancel)
            with self._lock, torch.inference_mode(), autocast(self.device):
                self.predictor.set_image(np.ascontiguousarray(image))
                feats = self.predictor._features
                embed = feats["image_embed"].float().cpu().numpy().astype(np.float16)
                high = tuple(f.float().cpu().numpy().astype(np.float16) for f in feats["high_res_feats"])
                self.predictor.reset_predictor()
        finally:
            for h in hooks:
                h.remove()
        s = int(self.net.image_size)
        return Embedding(embed, (int(image.shape[0]), int(image.shape[1])), (s, s), high_res=high)

    def predict(self, emb: Embedding, points: Sequence[tuple[float, float]] | np.ndarray | None = None,
                labels: Sequence[int] | np.ndarray | None = None, box: Sequence[float] | None = None,
                prev_logits: np.ndarray | None = None, multimask: bool = True) -> SamPrediction:
        """Candidates for clicks (``labels`` 1 = positive, 0 = negative) and/or a box (x0, y0, x1, y1).

        Returns a :class:`SamPrediction`: ``scores`` (N,) predicted IoU (N = 3 with ``multimask``),
        ``logits`` (N, S/4, S/4) float32 - one of them is the next call's ``prev_logits`` - and bool
        masks of the frame's size. Clicks outside the frame, bad labels and boxes are
        :class:`InputError` / ``EditError`` as for SAM 1.
        """
        import torch

        h, w = emb.original_size
        has_points = points is not None and len(points) > 0
        if not has_points and box is None:
            raise InputError("SAM 2 needs at least one click or a box")
        if len(emb.high_res) != 2:
            raise InputError("SAM 2: this embedding has no high-resolution features (a SAM 1 embedding?)")
        pts = lab = bx = mask = None
        if has_points:
            pts = np.asarray(points, np.float64).reshape(-1, 2)
            lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise InputError(f"SAM 2: {len(pts)} clicks but {len(lab)} labels")
            if not np.isin(lab, (0, 1)).all():
                raise InputError("SAM 2 click labels must be 1 (positive) or 0 (negative)")
            if not np.isfinite(pts).all() or (pts[:, 0] < -0.5).any() or (pts[:, 1] < -0.5).any() \
                    or (pts[:, 0] > w - 0.5).any() or (pts[:, 1] > h - 0.5).any():
                raise InputError(f"SAM 2: a click lies outside the {w}x{h} frame")
        if box is not None:
            bx = np.array(check_box(box, (h, w), "SAM 2 box"), np.float64)
        if prev_logits is not None:
            pl = np.asarray(prev_logits, np.float32)
            if pl.size != self.low_res ** 2:
                raise InputError(f"SAM 2: previous logits must be {self.low_res}x{self.low_res}, got {pl.shape}")
            mask = pl.reshape(1, self.low_res, self.low_res)
        dev = self.device
        with self._lock, torch.inference_mode(), autocast(dev):
            p = self.predictor
            p._orig_hw = [(h, w)]
            p._features = {"image_embed": torch.as_tensor(emb.features, device=dev).float(),
                           "high_res_feats": [torch.as_tensor(f, device=dev).float() for f in emb.high_res]}
            p._is_image_set = True
            try:
                masks, scores, low = p.predict(pts, lab, bx, mask, multimask_output=multimask)
            finally:
                p.reset_predictor()
        return SamPrediction(np.asarray(scores, np.float32), np.asarray(low, np.float32),
                             masks=np.asarray(masks) > 0.5)


def open_sam2_engine(cache_dir: str | os.PathLike[str] | None, cli_path: str | os.PathLike[str] | None = None,
                     settings: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                     device: str | None = None, memory_items: int = 16) -> SamEngine:
    """The SAM tool's engine on SAM 2's image predictor (flag > env > settings), validated.

    Raises :class:`CheckpointError` saying why SAM 2 is unavailable. Never downloads anything.
    """
    ok, _kind, reason = sam2_availability(cli_path, settings, env)
    if not ok:
        raise CheckpointError(reason)
    src = resolve_checkpoint(KIND, cli_path, settings, env)
    assert src is not None
    return SamEngine(Sam2ImageModel(checkpoint=src.path, device=device), cache_dir, memory_items)
