"""CLI: ``preannotate`` (Clip-PanoFCN drafts for a video), ``accept-draft``, ``reject-draft``.

``main.py preannotate PROJECT --video V --checkpoint FILE [--clip 3] [--workers N] [--replace]``
writes the draft into the layer ``preannotation`` and fills the main labels where no person
labelled (see :mod:`annotator.stages.preannotate`), printing seconds per frame; ``--score`` then prints
VPQ/STQ of the draft against the main labels. Without a checkpoint (flag, ``VPS_CLIP_PANOFCN_CHECKPOINT``
or settings) it says what to provide and exits 2: random weights are never used.
``accept-draft`` / ``reject-draft PROJECT --video V [--frames 0-9,12] [--tracks 5,7]`` accept
(``reviewed``) or remove draft pixels per frame and/or per track.
"""

from __future__ import annotations

import argparse

from annotator.errors import InputError
from annotator.jobs import TqdmProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preannotate", help="draft panoptic labels and tracks for a video with Clip-PanoFCN")
    p.add_argument("project", help="project folder (.vpsproj)")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--checkpoint", help="Clip-PanoFCN checkpoint (default: VPS_CLIP_PANOFCN_CHECKPOINT or settings)")
    p.add_argument("--clip", type=int, default=None, help="frames per clip (default: 3, as released)")
    p.add_argument("--workers", type=int, default=1, help="processes running clips in parallel (default: 1)")
    p.add_argument("--replace", action="store_true", help="replace an existing draft (accepted tracks stay)")
    p.add_argument("--over-propagated", action="store_true",
                   help="let the draft replace propagated labels too (human labels are never replaced)")
    p.add_argument("--score", action="store_true", help="print VPQ/STQ of the draft against the main labels")
    p.set_defaults(func=run_preannotate)
    t = sub.add_parser("train-preannotator",
                       help="train the small Clip-PanoFCN on the project's finished videos (CPU; resumable)")
    t.add_argument("project", help="project folder (.vpsproj)")
    t.add_argument("--out", required=True, help="checkpoint to write (an existing one is resumed)")
    t.add_argument("--videos", help="comma-separated training videos (default: all with finished frames)")
    t.add_argument("--eval-video", help="held-out video: VPQ/STQ before and after training")
    t.add_argument("--minutes", type=float, default=5.0, help="training time budget (default: 5)")
    t.add_argument("--steps", type=int, help="stop after this many steps instead of the time budget")
    t.add_argument("--clip", type=int, default=2, help="frames per training clip (default: 2)")
    t.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    t.add_argument("--init", help="start from this checkpoint (e.g. the released R50) instead of the small model")
    t.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is faster on a busy machine)")
    t.set_defaults(func=run_train)
    for name, verb in (("accept-draft", "accept (mark reviewed)"), ("reject-draft", "remove")):
        q = sub.add_parser(name, help=f"{verb} pre-annotation draft pixels per frame and/or track")
        q.add_argument("project", help="project folder (.vpsproj)")
        q.add_argument("--video", required=True, help="video id")
        q.add_argument("--frames", help="frame indices, e.g. 0-9,12 (default: all)")
        q.add_argument("--tracks", help="track ids, e.g. 5,7 (default: every draft track)")
        q.set_defaults(func=run_accept if name == "accept-draft" else run_reject)


