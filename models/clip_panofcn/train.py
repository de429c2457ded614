"""Training Clip-PanoFCN on finished frames (the small CPU variant, or fine-tuning a checkpoint).

This module takes arrays only (``VideoData``: frames, track-id labels, track classes) and a
taxonomy; reading a project's finished frames and scoring with ``annotator.metrics`` is the stage
``annotator.stages.train_preannotator``.

Why: the released model knows VIPSeg's 124 classes in VIPSeg's footage; a project has its own
footage (and maybe its own taxonomy). Every reviewed video is training data, so the pre-annotator
can learn from finished work and draft the next videos better.

Losses are the paper's (PanopticFCN on clips): focal loss on the thing-centre heatmaps (the
CenterNet form with Gaussian targets, normalised by the number of instances) and on the stuff
region maps (sigmoid focal loss, alpha 0.25, gamma 2), and a dice loss on the masks the kernels
produce (weight 3). Clip training: a track's kernel is the average of its kernel weights over every
frame and level it is assigned to, and its mask is predicted on every frame of the clip, so one
kernel must follow the object through the clip - what inference relies on.

Targets per clip: a thing instance goes to the FPN levels whose size range holds sqrt(area)
(PanopticFCN's INSTANCE_SCALES); its centre is the mass centre with a Gaussian whose sigma grows
with the object; stuff targets are the class map at each level (channel 0 = any thing). Masks are
compared at stride 4.

The learning rate follows the released WarmupPolyLR (poly power 0.9 over the run's budget, after a
short linear warm-up); gradients are clipped at 35 as released. The loop runs for a time budget, saves an atomic, resumable checkpoint (model, optimiser, step,
loss history) every ``save_every`` seconds, on cancel and on Ctrl+C, and a later run with the same
output resumes from it.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn
from annotator.taxonomy import Taxonomy
from models.clip_panofcn.categories import ChannelMap, channel_map
from models.clip_panofcn.checkpoint import load_clip_panofcn, save_checkpoint
from models.clip_panofcn.inference import InferenceConfig
from models.clip_panofcn.network import SMALL_CONFIG, ClipPanoFCN, ClipPanoFCNConfig

LEVEL_STRIDES = (8, 16, 32, 64, 128)
INSTANCE_SCALES = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))  # KERNEL_HEAD.INSTANCE_SCALES
POS_WEIGHT, SEG_WEIGHT = 1.0, 3.0  # LOSS_WEIGHT.POSITION / SEGMENT
WARMUP_STEPS = 20  # linear warm-up (the released 1000 iterations are for 120k-iteration runs)


@dataclass
class VideoData:
    """Finished frames of one video, already resized for training."""

    video_id: str
    frames: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, H, W) track ids
    categories: dict[int, int]  # track id -> category id


@dataclass
class TrainState:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.step, 1)


def training_size(h: int, w: int, short: int = 384, long: int = 640) -> tuple[int, int]:
    """Frames larger than about 384x640 are scaled down (aspect kept); smaller ones stay."""
    s = min(1.0, short / min(h, w), long / max(h, w))
    return max(32, int(round(h * s))), max(32, int(round(w * s)))


# ----------------------------------------------------------------------------- targets


def _gaussian(h: int, w: int, cy: float, cx: float, sigma: float) -> np.ndarray:
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    return np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma * sigma))


@dataclass
class ClipTargets:
    thing_heat: list[torch.Tensor]  # per level (T, C_th, h, w)
    stuff_map: list[torch.Tensor]  # per level (T, C_st, h, w)
    instances: list[tuple[bool, list[tuple[int, torch.Tensor]], torch.Tensor]]  # isthing, [(level, weight map)], mask
    num_things: int


def clip_targets(labels: np.ndarray, categories: dict[int, int], cmap: ChannelMap, config: ClipPanoFCNConfig,
                 sizes: list[tuple[int, int]], enc_size: tuple[int, int]) -> ClipTargets:
    """Targets of a clip (T, H, W) for feature maps of ``sizes`` (P3-P7) and encoder size ``enc_size``."""
    t, h, w = labels.shape
    heat = [np.zeros((t, config.thing_classes, *s), np.float32) for s in sizes]
    stuff = [np.zeros((t, config.stuff_classes, *s), np.float32) for s in sizes]
    instances = []
    n_things = 0
    he, we = enc_size
    for tid in np.unique(labels).tolist():
        if tid == 0 or tid not in categories:
            continue
        isthing, channel = cmap.channel_of(categories[tid])
        masks = labels == tid
        mask_enc = torch.from_numpy(np.stack([cv2.resize(m.astype(np.float32), (we, he), interpolation=cv2.INTER_AREA)
                                              for m in masks]) > 0.5).float()
        assigned = []
        areas = masks.reshape(t, -1).sum(1)
        size = math.sqrt(float(areas[areas > 0].mean()))
        for lvl, ((lh, lw), stride, (lo, hi)) in enumerate(zip(sizes, LEVEL_STRIDES, INSTANCE_SCALES, strict=True)):
            small = np.stack([cv2.resize(m.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA) for m in masks])
            if not isthing:
                stuff[lvl][:, channel] = np.maximum(stuff[lvl][:, channel], small > 0.5)
                if (small > 0.5).any():
                    assigned.append((lvl, torch.from_numpy((small > 0.5).astype(np.float32))))
                continue
            stuff[lvl][:, 0] = np.maximum(stuff[lvl][:, 0], small > 0.5)
            if not lo <= size <= hi and not (lvl == 0 and size < lo) and not (lvl == len(sizes) - 1 and size > hi):
                continue
            g = np.zeros((t, lh, lw), np.float32)
            for f in range(t):
                if areas[f] == 0:
                    continue
                ys, xs = np.nonzero(masks[f])
                sigma = max(1.0, size / stride / 6.0)
                # the peak sits on a cell (value exactly 1): the focal loss counts it as the positive
                cy = min(lh - 1, int(ys.mean() / stride))
                cx = min(lw - 1, int(xs.mean() / stride))
                g[f] = _gaussian(lh, lw, cy, cx, sigma)
            heat[lvl][:, channel] = np.maximum(heat[lvl][:, channel], g)
            assigned.append((lvl, torch.from_numpy(g)))
        if assigned:
            instances.append((isthing, assigned, mask_enc))
            n_things += int(isthing)
    return ClipTargets([torch.from_numpy(a) for a in heat], [torch.from_numpy(a) for a in stuff], instances, n_things)


# ----------------------------------------------------------------------------- losses


def center_focal_loss(logits: torch.Tensor, target: torch.Tensor, num: int) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on Gaussian heatmaps (peaks are positives)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target >= 0.999
    pos_loss = -(torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - target) ** 4)[~pos].sum()
    return (pos_loss + neg_loss) / max(num, 1)


def stuff_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss (alpha 0.25, gamma 2), summed over classes, averaged over positions."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    alpha = 0.25 * target + 0.75 * (1 - target)
    return (alpha * ce * (1 - pt) ** 2).sum() / max(1, logits.shape[0] * logits.shape[2] * logits.shape[3])


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().reshape(-1)
    g = target.reshape(-1)
    return 1 - (2 * (p * g).sum() + 1) / ((p * p).sum() + (g * g).sum() + 1)


def clip_loss(model: ClipPanoFCN, frames: np.ndarray, labels: np.ndarray, categories: dict[int, int],
              cmap: ChannelMap) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one clip (T, H, W, 3) uint8 frames with (T, H, W) track-id labels."""
    x = model.preprocess(torch.from_numpy(frames).permute(0, 3, 1, 2))
    out = model(x)
    ph, pw = x.shape[-2:]
    if labels.shape[1:] != (ph, pw):  # targets on the padded canvas: padding is void
        padded = np.zeros((labels.shape[0], ph, pw), labels.dtype)
        padded[:, : labels.shape[1], : labels.shape[2]] = labels
        labels = padded
    sizes = [tuple(c.shape[-2:]) for c in out["centers"]]
    enc = out["encoded"]
    tg = clip_targets(labels, categories, cmap, model.config, sizes, tuple(enc.shape[-2:]))
    pos_th = sum(center_focal_loss(c, h, tg.num_things) for c, h in zip(out["centers"], tg.thing_heat, strict=True))
    pos_st = sum(stuff_focal_loss(r, s) for r, s in zip(out["regions"], tg.stuff_map, strict=True)) / len(sizes)
    t, ce, he, we = enc.shape
    dices = []
    for isthing, assigned, mask in tg.instances:
        acc, norm = 0.0, 0.0
        for lvl, wmap in assigned:
            wts = out["weights"][lvl]
            acc = acc + (wts * wmap.unsqueeze(1)).sum((0, 2, 3))
            norm = norm + float(wmap.sum())
        gen = model.thing_generator if isthing else model.stuff_generator
        kernel = gen((acc / max(norm, 1e-6)).unsqueeze(0))[0]
        logits = torch.einsum("c,tchw->thw", kernel, enc)
        dices.append(dice_loss(logits, mask))
    seg = torch.stack(dices).mean() if dices else enc.sum() * 0
    total = POS_WEIGHT * (pos_th + pos_st) + SEG_WEIGHT * seg
    return total, {"center": float(pos_th.detach()), "stuff": float(pos_st.detach()), "dice": float(seg.detach())}


