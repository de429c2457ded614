"""Tables and totals of robot runs: per video and in total, per mode, plus the headline saving.

The headline is the share of simulated human time the pipeline saves against labelling every
5 fps frame by hand at the same quality bar: ``1 - minutes(pipeline) / minutes(hand)``, summed over
videos; each mode is compared with its registered baseline (``pipeline+`` with ``hand+``, so the
saving is the pipeline's and not the new tools'). The stage table splits every mode's minutes into
keyframes (drawing), identity fixes, inspection and repair (:data:`annotator.robot.costs.STAGES`).
Pooled VPQ/STQ use the official pooling over videos (``annotator.metrics.score_pairs``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from annotator.metrics import score_pairs
from annotator.robot.costs import STAGES
from annotator.robot.evaluate import MODES, SCORE_MODE, VideoResult


def _fmt(x: float, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def totals(results: Sequence[VideoResult]) -> dict[str, dict[str, Any]]:
    """Per mode: actions, minutes, sweeps, passed videos, failing masks, pooled VPQ/STQ, mean J&F."""

    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        runs = [v.modes[mode] for v in results if mode in v.modes]
        if not runs:
            continue
        pairs = [r.pairs for r in runs if r.pairs is not None]
        cats = {id(r.categories): r.categories for r in runs if r.categories is not None}
        same = len({tuple(sorted(c.isthing.items())) for c in cats.values()}) == 1
        vpq = stq = float("nan")
        if pairs and len(pairs) == len(runs) and same:  # pooled only over one label space
            rep = score_pairs(pairs, next(iter(cats.values())), mode=SCORE_MODE)
            if rep.vpq and rep.vpq.vpq.get("all") is not None:
                vpq = float(rep.vpq.vpq["all"])
            if rep.stq:
                stq = float(rep.stq.stq) * 100
        out[mode] = {
            "videos": len(runs), "actions": sum(r.actions for r in runs), "minutes": sum(r.minutes for r in runs),
            "sweeps": sum(r.stats.sweeps for r in runs), "passed": sum(r.passed for r in runs),
            "failing": sum(r.stats.failing for r in runs), "masks": sum(r.stats.masks for r in runs),
            "corrections": sum(sum(r.stats.corrections.values()) for r in runs),
            "vpq": vpq, "stq": stq, "jf": sum(r.jf for r in runs) / len(runs),
            "stages": {s: sum(r.log.stage_seconds()[s] for r in runs) / 60 for s in STAGES},
        }
    for mode, t in out.items():
        base = MODES[mode].baseline
        if base in out and out[base]["minutes"] > 0:
            t["baseline"] = base
            t["saved_vs_hand"] = 1 - t["minutes"] / out[base]["minutes"]
            # the saving over the videos both modes ran (the same set: a pooled share)
            per = [v.saved(mode) for v in results if mode in v.modes and base in v.modes]
            t["saved_min"] = min(per) if per else float("nan")
    return out


def table(results: Sequence[VideoResult], title: str = "") -> str:
    """Plain-text table: one row per (video, mode), then totals and the headline saving."""
    head = (f"{'video':<18} {'mode':<9} {'actions':>7} {'minutes':>8} {'loops':>5} {'corr':>4} "
            f"{'fail':>9} {'VPQ':>6} {'STQ':>6} {'J&F':>6} {'saved':>6}")
    lines = [title] if title else []
    lines += [f"VPQ/STQ: annotator.metrics, {SCORE_MODE} mode; J&F: DAVIS; loops: inspection sweeps; "
              "fail: masks under the bar / masks; saved: share of the hand baseline's minutes", head]
    for v in results:
        for mode, r in v.modes.items():
            saved = v.saved(mode)
            lines.append(f"{v.video_id:<18} {mode:<9} {r.actions:7d} {r.minutes:8.2f} {r.stats.sweeps:5d} "
                         f"{sum(r.stats.corrections.values()):4d} {r.stats.failing:4d}/{r.stats.masks:<4d} "
                         f"{_fmt(r.vpq):>6} {_fmt(r.stq):>6} {_fmt(r.jf, '.3f'):>6} {_fmt(saved * 100, '.0f'):>5}%")
    tot = totals(results)
    lines.append("")
    for mode, t in tot.items():
        saved = t.get("saved_vs_hand", float("nan"))
        lines.append(f"{'TOTAL':<18} {mode:<9} {t['actions']:7d} {t['minutes']:8.2f} {t['sweeps']:5d} "
                     f"{t['corrections']:4d} {t['failing']:4d}/{t['masks']:<4d} {_fmt(t['vpq']):>6} "
                     f"{_fmt(t['stq']):>6} {_fmt(t['jf'], '.3f'):>6} {_fmt(saved * 100, '.0f'):>5}%")
    for mode, t in tot.items():
        if "saved_vs_hand" not in t:
            continue
        base = tot[t["baseline"]]
        lines.append(f"headline: {mode} saves {t['saved_vs_hand']:.0%} of the human time of {t['baseline']} "
                     f"({t['minutes']:.1f} vs {base['minutes']:.1f} simulated minutes, least saving on one "
                     f"video {t['saved_min']:.0%}, {t['passed']}/{t['videos']} videos at the bar)")
    return "\n".join(lines)


def stage_table(results: Sequence[VideoResult]) -> str:
    """Minutes per video, mode and stage (keyframes, identity fixes, inspection, repair), then totals."""
    names = list(STAGES)
    head = f"{'video':<18} {'mode':<9} " + " ".join(f"{n:>10}" for n in names) + f" {'total':>8} {'saved':>6}"
    lines = ["minutes per stage (keyframes: drawing keyframes, or every frame by hand; identity: association "
             "look + corrections; inspection: looking at frames; repair: fixes and re-propagation clicks)", head]
    for v in results:
        for mode, r in v.modes.items():
            st = r.log.stage_seconds()
            lines.append(f"{v.video_id:<18} {mode:<9} " + " ".join(f"{st[n] / 60:10.2f}" for n in names)
                         + f" {r.minutes:8.2f} {_fmt(v.saved(mode) * 100, '.0f'):>5}%")
    lines.append("")
    for mode, t in totals(results).items():
        lines.append(f"{'TOTAL':<18} {mode:<9} " + " ".join(f"{t['stages'][n]:10.2f}" for n in names)
                     + f" {t['minutes']:8.2f} {_fmt(t.get('saved_vs_hand', float('nan')) * 100, '.0f'):>5}%")
    return "\n".join(lines)


def breakdown_table(results: Sequence[VideoResult]) -> str:
    """Units and seconds per action kind, per mode, summed over videos (where the time goes)."""
    lines = [f"{'mode':<9} {'kind':<16} {'actions':>7} {'units':>7} {'minutes':>8}"]
    for mode in MODES:
        agg: dict[str, list[float]] = {}
        for v in results:
            if mode not in v.modes:
                continue
            for kind, row in v.modes[mode].log.breakdown().items():
                a = agg.setdefault(kind, [0, 0, 0.0])
                a[0] += row["actions"]
                a[1] += row["units"]
                a[2] += row["seconds"]
        for kind, (n, u, sec) in sorted(agg.items(), key=lambda kv: -kv[1][2]):
            lines.append(f"{mode:<9} {kind:<16} {int(n):7d} {int(u):7d} {sec / 60:8.2f}")
    return "\n".join(lines)


def to_dict(results: Sequence[VideoResult], config: Any = None, model: Any = None) -> dict[str, Any]:
    """Everything as JSON-able data (per video, per mode, totals, cost model, config)."""

    vids = []
    for v in results:
        modes = {}
        for mode, r in v.modes.items():
            modes[mode] = {"actions": r.actions, "minutes": r.minutes, "sweeps": r.stats.sweeps,
                           "corrections": r.stats.corrections, "repropagations": r.stats.repropagations,
                           "failing": r.stats.failing, "masks": r.stats.masks, "passed": r.passed,
                           "vpq": r.vpq, "stq": r.stq, "j": r.j, "f": r.f, "machine_seconds": r.seconds_machine,
                           "breakdown": r.log.breakdown(),
                           "stages": {k: sec / 60 for k, sec in r.log.stage_seconds().items()},
                           "baseline": MODES[mode].baseline if mode in MODES else None,
                           "saved_vs_hand": None if math.isnan(v.saved(mode)) else v.saved(mode)}
        vids.append({"video": v.video_id, "kind": v.kind, "frames": v.frames, "objects": v.objects, "modes": modes})
    return {"metrics_mode": SCORE_MODE, "videos": vids, "totals": totals(results),
            "config": asdict(config) if config is not None else None,
            "cost_model": model.to_dict() if model is not None else None}
