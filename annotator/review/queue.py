"""Look only where it is likely wrong: the review queue, its sample, suggested keyframes, sure gaps,
the per-pixel error map and the bulk accept of what is not in the queue (Qt-free).

Why a queue and a sample: after propagation most masks pass the 0.9 IoU bar, yet a reviewer who
does not know which ones looks at every frame. The error model (:mod:`annotator.review.error_model`,
fitted on real flow-propagator output) gives each machine-made (frame, track) mask a probability
``p_bad`` of being under the bar; the masks at or over the queue bar are looked at one by one,
highest expected gain first (gain = ``p_bad``: the expected number of under-bar masks one look
finds), and the rest is accepted in bulk once a uniform random sample of it was looked at and
found clean. The sample size rule is in :func:`sample_size`.

Suggested keyframes (:func:`suggest_keyframes`) are the frames where a new human reference is
expected to save the most under-bar masks (the middle of a stretch the estimate doubts), and sure
gaps (:func:`sure_gaps`) the runs of machine frames where every estimate is confident.
Frame indices here are 0-based dense indices; the CLI and the window show them from 1.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.review.error_model import ErrorModel, load_model
from annotator.review.estimate import (
    PAIR_FEATURES,
    iter_video_features,
    pixel_features,
    reference_frames,
)
from annotator.review.store import ReviewStore

#: defaults of the knobs :func:`build_queue` reads from ``settings`` (annotator.project.settings)
QUEUE_DEFAULTS: dict[str, Any] = {
    "review_queue_p": None,  # None: the bar shipped with the fitted model (``queue_p``)
    "review_sample_confidence": 0.9,  # confidence of the bound the sample gives...
    "review_sample_max_rate": 0.1,  # ...on the share of under-bar masks among the rest
    "keyframe_cost_masks": 1.0,  # a new keyframe costs as much as fixing this many masks per track on it
}

_PHRASES = {
    "log_ref_distance": "far from a reference", "gap_share": "middle of a long gap",
    "one_sided": "only one reference", "conf_mean": "low propagation confidence",
    "low_share": "unsure pixels", "area_change": "area changed against the references",
    "absent": "missing although both references show it", "iou_prev": "shape changed since the last frame",
    "iou_ref": "shape unlike the reference", "motion": "fast motion", "colour_distance": "colours unlike the reference",
    "colour_foreign": "colours of another segment", "boundary_contrast": "boundary off the image edges",
    "log_area": "size", "compactness": "thin parts", "border_share": "at the image border",
}


@dataclass(frozen=True)
class QueueItem:
    """One (frame, track) mask to look at: its probability of being under the bar, its expected
    gain (the rank key) and a one-line reason."""

    frame: int
    track: int
    p_bad: float
    gain: float
    reason: str


@dataclass
class ReviewQueue:
    """What to look at, what to accept in bulk, and what to look at before that.

    ``items`` are ranked by expected gain, highest first. ``rest`` are the (frame, track) pairs not
    in the queue. ``sample``: the pairs of ``rest`` a reviewer looks at before accepting the rest in
    bulk, drawn uniformly at random (seeded by the video id, so the same video gives the same
    sample): its size is the smallest ``n`` such that, if at least ``ceil(max_rate * N)`` (at least
    one) of the ``N`` rest pairs were under the bar, a sample of ``n`` drawn without replacement would
    show none of them with probability at most ``1 - confidence`` (hypergeometric; ``confidence``
    0.9 and ``max_rate`` 0.1 by default: a clean sample bounds the rest's error rate at 10 % with
    90 % confidence; about 22 pairs for a large rest, all of a small one). If the sample shows an
    error, the rest is not accepted in bulk (see :func:`extend_queue`).
    """

    items: list[QueueItem] = field(default_factory=list)
    rest: list[tuple[int, int]] = field(default_factory=list)
    sample: list[tuple[int, int]] = field(default_factory=list)
    p_bar: float = 0.0
    p_bad: dict[tuple[int, int], float] = field(default_factory=dict)  # every estimated pair


@dataclass(frozen=True)
class KeyframeSuggestion:
    """A frame where a new human reference would save about ``gain`` under-bar masks."""

    frame: int
    gain: float
    reason: str


@dataclass
class VideoEstimate:
    """``p_bad`` of every machine-made (frame, track) pair, with its reason, and the references."""

    p_bad: dict[tuple[int, int], float]
    reasons: dict[tuple[int, int], str]
    references: list[int]
    num_frames: int

    def frame_p(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for (f, _t), p in self.p_bad.items():
            out.setdefault(f, []).append(p)
        return out


def _reason(model: ErrorModel, x: np.ndarray) -> str:
    contrib = (x - model.pair.mean) / model.pair.scale * model.pair.coef
    top = [PAIR_FEATURES[k] for k in np.argsort(-contrib)[:2] if contrib[k] > 0.25]
    return ", ".join(_PHRASES[n] for n in top) or "estimate"


def estimate_video(video: Any, model: ErrorModel | None = None) -> VideoEstimate:
    """Run the error model over every machine-made (frame, track) pair of an open video."""
    model = model or load_model()
    p_bad: dict[tuple[int, int], float] = {}
    reasons: dict[tuple[int, int], str] = {}
    for _i, _frame, pairs, _own, _comp in iter_video_features(video):
        if not pairs:
            continue
        probs = model.pair.predict(np.stack([p.values for p in pairs]))
        for p, prob in zip(pairs, probs, strict=True):
            p_bad[(p.frame, p.track)] = float(prob)
            reasons[(p.frame, p.track)] = _reason(model, p.values)
    return VideoEstimate(p_bad, reasons, reference_frames(video), video.num_frames)


def _knob(settings: Mapping | None, key: str) -> Any:
    if settings is not None and settings.get(key) is not None:
        return settings[key]
    return QUEUE_DEFAULTS[key]


def sample_size(rest: int, confidence: float = 0.9, max_rate: float = 0.1) -> int:
    """Pairs to sample from ``rest`` so a clean sample bounds the rest's error rate (see
    :class:`ReviewQueue`): the smallest n with C(N-D, n) / C(N, n) <= 1 - confidence for
    D = max(1, ceil(max_rate * N)) bad pairs among N."""
    if rest <= 0:
        return 0
    if not (0 < confidence < 1 and 0 < max_rate < 1):
        raise InputError(f"sample confidence and max rate must lie in (0, 1) (got {confidence}, {max_rate})")
    bad = max(1, math.ceil(max_rate * rest))
    miss, n = 1.0, 0
    while n < rest and miss > 1 - confidence:
        miss *= max(rest - bad - n, 0) / (rest - n)
        n += 1
    return n


def build_queue(video: Any, settings: Mapping | None = None, estimate: VideoEstimate | None = None,
                model: ErrorModel | None = None) -> ReviewQueue:
    """The review queue of an open video (``settings``: the effective settings, knobs in
    :data:`QUEUE_DEFAULTS`; ``estimate``: a precomputed :func:`estimate_video`)."""
    model = model or load_model()
    est = estimate or estimate_video(video, model)
    bar = _knob(settings, "review_queue_p")
    bar = model.queue_p if bar is None else float(bar)
    items = [QueueItem(f, t, p, p, est.reasons.get((f, t), "")) for (f, t), p in est.p_bad.items() if p >= bar]
    items.sort(key=lambda q: (-q.gain, q.frame, q.track))
    rest = sorted(k for k, p in est.p_bad.items() if p < bar)
    n = sample_size(len(rest), float(_knob(settings, "review_sample_confidence")),
                    float(_knob(settings, "review_sample_max_rate")))
    rng = np.random.default_rng(zlib.crc32(str(getattr(video, "id", "")).encode()))
    picked = sorted(rng.choice(len(rest), size=n, replace=False).tolist()) if n else []
    return ReviewQueue(items, rest, [rest[k] for k in picked], bar, dict(est.p_bad))


def extend_queue(queue: ReviewQueue, share: float = 0.5) -> ReviewQueue:
    """After a sample showed an error: move the most doubtful ``share`` of the rest into the queue
    (a lower bar) and draw a new sample from what is left, with the same rule."""
    if not queue.rest:
        return queue
    ranked = sorted(queue.rest, key=lambda k: -queue.p_bad.get(k, 0.0))
    moved = ranked[:max(1, math.ceil(share * len(ranked)))]
    items = queue.items + [QueueItem(f, t, queue.p_bad.get((f, t), 0.0), queue.p_bad.get((f, t), 0.0),
                                     "rest after a failed sample") for f, t in moved]
    items.sort(key=lambda q: (-q.gain, q.frame, q.track))
    moved_set = set(moved)
    rest = sorted(k for k in queue.rest if k not in moved_set)
    n = sample_size(len(rest))
    rng = np.random.default_rng(len(rest))
    sample = [rest[k] for k in sorted(rng.choice(len(rest), size=n, replace=False).tolist())] if n else []
    bar = min((queue.p_bad.get(k, 0.0) for k in moved), default=queue.p_bar)
    return ReviewQueue(items, rest, sample, bar, queue.p_bad)


def suggest_keyframes(video: Any, max_count: int | None = None, estimate: VideoEstimate | None = None,
                      settings: Mapping | None = None) -> list[KeyframeSuggestion]:
    """Frames where a new human reference would save most, best first.

    A new reference at frame ``f`` shortens the chain of every machine frame ``g`` of its gap that is
    nearer to ``f`` than to the old references; the saving expected at ``g`` is its expected number
    of under-bar masks (the sum of its pairs' ``p_bad``) times ``1 - d_new / d_old``. A frame is
    suggested when that saving exceeds what drawing it costs (``keyframe_cost_masks`` per track on
    it); suggestions are picked greedily, each splitting its gap for the next.
    """
    est = estimate or estimate_video(video)
    per_frame = {f: (sum(ps), len(ps)) for f, ps in est.frame_p().items()}
    refs = sorted(set(est.references))
    cost_per_track = float(_knob(settings, "keyframe_cost_masks"))
    out: list[KeyframeSuggestion] = []
    while max_count is None or len(out) < max_count:
        best: tuple[float, int, float] | None = None
        for f, (_e, tracks) in per_frame.items():
            if f in refs:
                continue
            gain = _saving(f, per_frame, refs, est.num_frames)
            net = gain - cost_per_track * tracks
            if net > 0 and (best is None or net > best[0]):
                best = (net, f, gain)
        if best is None:
            break
        _net, f, gain = best
        out.append(KeyframeSuggestion(f, round(gain, 3), f"about {gain:.1f} masks under the bar expected "
                                      "to be saved by a reference here"))
        refs = sorted({*refs, f})
    return out


def _saving(f: int, per_frame: Mapping[int, tuple[float, int]], refs: list[int], n: int) -> float:
    left = max((r for r in refs if r < f), default=None)
    right = min((r for r in refs if r > f), default=None)
    lo = left + 1 if left is not None else 0
    hi = right - 1 if right is not None else n - 1
    total = 0.0
    for g in range(lo, hi + 1):
        e = per_frame.get(g, (0.0, 0))[0]
        if not e:
            continue
        d_old = min(abs(g - r) for r in (left, right) if r is not None) if (left, right) != (None, None) else n
        d_new = min(d_old, abs(g - f))
        total += e * (1.0 - d_new / max(d_old, 1))
    return total


def sure_gaps(video: Any, estimate: VideoEstimate | None = None, model: ErrorModel | None = None
              ) -> list[tuple[int, int]]:
    """Inclusive (first, last) runs of consecutive machine frames where every pair's ``p_bad`` is
    under the model's ``sure_p``: marked for a quick accept."""
    model = model or load_model()
    est = estimate or estimate_video(video, model)
    per = est.frame_p()
    runs: list[tuple[int, int]] = []
    start = None
    for i in range(est.num_frames + 1):
        ok = i < est.num_frames and i in per and max(per[i]) < model.sure_p
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def pixel_error_map(video: Any, frame: int, model: ErrorModel | None = None) -> np.ndarray:
    """HxW float32 in [0, 1]: the probability each pixel's label on ``frame`` is wrong (zeros on a
    reference frame). High along doubtful boundaries and where colour fits another segment, low in
    the middle of regions, so it never paints a whole stuff region."""
    if not 0 <= frame < video.num_frames:
        raise InputError(f"frame {frame} out of range 0..{video.num_frames - 1} in video {video.id!r}")
    model = model or load_model()
    out = np.zeros((video.height, video.width), np.float32)
    for i, work, pairs, own, comp in iter_video_features(video, [f for f in (frame - 1, frame) if f >= 0]):
        if i != frame:
            continue
        probs = model.pair.predict(np.stack([p.values for p in pairs])) if pairs else []
        p_bad = {p.track: float(q) for p, q in zip(pairs, probs, strict=True)}
        feats = pixel_features(work, own, comp, p_bad)
        small = model.pixel.predict(feats.reshape(-1, feats.shape[-1])).reshape(feats.shape[:2])
        out = cv2.resize(small, (video.width, video.height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def accept_rest(video: Any, queue: ReviewQueue, sample_errors: int | None = None, comment: str = "",
                store: ReviewStore | None = None) -> list[int]:
    """Accept in bulk (state ``reviewed``) every frame whose machine pairs are all in ``queue.rest``,
    after the sample was looked at: ``sample_errors`` is how many of its pairs were under the bar
    (None: not looked at). One ``Transaction`` and one review-store write; returns the frames."""
    if sample_errors is None:
        raise InputError("look at the queue's sample before accepting the rest in bulk "
                         f"({len(queue.sample)} pairs)")
    if sample_errors > 0:
        raise InputError(f"the sample showed {sample_errors} mask(s) under the bar: the rest cannot be accepted "
                         "in bulk; extend the queue and look again")
    queued = {q.frame for q in queue.items}
    frames = sorted({f for f, _t in queue.rest} - queued)
    if not frames:
        return []
    store = store or ReviewStore(video)
    with video.transaction("accept rest", {"frames": len(frames)}):
        store.accept_frames(frames, comment or f"accepted in bulk after a clean sample of {len(queue.sample)}")
    return frames
