"""``run_batch``: check the inputs once, run one task per video on a runner, summarise.

The driver fails early with one clear line for what would fail every video (no SAM checkpoint,
no pre-annotation model, an unknown layer option, a dangerous export folder), writes the shared
storage token every task checks, tracks one progress figure for the whole run (frames of all
videos; the message counts videos) and, for ``export``, assembles the final dataset when every
selected video is staged.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from annotator.batch.stages import EXPORT_FORMATS, STAGES, Task, export_staging
from annotator.batch.summary import DONE, FAILED, SKIPPED, BatchSummary, TaskResult
from annotator.errors import InputError
from annotator.jobs import ProgressFn

TOKEN_PREFIX = ".batch-token-"


def _preflight(proj: Any, stage: str, options: dict[str, Any]) -> None:
    """Refuse, once and clearly, what would fail every task."""
    from annotator.project.settings import effective

    settings = effective(proj.settings, strict=True)
    if stage == "embed":
        from models.sam import sam_availability

        ok, _kind, reason = sam_availability(options.get("checkpoint"), settings)
        if not ok:
            raise InputError(f"batch embed needs a SAM checkpoint: {reason}")
    elif stage == "preannotate":
        try:
            import annotator.stages.preannotate  # noqa: F401
            import models.clip_panofcn.checkpoint  # noqa: F401
        except ImportError as exc:
            raise InputError(f"pre-annotation is not available in this installation ({exc})") from None
        from models.weights import require_checkpoint

        require_checkpoint("clip_panofcn", options.get("checkpoint"), settings)
    elif stage == "propagate":
        from propagation.factory import make_propagator

        make_propagator(options.get("backend"), options.get("checkpoint"), options.get("preset"),
                        options.get("speed"), settings)
    elif stage == "score":
        if not options.get("pred_layer"):
            raise InputError("batch score needs --pred-layer (the layer scored against --gt-layer, default "
                             "labels), e.g. --pred-layer preannotation")
        if options.get("out"):
            from annotator.metrics.scoring import check_report_dir

            check_report_dir(options["out"], [str(proj.path)])
    elif stage == "export":
        if options.get("format") not in EXPORT_FORMATS:
            raise InputError(f"batch export writes {', '.join(EXPORT_FORMATS)} (one task per video); for "
                             f"{options.get('format')!r} run the `export` command, which writes it in one pass")
        if not options.get("out"):
            raise InputError("batch export needs --out (the dataset folder)")
        from annotator.formats.output import check_output_dir

        check_output_dir(options["out"], bool(options.get("overwrite")), Path(proj.path))


def _video_frames(proj: Any, video_id: str) -> int:
    import json

    try:
        doc = json.loads((proj.videos_dir / video_id / "video.json").read_text(encoding="utf-8"))
        return max(1, len(doc.get("frame_names", [])))
    except (OSError, ValueError):
        return 1


def check_batch(project: str | Path, stage: str, videos: list[str] | None,
                options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The project and the selected video ids, after the checks that would fail every task.

    The CLI calls it before its progress bar appears, so a refusal is one line on its own.
    """
    from annotator.project import Project

    if stage not in STAGES:
        raise InputError(f"unknown batch stage {stage!r}; choose one of {', '.join(STAGES)}")
    proj = Project.open(project)
    ids = list(proj.video_ids)
    if videos:
        wanted = list(dict.fromkeys(videos))
        unknown = [v for v in wanted if v not in ids]
        if unknown:
            raise InputError(f"project {proj.path} has no video {unknown[0]!r} (videos: {', '.join(ids[:20])})")
        ids = wanted
    if not ids:
        raise InputError(f"project {proj.path} has no videos")
    _preflight(proj, stage, options)
    return proj, ids


