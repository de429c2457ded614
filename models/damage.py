"""Damage checks on a state dict: values a trained (or freshly initialised) network cannot hold.

Why: ``torch.load`` does not verify the zip CRCs, so a file damaged on disk or in transfer can
load into the right keys and shapes and make the model produce garbage without an error; these
checks catch that before a model runs. :func:`models.weights.weight_damage` applies them with the
exceptions of a registered model kind.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: largest magnitude a trained weight may have; running statistics of batch norm get more room
MAX_WEIGHT = 1e4
MAX_STATISTIC = 1e7
#: a multi-dimensional weight that is mostly exact zeros, or holds a run of this many consecutive
#: exact zeros (1 KB of float32), is damaged: torch.load does not verify the zip CRCs, so a zeroed
#: block on disk loads silently, and trained or randomly initialised weights are never exactly zero
ZERO_FRACTION = 0.5
ZERO_RUN = 256


def _longest_zero_run(t: Any) -> int:
    """Length of the longest run of consecutive exact zeros in a tensor's flattened values."""
    import torch

    z = (t.reshape(-1) == 0).to(torch.int8)
    edges = torch.diff(torch.cat([z.new_zeros(1), z, z.new_zeros(1)]))
    starts = torch.nonzero(edges == 1).flatten()
    ends = torch.nonzero(edges == -1).flatten()
    return int((ends - starts).max()) if starts.numel() else 0


def find_damage(sd: Mapping[str, Any], constant_allowed: Iterable[str] = (), limit: int = 3) -> list[str]:
    """Tensors holding values a trained (or freshly initialised) network cannot hold.

    Why: a file damaged on disk or in transfer (bit flips, zeroed or garbage blocks, a tool that
    wrote ``torch.empty``) can still unpickle into the right keys and shapes; the model then runs
    and produces garbage with no error. A float tensor is suspect when it holds NaN or Inf, a
    magnitude beyond :data:`MAX_WEIGHT` (:data:`MAX_STATISTIC` for ``running_mean``/``running_var``),
    a negative ``running_var``, or - for a multi-dimensional weight - one constant value everywhere
    (trained and randomly initialised kernels always vary; ``constant_allowed`` names the
    zero-initialised exceptions: a tensor whose name contains one of them may be constant), mostly
    exact zeros, or a run of :data:`ZERO_RUN` exact zeros. 1-D tensors may be constant (frozen
    batch norm of converted backbones holds running_mean 0 and running_var 1).

    Returns at most ``limit`` descriptions such as ``"'decoder.w' (3 NaN/Inf values)"`` (first in
    file order); empty if nothing is suspect. Non-float and meta tensors are skipped.
    """
    import torch

    allowed = tuple(constant_allowed)
    problems: list[str] = []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            continue
        v = t.detach()
        if v.device.type == "meta":
            continue
        numel = v.numel()
        if 0 in v.stride() and v.dim():
            # a broadcast view (stride 0) repeats the same values: check each stored value once
            v = v[tuple(slice(0, 1) if st == 0 else slice(None) for st in v.stride())]
        v = v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
        lo, hi = torch.aminmax(v)
        lo_f, hi_f = float(lo), float(hi)
        stat = name.endswith(("running_mean", "running_var"))
        problem = None
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
            bad = int((~torch.isfinite(v)).sum())
            problem = f"{bad} NaN/Inf value{'s' if bad != 1 else ''}"
        elif max(abs(lo_f), abs(hi_f)) > (MAX_STATISTIC if stat else MAX_WEIGHT):
            problem = f"magnitude {max(abs(lo_f), abs(hi_f)):.3g}"
        elif name.endswith("running_var") and lo_f < 0:
            problem = f"a negative variance ({lo_f:.3g})"
        elif v.dim() >= 2 and numel >= 32 and lo_f == hi_f and not any(a in name for a in allowed):
            problem = f"the same value {lo_f:.3g} in all {numel} entries"
        elif v.dim() >= 2 and numel >= ZERO_RUN and not any(a in name for a in allowed):
            zeros = v.numel() - int(torch.count_nonzero(v))
            if zeros > ZERO_FRACTION * v.numel():
                problem = f"{zeros * (numel // v.numel())} of {numel} entries exactly zero"
            elif zeros >= ZERO_RUN:
                run = _longest_zero_run(v)
                if run >= ZERO_RUN:
                    problem = f"a block of {run} consecutive exact zeros (a zeroed disk block?)"
        if problem:
            problems.append(f"'{name}' ({problem})")
            if len(problems) >= limit:
                break
    return problems
