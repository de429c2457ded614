"""CLI: ``review`` (automatic flags, accept / reject with comments, report) and ``overview``.

    python main.py review PROJECT --video V [--flags] [--min-score 0.5] [--limit 30]
                          [--accept-track T ...] [--reject-track T ...] [--accept-frame F ...]
                          [--reject-frame F ...] [--comment TEXT] [--report review.csv]
    python main.py overview PROJECT [--csv overview.csv] [--review-csv review.csv] [--no-pixels]

Frames are numbered as in the window (its timeline and frame label): from 1, in the flag list and
the flags' reasons as in ``--accept-frame`` / ``--reject-frame`` (``3``, ``3,7`` or a range ``3-7``)
and the report CSV's ``frame`` column; files on disk (``review.json``) keep 0-based indices.
Decisions need the video open for writing: if another annotator holds it, the command says who.
``--flags`` stores the flags it found, so the overview can show the number of open flags.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from annotator.errors import InputError
from annotator.jobs import TqdmProgress
from annotator.overview import overview_rows, write_overview_csv
from annotator.project import Project, require_intact_labels
from annotator.review import (
    FRAME_BASE,
    ReviewStore,
    build_queue,
    compute_flags,
    estimate_video,
    project_review_rows,
    shown_frame,
    suggest_keyframes,
    sure_gaps,
    visible,
    write_report_csv,
)


def _frames(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frame, list or range: {text!r} (e.g. 3, 3,7 or 3-7)") from None
    return out


def _index(video: Any, number: int) -> int:
    """The dense frame index of a frame number as the window shows it; a clear error outside the video."""
    n = video.num_frames
    if not FRAME_BASE <= number < n + FRAME_BASE:
        raise InputError(f"frame {number} is not in video {video.id!r}: its frames are numbered "
                         f"{FRAME_BASE}-{n - 1 + FRAME_BASE}, as in the window")
    return number - FRAME_BASE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="automatic review flags, accept/reject tracks or frames with comments")
    p.add_argument("project")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--flags", action="store_true", help="compute the automatic flags, list them and store them")
    p.add_argument("--min-score", type=float, default=None,
                   help="list flags at or over this score (default 0.5; 0 lists the hints too)")
    p.add_argument("--limit", type=int, default=30, help="list at most this many flags or queue items (default 30)")
    p.add_argument("--queue", action="store_true",
                   help="list the review queue (the (frame, track) masks most likely under the bar, by expected "
                        "gain), the sample to look at before accepting the rest, suggested keyframes and sure gaps")
    p.add_argument("--accept-track", type=int, action="append", default=[], metavar="T")
    p.add_argument("--reject-track", type=int, action="append", default=[], metavar="T")
    p.add_argument("--accept-frame", type=_frames, action="append", default=[], metavar="F",
                   help="frame number as the window shows it (from 1); 3, 3,7 or 3-7")
    p.add_argument("--reject-frame", type=_frames, action="append", default=[], metavar="F",
                   help="frame number as the window shows it (from 1); 3, 3,7 or 3-7")
    p.add_argument("--comment", default="", help="comment stored with every decision of this call")
    p.add_argument("--report", metavar="CSV", help="write the video's decisions and comments as CSV")
    p.set_defaults(func=run_review)

    p = sub.add_parser("overview", help="one row per video: progress, review, lock, human effort")
    p.add_argument("project")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    p.add_argument("--review-csv", metavar="FILE", help="also write the review decisions of every video as CSV")
    p.add_argument("--no-pixels", action="store_true",
                   help="skip the human/machine pixel shares (does not read label maps: instant)")
    p.set_defaults(func=run_overview)


def run_review(args: argparse.Namespace) -> int:
    accept_frames = [f for group in args.accept_frame for f in group]
    reject_frames = [f for group in args.reject_frame for f in group]
    deciding = bool(args.accept_track or args.reject_track or accept_frames or reject_frames)
    if args.comment and not deciding:
        raise InputError("--comment is stored with a decision: add --accept-track/--reject-track/"
                         "--accept-frame/--reject-frame")
    if args.limit < 0:
        raise InputError("--limit must be >= 0")
    project = Project.open(args.project)
    with project.open_video(args.video, readonly=not (deciding or args.flags)) as video:
        if not video.readonly:  # decisions and stored flags are writes: integrity first (issue 28)
            require_intact_labels(video, f"review of video {video.id!r}", close=True)
        accept_frames = [_index(video, f) for f in accept_frames]
        reject_frames = [_index(video, f) for f in reject_frames]
        if video.lock_message:
            print(f"note: {video.lock_message}")
        store = ReviewStore(video)
        if args.flags:
            with TqdmProgress(f"flags {video.id}") as bar:
                flags = compute_flags(video, progress=bar)
            if not video.readonly:
                store.set_flags(flags)
            shown = visible(flags, args.min_score)
            kinds = Counter(f.kind for f in shown)
            print(f"{len(shown)} flags (of {len(flags)} incl. hints; frames numbered from 1 as in the window)"
                  + (": " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) if kinds else ""))
            for fl in shown[:args.limit]:
                tracks = "/".join(map(str, fl.tracks)) or "-"
                print(f"  {fl.score:4.2f}  {fl.kind:<15} frame {shown_frame(fl.frame):>5}  track {tracks:<9} {fl.reason}")
            if len(shown) > args.limit:
                print(f"  ... {len(shown) - args.limit} more (--limit)")
        if args.queue:
            _print_queue(video, args.limit)
        for t in args.accept_track:
            store.accept_track(t, args.comment)
        for t in args.reject_track:
            store.reject_track(t, args.comment)
        if accept_frames:
            store.accept_frames(accept_frames, args.comment)
        for f in reject_frames:
            store.reject_frame(f, args.comment)
        store.reload()
        if deciding:
            print(f"recorded {len(args.accept_track) + len(args.reject_track) + len(accept_frames) + len(reject_frames)}"
                  " decision(s)")
        print(store.progress().summary())
        if args.report:
            path = write_report_csv(args.report, store.rows())
            print(f"wrote {len(store.rows())} review rows to {path}")
    return 0


def _print_queue(video: Any, limit: int) -> None:
    """The queue, its sample, suggested keyframes and sure gaps, frames numbered from 1 as in the window."""
    estimate = estimate_video(video)
    queue = build_queue(video, estimate=estimate)
    print(f"review queue: {len(queue.items)} of {len(queue.items) + len(queue.rest)} machine masks "
          f"(frames numbered from 1 as in the window)")
    for item in queue.items[:limit]:
        print(f"  p_bad {item.p_bad:4.2f}  gain {item.gain:5.2f}  frame {shown_frame(item.frame):>5}  "
              f"track {item.track:<6} {item.reason}")
    if len(queue.items) > limit:
        print(f"  ... {len(queue.items) - limit} more (--limit)")
    print(f"sample before accepting the rest: {len(queue.sample)} of {len(queue.rest)}"
          + (": " + ", ".join(f"frame {shown_frame(f)} track {t}" for f, t in queue.sample[:limit])
             if queue.sample else ""))
    suggestions = suggest_keyframes(video, estimate=estimate)
    print(f"suggested keyframes: {len(suggestions)}"
          + (": " + ", ".join(f"frame {shown_frame(s.frame)} ({s.reason})" for s in suggestions[:limit])
             if suggestions else ""))
    gaps = sure_gaps(video, estimate=estimate)
    print(f"sure gaps (quick accept): {len(gaps)}"
          + (": " + ", ".join(f"frames {shown_frame(a)}-{shown_frame(b)}" for a, b in gaps) if gaps else ""))


def run_overview(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    with TqdmProgress("overview", unit="video") as bar:
        rows = overview_rows(project, pixels=not args.no_pixels, progress=bar)
    head = (f"{'video':<24}{'frames':>7}{'keys':>7}{'prop':>6}{'refd':>6}{'revd':>6}{'tracks':>7}{'flags':>6}"
            f"{'active min':>11}{'actions':>8}{'human px':>9}  lock")
    print(head)
    for r in rows:
        if r.error:
            print(f"{r.video:<24}  error: {r.error}")
            continue
        flags = "-" if r.open_flags is None else str(r.open_flags)
        human = "-" if r.human_pixel_share is None else f"{r.human_pixel_share:.0%}"
        print(f"{r.video:<24}{r.frames:>7}{f'{r.keyframes_annotated}/{r.keyframes}':>7}{r.propagated:>6}"
              f"{r.refined:>6}{r.reviewed:>6}{r.tracks:>7}{flags:>6}{r.active_minutes:>11.1f}{r.edit_actions:>8}"
              f"{human:>9}  {r.lock_holder or '-'}")
    if args.csv:
        path = write_overview_csv(args.csv, rows)
        print(f"wrote {len(rows)} rows to {path}")
    if args.review_csv:
        review_rows = project_review_rows(project)
        path = write_report_csv(args.review_csv, review_rows)
        print(f"wrote {len(review_rows)} review rows to {path}")
    return 0