def run_batch(project: str | Path, stage: str, videos: list[str] | None = None,
              options: dict[str, Any] | None = None, workers: int | None = None, ray: str | None = None,
              force: bool = False, progress: ProgressFn | None = None, runner: str | None = None,
              worker_env: dict[str, str] | None = None) -> BatchSummary:
    """Run ``stage`` over ``videos`` (default: every video) of ``project``.

    ``runner``: "pool" (default), "ray" (when ``ray`` is an address or ``auto``) or "inline" (this
    process; tests). ``worker_env`` is set in pool workers before they import the store (tests use
    it for the kill hook).
    """
    from annotator.batch import runners
    from annotator.store import atomic_write_bytes

    options = dict(options or {})
    proj, ids = check_batch(project, stage, videos, options)
    if stage == "export":
        options["out"] = str(Path(options["out"]).absolute())
    kind = runner or ("ray" if ray else "pool")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    nworkers = workers or runners.default_workers()
    summary = BatchSummary(stage, str(proj.path), f"ray {ray}" if kind == "ray" else
                           (f"pool of {min(nworkers, len(ids))}" if kind == "pool" else "inline"))
    token = uuid.uuid4().hex
    token_file = proj.path / f"{TOKEN_PREFIX}{token[:8]}"
    tasks = [Task(str(proj.path), v, stage, options, force, str(token_file), token) for v in ids]
    frames_of = {v: _video_frames(proj, v) for v in ids}
    total = sum(frames_of.values())
    done_frames: dict[str, int] = {}
    finished: list[TaskResult] = []

    def report(message: str) -> None:
        if progress is not None:
            progress(min(sum(done_frames.values()), total), total, message)

    def on_frames(vid: str, done: int, of: int) -> None:
        if of > 0:
            done_frames[vid] = int(frames_of[vid] * min(done, of) / of)
            report(f"videos {len(finished)}/{len(ids)}, {vid}")

    def on_result(res: TaskResult) -> None:
        finished.append(res)
        done_frames[res.video_id] = frames_of.get(res.video_id, 1)
        report(f"videos {len(finished)}/{len(ids)} ({res.video_id} {res.status})")

    start = time.monotonic()
    atomic_write_bytes(token_file, token.encode())
    try:
        report(f"videos 0/{len(ids)}")
        if kind == "inline":
            runners.run_inline(tasks, on_result, on_frames)
        elif kind == "ray":
            runners.run_ray(tasks, ray or "auto", on_result, on_frames)
        else:
            runners.run_pool(tasks, nworkers, on_result, on_frames, worker_env)
    finally:
        token_file.unlink(missing_ok=True)
    order = {v: n for n, v in enumerate(ids)}
    summary.results = sorted(finished, key=lambda r: order.get(r.video_id, len(order)))
    if stage == "export":
        _finish_export(proj, ids, options, summary)
    summary.seconds = time.monotonic() - start
    return summary


def _finish_export(proj: Any, ids: list[str], options: dict[str, Any], summary: BatchSummary) -> None:
    """Assemble the dataset when every video is staged (or has nothing to export)."""
    from annotator.batch.export import assemble

    blocked = [r for r in summary.results if r.status == FAILED
               or (r.status == SKIPPED and r.reason.startswith(("locked", "not a complete")))]
    if blocked:
        summary.errors.append(f"export not assembled: {len(blocked)} video(s) not staged "
                              f"({', '.join(r.video_id for r in blocked[:5])}); {options['out']} is unchanged. "
                              "Rerun when they are free / fixed (staged videos are kept and skipped)")
        return
    staging = export_staging(options["out"])
    staged = [v for v in ids if (staging / "videos" / v).is_dir()
              and any(r.video_id == v and (r.status == DONE or r.reason.startswith("already done"))
                      for r in summary.results)]
    if not staged:
        summary.errors.append(f"nothing to export: no selected video has labelled frames in layer "
                              f"{options.get('layer', 'labels')!r}")
        return
    try:
        lines = assemble(proj, staged, staging, options["out"], options, bool(options.get("overwrite")),
                         summary.notes)
    except Exception as exc:  # noqa: BLE001 - reported as the run's failure
        summary.errors.append(f"export assembly failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    summary.notes.append(f"exported {options['format']} to {options['out']}: " + ", ".join(lines))
