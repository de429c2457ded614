"""Optical-flow propagator: label maps carried along DIS flow chains, no learned weights.

``FlowPropagator`` is the default backend of dense propagation and association. Its parts, one job
per module:

* ``propagation.flow_config``: ``FlowConfig`` (every tunable) and the named ``PROFILES``
  (fast | balanced | quality);
* ``propagation.flow_chain``: frames at working size, DIS flows between consecutive *source* frames,
  coordinate maps composed along each chain with a forward-backward confidence;
* ``propagation.flow_fusion``: the per-pixel fusion of the left and right chains, the photometric
  check, edge-aware refinement (guided filter + colour model), thin-part tiles at full size;
* here: the propagator itself, which groups targets by their reference gap, runs both chains and
  the per-target work in threads, and passes every target through the shape guard
  (``propagation.shape_guard``).

Why each step is there and what it was measured to bring (DAVIS 2016, the demo scenarios, the
candidates tried and dropped in issue 15) is in ``docs/propagation.md``.

Example::

    from propagation.flow import FlowConfig, FlowPropagator
    prop = FlowPropagator(FlowConfig.profile("fast"))
    res = prop.propagate(video, [Reference(0, label0), Reference(10, label10)], list(range(1, 10)))
    res.labels[5]      # HxW uint16 track ids
    res.confidence[5]  # HxW float32 in [0, 1]
    res.events.get(5)  # shape-guard interventions on frame 5, if any
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import cv2
import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from propagation.base import FrameSource, Propagator, Reference
from propagation.flow_chain import FlowChainMixin, _resize_label, _shrink
from propagation.flow_config import (
    PRESETS,
    PROFILES,
    THIN_TILE_SHARE,
    TILE,
    UNTRUSTED_REFERENCE_WEIGHT,
    FlowConfig,
)
from propagation.flow_fusion import ColourModel, FusionMixin, guided_filter
from propagation.global_gap import GapFrame, solve_gap
from propagation.motion_model import MODELS
from propagation.shape_guard import ChainEvidence, GuardedResult, GuardEvent, guard_frame
from propagation.thin_parts import thin_mask

__all__ = ["PRESETS", "PROFILES", "THIN_TILE_SHARE", "TILE", "UNTRUSTED_REFERENCE_WEIGHT", "ColourModel",
           "FlowConfig", "FlowPropagator", "guided_filter"]


class FlowPropagator(FlowChainMixin, FusionMixin, Propagator):
    """Dense propagation by optical-flow chains (the default backend: no weights needed).

    ``FlowPropagator(config=None, **overrides)``: ``config`` is a ``FlowConfig`` (default: the plain
    chain, ``FlowConfig()``; named profiles via ``FlowConfig.profile(name)``), copied; ``overrides``
    set single fields of the copy (``FlowPropagator(max_steps=2)``). Raises ``ValueError`` for an
    unknown field, DIS preset or guard motion model.
    """

    name = "flow"

    def __init__(self, config: FlowConfig | None = None, **overrides: object) -> None:
        cfg = replace(config) if config is not None else FlowConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise ValueError(f"unknown flow option {k!r}")
            setattr(cfg, k, v)
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
        if cfg.guard_model not in MODELS:
            raise ValueError(f"unknown guard motion model {cfg.guard_model!r}; choose one of {', '.join(MODELS)}")
        self.config = cfg

    # ------------------------------------------------------------------ public
    # ------------------------------------------------------------------ public
    def propagate(self, frames: FrameSource, references: list[Reference], targets: list[int],
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> GuardedResult:
        """Label every target frame from the references.

        Args:
            frames: the video (``FrameSource``); its dense frames are HxWx3 uint8 RGB, all of the
                references' size. ``read_source_frames`` is used between dense samples
                (``FlowConfig.use_source``). Frames are read in the calling thread only.
            references: at least one ``Reference`` (index, HxW uint16 label map of track ids,
                ``fixed_tracks``: tracks a human drew there; other tracks are trusted less).
            targets: dense frame indices to label, none of them a reference index (any order,
                duplicates ignored). Each target is labelled from its nearest reference on either
                side (both chains fused when ``bidirectional`` and both exist).
            progress: called as ``progress(done, total, text)`` after each target and each gap.
            cancel: checked between frames and flow steps; raises ``annotator.jobs.Cancelled``.

        Returns:
            ``GuardedResult`` with ``labels[t]`` (HxW uint16, only ids present in the references),
            ``confidence[t]`` (HxW float32 in [0, 1]) for every target, and ``events[t]`` (list of
            ``GuardEvent``, bounding boxes in frame pixels) for targets where the shape guard
            replaced or clipped a track.

        Raises:
            ValueError: no references, or a target that is also a reference.
        """
        if not references:
            raise ValueError("propagation needs at least one reference frame")
        refs = {r.index: r for r in sorted(references, key=lambda r: r.index)}
        ref_idx = sorted(refs)
        targets = sorted(set(targets))
        if set(targets) & set(ref_idx):
            raise ValueError("targets must not include reference frames")
        groups: dict[tuple[int | None, int | None], list[int]] = {}
        for t in targets:
            left = max((r for r in ref_idx if r < t), default=None)
            right = min((r for r in ref_idx if r > t), default=None)
            if not self.config.bidirectional and left is not None:
                right = None
            groups.setdefault((left, right), []).append(t)
        labels: dict[int, np.ndarray] = {}
        conf: dict[int, np.ndarray] = {}
        events: dict[int, list[GuardEvent]] = {}
        done = 0
        for (left, right), ts in groups.items():
            check_cancel(cancel)

            def tick(n: int, base: int = done, ts: list[int] = ts) -> None:
                if progress:
                    progress(base + n, len(targets), f"frame {ts[n - 1]}")

            res_l, res_c, res_e = self._propagate_gap(frames, refs.get(left) if left is not None else None,
                                                      refs.get(right) if right is not None else None, ts, cancel,
                                                      tick)
            labels.update(res_l)
            conf.update(res_c)
            events.update(res_e)
            done += len(ts)
            if progress:
                progress(done, len(targets), f"frames {ts[0]}-{ts[-1]}")
        return GuardedResult(labels, conf, events)

    def _propagate_gap(self, frames: FrameSource, left: Reference | None, right: Reference | None,
                       targets: list[int], cancel: CancelToken | None, tick: Callable[[int], None] | None = None
                       ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, list[GuardEvent]]]:
        a = left.index if left is not None else min(targets)
        b = right.index if right is not None else max(targets)
        shape = (left or right).label.shape  # type: ignore[union-attr]
        size = self._working_size(*shape)
        lshape = self._label_size(*shape)
        small = lshape != shape
        chain = self._read_chain(frames, a, b, size, cancel)
        self._flows(chain, cancel)
        pos = [chain.positions[t] for t in targets]
        n = len(chain.grays) - 1

        # frames are read here, in the calling thread (a FrameSource need not be thread-safe), each once
        ref_full = {r.index: frames.read_frame(r.index) for r in (left, right) if r is not None}

        def image(rgb: np.ndarray) -> np.ndarray:
            return _shrink(rgb, lshape[::-1]) if small else rgb

        ref_img = {i: image(rgb) for i, rgb in ref_full.items()}  # at the label grid

        guard = self.config.guard_config()
        ref_small = {r.index: _resize_label(r.label, lshape) for r in (left, right) if r is not None}

        ref_imgs = ({i: self._blurred(rgb) for i, rgb in ref_img.items()}
                    if self.config.photo_sigma > 0 else {})

        thin_maps: dict[int, np.ndarray] = {}  # reference -> its thin parts, widened by a flow-grid cell
        if small and self.config.thin_tiles:
            factor = max(shape[0] / lshape[0], shape[1] / lshape[1])
            for r in (left, right):
                m = thin_mask(r.label, factor) if r is not None else None
                if m is not None:  # widened by a flow-grid cell, so a nearest look-up on that grid finds it
                    k = int(np.ceil(max(shape[0] / size[1], shape[1] / size[0]))) if size else 1
                    thin_maps[r.index] = cv2.dilate(m.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        full_refs = ({i: self._blurred(rgb) for i, rgb in ref_full.items()}
                     if thin_maps and self.config.photo_sigma > 0 else {})

        def first(p: int, t: int, img: np.ndarray | None) -> tuple:
            """Sampling, fusion and refinement of one target at the label grid."""
            check_cancel(cancel)
            cands = []
            evidence: list[ChainEvidence] = []
            for ref, res, name, wt in ((left, fw, "forward", (n - p) / n), (right, bw, "backward", p / n)):
                if ref is None:
                    continue
                wt = wt if left is not None and right is not None else 1.0
                lab, c, grid = self._sample(ref, *res[p], lshape)
                if self.config.photo_sigma > 0 and img is not None:
                    c = c * self._photo_consistency(img, ref_imgs[ref.index], grid)
                if self.config.motion_prior > 0:
                    lab, c = self._motion_prior(ref_small[ref.index], lab, c, grid)
                cands.append((lab, c, wt))
                if self.config.jump:
                    jc, jconf = self._jump(chain.grays[chain.positions[t]], chain.grays[chain.positions[ref.index]])
                    jl, jconf, _ = self._sample(ref, jc, jconf, lshape)
                    if self.config.jump_vote:
                        cands.append((jl, jconf, wt))
                    else:  # the direct transfer only where it is surer than the chain
                        take = jconf > c
                        cands[-1] = (np.where(take, jl, lab), np.where(take, jconf, c), wt)
                evidence.append(ChainEvidence(name, ref.index, ref_small[ref.index], lab, c, grid, wt))
            lab, c = self._fuse(cands)
            fused = lab
            if img is not None:
                lab = self._refine(img, lab, c, cands, colours)
                if self.config.graphcut > 0:
                    lab = self._graphcut(img, lab, c, cands)
            return lab, c, cands, evidence, fused

        def second(p: int, t: int, lab: np.ndarray, c: np.ndarray, evidence: list[ChainEvidence],
                   fused: np.ndarray, full: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[GuardEvent]]:
            """Shape guard, upsampling to the frame size and thin-part tiles of one target."""
            check_cancel(cancel)
            lab, c, events = guard_frame(t, lab, c, evidence, guard)
            if small:
                sy, sx = shape[0] / lshape[0], shape[1] / lshape[1]
                events = [e.scaled(sy, sx) for e in events]
                lab = self._detail(lab, fused, chains_at(p), shape) if self.config.detail else _resize_label(lab, shape)
                if thin_maps and full is not None and not events:  # never undo a shape-guard repair
                    lab = self._thin_tiles(lab, full, chains_at(p), thin_maps, full_refs, colours)
                c = cv2.resize(c, shape[::-1], interpolation=cv2.INTER_LINEAR)
            return lab, c, events

        def finish(p: int, t: int, img: np.ndarray | None, full: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, list[GuardEvent]]:
            lab, c, _, evidence, fused = first(p, t, img)
            return second(p, t, lab, c, evidence, fused, full)

        def chains_at(p: int) -> list[tuple[Reference, tuple[np.ndarray, np.ndarray], float]]:
            out = []
            if left is not None:
                out.append((left, fw[p], (n - p) / n if right is not None else 1.0))
            if right is not None:
                out.append((right, bw[p], p / n if left is not None else 1.0))
            return out


        labels: dict[int, np.ndarray] = {}
        confs: dict[int, np.ndarray] = {}
        events: dict[int, list[GuardEvent]] = {}
        # the two chains, then the targets, run in parallel: OpenCV and most numpy work release the
        # GIL, and the per-target work (sampling, fusion, refinement) is mostly single-threaded
        with ThreadPoolExecutor(max(1, self.config.threads)) as pool:
            fw_job = pool.submit(self._run_chain, chain, chain.positions[a], pos, True, cancel) if left is not None else None
            bw_job = pool.submit(self._run_chain, chain, chain.positions[b], pos, False, cancel) if right is not None else None
            colours = None
            if self.config.refine and self.config.colour_weight > 0:
                colours = ColourModel([(ref_img[r.index], _resize_label(r.label, lshape))
                                       for r in (left, right) if r is not None])
            want_img = self.config.refine or self.config.photo_sigma > 0
            fulls = []
            for t in targets:  # reading a long gap's frames takes a while: cancel between them
                check_cancel(cancel)
                fulls.append(frames.read_frame(t) if want_img or thin_maps else None)
            imgs = [image(rgb) if want_img else None for rgb in fulls]
            if not thin_maps:
                fulls = [None] * len(targets)  # only the thin-part tiles need full-size frames
            fw = fw_job.result() if fw_job else {}
            bw = bw_job.result() if bw_job else {}
            if self.config.global_gap and all(img is not None for img in imgs):
                jobs = self._global_jobs(pool, first, second, pos, targets, imgs, fulls,
                                         [(r, ref_img[r.index], ref_small[r.index]) if r is not None else None
                                          for r in (left, right)], cancel)
            else:
                jobs = [pool.submit(finish, p, t, img, full)
                        for p, t, img, full in zip(pos, targets, imgs, fulls, strict=True)]
            for t, job in zip(targets, jobs, strict=True):
                labels[t], confs[t], ev = job.result()
                if ev:
                    events[t] = ev
                if tick:
                    tick(len(labels))
        return labels, confs, events

    def _global_jobs(self, pool: ThreadPoolExecutor, first: Callable[..., tuple], second: Callable[..., tuple],
                     pos: list[int], targets: list[int], imgs: list[np.ndarray], fulls: list[np.ndarray | None],
                     refs: list[tuple[Reference, np.ndarray, np.ndarray] | None], cancel: CancelToken | None
                     ) -> list[Future]:
        """The global stage (``FlowConfig.global_gap``): every target of the gap through sampling,
        fusion and refinement, then all of them with both references solved as one problem
        (``propagation.global_gap``), then each through the guard and the upsampling."""
        outs = [job.result() for job in [pool.submit(first, p, t, img)
                                         for p, t, img in zip(pos, targets, imgs, strict=True)]]
        check_cancel(cancel)
        gap: list[GapFrame] = []
        for k, ref in enumerate(refs):
            if ref is None:
                continue
            frame = GapFrame(ref[1], ref[2], np.ones(ref[2].shape, np.float32), fixed=True)
            if k == 0:
                gap.append(frame)
            else:
                gap.extend(GapFrame(img, o[0], o[1], o[2]) for o, img in zip(outs, imgs, strict=True))
                gap.append(frame)
        if refs[1] is None:
            gap.extend(GapFrame(img, o[0], o[1], o[2]) for o, img in zip(outs, imgs, strict=True))
        solved = solve_gap(gap, self.config.global_config())
        return [pool.submit(second, p, t, lab, c, o[3], o[4], full)
                for p, t, (lab, c), o, full in zip(pos, targets, solved, outs, fulls, strict=True)]
