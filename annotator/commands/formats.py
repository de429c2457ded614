"""CLI: ``export`` (project -> VIPSeg / YouTube-VIS / labelme) and ``import-dataset`` (the reverse).

``import`` (videos and frame folders) belongs to ``media.py``; datasets with labels come in through
``import-dataset`` so the two never clash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from annotator.commands.argtypes import nonempty_path, nonneg_int, positive_int, ratio_triple
from annotator.commands.protocols import (
    add_export_arguments,
    add_import_arguments,
    run_export_format,
    run_import_format,
)
from annotator.formats import FORMATS
from annotator.jobs import TqdmProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a project as a VIPSeg, YouTube-VIS/LV-VIS or labelme dataset",
                       description="Write the dataset into a staging folder next to --out and move it into "
                                   "place at the end: an error or cancel leaves no partial output.")
    p.add_argument("project", type=nonempty_path, help="project folder (NAME.vpsproj)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, type=nonempty_path,
                   help="output folder: new or empty, or with --overwrite a previous export of this tool")
    p.add_argument("--videos", nargs="+", help="only these videos (space- or comma-separated)")
    p.add_argument("--split", action="append", metavar="SPLIT=VIDEO,...",
                   help="put videos in a split (train, val, test); repeat per split; every video must be listed")
    p.add_argument("--split-ratio", metavar="TRAIN,VAL,TEST", type=ratio_triple,
                   help="otherwise: seeded random split by ratio (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the random split (default 0)")
    p.add_argument("--no-resize", action="store_true", help="VIPSeg: keep the original size (default height 720)")
    p.add_argument("--include-unlabelled", action="store_true",
                   help="also export unlabelled dense frames, as images only (e.g. for a test split)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folder if it holds a previous export of this tool (its "
                        ".vps_annotator_export marker file); any other non-empty folder is refused")
    p.add_argument("--split-crowded", action="store_true",
                   help="VIPSeg: export a video with > 100 instances of a class as parts <video>_partN "
                        "instead of failing")
    p.add_argument("--layer", default="labels", help="label layer to export (default: the main layer)")
    p.add_argument("--shapes", choices=("polygon", "mask"), default="polygon",
                   help="labelme: polygons from contours (holes as flagged polygons) or exact masks")
    p.add_argument("--workers", type=positive_int, default=None, help="encoding threads (default: cores + 1, max 4)")
    add_export_arguments(p)
    p.set_defaults(func=run_export)

    p = sub.add_parser("import-dataset", help="import a VIPSeg, YouTube-VIS/LV-VIS or labelme dataset",
                       description="Create one project video per dataset video, tracks from the dataset's ids, "
                                   "frame state 'reviewed'. A bad input leaves the project unchanged.")
    p.add_argument("dataset", type=nonempty_path, help="dataset folder (VIPSeg root, labelme folder) or YouTube-VIS JSON/folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--project", required=True, type=nonempty_path, help="project folder (created if it does not exist)")
    p.add_argument("--videos", nargs="+", help="only these videos")
    p.add_argument("--images", help="YouTube-VIS: folder holding <video>/<frame>.jpg (default: JPEGImages/ "
                                    "next to the JSON)")
    p.add_argument("--on-invalid", choices=("error", "void"), default="error",
                   help="VIPSeg: undecodable mask values stop the import (default) or become void (reported)")
    add_import_arguments(p)
    p.set_defaults(func=run_import_dataset)


def run_export(args: argparse.Namespace) -> int:
    from annotator.formats.common import (
        DEFAULT_SPLIT_RATIOS,
        parse_name_list,
        parse_split_specs,
        prepare_output,
    )

    # before the progress bar appears: clean up killed exports to --out, refuse dangerous outputs
    # (the cwd, /, home, the project) and --overwrite of a folder that is not a previous export
    notes: list[str] = []
    try:
        prepare_output(args.out, args.overwrite, Path(args.project), notes)
    finally:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    videos = parse_name_list(args.videos)
    splits = parse_split_specs(args.split)
    ratios = args.split_ratio or DEFAULT_SPLIT_RATIOS
    with TqdmProgress(f"export {args.format}") as bar:
        if (summary := run_export_format(args, bar)) is not None:
            pass
        elif args.format == "vipseg":
            from annotator.formats.vipseg import export_vipseg

            summary = export_vipseg(args.project, args.out, videos=videos, splits=splits, split_ratios=ratios,
                                    seed=args.seed, resize_height=None if args.no_resize else 720,
                                    include_unlabelled=args.include_unlabelled, overwrite=args.overwrite,
                                    layer=args.layer, workers=args.workers, split_crowded=args.split_crowded,
                                    progress=bar)
        elif args.format == "ytvis":
            from annotator.formats.ytvis import export_ytvis

            summary = export_ytvis(args.project, args.out, videos=videos, splits=splits,
                                   split_ratios=ratios if (args.split_ratio or splits) else None, seed=args.seed,
                                   overwrite=args.overwrite, layer=args.layer, progress=bar)
        else:
            from annotator.formats.labelme_json import export_labelme

            summary = export_labelme(args.project, args.out, videos=videos, overwrite=args.overwrite,
                                     layer=args.layer, shapes=args.shapes,
                                     include_unlabelled=args.include_unlabelled, progress=bar)
    print(f"exported {args.format}: " + "\n".join(summary.lines()))
    return 0


def run_import_dataset(args: argparse.Namespace) -> int:
    from annotator.formats.common import parse_name_list

    videos = parse_name_list(args.videos)
    with TqdmProgress(f"import {args.format}") as bar:
        if (summary := run_import_format(args, bar)) is not None:
            pass
        elif args.format == "vipseg":
            from annotator.formats.vipseg import import_vipseg

            summary = import_vipseg(args.dataset, args.project, videos=videos, on_invalid=args.on_invalid,
                                    progress=bar)
        elif args.format == "ytvis":
            from annotator.formats.ytvis import import_ytvis

            summary = import_ytvis(args.dataset, args.project, videos=videos,
                                   images=Path(args.images) if args.images else None, progress=bar)
        else:
            from annotator.formats.labelme_json import import_labelme

            summary = import_labelme(args.dataset, args.project, videos=videos, progress=bar)
    lines = summary.lines()
    print(f"imported {args.format}: " + lines[0])
    for ln in lines[1:]:
        print(ln, file=sys.stderr)
    return 0
