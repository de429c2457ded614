"""The one scoring entry: open two label sources, score them under a protocol, name the classes.

``score`` (the command), the window's scoring dialog and batch's score stage all call these
functions, so their numbers cannot drift apart. Protocols (:data:`PROTOCOLS`): ``vipseg`` -
VIPSeg's VPQ/STQ scripts (:func:`open_pair` + :func:`compute_score`); ``cityscapes-vps`` - VPSNet's
``eval_vpq.py`` with its own per-k report (:func:`cityscapes_vps_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics.cityscapes_vps import open_pairs, score_pair_source
from annotator.metrics.engine import score_source
from annotator.metrics.sources import MatchedPairs, open_source, source_category_names
from annotator.project import Project, check_project, require_intact
from annotator.taxonomy import vipseg_taxonomy

PROTOCOLS = ("vipseg", "cityscapes-vps")
METRICS = ("vpq", "stq")


def parse_windows(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``: VPQ window lengths, positive integers."""
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


def check_project_source(spec: str, videos: list[str] | None) -> None:
    """A project scored as ground truth or prediction first passes the quick integrity check.

    Why: a deleted label PNG reads as an empty map, so a damaged project was scored as if its
    frames were void, and a wrong-typed ``video.json`` field ended in a traceback.
    """
    if not (Path(spec) / "project.json").is_file():
        return
    proj = Project.open(spec)
    ids = [v for v in videos if (proj.videos_dir / v).is_dir()] if videos else proj.video_ids
    # scoring reads label maps only: a missing frame image is not its concern
    problems = [p for p in check_project(proj, ids) if not p.file.endswith(".jpg")]
    require_intact(problems, f"scoring {spec}")


def open_pair(gt: str, pred: str, *, gt_layer: str | None = None, pred_layer: str | None = None,
              split: str | None = None, gt_json: str | None = None, videos: list[str] | None = None,
              checked: bool = False, resize: bool = True) -> MatchedPairs:
    """The two label sources of a scoring run, integrity-checked and matched frame by frame
    (``checked``: the caller ran :func:`check_project_source` already).

    ``resize``: a prediction that is a rescale of the ground truth (a 720p VIPSeg export against
    its 480p project, either way round) is compared at the ground truth's size after a
    nearest-neighbour resize, and the report says so (:meth:`MatchedPairs.size_notes`); False
    keeps the official scripts' rule that sizes must be equal.
    """
    if not checked:
        for spec in (gt, pred):
            check_project_source(spec, videos)
    g = open_source(gt, layer=gt_layer, split=split, json_path=gt_json, videos=videos)
    p = open_source(pred, layer=pred_layer, videos=videos)
    return MatchedPairs(g, p, videos, resize=resize)


def compute_score(pairs: MatchedPairs, windows: list[int], mode: str, metrics: tuple[str, ...], *,
                  workers: int = 1, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> tuple[Any, dict[int, str]]:
    """VPQ/STQ (VIPSeg protocol) of ``pairs`` and the class names for the report."""
    check_cancel(cancel)
    report = score_source(pairs, pairs.categories(), windows, mode, workers, metrics, progress=progress)
    report.gt_name, report.pred_name = pairs.gt.name, pairs.pred.name
    report.notes = pairs.notes + getattr(pairs, "size_notes", list)() + report.notes
    return report, category_names(pairs.gt)


def category_names(source: Any) -> dict[int, str]:
    """Class names for the report, from the ground truth's own category list.

    A VIPSeg export of a custom taxonomy carries its names in its JSON / categories file; falling
    back to the VIPSeg names there labelled the per-class table with the wrong classes.
    """
    try:
        if hasattr(source, "layer"):
            return {c.id: c.name for c in Project.open(source.path).taxonomy}
        names = source_category_names(source)
        if names:
            return names
    except Exception:  # noqa: BLE001 - names are cosmetic
        pass
    return {c.id: c.name for c in vipseg_taxonomy()}


def cityscapes_vps_text(gt: str, pred: str, *, split: str | None = None, videos: list[str] | None = None,
                        gt_layer: str | None = None, pred_layer: str | None = None, grouping: str = "video",
                        mode: str = "official", progress: Any = None) -> str:
    """VPSNet's VPQ report (per-k table, things/stuff) of ``pred`` against ``gt``: what ``score
    --protocol cityscapes-vps`` prints and the window's scoring dialog shows."""
    pairs = open_pairs(gt, pred, split=split, videos=videos, gt_layer=gt_layer, pred_layer=pred_layer)
    result = score_pair_source(pairs, grouping=grouping, mode=mode, progress=progress)
    if hasattr(pairs.gt, "layer"):
        names = {c.id: c.name for c in Project.open(pairs.gt.path).taxonomy}
    else:
        names = source_category_names(pairs.gt)
    return result.text(names)