# ----------------------------------------------------------------------------- the loop


def _save(path: Path, model: ClipPanoFCN, opt: torch.optim.Optimizer, state: TrainState) -> None:
    save_checkpoint(model, path, {"optimizer": opt.state_dict(), "step": state.step, "losses": list(state.losses),
                                  "train_seconds": state.seconds})


def _load_resume(path: Path) -> tuple[ClipPanoFCN, dict[str, Any]]:
    model = load_clip_panofcn(path)
    raw = torch.load(str(path), map_location="cpu", weights_only=True)
    return model, raw


def build_trainee(taxonomy: Taxonomy, init: str | os.PathLike[str] | None = None) -> ClipPanoFCN:
    """The small variant sized for ``taxonomy``, or the checkpoint ``init`` to fine-tune (its classes
    must be the taxonomy's: ``InputError`` / ``CheckpointError`` otherwise)."""
    tax = taxonomy
    n_th = sum(1 for c in tax if c.isthing)
    n_st = sum(1 for c in tax if not c.isthing) + 1
    if init is not None:
        model = load_clip_panofcn(init)
        channel_map(tax, model.config.thing_classes, model.config.stuff_classes)  # same classes or an error
        return model
    return ClipPanoFCN(replace(SMALL_CONFIG, thing_classes=n_th, stuff_classes=n_st))


