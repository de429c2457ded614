"""CLI glue for the neighbouring datasets (Cityscapes-VPS, VSPW, LV-VIS): the options that the
``score`` and ``new`` subcommands add for them, and argparse adapters of their formats.

Why no ``register`` here: these are options of existing subcommands, not new subcommands. The
work itself lives below the CLI: the scoring protocols in :mod:`annotator.metrics.scoring`, the
formats in :mod:`annotator.formats.registry` (``export`` / ``import-dataset`` take their options in
:mod:`annotator.commands.formats`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from annotator.commands.formats import export_options, import_options
from annotator.errors import InputError
from annotator.formats.common import Summary
from annotator.formats.registry import export_dataset
from annotator.jobs import TqdmProgress
from annotator.metrics.scoring import PROTOCOLS, cityscapes_vps_text
from annotator.taxonomy import (
    cityscapes_vps_taxonomy,
    load_taxonomy,
    taxonomy_from_annotations,
    vipseg_taxonomy,
)

__all__ = ["BUILTIN_TAXONOMIES", "EXTRA_FORMATS", "PROTOCOLS", "add_new_arguments", "add_score_arguments",
           "new_taxonomy", "run_export_format", "run_import_format", "run_score_protocol"]

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
def run_export_format(args: argparse.Namespace, progress: Any = None) -> Summary | None:
    """Export parsed ``export`` arguments in one of :data:`EXTRA_FORMATS`; None for the other formats."""
    if args.format not in EXTRA_FORMATS:
        return None
    return export_dataset(args.format, args.project, args.out, export_options(args), progress=progress)


def run_import_format(args: argparse.Namespace, progress: Any = None) -> Summary | None:
    """Import parsed ``import-dataset`` arguments in one of :data:`EXTRA_FORMATS`; None for the others."""
    if args.format not in EXTRA_FORMATS:
        return None
    # here, not at the top: the stage pulls in association and SciPy (~1.5 s), every CLI start would pay
    from annotator.stages.import_dataset import import_dataset

    return import_dataset(args.format, args.dataset, args.project, import_options(args), progress=progress)


# ----------------------------------------------------------------- new
def add_new_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taxonomy-from", metavar="FILE",
                   help="take the classes from a YouTube-VIS / LV-VIS / COCO annotation file's 'categories' "
                        "(all things, the file's ids kept)")


def new_taxonomy(args: argparse.Namespace) -> Any:
    """The taxonomy of ``new``: ``--taxonomy vipseg|cityscapes-vps|FILE`` or ``--taxonomy-from FILE`` (None: VIPSeg)."""
    tax, src = getattr(args, "taxonomy", None), getattr(args, "taxonomy_from", None)
    if tax and src:
        raise InputError("give either --taxonomy or --taxonomy-from, not both")
    if src:
        return taxonomy_from_annotations(src)
    if tax in BUILTIN_TAXONOMIES and not Path(tax).exists():
        return vipseg_taxonomy() if tax == "vipseg" else cityscapes_vps_taxonomy()
    return load_taxonomy(tax) if tax else None
