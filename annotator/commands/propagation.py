"""CLI: ``propagate`` (dense propagation of a project video) and ``eval-propagation`` (quality).

    python main.py propagate PROJECT --video V [--backend flow|memory] [--checkpoint PATH]
    python main.py eval-propagation PATH [--backend flow|memory] [--checkpoint PATH] [--key-every 5]

``eval-propagation`` takes a project (every video whose frames are all labelled is evaluated) or a
DAVIS-style folder (``JPEGImages/<seq>/``, ``Annotations/<seq>/``, read at 24 fps with 5 fps
targets), and prints J, F, J&F and the share of masks below IoU 0.9 for the chosen backend and two
baselines: copying the nearest keyframe and a plain flow chain over the 5 fps samples.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annotator.commands.argtypes import frame_range, nonempty_path, positive_int
from annotator.errors import InputError
from annotator.project.settings import effective
from propagation.factory import BACKENDS, SPEEDS


def _add_backend_args(p: argparse.ArgumentParser, from_settings: bool) -> None:
    if from_settings:  # propagate: the same backend as the window (propagation.factory.dense_backend)
        p.add_argument("--backend", choices=BACKENDS, default=None,
                       help="propagation backend (default: the settings' propagation_backend, else flow)")
    else:  # eval-propagation measures the backend it is told, flow unless asked
        p.add_argument("--backend", choices=BACKENDS, default="flow", help="propagation backend (default flow)")
    p.add_argument("--checkpoint", help="STCN checkpoint for --backend memory (else VPS_STCN_CHECKPOINT)")
    p.add_argument("--speed", choices=SPEEDS, default=None,
                   help="flow profile: fast (default, 720p budget), balanced or quality "
                        "(default: the settings' propagation_speed - project, else user file, else fast)")
    p.add_argument("--preset", choices=("ultrafast", "fast", "medium"),
                   help="override the DIS optical flow preset of the --speed profile")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("propagate", help="propagate keyframe labels to every dense frame of a video")
    p.add_argument("project", type=nonempty_path, help="project folder (NAME.vpsproj)")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--frames", type=frame_range, help="only frames A-B (inclusive dense indices), e.g. 10-30")
    _add_backend_args(p, from_settings=True)
    p.set_defaults(func=run_propagate)

    p = sub.add_parser("eval-propagation",
                       help="hide all but the keyframes of ground-truth videos, propagate and score (J, F, J&F)")
    p.add_argument("path", type=nonempty_path, help="project with fully labelled videos, or a DAVIS-style folder")
    p.add_argument("--key-every", type=positive_int, default=5, help="keep every Nth dense frame as a keyframe (default 5)")
    p.add_argument("--sequences", nargs="*", help="DAVIS sequences or project video ids to evaluate (default all)")
    p.add_argument("--no-baselines", action="store_true", help="skip the copy and 5 fps flow baselines")
    _add_backend_args(p, from_settings=False)
    p.set_defaults(func=run_eval)


def _parse_range(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    if not text:
        return None
    if isinstance(text, tuple):  # already parsed by argtypes.frame_range
        return text
    try:
        a, b = (int(x) for x in text.split("-", 1))
    except ValueError as exc:
        raise InputError(f"--frames {text!r}: expected A-B with dense frame indices, e.g. 10-30") from exc
    if b < a:
        raise InputError(f"--frames {text!r}: the end is before the start")
    return a, b


def run_propagate(args: argparse.Namespace) -> int:
    from annotator.jobs import TqdmProgress
    from annotator.project import Project
    from annotator.stages import propagate

    proj = Project.open(args.project)
    if args.video not in proj.video_ids:
        raise InputError(f"project {proj.path} has no video {args.video!r} (videos: {', '.join(proj.video_ids)})")
    options = propagate.PropagateOptions(args.backend, args.checkpoint, args.preset, args.speed,
                                         effective(proj.settings, strict=True),
                                         _parse_range(args.frames)).with_engine()  # fails before opening
    video = proj.open_video(args.video)
    bars: list[TqdmProgress] = []

    def progress(done: int, total: int, message: str = "") -> None:
        # the bar opens with the first step: a refusal (locked or damaged video) prints only its error
        if not bars:
            bars.append(TqdmProgress(f"propagate {args.video} ({options.engine.name})"))
        bars[0](done, total, message)

    try:
        report = propagate.run_propagate(video, options, progress=progress)
        if not bars:  # nothing to do: the empty bar, as before
            progress(0, 0)
    finally:
        for bar in bars:
            bar.close()
        video.close()
    print(report.summary())
    return 0


def _options(args: argparse.Namespace, settings: Mapping[str, Any] | None = None) -> Any:
    from annotator.stages.evaluate import EvaluateOptions

    return EvaluateOptions(args.backend, args.checkpoint, args.preset, args.speed,
                           effective(settings, strict=True), args.key_every,
                           not args.no_baselines).with_methods()  # a bad backend fails early


def run_eval(args: argparse.Namespace) -> int:
    from annotator.jobs import TqdmProgress
    from annotator.stages.evaluate import (
        davis_sequences,
        evaluate_davis,
        format_table,
        mean_score,
        run_evaluate,
    )

    path = Path(args.path)
    if not path.exists():
        raise InputError(f"{path} does not exist: pass a project folder or a DAVIS-style folder")
    if (path / "JPEGImages").is_dir():
        available = davis_sequences(path)
        names = args.sequences or available
        unknown = [n for n in names if n not in available]
        if unknown:
            raise InputError(f"{path}: no sequence {unknown[0]!r} (sequences: {', '.join(available)})")
        options = _options(args)
        with TqdmProgress("eval-propagation", unit="run") as bar:
            rows = evaluate_davis(path, dict(options.methods), key_every=args.key_every, sequences=names,
                                  progress=bar)
        print(format_table(rows))
        return 0
    from annotator.project import Project

    proj = Project.open(path)
    if args.sequences:
        unknown = [v for v in args.sequences if v not in proj.video_ids]
        if unknown:
            raise InputError(f"project {proj.path} has no video {unknown[0]!r} "
                             f"(videos: {', '.join(proj.video_ids)})")
        ids = list(args.sequences)
    else:
        ids = [vid for vid in proj.video_ids if _fully_labelled(proj, vid)]
        if not ids:
            raise InputError(f"project {proj.path} has no video with every frame labelled by a human: "
                             "eval-propagation needs ground truth on every dense frame (e.g. a reviewed or "
                             "imported dataset; propagated frames are not ground truth)")
    options = _options(args, proj.settings)
    rows_v: dict[str, list] = {m: [] for m in options.methods}
    with TqdmProgress("eval-propagation", unit="video") as bar:
        for n, vid in enumerate(ids):
            video = proj.open_video(vid, readonly=True)
            try:
                scores = run_evaluate(video, options)
            finally:
                video.close()
            for m, sc in scores.items():
                rows_v[m].append(sc)
            bar(n + 1, len(ids), vid)
    for m in rows_v:
        rows_v[m].append(mean_score(rows_v[m]))
    print(format_table(rows_v))
    return 0


def _fully_labelled(proj: Any, video_id: str) -> bool:
    """Every dense frame holds ground truth (not a cleared, propagated or pre-annotated frame)."""
    from annotator.stages.evaluate import ground_truth_frames

    video = proj.open_video(video_id, readonly=True)
    try:
        return len(ground_truth_frames(video)) == video.num_frames
    finally:
        video.close()
