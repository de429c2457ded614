"""CLI: ``import`` (a video file or frame folder into a project) and ``demo`` (the synthetic project)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from annotator.commands.argtypes import (
    int_at_least,
    nonempty_path,
    nonneg_int,
    positive_float,
    positive_int,
    size_wxh,
)
from annotator.errors import InputError
from annotator.jobs import TqdmProgress

DEFAULT_DEMO_PATH = Path("data") / "demo.vpsproj"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a video file or a folder of frames into a project",
                       description="Sample dense frames (5 fps by default) with a keyframe every 5th dense "
                                   "frame, scaled to height 720, and keep the link to the source.")
    p.add_argument("project", type=nonempty_path, help="project folder (created if it does not exist)")
    p.add_argument("source", type=nonempty_path, help="video file (mp4/avi/mov/mkv) or folder of jpg/png frames")
    p.add_argument("--video-id", help="id of the new video (default: the file or folder name); an unfinished "
                                      "import under that id (a killed run) is replaced")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="dense frames per second (default: project setting, 5)")
    p.add_argument("--key-every", type=positive_int, default=None, help="a keyframe every N dense frames (default 5)")
    p.add_argument("--no-resize", action="store_true", help="keep the original size (default: height 720)")
    p.add_argument("--source-fps", type=positive_float, default=None,
                   help="frame rate of the source (frame folders: default = --fps, every image kept; "
                        "videos: override a wrong fps in the file)")
    p.add_argument("--allow-damaged", action="store_true",
                   help="import the frames that decode from a video that declares more (truncated file) "
                        "instead of refusing it")
    p.set_defaults(func=run_import)

    p = sub.add_parser("demo", help="write the synthetic demo project (with ground truth)",
                       description="Deterministic synthetic videos whose every dense frame is labelled "
                                   "(state reviewed): the demo for the GUI and the ground truth for scoring.")
    p.add_argument("--out", type=nonempty_path, default=str(DEFAULT_DEMO_PATH), help=f"project folder (default {DEFAULT_DEMO_PATH})")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--scenarios", default="mixed,crossing,occlusion,enter_leave",
                   help="comma-separated: crossing, occlusion, enter_leave, mixed (one video each)")
    p.add_argument("--frames", type=int_at_least(1), default=100, help="source frames per video (25 fps)")
    p.add_argument("--size", type=size_wxh, default=(640, 360), help="WIDTHxHEIGHT (default 640x360)")
    p.add_argument("--source", choices=("mp4", "folder", "none"), default="mp4",
                   help="how the full-rate source clip is kept next to the project: mp4 (small, lossy), "
                        "folder of PNGs (lossless, large) or none")
    p.set_defaults(func=run_demo)


def run_import(args: argparse.Namespace) -> int:
    from annotator.project import Project, clear_project_stub, import_source

    path = Path(args.project)
    clear_project_stub(path)  # a project whose creation was killed: start it again
    existed = path.exists()
    created = not (existed and path.is_dir() and any(path.iterdir()))
    notes: list[str] = []
    try:
        proj = Project.create(path) if created else Project.open(path)
        with TqdmProgress(f"import {Path(args.source).name}") as bar:
            vid = import_source(proj, args.source, video_id=args.video_id, dense_fps=args.fps,
                                key_every=args.key_every, resize_height=None if args.no_resize else
                                int(proj.settings.get("resize_height", 720)), source_fps=args.source_fps,
                                progress=bar, notes=notes, allow_damaged=args.allow_damaged)
    except BaseException:
        if created:  # a failed import into a new project leaves no project behind (nothing changed)
            shutil.rmtree(path, ignore_errors=True)
            if existed:
                path.mkdir(exist_ok=True)
        raise
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    with proj.open_video(vid, readonly=True) as video:
        src = video.source
        print(f"imported {vid!r} into {proj.path}: {video.num_frames} dense frames "
              f"{video.width}x{video.height} @ {video.dense_fps:g} fps ({len(video.keyframes)} keyframes) "
              f"from {src.num_source_frames} source frames @ {src.fps:g} fps")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from resources.demo import SCENARIOS, write_demo_project

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or not scenarios:
        raise InputError(f"unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
    width, height = args.size
    with TqdmProgress("demo", unit="video") as bar:
        path = write_demo_project(args.out, seed=args.seed, scenarios=scenarios, num_frames=args.frames,
                                  height=height, width=width, progress=bar,
                                  source=None if args.source == "none" else args.source)
    print(f"wrote demo project with {len(scenarios)} videos to {path}")
    return 0
