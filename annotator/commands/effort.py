"""CLI: ``eval-effort`` - how much human work a video costs with the pipeline, with copy, by hand.

    python main.py eval-effort PROJECT_OR_DAVIS_DIR [--sequences A B] [--modes pipeline,copy,hand]
    python main.py eval-effort --demo [crossing occlusion ...]

A simulated annotator (``annotator.robot``) labels each video to a quality bar (IoU 0.9 per frame
and object by default) through the tool's own editing, association, correction and propagation
functions, against the ground truth: a project whose videos are labelled on every dense frame, a
DAVIS-style folder (``JPEGImages/<seq>``, ``Annotations/<seq>``: one foreground class, background
void) or the synthetic demo scenarios. Prints actions, simulated minutes, loops, VPQ/STQ and J&F per
video and in total, and the share of time the pipeline saves against hand-labelling every frame.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from annotator.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-effort",
                       help="simulate an annotator: human actions and minutes to reach a quality bar "
                            "(pipeline vs copy propagation vs hand-labelling every frame)")
    p.add_argument("path", nargs="?", help="project with fully labelled videos, or a DAVIS-style folder")
    p.add_argument("--demo", nargs="*", metavar="SCENARIO",
                   help="run the synthetic demo scenarios instead (default: all four)")
    p.add_argument("--demo-frames", type=int, default=100, help="source frames per demo scenario (25 fps)")
    p.add_argument("--sequences", nargs="*", help="DAVIS sequences or project video ids (default all)")
    p.add_argument("--modes", default="pipeline,copy,hand", help="comma-separated: pipeline, copy, hand")
    p.add_argument("--bar", type=float, default=0.9, help="IoU every (frame, object) mask must reach")
    p.add_argument("--tolerance", type=int, default=1,
                   help="ignore pixels this close (px) to a truth boundary when judging (default 1; 0 = off)")
    p.add_argument("--max-loops", type=int, default=6, help="inspection sweeps per video at most")
    p.add_argument("--max-minutes", type=float, help="simulated human minutes per video at most")
    p.add_argument("--speed", choices=("fast", "balanced", "quality"), default="fast",
                   help="flow profile of the pipeline's dense propagation (default fast, as `propagate`)")
    p.add_argument("--category", type=int, default=None,
                   help="DAVIS only: category id of the foreground (default VIPSeg 'person')")
    p.add_argument("--json", help="write every figure (per video, per mode, totals, cost model) to this file")
    p.add_argument("--work", help="keep the robots' projects in this folder (default: a temporary folder)")
    p.set_defaults(func=run_effort)


def _loaders(args: argparse.Namespace) -> list[Callable[[Path], object]]:
    from annotator.robot.truth import DAVIS_CATEGORY, davis_truth, demo_truth, project_truth

    if args.demo is not None:
        from resources.demo import SCENARIOS

        names = args.demo or list(SCENARIOS)
        bad = [n for n in names if n not in SCENARIOS]
        if bad:
            raise InputError(f"unknown demo scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
        return [lambda d, n=n, k=k: demo_truth(n, d, seed=k, num_frames=args.demo_frames)
                for k, n in enumerate(names)]
    if not args.path:
        raise InputError("eval-effort needs a project or DAVIS-style folder, or --demo")
    root = Path(args.path)
    if not root.exists():
        raise InputError(f"{root} does not exist; give a project folder (NAME.vpsproj) or a DAVIS-style "
                         "folder (JPEGImages/<seq>, Annotations/<seq>)")
    if (root / "JPEGImages").is_dir():
        from annotator.stages.evaluate import davis_sequences

        names = davis_sequences(root)
        if args.sequences:
            missing = sorted(set(args.sequences) - set(names))
            if missing:
                raise InputError(f"sequences {missing} are not in {root} (it has {', '.join(names)})")
            names = [n for n in names if n in set(args.sequences)]
        cat = DAVIS_CATEGORY if args.category is None else args.category
        return [lambda d, n=n: davis_truth(root, n, cat) for n in names]
    from annotator.project import Project

    proj = Project.open(root)
    ids = args.sequences or proj.video_ids
    unknown = sorted(set(ids) - set(proj.video_ids))
    if unknown:
        raise InputError(f"videos {unknown} are not in project {root}")

    def load(_d: Path, vid: str) -> object:
        video = proj.open_video(vid, readonly=True)
        try:
            return project_truth(video)
        finally:
            video.close()

    return [lambda d, v=v: load(d, v) for v in ids]


def run_effort(args: argparse.Namespace) -> int:
    from annotator.jobs import TqdmProgress
    from annotator.robot import CostModel, RobotConfig, run_videos
    from annotator.robot.report import breakdown_table, stage_table, table, to_dict

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not 0 < args.bar <= 1:
        raise InputError(f"--bar must be in (0, 1], got {args.bar}")
    if args.max_loops < 1:
        raise InputError(f"--max-loops must be >= 1, got {args.max_loops}")
    config = RobotConfig(bar=args.bar, tolerance=max(0, args.tolerance), max_sweeps=args.max_loops,
                         max_minutes=args.max_minutes)
    model = CostModel()
    loaders = _loaders(args)
    with TqdmProgress("eval-effort", unit="run") as progress:
        results = run_videos(loaders, modes, config, model, speed=args.speed, workdir=args.work,
                             keep=bool(args.work), progress=progress)
    print(table(results, f"simulated annotator: bar IoU {args.bar} (boundary tolerance {config.tolerance} px), "
                         f"at most {args.max_loops} loops"))
    print()
    print(stage_table(results))
    print()
    print(breakdown_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_dict(results, config, model), indent=1, default=float))
        print(f"figures written to {args.json}")
    failed = [(v.video_id, m) for v in results for m, r in v.modes.items() if not r.passed]
    if failed:
        print(f"not at the bar within the budget: {failed}")
    return 0
