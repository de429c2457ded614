"""CLI glue for the neighbouring datasets (Cityscapes-VPS, VSPW, LV-VIS): called from ``score``,
``export`` / ``import-dataset`` and ``new``, which own their argument parsers.

Why no ``register`` here: these are options of existing subcommands, not new subcommands; each
owner adds a few lines that call the functions below, so the argument handling for the three
datasets lives in one place and the owners' modules stay as they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.jobs import TqdmProgress

PROTOCOLS = ("vipseg", "cityscapes-vps")
EXTRA_FORMATS = ("cityscapes-vps", "vspw")
BUILTIN_TAXONOMIES = ("vipseg", "cityscapes-vps")


# ----------------------------------------------------------------- score
def add_score_arguments(p: argparse.ArgumentParser) -> None:
    """``--protocol`` and ``--grouping`` for ``score``."""
    p.add_argument("--protocol", choices=PROTOCOLS, default="vipseg",
                   help="vipseg: VIPSeg's VPQ/STQ scripts (default); cityscapes-vps: VPSNet's eval_vpq.py "
                        "(annotated frames = every 5th source frame, windows k = 0,5,10,15, per-k table)")
    p.add_argument("--grouping", choices=("video", "official"), default="video",
                   help="cityscapes-vps: windows per video (default), or eval_vpq.py's len//6 frame chunks")


def cityscapes_vps_text(gt: str, pred: str, *, split: str | None = None, videos: list[str] | None = None,
                        gt_layer: str | None = None, pred_layer: str | None = None, grouping: str = "video",
                        mode: str = "official", progress: Any = None) -> str:
    """VPSNet's VPQ report (per-k table, things/stuff) of ``pred`` against ``gt``: what ``score
    --protocol cityscapes-vps`` prints and the window's scoring dialog shows."""
    from annotator.metrics.cityscapes_vps import open_pairs, score_pair_source
    from annotator.metrics.sources import source_category_names

    pairs = open_pairs(gt, pred, split=split, videos=videos, gt_layer=gt_layer, pred_layer=pred_layer)
    result = score_pair_source(pairs, grouping=grouping, mode=mode, progress=progress)
    if hasattr(pairs.gt, "layer"):
        from annotator.project import Project

        names = {c.id: c.name for c in Project.open(pairs.gt.path).taxonomy}
    else:
        names = source_category_names(pairs.gt)
    return result.text(names)


def run_score_protocol(args: argparse.Namespace) -> int | None:
    """Score under a non-default protocol; None when ``--protocol`` is the default (VIPSeg) one."""
    if getattr(args, "protocol", "vipseg") != "cityscapes-vps":
        return None
    videos = [v.strip() for v in args.videos.split(",") if v.strip()] if getattr(args, "videos", None) else None
    with TqdmProgress("scoring (cityscapes-vps)", unit="video") as bar:
        text = cityscapes_vps_text(args.gt, args.pred, split=getattr(args, "split", None), videos=videos,
                                   gt_layer=getattr(args, "gt_layer", None),
                                   pred_layer=getattr(args, "pred_layer", None),
                                   grouping=getattr(args, "grouping", "video"), mode=getattr(args, "mode", "official"),
                                   progress=bar)
    print(text)
    if getattr(args, "out", None):
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "vpq-cityscapes-vps.txt").write_text(text + "\n", encoding="utf-8")
        print(f"report written to {out / 'vpq-cityscapes-vps.txt'}")
    return 0


# ----------------------------------------------------------------- export / import-dataset
def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``export`` for these formats."""
    p.add_argument("--split-name", default=None,
                   help="cityscapes-vps: split in the file names, panoptic_gt_<split>_city_vps.json (default: val)")


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``import-dataset`` for these formats."""
    p.add_argument("--class-list", help="vspw: class list (default: <dataset>/label_num_dic_final.json)")
    p.add_argument("--split-name", default=None,
                   help="cityscapes-vps: split of panoptic_gt_<split>_city_vps.json (default: the only one present)")


def run_export_format(args: argparse.Namespace, progress: Any = None) -> Any | None:
    """Export in one of :data:`EXTRA_FORMATS`; None for the other formats."""
    if args.format == "vspw":
        raise InputError("vspw is an import format (semantic labels have no instances to export); "
                         "export as vipseg or cityscapes-vps")
    if args.format != "cityscapes-vps":
        return None
    from annotator.formats.cityscapes_vps import export_cityscapes_vps
    from annotator.formats.common import parse_name_list

    if getattr(args, "split", None):
        raise InputError("cityscapes-vps writes one split: name it with --split-name (e.g. --split-name val)")
    return export_cityscapes_vps(args.project, args.out, videos=parse_name_list(args.videos),
                                 split=getattr(args, "split_name", None) or "val", overwrite=args.overwrite,
                                 layer=getattr(args, "layer", "labels"), progress=progress)


def run_import_format(args: argparse.Namespace, progress: Any = None) -> Any | None:
    """Import one of :data:`EXTRA_FORMATS`; None for the other formats."""
    from annotator.formats.common import parse_name_list

    videos = parse_name_list(args.videos)
    if args.format == "cityscapes-vps":
        from annotator.formats.cityscapes_vps import import_cityscapes_vps

        return import_cityscapes_vps(args.dataset, args.project, videos=videos,
                                     split=getattr(args, "split_name", None), progress=progress)
    if args.format == "vspw":
        from annotator.formats.vspw import import_vspw

        report = import_vspw(args.dataset, args.project, videos=videos, class_list=getattr(args, "class_list", None),
                             progress=progress)
        for vid, flags in report.flags.items():
            print(f"{vid}: {report.proposals[vid]} instance proposals, {len(flags)} 'split_instances' flags",
                  file=sys.stderr)
        return report.summary
    return None


# ----------------------------------------------------------------- new
def add_new_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taxonomy-from", metavar="FILE",
                   help="take the classes from a YouTube-VIS / LV-VIS / COCO annotation file's 'categories' "
                        "(all things, the file's ids kept)")


def new_taxonomy(args: argparse.Namespace) -> Any:
    """The taxonomy of ``new``: ``--taxonomy vipseg|cityscapes-vps|FILE`` or ``--taxonomy-from FILE`` (None: VIPSeg)."""
    from annotator.taxonomy import (
        cityscapes_vps_taxonomy,
        load_taxonomy,
        taxonomy_from_annotations,
        vipseg_taxonomy,
    )

    tax, src = getattr(args, "taxonomy", None), getattr(args, "taxonomy_from", None)
    if tax and src:
        raise InputError("give either --taxonomy or --taxonomy-from, not both")
    if src:
        return taxonomy_from_annotations(src)
    if tax in BUILTIN_TAXONOMIES and not Path(tax).exists():
        return vipseg_taxonomy() if tax == "vipseg" else cityscapes_vps_taxonomy()
    return load_taxonomy(tax) if tax else None
