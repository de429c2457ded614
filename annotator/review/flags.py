"""The flag model: what a review flag is, the checks' thresholds, and how flags are merged,
ranked, filtered and walked through (Qt-free, no file access).

A :class:`Flag` is one place a reviewer should look, with a score in [0, 1] (higher: more likely a
real error) and a one-line reason. Flags under ``FlagConfig.min_score`` are hints a list shows on
demand. Flags are produced by :mod:`annotator.review.detect` (and once by import steps, the
``PERSISTENT_KINDS``), cached by :mod:`annotator.review.store` and shown by the GUI's flags panel;
this module is what all of them share, so it imports nothing of the rest of the package.
See ``docs/review.md`` for how the checks work and how the thresholds were measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

#: flag kinds, most specific first (dedup keeps the earliest kind of a merged group)
KINDS = ("class_flip", "identity_switch", "dropped", "area_jump", "low_iou", "vanish", "appear",
         "low_confidence", "fragment", "unlabelled", "split_instances")
#: flags made once by an import step (not by :func:`compute_flags`): a fresh flag run keeps them
PERSISTENT_KINDS = ("split_instances",)
_PRIORITY = {k: n for n, k in enumerate(KINDS)}
#: frame numbers a person reads (flag reasons, the panels, the report CSV, the ``review`` command's
#: output) count from 1, as the window's timeline and frame label do; what is stored on disk
#: (``Flag.frame``, ``review.json``, the label file names) stays a 0-based dense frame index
FRAME_BASE = 1


def shown_frame(index: int) -> int:
    """The number a person reads for dense frame ``index`` (the window's numbering)."""
    return int(index) + FRAME_BASE


@dataclass(frozen=True)
class Flag:
    """One place a reviewer should look: ``frame`` (jump target), ``track`` (0: the whole frame)."""

    kind: str
    frame: int
    track: int
    score: float  # 0..1, higher = more likely a real error
    reason: str  # one line for the flags panel
    frames: tuple[int, ...] = ()  # every frame concerned, sorted
    other: int = 0  # the second track of a switch / flip

    @property
    def key(self) -> str:
        """Stable id of the flag (for review decisions and the GUI's selection)."""
        return f"{self.kind}:{self.frame}:{self.track}:{self.other}"

    @property
    def tracks(self) -> tuple[int, ...]:
        """The tracks the flag concerns (``track``, then ``other``; none for a whole-frame flag)."""
        return tuple(t for t in (self.track, self.other) if t)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames"] = list(self.frames)
        d["score"] = round(float(self.score), 4)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flag:
        return cls(str(d["kind"]), int(d["frame"]), int(d["track"]), float(d["score"]), str(d.get("reason", "")),
                   tuple(int(f) for f in d.get("frames", ())), int(d.get("other", 0)))


@dataclass
class FlagConfig:
    """Thresholds of the checks (defaults measured by ``bench/bench_review.py``: ``docs/review.md``)."""

    low_iou: float = 0.5  # motion-compensated IoU with the previous frame under this: suspicious
    handover_iou: float = 0.5  # the predicted mask covers another track at least this well...
    handover_margin: float = 0.15  # ...and better than its own track by this much: switch / flip
    area_spike: float = math.log(1.4)  # |log area - mean log area of the neighbours| over this
    max_gap: int = 5  # a track missing for at most this many frames is a dropped mask
    occluder_iou: float = 0.6  # a thing explains an occlusion when it matches its own prediction this well
    low_confidence: float = 0.5  # confidence under this is low (as annotator.stages.propagate)
    low_conf_share: float = 0.35  # share of a machine track's pixels with low confidence to flag it
    min_pixels: int = 64  # ignore evidence smaller than this (pixels at full size)
    fragment_share: float = 0.05  # a component under this share of its track's area is a fragment...
    fragment_pixels: int = 16  # ...and at least this large (smaller specks are ignored)
    void_share: float = 0.002  # unlabelled pixels on a labelled frame above this share of the frame
    min_score: float = 0.5  # flags under this score are hints (shown on demand)
    work_side: int = 640  # label maps are subsampled (nearest) to at most this longest side: the
    #                       checks look at objects, not single pixels (speed: docs/review.md)



def dedupe(flags: list[Flag]) -> list[Flag]:
    """Merge flags that describe one event: same track(s) and touching frames; the most specific kind wins.

    A switch or flip between tracks A and B absorbs the flags of both tracks on its frames; two
    flags of the same kind on the same tracks within one frame of each other become one.
    """
    order = sorted(flags, key=lambda fl: (_PRIORITY.get(fl.kind, 99), -fl.score, fl.frame))
    kept: list[Flag] = []
    for fl in order:
        span = set(fl.frames or (fl.frame,))
        merged = False
        for n, k in enumerate(kept):
            kspan = set(k.frames or (k.frame,))
            near = any(abs(a - b) <= 1 for a in span for b in kspan)
            if not near:
                continue
            if fl.track == 0 or k.track == 0:
                same = fl.track == k.track and fl.frame == k.frame
            else:
                same = bool(set(fl.tracks) & set(k.tracks))
                if same and fl.kind == k.kind and fl.kind in ("identity_switch", "class_flip"):
                    same = set(fl.tracks) == set(k.tracks) or fl.frame == k.frame
            if same and (fl.kind == k.kind or fl.score <= k.score or _PRIORITY[fl.kind] <= _PRIORITY["low_iou"]):
                kept[n] = replace(k, score=max(k.score, fl.score),
                                  frames=tuple(sorted(kspan | span)) if fl.kind == k.kind else k.frames)
                merged = True
                break
        if not merged:
            kept.append(fl)
    return kept


def rank(flags: list[Flag]) -> list[Flag]:
    """Highest score first; ties by frame, then kind."""
    return sorted(flags, key=lambda fl: (-round(fl.score, 6), fl.frame, _PRIORITY.get(fl.kind, 99), fl.track))


def visible(flags: list[Flag], min_score: float | None = None) -> list[Flag]:
    """Flags at or over ``min_score`` (default: the config's)."""
    thr = FlagConfig().min_score if min_score is None else min_score
    return [fl for fl in flags if fl.score >= thr]


def next_flag(flags: list[Flag], frame: int, track: int | None = None, forward: bool = True) -> Flag | None:
    """The next (or previous) flag in time order after ``frame`` (for the next/previous flag keys).

    With ``track`` only flags involving that track count. Wraps around the video.
    """
    pool = [fl for fl in flags if track is None or track in fl.tracks]
    if not pool:
        return None
    pool.sort(key=lambda fl: (fl.frame, _PRIORITY.get(fl.kind, 99), fl.track))
    if forward:
        return next((fl for fl in pool if fl.frame > frame), pool[0])
    return next((fl for fl in reversed(pool) if fl.frame < frame), pool[-1])

