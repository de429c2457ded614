"""The per-video task of every batch stage: the same library calls as the CLI commands.

:func:`run_task` is what a pool worker or a Ray worker runs for one video. It checks the shared
storage token, skips a video whose lock a live process holds (an annotator at work: never
written), skips a video whose done marker matches its current fingerprint (unless ``force``),
runs the stage and writes the marker last. Every failure becomes one line in the result, never a
traceback that stops the other videos.

Stage -> library function (no second implementation):
  embed        models.sam.precompute_embeddings into the project's cache (models.sam.default_cache_dir)
  preannotate  annotator.stages.preannotate.preannotate_video (``preannotate`` command)
  propagate    annotator.stages.propagate.propagate_video with propagation.factory.make_propagator (``propagate``)
  score        annotator.metrics.scoring open_pair + compute_score over two layers of the project (``score``)
  export       annotator.formats.registry export_dataset of one video into a staging folder
               (``export``); annotator.batch.export assembles the final dataset
  validate     annotator.project.integrity.check_video(deep=True) (``check``)

This module imports no store/project module at import time (see :mod:`annotator.batch.workerenv`):
that is why the stages import their library functions inside the function.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.batch.export import EXPORT_FORMATS
from annotator.batch.summary import DONE, FAILED, SKIPPED, TaskResult
from annotator.formats.options import ExportOptions
from annotator.formats.registry import export_dataset

STAGES = ("embed", "preannotate", "propagate", "score", "export", "validate")
#: stages that run a network (a GPU is requested per task on a cluster that has one)
MODEL_STAGES = ("embed", "preannotate")

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Task:
    """One video of one stage; picklable (sent to pool and Ray workers)."""

    project: str
    video_id: str
    stage: str
    options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    token_file: str = ""  # file the driver wrote into the project: proves the node sees the same folder
    token: str = ""


class Skip(Exception):
    """The video is skipped (locked, nothing to do); the message is the one-line reason."""


class StorageError(Exception):
    """The project folder is not the driver's on this node (not on shared storage)."""


# ------------------------------------------------------------------------------------ helpers
def check_token(project: str, token_file: str, token: str) -> None:
    """Refuse to work on a node that does not see the driver's project folder."""
    if not token_file:
        return
    host = socket.gethostname()
    if not Path(project).is_dir():
        raise StorageError(f"node {host}: project folder {project} does not exist here; put the project on "
                           "storage every node mounts at the same path (e.g. NFS) and pass that path")
    try:
        seen = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError:
        seen = ""
    if seen != token:
        raise StorageError(f"node {host}: {project} is not the driver's project folder (its token file "
                           f"{Path(token_file).name} is missing or different); put the project on storage every "
                           "node mounts at the same path")


