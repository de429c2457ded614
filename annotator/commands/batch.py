"""CLI: ``batch PROJECT STAGE`` - one stage over many videos, on a local process pool or Ray.

    python main.py batch PROJECT propagate --all [--workers N] [--backend flow]
    python main.py batch PROJECT export --all --format vipseg --out DIR [--overwrite]
    python main.py batch PROJECT score --pred-layer preannotation [--out DIR]
    python main.py batch PROJECT validate --videos a b --ray auto --json

Stages: embed (SAM embeddings of keyframes into the project cache), preannotate, propagate,
score, export, validate - each calls the same function as its single-video command. A video an
annotator has open is skipped and listed; a finished video is skipped on a rerun unless
``--force``. Exit 0 only when nothing failed. See :mod:`annotator.batch`.
"""

from __future__ import annotations

import argparse
import json
import sys

from annotator.batch.stages import EXPORT_FORMATS, STAGES
from annotator.commands.argtypes import nonempty_path, positive_int, ratio_triple
from annotator.formats.options import DEFAULT_SPLIT_RATIOS, parse_name_list, parse_split_specs
from annotator.jobs import TqdmProgress
from annotator.metrics.scoring import parse_windows
from propagation.factory import BACKENDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run a stage (embed, preannotate, propagate, score, export, validate) over "
                                     "many videos on a process pool or a Ray cluster",
                       description="One task per video, the same functions as the single-video commands. "
                                   "Videos open in the window are skipped; finished videos are skipped on a "
                                   "rerun unless --force. With --ray the project must be on storage every "
                                   "node mounts at the same path.")
    p.add_argument("project", type=nonempty_path, help="project folder (NAME.vpsproj)")
    p.add_argument("stage", choices=STAGES)
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--videos", nargs="+", help="only these videos (space- or comma-separated)")
    sel.add_argument("--all", action="store_true", help="every video of the project (the default)")
    p.add_argument("--workers", type=positive_int, help="local worker processes (default: the cores)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: auto (the cluster `ray start` joined), "
                                                    "its address, or local (a one-machine instance); needs pip install 'vps-annotator[cluster]'")
    p.add_argument("--force", action="store_true", help="redo videos already done (preannotate: replace drafts)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--checkpoint", help="embed: SAM checkpoint; preannotate: Clip-PanoFCN; propagate: STCN")
    g = p.add_argument_group("embed")
    g.add_argument("--frames", choices=("keyframes", "all"), default="keyframes",
                   help="frames to embed (default keyframes)")
    g = p.add_argument_group("preannotate")
    g.add_argument("--clip", type=positive_int, help="frames per clip (default: the model's)")
    g.add_argument("--over-propagated", action="store_true", help="let drafts replace propagated labels")
    g = p.add_argument_group("propagate")
    g.add_argument("--backend", choices=BACKENDS, default=None,
                   help="default: the project's settings' propagation_backend, else flow")
    g.add_argument("--speed", choices=("fast", "balanced", "quality"))
    g.add_argument("--preset", choices=("ultrafast", "fast", "medium"))
    g = p.add_argument_group("score")
    g.add_argument("--gt-layer", default="labels", help="ground-truth layer (default labels)")
    g.add_argument("--pred-layer", help="predicted layer, e.g. preannotation")
    g.add_argument("--windows", default="1,2,4,6,8", help="VPQ window lengths (default 1,2,4,6,8)")
    g.add_argument("--mode", choices=("official", "clean"), default="official")
    g.add_argument("--metrics", default="vpq,stq")
    g = p.add_argument_group("export")
    g.add_argument("--format", choices=EXPORT_FORMATS, default="vipseg")
    g.add_argument("--out", type=nonempty_path, help="export: dataset folder; score: per-video report folders")
    g.add_argument("--overwrite", action="store_true", help="replace a previous export at --out")
    g.add_argument("--split", action="append", metavar="SPLIT=VIDEO,...")
    g.add_argument("--split-ratio", metavar="TRAIN,VAL,TEST", type=ratio_triple)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-resize", action="store_true")
    g.add_argument("--include-unlabelled", action="store_true")
    g.add_argument("--split-crowded", action="store_true")
    g.add_argument("--layer", default="labels", help="export: label layer (default labels)")
    g.add_argument("--shapes", choices=("polygon", "mask"), default="polygon")
    p.set_defaults(func=run_batch_cmd)


def stage_options(args: argparse.Namespace) -> dict:
    """Only the options of the chosen stage (they are part of each video's done fingerprint)."""

    s = args.stage
    if s == "embed":
        return {"checkpoint": args.checkpoint, "frames": args.frames}
    if s == "preannotate":
        return {"checkpoint": args.checkpoint, "clip": args.clip, "over_propagated": args.over_propagated}
    if s == "propagate":
        return {"backend": args.backend, "checkpoint": args.checkpoint, "speed": args.speed, "preset": args.preset}
    if s == "score":
        return {"gt_layer": args.gt_layer, "pred_layer": args.pred_layer, "windows": parse_windows(args.windows),
                "mode": args.mode, "metrics": [m.strip().lower() for m in args.metrics.split(",") if m.strip()],
                "out": args.out}
    if s == "export":
        return {"format": args.format, "out": args.out, "overwrite": args.overwrite,
                "splits": parse_split_specs(args.split), "split_ratios": list(args.split_ratio or DEFAULT_SPLIT_RATIOS),
                "seed": args.seed, "resize_height": None if args.no_resize else 720,
                "include_unlabelled": args.include_unlabelled, "split_crowded": args.split_crowded,
                "layer": args.layer, "shapes": args.shapes}
    return {}


def run_batch_cmd(args: argparse.Namespace) -> int:
    from annotator.batch.driver import check_batch, run_batch

    videos = parse_name_list(args.videos)
    options = stage_options(args)
    check_batch(args.project, args.stage, videos, dict(options))  # refusals before the progress bar
    if args.ray:
        from annotator.batch.runners import connect_ray

        connect_ray(args.ray)
    with TqdmProgress(f"batch {args.stage}", unit="frame") as bar:
        summary = run_batch(args.project, args.stage, videos=videos, options=options,
                            workers=args.workers, ray=args.ray, force=args.force, progress=bar)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
        for line in summary.lines():
            print(line, file=sys.stderr)
    else:
        print("\n".join(summary.lines()))
    return 0 if summary.ok else 1