def parse_ranges(text: str | None, what: str) -> list[int] | None:
    """``"0-3,7"`` -> [0, 1, 2, 3, 7]; ``None`` stays ``None``."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise InputError(f"--{what} must be numbers or ranges like 0-9,12; got {text!r}") from None
    if not out:
        raise InputError(f"--{what} is empty")
    return out


def run_preannotate(args: argparse.Namespace) -> int:
    from annotator.project import Project, require_intact_labels
    from annotator.project.settings import effective
    from annotator.stages import preannotate
    from models.weights import require_checkpoint

    proj = Project.open(args.project)
    src = require_checkpoint("clip_panofcn", args.checkpoint, effective(proj.settings, strict=True))
    if args.video not in proj.video_ids:
        raise InputError(f"project {proj.path} has no video {args.video!r}")
    print(f"checkpoint: {src.path} (from {src.origin})")
    with TqdmProgress("pre-annotating", unit="frame") as bar:
        options = preannotate.PreannotateOptions(src.path, clip=args.clip, workers=args.workers,
                                                 replace=args.replace, over_propagated=args.over_propagated)
        with proj.open_video(args.video) as video:
            if not video.readonly:  # a writing command checks integrity first (issue 28)
                require_intact_labels(video, f"preannotate of video {video.id!r}", close=True)
            result = preannotate.run_preannotate(video, options, progress=bar)
    print(result.summary())
    print(f"seconds per frame: {result.seconds_per_frame:.3f}")
    if args.score:
        from annotator.metrics.report import summary_text

        print(summary_text(preannotate.score_draft(args.project, [args.video])))
    return 0


def _edit(args: argparse.Namespace, accept: bool) -> int:
    from annotator.project import Project, require_intact_labels
    from annotator.stages.preannotate import accept_draft, reject_draft

    proj = Project.open(args.project)
    if args.video not in proj.video_ids:
        raise InputError(f"project {proj.path} has no video {args.video!r}")
    frames = parse_ranges(args.frames, "frames")
    tracks = parse_ranges(args.tracks, "tracks")
    with proj.open_video(args.video) as video:
        if video.readonly:
            raise InputError(f"video {args.video!r} is open elsewhere: {video.lock_message}")
        require_intact_labels(video, f"{'accept' if accept else 'reject'}-draft of video {video.id!r}", close=True)
        n = (accept_draft if accept else reject_draft)(video, frames, tracks)
        video.save()
    print(f"{'accepted' if accept else 'rejected'} draft pixels on {n} frame(s)")
    return 0


def run_accept(args: argparse.Namespace) -> int:
    return _edit(args, True)


def run_reject(args: argparse.Namespace) -> int:
    return _edit(args, False)


def _vpq_stq(report) -> str:
    vpq = report.vpq.vpq.get("all") if report.vpq else None
    stq = report.stq.stq if report.stq else None
    return (f"VPQ {vpq:.2f}" if vpq is not None else "VPQ -") + (f", STQ {stq:.4f}" if stq is not None else "")


def run_train(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from annotator.project import Project

    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        raise InputError(f"--minutes must be a positive number, got {args.minutes}")
    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be at least 1")
    if args.clip < 1:
        raise InputError("--clip must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    # torch and the model are heavy: imported only when training is asked for
    from annotator.stages.train_preannotator import TrainOptions, run_train_preannotator

    proj = Project.open(args.project)
    videos = [v.strip() for v in args.videos.split(",") if v.strip()] if args.videos else None
    options = TrainOptions(args.out, videos, args.eval_video, args.minutes, args.steps, args.clip, args.lr, args.init)
    bars: list[TqdmProgress] = []

    def start(before: object) -> None:
        if args.eval_video:
            print(f"before: {_vpq_stq(before)} on {args.eval_video}")
        bars.append(TqdmProgress("training", unit="step"))

    try:
        run = run_train_preannotator(proj, options, progress=lambda *a: bars[0](*a), on_start=start)
    except KeyboardInterrupt:
        if not bars:  # not training yet: nothing was saved
            raise
        print(f"interrupted: checkpoint saved to {Path(args.out)}; run the same command again to resume")
        return 130
    finally:
        for bar in bars:
            bar.close()
    state, out = run.state, run.out
    tail = state.losses[-10:]
    print(f"steps: {state.step} in total, {state.seconds_per_step:.2f} s/step; loss (mean of last {len(tail)}): "
          f"{sum(tail) / max(len(tail), 1):.3f}; checkpoint: {out}")
    if args.eval_video:
        print(f"after: {_vpq_stq(run.after)} on {args.eval_video}")
    return 0