def _complete(video_dir: Path) -> bool:
    """The video's import finished (one file read; ``Project.video_ids`` would read every video)."""
    import json

    try:
        doc = json.loads((video_dir / "video.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (video_dir / "video.json").exists()  # damaged: the stage reports it when opening
    return bool(doc.get("complete", False)) if isinstance(doc, dict) else True


def live_lock_holder(video_dir: Path) -> str | None:
    """Who holds the video's lock, when that holder is alive (None: free or stale)."""
    from annotator.store import VideoLock

    lock = VideoLock(Path(video_dir) / ".lock")
    info = lock.holder()
    if info is None or lock.is_stale(info):
        return None
    return info.describe()


def export_staging(out: str | os.PathLike[str]) -> Path:
    """Per-video export results live next to ``--out`` until the assembly (kept for reruns)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.batch-staging"


def _marker_file(task: Task, video_dir: Path) -> Path:
    from annotator.batch.markers import marker_path

    if task.stage == "export":
        return export_staging(task.options["out"]) / "markers" / f"{task.video_id}.json"
    return marker_path(video_dir, task.stage)


def _outputs_present(task: Task) -> bool:
    if task.stage == "export":
        return (export_staging(task.options["out"]) / "videos" / task.video_id).is_dir()
    return True


def fingerprint_options(task: Task) -> dict[str, Any]:
    """The options that change a stage's result (a different option redoes the video)."""
    return {"stage": task.stage, **{k: v for k, v in sorted(task.options.items()) if k not in ("overwrite", "device")}}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, StorageError):
        return first
    from annotator.errors import AnnotatorError

    return first if isinstance(exc, AnnotatorError) and first else f"{type(exc).__name__}: {first}"


# ------------------------------------------------------------------------------------ the task
def run_task(task: Task, progress: ProgressFn | None = None) -> TaskResult:
    """Run one video of one stage; never raises (the result carries the one-line reason)."""
    start = time.monotonic()
    host = socket.gethostname()

    def result(status: str, reason: str = "", frames: int = 0, details: dict | None = None) -> TaskResult:
        return TaskResult(task.video_id, status, reason, frames, round(time.monotonic() - start, 3), host,
                          details or {})

    try:
        check_token(task.project, task.token_file, task.token)
        from annotator.batch.markers import is_done, video_fingerprint, write_marker
        from annotator.project import Project

        proj = Project.open(task.project)
        video_dir = proj.videos_dir / task.video_id
        if not _complete(video_dir):
            raise Skip("not a complete video of the project (missing or unfinished import)")
        holder = live_lock_holder(video_dir)
        if holder is not None:
            raise Skip(f"locked: being edited by {holder}")
        opts = fingerprint_options(task)
        marker = _marker_file(task, video_dir)
        if not task.force and _outputs_present(task) and is_done(marker, video_fingerprint(video_dir, opts)):
            raise Skip("already done and unchanged since (--force redoes it)")
        frames, details = _IMPL[task.stage](task, proj, progress)
        write_marker(marker, task.stage, video_fingerprint(video_dir, opts), details)
        return result(DONE, frames=frames, details=details)
    except Skip as exc:
        return result(SKIPPED, str(exc))
    except Exception as exc:  # noqa: BLE001 - one video's failure must not stop the batch
        return result(FAILED, _one_line(exc))


# ------------------------------------------------------------------------------------ stages
_ENGINES: dict[tuple[str, str], Any] = {}


def open_engine(proj: Any, options: dict[str, Any]) -> Any:
    """The SAM engine of this worker (loaded once per process, reused for every video)."""
    from annotator.project.settings import effective
    from models.sam import default_cache_dir, open_sam_engine

    key = (str(proj.path), str(options.get("checkpoint") or ""))
    if key not in _ENGINES:
        device = "cuda" if options.get("device") == "cuda" else "cpu"
        _ENGINES[key] = open_sam_engine(default_cache_dir(proj.path), options.get("checkpoint"),
                                        effective(proj.settings, strict=True), device=device)
    return _ENGINES[key]


def _embed(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    from models.sam import precompute_embeddings

    engine = open_engine(proj, task.options)
    video = proj.open_video(task.video_id, readonly=True)
    try:
        frames = list(video.keyframes) if task.options.get("frames", "keyframes") == "keyframes" \
            else list(range(video.num_frames))
        computed = precompute_embeddings(engine, video.read_frame, frames, progress=progress)
    finally:
        video.close()
    return len(frames), {"frames": len(frames), "computed": computed, "model": engine.model.model_key}


def _preannotate(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    from annotator.project.settings import effective
    from annotator.stages.preannotate import preannotate_video
    from models.weights import require_checkpoint

    o = task.options
    src = require_checkpoint("clip_panofcn", o.get("checkpoint"), effective(proj.settings, strict=True))
    try:
        res = preannotate_video(proj, task.video_id, src.path, clip=o.get("clip"), workers=1,
                                replace=task.force or bool(o.get("replace")),
                                over_propagated=bool(o.get("over_propagated")), progress=progress)
    except Exception:
        holder = live_lock_holder(proj.videos_dir / task.video_id)
        if holder is not None:  # someone opened it between the check and the write
            raise Skip(f"locked: being edited by {holder}") from None
        raise
    return res.frames, {"summary": res.summary()}


def _propagate(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    from annotator.project import check_open_video, require_intact
    from annotator.project.settings import effective
    from annotator.stages.propagate import find_references, propagate_video
    from propagation.factory import make_propagator

    o = task.options
    propagator = make_propagator(o.get("backend"), o.get("checkpoint"), o.get("preset"), o.get("speed"),
                                 effective(proj.settings, strict=True))
    video = proj.open_video(task.video_id)
    try:
        if video.readonly:
            raise Skip(f"locked: {video.lock_message}")
        require_intact(check_open_video(video), f"propagation of video {task.video_id!r}")
        refs, _partial = find_references(video)
        if not refs:
            raise Skip("no labelled keyframe to propagate from")
        report = propagate_video(video, propagator, None, progress=progress)
        frames = video.num_frames
    finally:
        video.close()
    return frames, {"summary": report.summary(), "written": len(report.written),
                    "recomposed": len(report.recomposed), "flags": len(report.flags)}


def score_report(project: str, video_id: str, gt_layer: str, pred_layer: str, windows: list[int],
                 mode: str, metrics: tuple[str, ...]) -> tuple[Any, dict[int, str]]:
    """VPQ/STQ of one video between two layers, exactly as ``score --videos V`` computes them
    (the same ``open_pair`` / ``compute_score`` the command and the scoring dialog run)."""
    from annotator.metrics.scoring import compute_score, open_pair

    pairs = open_pair(project, project, gt_layer=gt_layer, pred_layer=pred_layer, videos=[video_id])
    return compute_score(pairs, windows, mode, metrics)


def _score(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    import json

    from annotator.metrics.report import report_dict, write_report

    o = task.options
    report, names = score_report(str(proj.path), task.video_id, o.get("gt_layer") or "labels", o["pred_layer"],
                                 list(o.get("windows") or (1, 2, 4, 6, 8)), o.get("mode", "official"),
                                 tuple(o.get("metrics") or ("vpq", "stq")))
    if o.get("out"):
        write_report(report, Path(o["out"]) / task.video_id, names, figure=False)
    data = json.loads(json.dumps(report_dict(report, names)))
    return report.num_frames, {"scores": data}


def _export(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    from annotator.formats.common import labelled_frames

    o = task.options
    dest = export_staging(o["out"]) / "videos" / task.video_id
    video = proj.open_video(task.video_id, readonly=True)
    try:
        empty = not labelled_frames(video, o.get("layer", "labels")) and not o.get("include_unlabelled")
    finally:
        video.close()
    if empty:
        raise Skip("no labelled frames (nothing to export)")
    if o["format"] not in EXPORT_FORMATS:
        raise Skip(f"export format {o['format']!r} is not supported by batch")
    # one video into its own complete one-video dataset: everything in the train split
    options = ExportOptions(videos=[task.video_id], split_ratios=(1.0, 0.0, 0.0),
                            resize_height=o.get("resize_height", 720),
                            include_unlabelled=bool(o.get("include_unlabelled")), overwrite=True,
                            layer=o.get("layer", "labels"), workers=1, split_crowded=bool(o.get("split_crowded")),
                            shapes=o.get("shapes", "polygon"))
    summary = export_dataset(o["format"], proj, dest, options, progress=progress)
    return summary.frames, {"videos": summary.videos, "frames": summary.frames, "tracks": summary.tracks,
                            "warnings": summary.warnings}


def _validate(task: Task, proj: Any, progress: ProgressFn | None) -> tuple[int, dict]:
    from annotator.errors import InputError
    from annotator.project import check_video

    problems = check_video(proj, task.video_id, deep=True)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{len(problems)} problem(s): {problems[0]}{more}")
    with proj.open_video(task.video_id, readonly=True) as video:
        return video.num_frames, {"problems": 0}


_IMPL: dict[str, Callable[[Task, Any, ProgressFn | None], tuple[int, dict]]] = {
    "embed": _embed, "preannotate": _preannotate, "propagate": _propagate, "score": _score,
    "export": _export, "validate": _validate,
}
