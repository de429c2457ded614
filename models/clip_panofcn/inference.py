"""Clip-level inference of Clip-PanoFCN: kernels from position maps, kernel fusion, masks, panoptic merge.

Follows the released ``VideoPanopticFCN.inference`` (``panopticfcn/video_panoptic_seg.py``) for one
clip of C frames:

1. per FPN level (P3-P7) and frame: thing centres = sigmoid centre map, smoothed by an average
   pool (3,3,3,5,5 per level), peaks kept by a 3x3 max-pool NMS, the top ``top_num // 2`` peaks
   above ``center_thres``; each peak takes the 256-d kernel-head weight at its position.
2. per level, over the whole clip: stuff classes = argmax of the sigmoid region maps; a class
   scoring above ``stuff_thres`` (mean probability over its argmax area) takes the sum of the
   kernel-head weights over that area divided by the map size (the released average pool).
3. the 256-d weights become 64-d kernels (``embed_extractor``); thing kernels of the clip are fused:
   in descending score order, each kernel absorbs the later ones of the same class with cosine
   similarity >= ``sim_thres`` (0.9) - the same object seen in several frames and levels becomes
   one kernel, so its identity holds inside the clip; stuff kernels are averaged per class.
4. masks on every frame of the clip = sigmoid(kernel . encoded features) at stride 4; things keep
   pixels > ``inst_thres`` (0.4), their score is multiplied by the mean mask probability, scores
   below 0.05 are dropped, the best ``top_num`` (100) kept; stuff = argmax over the stuff maps.
5. panoptic merge: things with score >= 0.2 in score order, a thing skipped on a frame where it is
   empty or more than half covered by earlier things; then stuff classes on the free pixels with
   at least ``stuff_area_limit`` (4096) pixels over the clip.

Memory: the released code upsamples every candidate to full resolution at once (GPU); here the
filtering happens at stride 4 and masks are upsampled one instance and one frame at a time.
Deliberate difference: the released merge computes the free part of a thing's mask but then paints
the whole mask over all frames (later, weaker things overwrite earlier ones); here only free pixels
on the accepted frames are painted (the behaviour of PanopticFCN's image model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from models.clip_panofcn.network import ClipPanoFCN


@dataclass(frozen=True)
class InferenceConfig:
    """Post-processing parameters; defaults are the released ones (config.py / run_eval.sh)."""

    clip: int = 3  # run_eval.sh CLIPNUM=3, non-overlapping clips
    pool_sizes: tuple[int, ...] = (3, 3, 3, 5, 5)
    center_thres: float = 0.05  # POSITION_HEAD.THING.THRES
    stuff_thres: float = 0.05  # POSITION_HEAD.STUFF.THRES
    top_num: int = 100  # POSITION_HEAD.THING.TOP_NUM
    sim_thres: float = 0.9  # INFERENCE.SIMILAR_THRES (cosine), class specific
    inst_thres: float = 0.4  # INFERENCE.INST_THRES
    min_score: float = 0.05  # process_inst
    overlap_thres: float = 0.5  # COMBINE.OVERLAP_THRESH
    stuff_area_limit: int = 4096  # COMBINE.STUFF_AREA_LIMIT (pixels over the whole clip)
    combine_inst_thres: float = 0.2  # COMBINE.INST_THRESH
    cost_limit: float = 0.3  # TEST.COST_THRESHOLD (tracking)
    mem_weight: float = 0.8  # TEST.MEM_WEIGHT (tracking)
    common_stride: int = 4


@dataclass
class ClipSegment:
    """One segment of a clip's panoptic output, in model channel space."""

    index: int  # value in ClipResult.panoptic (1-based)
    isthing: bool
    channel: int  # thing channel 0..57, or stuff channel 1..66
    score: float
    embedding: np.ndarray | None = None  # L2-normalised 64-d fused kernel (things)


@dataclass
class ClipResult:
    """Panoptic maps of a clip: ``panoptic`` (T, H, W) int32, 0 = void, else a segment index."""

    frames: list[int]
    panoptic: np.ndarray
    segments: list[ClipSegment] = field(default_factory=list)


# ----------------------------------------------------------------------------- candidates


