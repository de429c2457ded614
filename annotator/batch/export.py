"""Final assembly of a batch export: per-video staging folders -> the dataset ``export`` writes.

Each export task wrote one video with the format's own exporter into
``.<out>.batch-staging/videos/<id>/`` (a complete one-video dataset). The assembly hard-links
(or copies) the per-video files into one staging folder of ``annotator.formats.output.staged_output``
and writes the dataset-level files (VIPSeg: the COCO-style JSONs, split lists, categories and the
track sidecar) from the per-video JSONs, with the same split assignment as ``export``; the result
replaces ``--out`` in one rename, so a failed assembly leaves no partial output.

:mod:`annotator.batch.stages` imports this module, so like it this one imports no store module at
import time (pool workers set their environment first, :mod:`annotator.batch.workerenv`): the
format modules are imported inside the functions.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.formats import registry


def _link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file of ``src`` under ``dst`` (copy across file systems); returns files."""
    n = 0
    for root, _dirs, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(root) / name, target / name)
            except OSError:
                shutil.copy2(Path(root) / name, target / name)
            n += 1
    return n


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"batch export staging file {path} is missing or damaged ({exc}); rerun with --force") from None


def assemble(project: Any, video_ids: list[str], staging: Path, out: str | Path, options: dict[str, Any],
             overwrite: bool, notes: list[str]) -> list[str]:
    """Build ``out`` from the staged videos ``video_ids`` (project order); returns summary lines."""
    from annotator.formats.output import staged_output  # store-free at import: see the module docstring

    fmt = options["format"]
    if fmt not in _ASSEMBLERS:
        raise InputError(f"batch export does not support format {fmt!r}")
    with staged_output(out, overwrite, Path(project.path), notes) as stage:
        return _ASSEMBLERS[fmt](video_ids, staging, stage, options)


def _assemble_labelme(video_ids: list[str], staging: Path, stage: Path, options: dict[str, Any]) -> list[str]:
    for vid in video_ids:
        _link_tree(staging / "videos" / vid / vid, stage / vid)
    return [f"{len(video_ids)} videos"]


def _assemble_vipseg(video_ids: list[str], staging: Path, stage: Path, options: dict[str, Any]) -> list[str]:
    from annotator.formats.common import SPLITS, assign_splits
    from annotator.formats.output import write_json, write_lines
    from annotator.formats.vipseg import CATEGORIES_FILE, GT_JSON, SIDECAR

    entries: dict[str, tuple[dict, dict]] = {}
    sidecar: dict[str, list[dict]] = {}
    side_head: dict[str, Any] = {}
    cats: list[dict] = []
    for vid in video_ids:
        folder = staging / "videos" / vid
        gt = _read(folder / GT_JSON)
        side = _read(folder / SIDECAR)
        for ventry, aentry in zip(gt["videos"], gt["annotations"], strict=True):
            entries[ventry["video_id"]] = (ventry, aentry)
        sidecar.update(side["videos"])
        side_head = {k: v for k, v in side.items() if k != "videos"}
        cats = gt["categories"]
        for sub in ("images", "panomasks", "panomasksRGB"):
            if (folder / sub).is_dir():
                _link_tree(folder / sub, stage / sub)
    split_map = assign_splits(list(entries), options.get("splits"), tuple(options.get("split_ratios") or
                                                                           (0.8, 0.1, 0.1)), options.get("seed", 0))

    def doc(ids: list[str]) -> dict:
        return {"videos": [entries[v][0] for v in ids], "annotations": [entries[v][1] for v in ids],
                "categories": cats}

    order = sorted(entries)
    write_json(stage / GT_JSON, doc(order))
    for s in SPLITS:
        write_json(stage / f"panoptic_gt_VIPSeg_{s}.json", doc(split_map[s]))
        write_lines(stage / f"{s}.txt", split_map[s])
    write_json(stage / CATEGORIES_FILE, cats)
    write_json(stage / SIDECAR, {**side_head, "videos": {v: sidecar[v] for v in order}})
    return [f"{len(order)} videos"] + [f"{s}: {len(split_map[s])}" for s in SPLITS]


#: how batch puts the one-video datasets of a format together; a format without one is exported
#: by the ``export`` command in one pass
_ASSEMBLERS: dict[str, Callable[[list[str], Path, Path, dict[str, Any]], list[str]]] = {
    "vipseg": _assemble_vipseg, "labelme": _assemble_labelme,
}
#: the registry's export formats that batch can write (one task per video)
EXPORT_FORMATS: tuple[str, ...] = tuple(f for f in registry.EXPORT_FORMATS if f in _ASSEMBLERS)
