"""Benchmark: simulated human effort to label videos to a quality bar (issue 14).

    nice -n 10 .venv/bin/python bench/robot_annotator.py [--davis ../shared/data/davis2016]
        [--sequences blackswan dog] [--scenarios crossing mixed] [--demo-frames 100]
        [--modes pipeline,copy,hand] [--bar 0.9] [--tolerance 1] [--speed fast] [--json out.json]
        [--no-demo] [--no-davis]

Runs the robot (``annotator.robot``) on the four demo scenarios (exact truth) and on every sequence
of a DAVIS-style folder, in three modes - the pipeline (keyframes + association + corrections +
flow propagation + inspection/fix loops), the same with copy-nearest-keyframe propagation, and
hand-labelling every 5 fps frame with polygons - and prints per video and in total: actions,
simulated minutes (cost model with sources in ``annotator/robot/costs.py``), loops, corrections,
masks still under the bar, VPQ/STQ (clean mode) and J&F against the truth, and the share of human
time saved against the hand baseline. The same logic is ``main.py eval-effort``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.robot import CostModel, RobotConfig, davis_truth, demo_truth, run_videos  # noqa: E402
from annotator.robot.report import breakdown_table, table, to_dict  # noqa: E402

DEFAULT_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--davis", default=str(DEFAULT_DAVIS), help="DAVIS-style folder")
    ap.add_argument("--sequences", nargs="*", help="DAVIS sequences (default all)")
    ap.add_argument("--scenarios", nargs="*", help="demo scenarios (default all four)")
    ap.add_argument("--demo-frames", type=int, default=100, help="source frames per demo video (25 fps)")
    ap.add_argument("--modes", default="pipeline,copy,hand")
    ap.add_argument("--bar", type=float, default=0.9)
    ap.add_argument("--tolerance", type=int, default=1)
    ap.add_argument("--max-loops", type=int, default=6)
    ap.add_argument("--speed", default="fast", choices=("fast", "balanced", "quality"))
    ap.add_argument("--json", help="write all figures to this JSON file")
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--no-davis", action="store_true")
    args = ap.parse_args()

    from annotator.stages.evaluate import davis_sequences
    from resources.demo import SCENARIOS

    config = RobotConfig(bar=args.bar, tolerance=args.tolerance, max_sweeps=args.max_loops)
    model = CostModel()
    modes = [m for m in args.modes.split(",") if m]
    groups: dict[str, list] = {}
    if not args.no_demo:
        names = args.scenarios or list(SCENARIOS)
        groups["demo"] = [lambda d, n=n, k=k: demo_truth(n, d, seed=k, num_frames=args.demo_frames)
                          for k, n in enumerate(names)]
    if not args.no_davis:
        seqs = args.sequences or davis_sequences(args.davis)
        groups["davis"] = [lambda d, n=n: davis_truth(args.davis, n) for n in seqs]

    def show(vr) -> None:  # progress line per video, so a long run shows figures as it goes
        parts = [f"{m}: {r.minutes:.1f} min {r.actions} actions loops {r.stats.sweeps} "
                 f"fail {r.stats.failing} VPQ {r.vpq:.1f} J&F {r.jf:.3f} ({r.seconds_machine:.0f}s)"
                 for m, r in vr.modes.items()]
        print(f"[{time.strftime('%H:%M:%S')}] {vr.video_id}: " + " | ".join(parts), flush=True)

    everything = []
    report = {}
    for name, loaders in groups.items():
        results = run_videos(loaders, modes, config, model, speed=args.speed, on_result=show)
        everything += results
        print()
        print(table(results, f"== {name}: bar IoU {args.bar}, boundary tolerance {args.tolerance} px, "
                             f"flow profile {args.speed} =="))
        print()
        report[name] = to_dict(results, config, model)
    if len(groups) > 1:
        print()
        print(table(everything, "== all videos =="))
        report["all"] = to_dict(everything, config, model)
    print()
    print(breakdown_table(everything))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
