"""CLI: ``new`` (create a project), ``info`` (what a project holds, and what is damaged) and
``delete-video`` (remove a video, e.g. an unfinished import).

``info`` always runs the quick integrity check (``annotator.project.integrity``: video.json readable and
well-typed, import finished, frame JPEGs and label PNGs present where the metadata says) and
lists every problem with video, frame and file, among them every record that breaks its schema
(``annotator.project.schema``: a journal record with an unknown frame state, a track whose class
is not in the taxonomy, ...); ``info --check`` runs the deep check (decodes every label PNG and
compares its ids with the metadata, finds truncated frame images). Either exits with code 1 when
it reports a problem, so scripts can test a project before training on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from annotator.backends import backend_status
from annotator.commands.argtypes import nonempty_path
from annotator.commands.protocols import add_new_arguments, new_taxonomy
from annotator.errors import AnnotatorError, InputError
from annotator.project import (
    Problem,
    Project,
    check_effort_file,
    check_project,
    issue_problems,
    remove_video,
    unfinished_reason,
)
from annotator.project.settings import effective, load_user
from annotator.review import check_review_file, review_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create an empty project folder")
    p.add_argument("project", type=nonempty_path, help="folder to create, e.g. data/mydataset.vpsproj")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.add_argument("--taxonomy", help="vipseg, cityscapes-vps or a custom taxonomy JSON/YAML (default: the 124 "
                                      "VIPSeg classes)")
    add_new_arguments(p)
    p.set_defaults(func=run_new)

    p = sub.add_parser("info", help="list videos, frames, keyframes, tracks and frame states")
    p.add_argument("project", type=nonempty_path)
    p.add_argument("--video", help="only this video")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true",
                   help="deep integrity check: decode every label PNG and compare it with the metadata, "
                        "find truncated frames (with or without it, the exit code is 1 if a problem is found)")
    p.set_defaults(func=run_info)

    p = sub.add_parser("delete-video", help="delete a video and all its frames and labels (e.g. an unfinished "
                                            "import)")
    p.add_argument("project", type=nonempty_path)
    p.add_argument("video", help="video id (also an unfinished import or a folder without video.json)")
    p.add_argument("--yes", action="store_true",
                   help="do not ask: required to delete a finished video when not run from a terminal")
    p.set_defaults(func=run_delete_video)


def run_new(args: argparse.Namespace) -> int:
    taxonomy = new_taxonomy(args)
    project = Project.create(args.project, name=args.name, taxonomy=taxonomy)
    print(f"created project {project.name!r} at {project.path} "
          f"({len(project.taxonomy)} classes, taxonomy {project.taxonomy.name})")
    return 0


def video_summary(project: Project, video_id: str, problems: list[Problem] | None = None) -> dict:
    """Facts about one video, read without taking its lock; ``problems`` gets what its side files
    (``review.json``, ``effort.jsonl``) break of their schema."""
    with project.open_video(video_id, readonly=True) as video:
        if problems is not None:
            problems += issue_problems(video.id, check_review_file(review_path(video), video.num_frames))
            problems += check_effort_file(video)
        tracks = video.tracks
        return {
            "video": video.id, "frames": video.num_frames, "size": f"{video.width}x{video.height}",
            "dense_fps": video.dense_fps, "keyframes": len(video.keyframes),
            "source": f"{video.source.kind} {video.source.path} @ {video.source.fps:g} fps".strip(),
            "tracks": len(tracks),
            "things": sum(project.taxonomy.is_thing(t.category_id) for t in tracks.values()),
            "states": {k: v for k, v in video.state_counts().items() if v},
            "recovery": _recovery_lines(video),
        }


def _recovery_lines(video) -> list[str]:
    """What crash recovery did or would do: notes of this (read-only) open, then the logged recoveries.

    A read-only open only sees an unfinished operation; the rollback itself happens at the next
    writable open and is logged as a ``recovery`` event, which is what a later ``info`` shows.
    """
    lines = list(video.recovery_notes)
    for event in video.log[-50:]:
        if event.get("kind") == "recovery":
            when = event.get("time")
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if isinstance(when, (int, float)) else "?"
            lines += [f"{stamp}: {note}" for note in event.get("notes", [])]
    return lines[-5:]


def run_info(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    if args.video and args.video not in project.video_ids and not (project.videos_dir / args.video).is_dir():
        raise InputError(f"project {project.path} has no video {args.video!r} "
                         f"(videos: {', '.join(project.video_ids) or 'none'})")
    problems = check_project(project, [args.video] if args.video else None, deep=args.check)
    broken = {p.video for p in problems if p.frame is None}  # video-level: cannot be summarised
    ids = [v for v in ([args.video] if args.video else project.video_ids) if v not in broken]
    rows = []
    for v in ids:
        try:
            rows.append(video_summary(project, v, problems))
        except AnnotatorError:  # already named by the integrity check
            continue
    backends = backend_status(effective(project.settings))
    try:  # the user's settings file is read by every command: a damaged one is a problem here too
        load_user()
        settings_problems: list[str] = []
    except InputError as exc:
        settings_problems = [str(exc)]
    code = 1 if problems or settings_problems else 0  # scripts test a project before using it
    if args.json:
        print(json.dumps({"project": project.name, "taxonomy": project.taxonomy.name,
                          "videos": rows, "incomplete": project.incomplete_video_ids,
                          "problems": [p.to_json() for p in problems],
                          "settings_problems": settings_problems,
                          "backends": {"sam": backends.sam_text, "propagation": backends.propagator_text,
                                       "details": backends.details.splitlines()}}, indent=1))
        return code
    print(f"project {project.name!r} at {project.path}: {len(project.video_ids)} videos, "
          f"taxonomy {project.taxonomy.name} ({len(project.taxonomy)} classes)")
    print(f"backends: {backends.summary}")
    for r in rows:
        states = ", ".join(f"{k} {v}" for k, v in r["states"].items())
        print(f"  {r['video']}: {r['frames']} frames {r['size']} @ {r['dense_fps']:g} fps, "
              f"{r['keyframes']} keyframes, {r['tracks']} tracks ({r['things']} things); {states}")
        for line in r["recovery"]:
            print(f"    recovery: {line}")
    for text in settings_problems:
        print(f"problem: user settings: {text}")
    if problems:
        print(f"{len(problems)} integrity problem(s){' (deep check)' if args.check else ''}:")
        for p in problems:
            print(f"  problem: {p}")
    else:
        print("integrity: no problem found" + (" (deep check: every label PNG decoded)" if args.check else
                                               " (quick check; --check decodes every label PNG)"))
    return code


def run_delete_video(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    vid = args.video
    folder = project.videos_dir / vid
    if "/" in vid or vid.startswith(".") or not folder.is_dir():
        others = sorted(p.name for p in project.videos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise InputError(f"project {project.path} has no video {vid!r} (video folders: {', '.join(others) or 'none'})")
    reason = unfinished_reason(project, vid)
    what = f"unfinished video {vid!r} ({reason})" if reason else f"video {vid!r}"
    if not reason and not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting {what} removes its frames and labels for good; pass --yes to confirm")
        answer = input(f"delete {what} of {project.path} with all its frames and labels? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    files = sum(1 for f in folder.rglob("*") if f.is_file())
    remove_video(project, vid)
    print(f"deleted {what} from {project.path} ({files} files)")
    return 0