def thing_candidates(center_logits: torch.Tensor, weights: torch.Tensor, pool: int, top_num: int,
                     thres: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Peaks of one level: ``(weights (K, Cw), classes (K,), scores (K,))`` in frame, then rank order."""
    t, c, h, w = center_logits.shape
    heat = center_logits.sigmoid()
    heat = (heat + F.avg_pool2d(heat, pool, stride=1, padding=(pool - 1) // 2)) / 2.0
    peak = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (peak == heat).to(heat.dtype)
    k = min(h * w, top_num // 2)
    # best k per class, then best k over classes (a class may hold several of them)
    per_cls, per_idx = torch.topk(heat.reshape(t, c, -1), k)
    scores, order = torch.topk(per_cls.reshape(t, -1), k)
    classes = order // k
    index = per_idx.reshape(t, -1).gather(1, order)
    keep = scores > thres
    frame = torch.arange(t, device=heat.device).unsqueeze(1).expand(t, k)
    flat_w = weights.reshape(t, weights.shape[1], -1)
    picked = flat_w[frame[keep], :, index[keep]]  # (K, Cw)
    return picked, classes[keep], scores[keep]


def stuff_candidates(region_logits: torch.Tensor, weights: torch.Tensor,
                     thres: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stuff classes of one level over the clip: ``(weights (S, Cw), classes (S,), scores (S,))``."""
    t, c, h, w = region_logits.shape
    prob = region_logits.sigmoid().permute(1, 0, 2, 3).reshape(c, -1)  # C, T*h*w
    cate = prob.argmax(dim=0)
    classes, counts = torch.unique(cate, return_counts=True)
    onehot = (cate.unsqueeze(0) == classes.unsqueeze(1)).to(prob.dtype)  # S, P
    scores = (prob[classes] * onehot).sum(1) / counts.to(prob.dtype)
    keep = scores > thres
    flat_w = weights.permute(1, 0, 2, 3).reshape(weights.shape[1], -1)  # Cw, P
    # the released adaptive average pool divides the masked sum by the whole map size
    pooled = onehot[keep] @ flat_w.t() / float(prob.shape[1])
    return pooled, classes[keep], scores[keep]


# ----------------------------------------------------------------------------- kernel fusion


def fuse_thing_kernels(kernels: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor,
                       sim_thres: float = 0.9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge kernels of one object: candidates must be sorted by descending score.

    Candidate j joins the first earlier kept candidate i of its class with cos(i, j) >= sim_thres;
    a kept kernel becomes the mean of itself and the candidates it absorbed; class and score are
    those of the kept (best) candidate.
    """
    if kernels.shape[0] == 0:
        return kernels, classes, scores
    unit = kernels / kernels.norm(dim=1, keepdim=True).clamp(min=1e-8)
    link = (unit @ unit.t()).triu(0) >= sim_thres
    link &= classes.unsqueeze(1) == classes.unsqueeze(0)
    first = torch.cumsum(link.to(torch.int32), dim=0) < 2  # row i is the first to claim column j
    keep = first.diagonal()  # nobody earlier claimed j
    groups = (link[keep] & first[keep]).to(kernels.dtype)
    fused = groups @ kernels / groups.sum(1, keepdim=True)
    return fused, classes[keep], scores[keep]


def fuse_stuff_kernels(kernels: torch.Tensor, classes: torch.Tensor,
                       scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average the kernels (and scores) of each stuff class over the levels; classes ascending."""
    uniq = torch.unique(classes)
    groups = (classes.unsqueeze(0) == uniq.unsqueeze(1)).to(kernels.dtype)
    norm = groups.sum(1, keepdim=True)
    return groups @ kernels / norm, uniq, (groups @ scores.unsqueeze(1) / norm).squeeze(1)


# ----------------------------------------------------------------------------- masks and merge


def _upsample(maps: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) stride-4 maps -> full resolution cropped to the unpadded image."""
    up = F.interpolate(maps, scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]]


def clip_masks(kernels: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
    """Sigmoid masks of every kernel on every frame: (K, T, h, w)."""
    t, c, h, w = encoded.shape
    logits = torch.matmul(kernels, encoded.reshape(t, c, h * w))  # T, K, hw
    return logits.sigmoid().reshape(t, -1, h, w).permute(1, 0, 2, 3)


def rank_things(probs: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor, cfg: InferenceConfig
                ) -> torch.Tensor:
    """Indices of the things kept after mask scoring (score *= mean mask probability), best first."""
    if probs.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    flat = probs.reshape(probs.shape[0], -1)
    mask = flat > cfg.inst_thres
    seg_score = (flat * mask).sum(1) / (mask.sum(1).to(flat.dtype) + 1e-6)
    final = scores * seg_score
    order = torch.argsort(final, descending=True)
    order = order[final[order] >= cfg.min_score][: cfg.top_num]
    scores.copy_(final)
    return order


def merge_panoptic(thing_masks: list[np.ndarray], thing_scores: list[float], stuff_sem: np.ndarray,
                   overlap_thres: float, stuff_area_limit: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Paint things (best first, boolean (T, H, W) each) then stuff labels (``stuff_sem`` (T, H, W),
    0 = none) into one map. Returns ``(panoptic, thing_indices_painted, stuff_labels_painted)``;
    segment value k+1 is the k-th painted segment, things first."""
    t, h, w = stuff_sem.shape
    pan = np.zeros((t, h, w), np.int32)
    painted_things: list[int] = []
    for i, m in enumerate(thing_masks):
        accepted = False
        seg = len(painted_things) + 1
        for f in range(t):
            area = int(m[f].sum())
            if area == 0:
                continue
            taken = pan[f] > 0
            inter = int(np.count_nonzero(m[f] & taken))
            if inter > overlap_thres * area:
                continue
            pan[f][m[f] & ~taken] = seg
            accepted = True
        if accepted:
            painted_things.append(i)
    painted_stuff: list[int] = []
    free = pan == 0
    for label in np.unique(stuff_sem).tolist():
        if label == 0:
            continue
        region = (stuff_sem == label) & free
        if int(region.sum()) < stuff_area_limit:
            continue
        pan[region] = len(painted_things) + len(painted_stuff) + 1
        painted_stuff.append(int(label))
    return pan, painted_things, painted_stuff


@torch.no_grad()
def infer_clip(model: ClipPanoFCN, frames: list[np.ndarray], cfg: InferenceConfig | None = None,
               frame_indices: list[int] | None = None) -> ClipResult:
    """Run the model on one clip of RGB uint8 frames (same size) and return its panoptic maps."""
    cfg = cfg or InferenceConfig()
    h, w = frames[0].shape[:2]
    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    out = model(model.preprocess(batch))
    encoded = out["encoded"]
    th_w, th_c, th_s, st_w, st_c, st_s = [], [], [], [], [], []
    for ctr, reg, wts, pool in zip(out["centers"], out["regions"], out["weights"], cfg.pool_sizes, strict=True):
        a, b, c = thing_candidates(ctr, wts, pool, cfg.top_num, cfg.center_thres)
        th_w.append(a)
        th_c.append(b)
        th_s.append(c)
        a, b, c = stuff_candidates(reg, wts, cfg.stuff_thres)
        st_w.append(a)
        st_c.append(b)
        st_s.append(c)
    t_weights, t_classes, t_scores = torch.cat(th_w), torch.cat(th_c), torch.cat(th_s)
    order = torch.argsort(t_scores, descending=True)
    kernels = model.thing_generator(t_weights[order])
    kernels, t_classes, t_scores = fuse_thing_kernels(kernels, t_classes[order], t_scores[order], cfg.sim_thres)
    probs = clip_masks(kernels, encoded)
    keep = rank_things(probs, t_classes, t_scores, cfg)
    keep = keep[t_scores[keep] >= cfg.combine_inst_thres]
    masks, scores = [], []
    for i in keep.tolist():
        up = _upsample(probs[i].unsqueeze(0), cfg.common_stride, (h, w))[0]
        masks.append((up > cfg.inst_thres).numpy())
        scores.append(float(t_scores[i]))
    # stuff: mean kernel per class, argmax over the present classes (absent ones score 0)
    s_weights, s_classes, s_scores = torch.cat(st_w), torch.cat(st_c), torch.cat(st_s)
    sem = np.zeros((len(frames), h, w), np.int32)
    if s_weights.shape[0]:
        s_kernels, s_classes, _ = fuse_stuff_kernels(model.stuff_generator(s_weights), s_classes, s_scores)
        s_probs = clip_masks(s_kernels, encoded)  # S, T, h, w
        for f in range(len(frames)):
            up = _upsample(s_probs[:, f].unsqueeze(0), cfg.common_stride, (h, w))[0]
            sem[f] = s_classes[up.argmax(0)].numpy()
    pan, things, stuff = merge_panoptic(masks, scores, sem, cfg.overlap_thres, cfg.stuff_area_limit)
    segs: list[ClipSegment] = []
    for n, i in enumerate(things):
        k = keep[i].item()
        emb = F.normalize(kernels[k], dim=0).numpy().astype(np.float32)
        segs.append(ClipSegment(n + 1, True, int(t_classes[k]), scores[i], emb))
    for n, label in enumerate(stuff):
        segs.append(ClipSegment(len(things) + n + 1, False, label, 1.0))
    return ClipResult(list(frame_indices) if frame_indices is not None else list(range(len(frames))), pan, segs)
