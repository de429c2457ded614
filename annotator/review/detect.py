"""Flag detection over label maps (array code only, no file access): where a reviewer should look first.

:func:`detect_flags` reads a :class:`VideoLabels` (frames of track ids, categories, which tracks
a machine made, optional confidence maps) once, frame by frame, and turns the matches of
:mod:`annotator.review.matching` into flags: a track whose predicted mask lands on another track
of the same class is an identity switch, of another class a class flip; a track missing for a
few frames without being covered by a moving thing is a dropped mask; an area spike no occluder
explains is an area jump; plus per-frame checks (fragments, low confidence of machine tracks,
unlabelled pixels). Legitimate events (border crossings, occlusion by a thing that moved there,
persistent void) stay quiet or become low-score hints. Flags are deduplicated and ranked
(:mod:`annotator.review.flags`). The reasoning and the measured figures: ``docs/review.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.review.flags import Flag, FlagConfig, dedupe, rank, shown_frame
from annotator.review.matching import FrameStats, Match, frame_stats, pair_matches


@dataclass
class VideoLabels:
    """What the checks read from a video; ``annotator.review.source.video_labels`` builds it from a
    project ``Video``.

    ``label(i)`` returns frame i's track ids; ``labelled(i)`` whether the frame has labels at all;
    ``machine(i)`` the tracks a machine made on frame i (for confidence checks); ``confidence(i)``
    the stored confidence (any size: labels are resized to it) or None.
    """

    num_frames: int
    categories: dict[int, int]
    is_thing: Callable[[int], bool]
    label: Callable[[int], np.ndarray]
    labelled: Callable[[int], bool] = lambda i: True
    machine: Callable[[int], set[int]] = lambda i: set()
    confidence: Callable[[int], np.ndarray | None] = lambda i: None
    names: Callable[[int], str] = field(default=lambda c: str(c))


def detect_flags(src: VideoLabels, config: FlagConfig | None = None, frame_range: tuple[int, int] | None = None,
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> list[Flag]:
    """Run every check over ``src`` (frames in ``frame_range`` inclusive); deduplicated and ranked."""
    cfg = config or FlagConfig()
    n = src.num_frames
    lo, hi = frame_range if frame_range is not None else (0, n - 1)
    lo, hi = max(0, lo), min(n - 1, hi)
    frames = list(range(lo, hi + 1))
    labelled = {i: bool(src.labelled(i)) for i in frames}
    first = next((i for i in frames if labelled[i]), None)
    stride = 1
    if first is not None and cfg.work_side > 0:
        shape = src.label(first).shape
        stride = max(1, -(-max(shape) // cfg.work_side))
    if stride > 1:  # pixel thresholds are in full-size pixels
        cfg = replace(cfg, min_pixels=max(1, cfg.min_pixels // stride**2),
                      fragment_pixels=max(1, cfg.fragment_pixels // stride**2))
    ids = list(src.categories)
    n_ids = (max(ids) if ids else 0) + 1
    stats: list[FrameStats | None] = [None] * n
    labels: dict[int, np.ndarray] = {}
    flags: list[Flag] = []
    matches: dict[int, dict[int, Match]] = {}  # f -> matches of frame f-1's tracks on frame f
    back: dict[int, dict[int, Match]] = {}  # f -> matches of frame f's tracks on frame f-1

    def load(i: int) -> None:
        lab = src.label(i) if labelled[i] else np.zeros((1, 1), np.uint16)
        if labelled[i] and stride > 1:
            lab = np.ascontiguousarray(lab[::stride, ::stride])
        top = int(lab.max()) if lab.size else 0
        nonlocal n_ids
        if top >= n_ids:  # ids not in the track table (should not happen in a project)
            n_ids = top + 1
            for s in stats:
                pad(s)
        labels[i] = lab
        stats[i] = frame_stats(lab, n_ids, labelled[i]) if labelled[i] else None

    def pad(s: FrameStats | None) -> None:
        if s is not None and len(s.area) < n_ids:
            k = n_ids - len(s.area)
            s.area = np.concatenate([s.area, np.zeros(k, np.int64)])
            s.cx = np.concatenate([s.cx, np.full(k, np.nan)])
            s.cy = np.concatenate([s.cy, np.full(k, np.nan)])
            s.border = np.concatenate([s.border, np.zeros(k, bool)])
            s.slices = s.slices + [None] * k

    # pass with a lag of two frames: pair (f-1, f) needs the velocities of f+1 -> f+2
    for step, i in enumerate(frames):
        check_cancel(cancel)
        load(i)
        f = i - 2
        if f - 1 >= lo and labelled[f] and labelled[f - 1]:
            matches[f], back[f] = pair_matches(labels, stats, f, n_ids, src.is_thing, cfg.occluder_iou, cfg.low_iou)
        flags.extend(_frame_flags(src, i, labels[i], stats[i], cfg))
        if i - 1 >= lo and labelled[i - 1]:
            flags.extend(_void_flags(i - 1, labels.get(i - 2), labels[i - 1], labels[i], cfg))
        labels.pop(i - 3, None)
        if progress:
            progress(step + 1, len(frames), f"frame {shown_frame(i)}")
    for f in (hi - 1, hi):
        if f == hi and labelled[f]:
            flags.extend(_void_flags(f, labels.get(f - 1), labels[f], None, cfg))
        if f - 1 >= lo and f >= lo and labelled[f] and labelled[f - 1] and f not in matches:
            matches[f], back[f] = pair_matches(labels, stats, f, n_ids, src.is_thing, cfg.occluder_iou, cfg.low_iou)
    flags.extend(_temporal_flags(src, stats, matches, back, lo, hi, cfg))
    return rank(dedupe(flags))


def _frame_flags(src: VideoLabels, i: int, label: np.ndarray, st: FrameStats | None, cfg: FlagConfig) -> list[Flag]:
    """Per-frame checks: tiny fragments, low confidence of machine-made tracks."""
    if st is None:
        return []
    out: list[Flag] = []
    h, w = label.shape
    machine = src.machine(i)
    for t in np.nonzero(st.area[1:])[0] + 1:
        t = int(t)
        sl = st.slices[t]
        if sl is None:
            continue
        ncomp, comp = cv2.connectedComponents((label[sl] == t).astype(np.uint8), connectivity=8)
        if ncomp <= 2:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        small = sizes[(sizes < cfg.fragment_share * st.area[t]) & (sizes >= cfg.fragment_pixels)]
        if small.size:
            score = min(0.45, 0.25 + 0.05 * small.size)
            out.append(Flag("fragment", i, t, score,
                            f"track {t} has {small.size} tiny fragment(s) apart from its main body", (i,)))
    if machine:
        conf = src.confidence(i)
        if conf is not None:
            small_lab = label if conf.shape == label.shape else cv2.resize(
                label, (conf.shape[1], conf.shape[0]), interpolation=cv2.INTER_NEAREST)
            scale = (h * w) / max(conf.size, 1)
            ids = small_lab.ravel()
            nb = max(int(ids.max()) + 1, 1)
            area = np.bincount(ids, minlength=nb)
            low = np.bincount(ids[(conf < cfg.low_confidence).ravel()], minlength=nb)
            for t in sorted(machine):
                if t <= 0 or t >= nb or area[t] == 0:
                    continue
                share = low[t] / area[t]
                if share >= cfg.low_conf_share and low[t] * scale >= cfg.min_pixels:
                    # alone, low confidence is a hint (on the demo bench fewer than a third of such
                    # tracks were wrong); the temporal checks catch the real errors among them
                    out.append(Flag("low_confidence", i, t, float(min(0.45, 0.2 + share * 0.3)),
                                    f"track {t}: {share:.0%} of its propagated pixels have low confidence", (i,)))
    return out


def _void_flags(i: int, prev: np.ndarray | None, label: np.ndarray, nxt: np.ndarray | None,
                cfg: FlagConfig) -> list[Flag]:
    """Unlabelled pixels on a labelled frame; void that its neighbours label is a likely error.

    Void that persists over frames is usually deliberate (an ambiguous region left out, as in
    VIPSeg) and only a hint; void that appears on one frame where both neighbours (or the one
    there is) have labels is what a dropped or erased mask leaves.
    """
    void = label == 0
    n_void = int(np.count_nonzero(void))
    h, w = label.shape
    if n_void < max(cfg.min_pixels, cfg.void_share * h * w):
        return []
    fresh = void.copy()
    sides = [x for x in (prev, nxt) if x is not None and x.shape == label.shape and x.any()]
    for x in sides:
        fresh &= x != 0
    n_fresh = int(np.count_nonzero(fresh)) if sides else 0
    share = n_void / (h * w)
    if n_fresh >= max(cfg.min_pixels, 0.5 * cfg.void_share * h * w):
        score = min(1.0, 0.6 + 0.4 * n_fresh / n_void)
        reason = f"{share:.1%} of the frame is unlabelled, labelled on the neighbouring frame(s)"
    else:
        score = 0.35
        reason = f"{share:.1%} of the frame is unlabelled (also on the neighbouring frames)"
    return [Flag("unlabelled", i, 0, score, reason, (i,))]


def _temporal_flags(src: VideoLabels, stats: list[FrameStats | None], matches: dict[int, dict[int, Match]],
                    back: dict[int, dict[int, Match]], lo: int, hi: int, cfg: FlagConfig) -> list[Flag]:
    out: list[Flag] = []
    cat = src.categories

    def cname(t: int) -> str:
        c = cat.get(t)
        return src.names(c) if c is not None else "?"

    handed: set[tuple[int, int]] = set()  # (frame, track) that received a handover

    def handover(f: int, src_t: int, dst_t: int, iou: float, own: float) -> Flag:
        same = cat.get(src_t) == cat.get(dst_t)
        score = min(1.0, 0.5 + iou - own * 0.5)
        if same:
            reason = f"track {src_t} ({cname(src_t)}) continues as track {dst_t} at frame {shown_frame(f)}: identity switch?"
        else:
            reason = (f"track {src_t} ({cname(src_t)}) continues as track {dst_t} ({cname(dst_t)}) at frame {shown_frame(f)}: "
                      "class flip?")
        handed.add((f, dst_t))
        return Flag("identity_switch" if same else "class_flip", f, src_t, score, reason, (f - 1, f), dst_t)

    for f in sorted(back):
        sp, sf = stats[f - 1], stats[f]
        assert sp is not None and sf is not None
        # backward: track t of frame f, carried back, lands on track u of frame f-1 that does not
        # continue as itself (the first frames of a switch have no velocity before: only this sees them)
        for t, b in back[f].items():
            if b.other and b.other_iou >= cfg.handover_iou and b.other_iou > b.motion_iou + cfg.handover_margin:
                out.append(handover(f, b.other, t, b.other_iou, b.motion_iou))
    for f in sorted(matches):
        sp, sf = stats[f - 1], stats[f]
        assert sp is not None and sf is not None
        for t, m in matches[f].items():
            present_f = sf.present(t)
            if m.other and m.other_iou >= cfg.handover_iou and m.other_iou > m.motion_iou + cfg.handover_margin:
                out.append(handover(f, t, m.other, m.other_iou, m.motion_iou))
                continue
            if present_f:
                b = back[f].get(t, m)
                iou = max(m.shape_iou, b.shape_iou)
                if iou < cfg.low_iou and sp.area[t] >= cfg.min_pixels:
                    # occlusion, disocclusion, entering or leaving through the border explain it
                    explained = max(m.occluded, 1.0 - m.in_frame, b.occluded, 1.0 - b.in_frame)
                    score = (1 - iou) * (1 - explained)
                    if score > 0.05:
                        out.append(Flag("low_iou", f, t, float(score),
                                        f"track {t} overlaps its motion-compensated mask of frame {shown_frame(f - 1)} "
                                        f"only {iou:.0%}", (f - 1, f)))
                continue
            # t present on f-1, missing on f
            ret = next((g for g in range(f + 1, min(hi, f + cfg.max_gap) + 1)
                         if stats[g] is not None and stats[g].present(t)), None)  # type: ignore[union-attr]
            explained = max(m.occluded, 1.0 - m.in_frame)
            if sp.area[t] < cfg.min_pixels:
                continue
            if ret is not None:
                prior = [s.area[t] for s in stats[max(lo, f - 4):f] + stats[ret:ret + 3]
                         if s is not None and s.present(t)]
                typical = float(np.median(prior)) if prior else float(sp.area[t])
                shrinking = min(1.0, sp.area[t] / max(typical, 1.0))
                score = (1 - explained) * (0.4 + 0.6 * shrinking)
                gap = tuple(range(f, ret))
                out.append(Flag("dropped", f, t, float(score),
                                f"track {t} ({cname(t)}) is missing on frame(s) {shown_frame(f)}-{shown_frame(ret - 1)} but present "
                                f"before and after", gap))
            else:
                later = any(s is not None and s.present(t) for s in stats[f + 1:hi + 1])
                if later:
                    continue  # long absence: an occlusion or a re-entry, not an error by itself
                if sp.border[t] or m.in_frame < 0.9:
                    continue  # leaves through the frame border
                score = 0.45 * (1 - explained)
                out.append(Flag("vanish", f, t, float(score),
                                f"track {t} ({cname(t)}) vanishes at frame {shown_frame(f)} away from the frame border", (f,)))
    # appearances (first frame of a track after the start), not explained by a handover or the border
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in range(lo, hi + 1):
        s = stats[i]
        if s is None:
            continue
        for t in np.nonzero(s.area[1:])[0] + 1:
            first.setdefault(int(t), i)
            last[int(t)] = i
    for t, i in first.items():
        s = stats[i]
        if i == lo or s is None or (i, t) in handed or s.border[t] or s.area[t] < cfg.min_pixels:
            continue
        short = last[t] - i + 1 <= 2 and last[t] < hi
        score = 0.7 if short else 0.35
        out.append(Flag("appear", i, t, score,
                        f"track {t} ({cname(t)}) appears at frame {shown_frame(i)} away from the frame border"
                        + (f" and is gone after frame {shown_frame(last[t])}" if short else ""), (i,)))
    out.extend(_area_spikes(stats, matches, back, lo, hi, cfg, cname))
    return out


def _area_spikes(stats: list[FrameStats | None], matches: dict[int, dict[int, Match]],
                 back: dict[int, dict[int, Match]], lo: int, hi: int, cfg: FlagConfig,
                 cname: Callable[[int], str]) -> list[Flag]:
    """A track whose area on frame f departs from both neighbours in the same direction.

    Occlusion explains a spike: a shrink when the neighbours' masks, carried to frame f, land on
    things that moved there; a growth when frame f's mask, carried to the neighbours, does.
    """
    out: list[Flag] = []
    for f in range(lo + 1, hi):
        sa, sf, sb = stats[f - 1], stats[f], stats[f + 1]
        if sa is None or sf is None or sb is None:
            continue
        both = (sa.area > 0) & (sf.area > 0) & (sb.area > 0)
        both[0] = False
        for t in np.nonzero(both)[0]:
            t = int(t)
            a0, a1, a2 = float(sa.area[t]), float(sf.area[t]), float(sb.area[t])
            if max(a0, a1, a2) < 4 * cfg.min_pixels:
                continue
            r0, r2 = math.log(a1 / a0), math.log(a1 / a2)
            if (r0 > 0) != (r2 > 0):
                continue  # a step or a trend, not a spike
            d = math.copysign(min(abs(r0), abs(r2)), r0)
            if abs(d) < cfg.area_spike:
                continue
            if d < 0:  # the neighbours carried onto f: covered by moving things, or out of the frame?
                near = [matches.get(f, {}).get(t), back.get(f + 1, {}).get(t)]
                lost = 1 - a1 / max(a0, a2)
            else:  # frame f carried onto the neighbours
                near = [back.get(f, {}).get(t), matches.get(f + 1, {}).get(t)]
                lost = 1 - max(a0, a2) / a1
            explained = 0.0
            for m in near:
                if m is not None:
                    explained = max(explained, min(1.0, m.occluded / max(lost, 1e-6)), 1.0 - m.in_frame)
            if d < 0 and sf.border[t] and sa.border[t]:
                explained = max(explained, 0.5)
            strength = min(1.0, abs(d) / (2 * cfg.area_spike))
            score = (0.4 + 0.6 * strength) * (1 - explained)
            if score <= 0.05:
                continue
            verb = "grows" if d > 0 else "shrinks"
            out.append(Flag("area_jump", f, t, float(score),
                            f"track {t} ({cname(t)}) {verb} to {a1 / a0:.1f}x its area on frame {shown_frame(f)} and back",
                            (f - 1, f, f + 1)))
    return out