def train(data: list[VideoData], taxonomy: Taxonomy, out: str | os.PathLike[str], minutes: float = 5.0,
          max_steps: int | None = None, clip: int = 2, lr: float = 1e-3, init: str | os.PathLike[str] | None = None,
          save_every: float = 60.0, seed: int = 0, progress: ProgressFn | None = None,
          cancel: CancelToken | None = None) -> TrainState:
    """Train until ``minutes`` (or ``max_steps``) pass; resumes from ``out`` if it exists.

    Args:
        data: at least one ``VideoData`` (frames (N, H, W, 3) uint8 RGB, labels (N, H, W) track
            ids, ``categories`` track id -> category id of ``taxonomy``); clips of ``clip``
            consecutive frames are drawn from them at random (``seed``), half of them flipped.
        taxonomy: the classes the model predicts (thing / stuff channels, ``channel_map``).
        out: checkpoint path, written atomically every ``save_every`` seconds and at the end;
            an existing one is resumed (model, optimiser, step, loss history).
        init: checkpoint to fine-tune when ``out`` does not exist (else the small variant).
        progress: ``progress(done, total, "loss ...")`` after each step; ``cancel`` stops the loop.

    Returns:
        The ``TrainState`` (steps done in total, loss history, seconds); the checkpoint at
        ``out`` is always the last saved state (also after Ctrl+C or cancel, which stop the loop
        and save first). Raises ``InputError`` when ``data`` is empty.
    """
    if not data:
        raise InputError("no finished frames (manual/refined/reviewed) in the selected videos: nothing to train on")
    out = Path(out)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    state = TrainState()
    if out.exists():
        model, raw = _load_resume(out)
        state = TrainState(int(raw.get("step", 0)), [float(v) for v in raw.get("losses", [])],
                           float(raw.get("train_seconds", 0.0)))
    else:
        model, raw = build_trainee(taxonomy, init), {}
    cmap = channel_map(taxonomy, model.config.thing_classes, model.config.stuff_classes)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    if raw.get("optimizer"):
        opt.load_state_dict(raw["optimizer"])
    start = time.perf_counter()
    last_save = start
    budget = minutes * 60.0
    done = 0
    try:
        while True:
            if max_steps is not None and done >= max_steps:
                break
            if max_steps is None and time.perf_counter() - start >= budget:
                break
            if cancel is not None and cancel.cancelled:
                break
            v = rng.choice(data)
            n = len(v.frames)
            c = min(clip, n)
            s = rng.randrange(0, n - c + 1)
            frames, labels = v.frames[s:s + c], v.labels[s:s + c]
            if rng.random() < 0.5:  # horizontal flip
                frames, labels = frames[:, :, ::-1].copy(), labels[:, :, ::-1].copy()
            t0 = time.perf_counter()
            # the released WarmupPolyLR (power 0.9, linear warm-up), over this run's budget
            frac = done / max_steps if max_steps is not None else (t0 - start) / budget
            scale = (1.0 - min(frac, 0.999)) ** 0.9 * min(1.0, (done + 1) / WARMUP_STEPS)
            for group in opt.param_groups:
                group["lr"] = lr * scale
            loss, _parts = clip_loss(model, frames, labels, v.categories, cmap)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(params, 35.0)  # SOLVER.CLIP_GRADIENTS CLIP_VALUE 35
            opt.step()
            state.step += 1
            done += 1
            state.losses.append(float(loss.detach()))
            state.seconds += time.perf_counter() - t0
            if progress is not None:
                total = max_steps if max_steps is not None else max(done, int(budget / max(state.seconds_per_step, 1e-3)))
                progress(done, total, f"loss {state.losses[-1]:.3f}")
            if time.perf_counter() - last_save >= save_every:
                _save(out, model, opt, state)
                last_save = time.perf_counter()
    finally:
        # also on Ctrl+C: the work done so far is kept and the next run resumes from it
        _save(out, model, opt, state)
        model.eval()
    return state


def config_dict(model: ClipPanoFCN) -> dict[str, Any]:
    return asdict(model.config)


def scaled_inference(h: int, w: int, **kw: Any) -> InferenceConfig:
    """The released post-processing with the stuff area limit scaled from 720p to ``h`` x ``w``."""
    return InferenceConfig(stuff_area_limit=max(16, int(4096 * h * w / (720 * 1280))), **kw)
