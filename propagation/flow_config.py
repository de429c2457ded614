"""Settings of the flow propagator: ``FlowConfig`` (every tunable), the named ``PROFILES`` and the
module constants the chain and the refinement share.

Why the profiles are what they are (DAVIS and demo figures, the candidates tried) is in
``docs/propagation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from propagation.global_gap import GlobalConfig
from propagation.shape_guard import GuardConfig

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

#: confidence given to reference pixels of tracks that no human drew on that reference
UNTRUSTED_REFERENCE_WEIGHT = 0.5
#: boundary refinement works on tiles of this size (pixels) that contain boundary pixels
TILE = 64
#: at most this share of a frame's tiles (and at least 8) is redone at full size for thin parts
#: (FlowConfig.thin_tiles)
THIN_TILE_SHARE = 0.25


@dataclass
class FlowConfig:
    """Tunables of the flow propagator. The defaults are the plain chain (the preset's own DIS settings, no
    photometric check: association and the 5 fps baseline use them); the named PROFILES add to them."""

    preset: str = "ultrafast"  # DIS preset: ultrafast | fast | medium
    max_side: int = 854  # working size: longest side of the frames used for flow
    min_side: int = 640  # small frames are upscaled to this longest side for flow: DIS patches are
    #                      8 px wide at its finest level, too coarse for small objects in small frames
    label_side: int = 854  # longest side at which labels are fused and refined (0 = full size);
    #                        larger frames get their label maps upsampled (nearest) at the end
    max_steps: int = 0  # at most this many flow steps per dense interval (0 = every source frame)
    use_source: bool = True  # chain over source frames between the dense samples
    finest_scale: int | None = None  # DIS finest pyramid level (None = the preset's; 0 = full size)
    patch_stride: int | None = None  # DIS patch stride (None = the preset's)
    variational_iters: int | None = None  # DIS variational refinement iterations (None = the preset's)
    fb_alpha: float = 0.01  # forward-backward tolerance: alpha * |motion|^2 + beta (px^2)
    fb_beta: float = 0.5
    bidirectional: bool = True  # fuse a backward chain from the right reference
    refine: bool = True  # edge-aware boundary refinement
    refine_radius: int = 4  # guided filter radius in label-grid pixels
    refine_eps: float = 1e-3  # guided filter regulariser (image intensities in [0, 1])
    colour_weight: float = 0.5  # weight of the colour model where the chains are unsure (0 = off)
    colour_below: float = 0.3  # chain confidence below which the colour model is consulted
    refine_floor: float = 0.05  # score a zero-confidence chain still gets (its temporal prior)
    edge_below: float = 0.6  # refine label edges only where the fused confidence is below this (> 1: all);
    #                          = agree_floor: edges both chains agree on stay (same DAVIS/demo scores, faster)
    agree_floor: float = 0.6  # fused confidence where both chains agree is at least this
    threads: int = 2  # worker threads for the two chains and the per-target work (1 = serial)
    motion_prior: float = 0.0  # > 0: where a chain is unsure (conf < colour_below), its label comes from
    #                             the reference warped by each track's robust motion, with this confidence
    detail: bool = False  # with a reduced label grid: re-sample the chains at full size where the grid's
    #                       refinement kept the fused label (thin structures survive the upsampling)
    jump: bool = False  # non-successive transfer (JumpCut): also flow each target straight to its references
    #                     and fuse those labels as extra candidates (no drift; fails on large motion)
    jump_vote: bool = True  # direct transfers vote as extra candidates (else: replace unsure chain pixels)
    graphcut: int = 0  # > 0: GrabCut iterations per thing-sized track on unsure pixels (per-object colour GMMs
    #                    + graph cut, after the guided refinement; 0 = off)
    graphcut_sure: float = 0.5  # pixels at or above this fused confidence are fixed for the graph cut
    guard: bool = True  # shape guard: catch collapsed / exploded track masks (propagation.shape_guard)
    guard_explode: float = 1.3  # area above this x the keyframe and the motion estimates = explosion
    guard_collapse: float = 0.67  # area below this x both estimates = collapse
    guard_model: str = "affine"  # whole-track motion model of the guard: affine | similarity | homography
    guard_clip: bool = True  # explosion without a chain fallback: clip to the warped shape (else replace)
    photo_sigma: float = 0.0  # > 0: chain confidence x exp(-d^2 / 2 sigma^2), d = colour distance between the
    #                           target and the reference image sampled where the chain says the pixel came from
    thin_tiles: bool = False  # with a reduced label grid: redo at full size the tiles where the references'
    #                           thin parts (propagation.thin_parts) land, so lines and poles survive
    photo_blur: int = 1  # box-blur radius (label-grid px) of both images before the colour comparison
    global_gap: bool = False  # after the refinement, solve all targets of a gap with both references as one
    #                           Potts energy (propagation.global_gap): chains + bilateral appearance, flow links
    global_unsure: float = 0.6  # fused confidence below which a target pixel is solved (with a band)
    global_spatial: float = 1.0  # weight of a 4-neighbour edge of equal colour
    global_temporal: float = 0.5  # weight of a flow link between consecutive frames of equal colour
    global_keep: float = 0.5  # share of the refined label in the global stage's flow vote
    global_appearance: float = 0.5  # share of the bilateral (t, y, x, colour) posterior at chain confidence 0

    def guard_config(self) -> GuardConfig:
        """The shape guard's settings from this profile."""
        return GuardConfig(enabled=self.guard, explode=self.guard_explode, collapse=self.guard_collapse,
                           model=self.guard_model, clip=self.guard_clip)

    def global_config(self) -> GlobalConfig:
        """The global stage's settings from this profile."""
        return GlobalConfig(unsure_below=self.global_unsure, spatial=self.global_spatial,
                            temporal=self.global_temporal, appearance=self.global_appearance, keep=self.global_keep,
                            floor=self.refine_floor)

    @classmethod
    def profile(cls, name: str) -> FlowConfig:
        """A named speed/quality profile (``--speed`` in the CLI)."""
        if name not in PROFILES:
            raise ValueError(f"unknown flow profile {name!r}; choose one of {', '.join(PROFILES)}")
        return cls(**PROFILES[name])

    @classmethod
    def fast(cls) -> FlowConfig:
        """The speed profile: coarser flow and smaller label grid (the 720p budget of 10 frames/s)."""
        return cls.profile("fast")


#: Named profiles (``--speed`` in the CLI); how they were chosen: ``docs/propagation.md``. Every profile
#: runs DIS without its variational refinement at a half-resolution finest level with a 3 px patch
#: stride, weighs each chain by the photometric check and has the shape guard on.
_FLOW = {"finest_scale": 1, "patch_stride": 3, "variational_iters": 0, "photo_sigma": 20.0, "refine_radius": 3,
         "thin_tiles": True}
PROFILES: dict[str, dict[str, object]] = {
    "fast": {"preset": "ultrafast", **_FLOW, "max_side": 480, "label_side": 480, "max_steps": 2},
    "balanced": {"preset": "ultrafast", **_FLOW},
    "quality": {"preset": "ultrafast", **_FLOW, "label_side": 0, "graphcut": 2},
}
