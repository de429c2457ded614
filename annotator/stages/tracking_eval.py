"""Evaluation of association against ground truth (tests, ``bench/bench_association.py``).

Why here and not in the driver: nothing in the annotation loop needs ground truth; these helpers
build the identity-free input an annotator would draw and score the identities association gave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from annotator.errors import InputError
from annotator.project import FrameState, Video
from propagation.matching import overlap, present_ids, relabel


def write_shuffled_keyframes(video: Video, labels: Mapping[int, np.ndarray], categories: Mapping[int, int],
                             seed: int = 0) -> None:
    """Write ground-truth keyframe masks as an annotator would draw them: identity-free.

    Every segment of every keyframe becomes a fresh provisional track, created in an order
    shuffled independently per keyframe, so ids carry no information across keyframes; this is
    the input association is evaluated on (tests, benchmark, ``identity_metrics``).
    """
    rng = np.random.default_rng(seed)
    for k in sorted(labels):
        ids = [int(i) for i in present_ids(labels[k])]
        rng.shuffle(ids)
        mapping = {g: video.new_track(categories[g]).id for g in ids}
        video.write_label(k, relabel(labels[k], mapping), state=FrameState.MANUAL)


def identity_metrics(gt: Mapping[int, np.ndarray], pred: Mapping[int, np.ndarray],
                     things: Iterable[int] | None = None) -> dict[str, Any]:
    """CLEAR-MOT identity switches and the fraction of keyframe instances with the right track.

    For every frame each ground-truth segment gets the predicted track covering most of its pixels.
    A switch is counted when a ground-truth object's track differs from the one it had the last
    time it was present. "Correct" maps each ground-truth object to one track (Hungarian over
    co-occurrence counts, one-to-one) and counts the instances carrying that track. ``things``
    restricts the count to those ground-truth ids (e.g. the thing instances).
    """
    keep = None if things is None else {int(t) for t in things}
    assigned: dict[int, list[int]] = {}
    for k in sorted(gt):
        g, p = gt[k], pred[k]
        if g.shape != p.shape:
            raise InputError(f"frame {k}: ground truth {g.shape} and prediction {p.shape} differ in size")
        ov = overlap(g, p)
        for r, gid in enumerate(ov.rows):
            if keep is not None and int(gid) not in keep:
                continue
            row = ov.inter[r]
            assigned.setdefault(int(gid), []).append(int(ov.cols[int(row.argmax())]) if row.sum() else 0)
    switches = sum(int(a != b) for seq in assigned.values() for a, b in zip(seq, seq[1:], strict=False))
    gids = sorted(assigned)
    tids = sorted({t for seq in assigned.values() for t in seq if t})
    total = sum(len(seq) for seq in assigned.values())
    correct = 0
    if gids and tids:
        col = {t: j for j, t in enumerate(tids)}
        counts = np.zeros((len(gids), len(tids)), np.int64)
        for i, g in enumerate(gids):
            for t in assigned[g]:
                if t:
                    counts[i, col[t]] += 1
        r, c = linear_sum_assignment(counts, maximize=True)
        correct = int(counts[r, c].sum())
    return {"switches": switches, "correct": correct, "instances": total,
            "fraction_correct": correct / total if total else 1.0, "objects": len(gids)}
