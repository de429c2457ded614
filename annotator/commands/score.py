"""CLI: ``score`` - VPQ and STQ between two label sources, as the official VIPSeg scripts compute them.

Sources are folders: a project (``--gt-layer``/``--pred-layer`` pick the label layer), a VIPSeg
export (panomasksRGB + JSON, or raw panomasks) or a prediction folder (pred.json + pan_pred/).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from annotator.commands.argtypes import nonempty_path, positive_int
from annotator.commands.protocols import add_score_arguments, run_score_protocol
from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, TqdmProgress, check_cancel
from annotator.metrics.engine import score_source
from annotator.metrics.report import summary_text, write_report
from annotator.metrics.sources import MatchedPairs, open_source, source_category_names
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
    p.add_argument("--workers", type=positive_int, default=1, help="processes scoring videos in parallel (default: 1)")
    add_score_arguments(p)
    p.set_defaults(func=run_score)


def parse_windows(text: str) -> list[int]:
    try:
        wins = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise InputError(f"--windows must be comma-separated integers, got {text!r}") from None
    if not wins or any(w < 1 for w in wins):
        raise InputError(f"--windows needs positive lengths, got {text!r}")
    return wins


def check_report_dir(out: str, sources: list[str]) -> None:
    """Refuse a report folder inside a project or inside / equal to a scored source.

    Why: ``score --out P.vpsproj/videos/r`` was accepted and its ``r`` folder then broke ``import``
    and ``info`` (a video folder without video.json); report files written into a source folder
    would also be read back as part of it on the next run.
    """
    dest = Path(out).resolve()
    for folder in (dest, *dest.parents):
        if (folder / "project.json").is_file():
            raise InputError(f"--out {out} is inside the project {folder}; write the report outside it")
    for src in sources:
        root = Path(src).resolve()
        if not root.is_dir():
            continue
        if dest == root or root in dest.parents:
            raise InputError(f"--out {out} is inside the scored source {src}; write the report elsewhere")


def run_score(args: argparse.Namespace) -> int:
    if args.out:
        check_report_dir(args.out, [args.gt, args.pred])
    windows = parse_windows(args.windows)
    metrics = tuple(m.strip().lower() for m in args.metrics.split(",") if m.strip())
    if not metrics or any(m not in ("vpq", "stq") for m in metrics):
        raise InputError(f"--metrics must list vpq and/or stq, got {args.metrics!r}")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    videos = [v.strip() for v in args.videos.split(",") if v.strip()] if args.videos else None
    for spec in (args.gt, args.pred):
        check_project_source(spec, videos)
    if (code := run_score_protocol(args)) is not None:
        return code
    pairs = open_pair(args.gt, args.pred, gt_layer=args.gt_layer, pred_layer=args.pred_layer, split=args.split,
                      gt_json=args.gt_json, videos=videos, checked=True)  # bad sources fail before the bar
    with TqdmProgress("scoring", unit="video") as bar:
        report, names = compute_score(pairs, windows, args.mode, metrics, workers=args.workers, progress=bar)
    print(summary_text(report, names))
    if args.out:
        paths = write_report(report, args.out, names, figure=not args.no_figure)
        print(f"report written to {', '.join(str(p) for p in paths)}")
    return 0


def open_pair(gt: str, pred: str, *, gt_layer: str | None = None, pred_layer: str | None = None,
              split: str | None = None, gt_json: str | None = None, videos: list[str] | None = None,
              checked: bool = False) -> MatchedPairs:
    """The two label sources of a scoring run, integrity-checked and matched frame by frame."""
    if not checked:
        for spec in (gt, pred):
            check_project_source(spec, videos)
    g = open_source(gt, layer=gt_layer, split=split, json_path=gt_json, videos=videos)
    p = open_source(pred, layer=pred_layer, videos=videos)
    return MatchedPairs(g, p, videos)


def compute_score(pairs: MatchedPairs, windows: list[int], mode: str, metrics: tuple[str, ...], *,
                  workers: int = 1, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> tuple[Any, dict[int, str]]:
    """VPQ/STQ and the class names for the report: what ``score`` and the window's scoring dialog
    both run, so their numbers cannot drift apart."""
    check_cancel(cancel)
    report = score_source(pairs, pairs.categories(), windows, mode, workers, metrics, progress=progress)
    report.gt_name, report.pred_name = pairs.gt.name, pairs.pred.name
    report.notes = pairs.notes + report.notes
    return report, category_names(pairs.gt)


def check_project_source(spec: str, videos: list[str] | None) -> None:
    """A project scored as ground truth or prediction first passes the quick integrity check.

    Why: a deleted label PNG reads as an empty map, so a damaged project was scored as if its
    frames were void, and a wrong-typed ``video.json`` field ended in a traceback.
    """
    from annotator.project import Project
    from annotator.project.integrity import check_project, require_intact

    if not (Path(spec) / "project.json").is_file():
        return
    proj = Project.open(spec)
    ids = [v for v in videos if (proj.videos_dir / v).is_dir()] if videos else proj.video_ids
    # scoring reads label maps only: a missing frame image is not its concern
    problems = [p for p in check_project(proj, ids) if not p.file.endswith(".jpg")]
    require_intact(problems, f"scoring {spec}")


def category_names(source) -> dict[int, str]:
    """Class names for the report, from the ground truth's own category list.

    A VIPSeg export of a custom taxonomy carries its names in its JSON / categories file; falling
    back to the VIPSeg names there labelled the per-class table with the wrong classes.
    """
    try:
        from annotator.project import Project

        if hasattr(source, "layer"):
            return {c.id: c.name for c in Project.open(source.path).taxonomy}
        names = source_category_names(source)
        if names:
            return names
    except Exception:  # noqa: BLE001 - names are cosmetic
        pass
    from annotator.taxonomy import vipseg_taxonomy

    return {c.id: c.name for c in vipseg_taxonomy()}
