"""CLI: ``score`` - VPQ and STQ between two label sources, as the official VIPSeg scripts compute them.

Parsing and printing only: the scoring itself is :mod:`annotator.metrics.scoring` (the same calls
as the window's scoring dialog and batch).

Sources are folders: a project (``--gt-layer``/``--pred-layer`` pick the label layer), a VIPSeg
export (panomasksRGB + JSON, or raw panomasks) or a prediction folder (pred.json + pan_pred/).
"""

from __future__ import annotations

import argparse

from annotator.commands.argtypes import nonempty_path, positive_int
from annotator.commands.protocols import add_score_arguments, run_score_protocol
from annotator.errors import InputError
from annotator.jobs import TqdmProgress
from annotator.metrics.report import summary_text, write_report
from annotator.metrics.scoring import (
    METRICS,
    check_project_source,
    check_report_dir,
    compute_score,
    open_pair,
    parse_windows,
)
from annotator.metrics.stq import MODES
from annotator.metrics.vpq import DEFAULT_WINDOWS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="VPQ and STQ of a prediction against ground truth (official VIPSeg metrics)")
    p.add_argument("--gt", required=True, type=nonempty_path, help="ground truth: project, VIPSeg export or prediction folder")
    p.add_argument("--pred", required=True, type=nonempty_path, help="prediction: project, VIPSeg export or pred.json + pan_pred/ folder")
    p.add_argument("--gt-layer", help="label layer when --gt is a project (default: labels)")
    p.add_argument("--pred-layer", help="label layer when --pred is a project (default: labels)")
    p.add_argument("--split", help="VIPSeg split of the ground truth (train/val/test): picks the JSON / list")
    p.add_argument("--gt-json", help="explicit ground-truth JSON (with --gt pointing at the mask folder)")
    p.add_argument("--videos", help="comma-separated video ids to score (default: all ground-truth videos)")
    p.add_argument("--windows", default=",".join(map(str, DEFAULT_WINDOWS)),
                   help="VPQ window lengths in frames (default: 1,2,4,6,8)")
    p.add_argument("--mode", choices=MODES, default="official",
                   help="official: bit-exact with the official scripts (quirks included); clean: quirks fixed")
    p.add_argument("--metrics", default="vpq,stq", help="vpq, stq or both (default: vpq,stq)")
    p.add_argument("--out", type=nonempty_path,
                   help="folder for scores.json, per_video.csv, per_class.csv and scores.png (not inside a "
                        "project or a scored source)")
    p.add_argument("--no-figure", action="store_true", help="do not draw scores.png")
    p.add_argument("--no-resize", action="store_true",
                   help="sizes must match exactly, as in the official scripts (default: a prediction that is a "
                        "rescale of the ground truth, e.g. a 720p VIPSeg export against its 480p project, is "
                        "resized to the ground truth's size by nearest neighbour and the report says so)")
    p.add_argument("--workers", type=positive_int, default=1, help="processes scoring videos in parallel (default: 1)")
    add_score_arguments(p)
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    if args.out:
        check_report_dir(args.out, [args.gt, args.pred])
    windows = parse_windows(args.windows)
    metrics = tuple(m.strip().lower() for m in args.metrics.split(",") if m.strip())
    if not metrics or any(m not in METRICS for m in metrics):
        raise InputError(f"--metrics must list vpq and/or stq, got {args.metrics!r}")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    videos = [v.strip() for v in args.videos.split(",") if v.strip()] if args.videos else None
    for spec in (args.gt, args.pred):
        check_project_source(spec, videos)
    if (code := run_score_protocol(args)) is not None:
        return code
    pairs = open_pair(args.gt, args.pred, gt_layer=args.gt_layer, pred_layer=args.pred_layer, split=args.split,
                      gt_json=args.gt_json, videos=videos, checked=True,
                      resize=not getattr(args, "no_resize", False))  # bad sources fail before the bar
    with TqdmProgress("scoring", unit="video") as bar:
        report, names = compute_score(pairs, windows, args.mode, metrics, workers=args.workers, progress=bar)
    print(summary_text(report, names))
    if args.out:
        paths = write_report(report, args.out, names, figure=not args.no_figure)
        print(f"report written to {', '.join(str(p) for p in paths)}")
    return 0
