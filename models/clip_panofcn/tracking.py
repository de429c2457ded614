"""Identity across clips: match each clip's thing kernels to a per-class memory (released eval_net_video.py).

Inside a clip identity comes from kernel fusion. Between clips the released evaluation keeps, per
thing class, a memory of L2-normalised kernels, one per instance seen so far. A new clip's kernels
of that class are matched to the memory by the assignment minimising ``(1 - cos) / 2`` where a pair
costing more than ``cost_limit`` (0.3, i.e. cos < 0.4) may not match: the released code calls
``lap.lapjv(extend_cost=True, cost_limit=...)``; the same extended problem is solved here with
``scipy.optimize.linear_sum_assignment``: the cost matrix is padded with dummy rows and columns at
``cost_limit / 2``, so leaving a pair unmatched costs exactly the limit. A matched memory entry
becomes ``normalise(0.8 * memory + 0.2 * new)``; an unmatched kernel starts a new instance.
Stuff classes are one track per class and need no matching.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.clip_panofcn.inference import ClipResult


def match_with_limit(cost: np.ndarray, cost_limit: float) -> list[tuple[int, int]]:
    """Minimum-cost matching of rows to columns where unmatched rows/columns cost ``cost_limit / 2`` each."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    big = np.full((n + m, n + m), cost_limit / 2.0)
    big[n:, m:] = 0.0
    big[:n, :m] = cost
    rows, cols = linear_sum_assignment(big)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if r < n and c < m]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class ClipTracker:
    """Assigns every clip segment a video-level key: ``("stuff", channel, 0)`` or ``("thing", channel, k)``."""

    def __init__(self, cost_limit: float = 0.3, mem_weight: float = 0.8) -> None:
        self.cost_limit = cost_limit
        self.mem_weight = mem_weight
        self.memory: dict[int, list[np.ndarray]] = {}

    def assign(self, clip: ClipResult) -> dict[int, tuple[str, int, int]]:
        """``segment index -> key`` for one clip; clips must come in temporal order."""
        keys: dict[int, tuple[str, int, int]] = {}
        by_class: dict[int, list[int]] = {}
        for n, seg in enumerate(clip.segments):
            if seg.isthing:
                by_class.setdefault(seg.channel, []).append(n)
            else:
                keys[seg.index] = ("stuff", seg.channel, 0)
        for channel, members in by_class.items():
            embs = [_unit(np.asarray(clip.segments[n].embedding, np.float64)) for n in members]
            mem = self.memory.get(channel)
            if not mem:
                self.memory[channel] = list(embs)
                for k, n in enumerate(members):
                    keys[clip.segments[n].index] = ("thing", channel, k)
                continue
            cur = np.stack(embs)
            cost = 1.0 - (cur @ np.stack(mem).T + 1.0) / 2.0
            matched = dict(match_with_limit(cost, self.cost_limit))
            updates = {}
            for i, n in enumerate(members):
                if i in matched:
                    j = matched[i]
                    keys[clip.segments[n].index] = ("thing", channel, j)
                    updates[j] = _unit(mem[j] * self.mem_weight + embs[i] * (1.0 - self.mem_weight))
            for i, n in enumerate(members):
                if i not in matched:
                    keys[clip.segments[n].index] = ("thing", channel, len(mem))
                    mem.append(embs[i])
            for j, v in updates.items():
                mem[j] = v
        return keys
