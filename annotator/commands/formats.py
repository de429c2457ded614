"""CLI: ``export`` (project -> a dataset format) and ``import-dataset`` (the reverse).

Parsing and printing only: the formats and their options come from :mod:`annotator.formats.registry`
(the choices of ``--format`` too); the import runs through :mod:`annotator.stages.import_dataset`,
which wires in the association step VSPW needs. ``import`` (videos and frame folders) belongs to
``media.py``; datasets with labels come in through ``import-dataset`` so the two never clash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from annotator.commands.argtypes import nonempty_path, nonneg_int, positive_int, ratio_triple
from annotator.formats.options import ExportOptions, ImportOptions, parse_name_list, parse_split_specs
from annotator.formats.output import prepare_output
from annotator.formats.registry import FORMATS, export_dataset
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
    p.add_argument("--split-name", default=None,
                   help="cityscapes-vps: split in the file names, panoptic_gt_<split>_city_vps.json (default: val)")
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
    p.add_argument("--class-list", help="vspw: class list (default: <dataset>/label_num_dic_final.json)")
    p.add_argument("--split-name", default=None,
                   help="cityscapes-vps: split of panoptic_gt_<split>_city_vps.json (default: the only one present)")
    p.set_defaults(func=run_import_dataset)


def export_options(args: argparse.Namespace) -> ExportOptions:
    """The typed options of an ``export`` command line (fields a namespace lacks keep their default)."""
    return ExportOptions(videos=parse_name_list(args.videos), splits=parse_split_specs(getattr(args, "split", None)),
                         split_ratios=getattr(args, "split_ratio", None), seed=getattr(args, "seed", 0),
                         resize_height=None if getattr(args, "no_resize", False) else 720,
                         include_unlabelled=getattr(args, "include_unlabelled", False), overwrite=args.overwrite,
                         layer=getattr(args, "layer", "labels"), split_crowded=getattr(args, "split_crowded", False),
                         shapes=getattr(args, "shapes", "polygon"), workers=getattr(args, "workers", None),
                         split_name=getattr(args, "split_name", None))


def import_options(args: argparse.Namespace) -> ImportOptions:
    """The typed options of an ``import-dataset`` command line."""
    return ImportOptions(videos=parse_name_list(args.videos), on_invalid=getattr(args, "on_invalid", "error"),
                         images=getattr(args, "images", None), split_name=getattr(args, "split_name", None),
                         class_list=getattr(args, "class_list", None))


def run_export(args: argparse.Namespace) -> int:
    # before the progress bar appears: clean up killed exports to --out, refuse dangerous outputs
    # (the cwd, /, home, the project) and --overwrite of a folder that is not a previous export
    notes: list[str] = []
    try:
        prepare_output(args.out, args.overwrite, Path(args.project), notes)
    finally:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    options = export_options(args)
    with TqdmProgress(f"export {args.format}") as bar:
        summary = export_dataset(args.format, args.project, args.out, options, progress=bar)
    print(f"exported {args.format}: " + "\n".join(summary.lines()))
    return 0


def run_import_dataset(args: argparse.Namespace) -> int:
    # here, not at the top: the stage pulls in association and SciPy (~1.5 s), every CLI start would pay
    from annotator.stages.import_dataset import import_dataset

    options = import_options(args)
    with TqdmProgress(f"import {args.format}") as bar:
        summary = import_dataset(args.format, args.dataset, args.project, options, progress=bar)
    for line in summary.details:
        print(line, file=sys.stderr)
    lines = summary.lines()
    print(f"imported {args.format}: " + lines[0])
    for ln in lines[1:]:
        print(ln, file=sys.stderr)
    return 0
