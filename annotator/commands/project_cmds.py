"""CLI: ``new`` (create a project) and ``info`` (what a project holds)."""

from __future__ import annotations

import argparse
import json

from annotator.backends import backend_status
from annotator.project import Project
from annotator.taxonomy import load_taxonomy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create an empty project folder")
    p.add_argument("project", help="folder to create, e.g. data/mydataset.vpsproj")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.add_argument("--taxonomy", help="custom taxonomy JSON/YAML (default: the 124 VIPSeg classes)")
    p.set_defaults(func=run_new)

    p = sub.add_parser("info", help="list videos, frames, keyframes, tracks and frame states")
    p.add_argument("project")
    p.add_argument("--video", help="only this video")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_info)


def run_new(args: argparse.Namespace) -> int:
    taxonomy = load_taxonomy(args.taxonomy) if args.taxonomy else None
    project = Project.create(args.project, name=args.name, taxonomy=taxonomy)
    print(f"created project {project.name!r} at {project.path} "
          f"({len(project.taxonomy)} classes, taxonomy {project.taxonomy.name})")
    return 0


def video_summary(project: Project, video_id: str) -> dict:
    """Facts about one video, read without taking its lock."""
    with project.open_video(video_id, readonly=True) as video:
        tracks = video.tracks
        return {
            "video": video.id, "frames": video.num_frames, "size": f"{video.width}x{video.height}",
            "dense_fps": video.dense_fps, "keyframes": len(video.keyframes),
            "source": f"{video.source.kind} {video.source.path} @ {video.source.fps:g} fps".strip(),
            "tracks": len(tracks),
            "things": sum(project.taxonomy.is_thing(t.category_id) for t in tracks.values()),
            "states": {k: v for k, v in video.state_counts().items() if v},
        }


def run_info(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    ids = [args.video] if args.video else project.video_ids
    rows = [video_summary(project, v) for v in ids]
    backends = backend_status(project.settings)
    if args.json:
        print(json.dumps({"project": project.name, "taxonomy": project.taxonomy.name,
                          "videos": rows, "incomplete": project.incomplete_video_ids,
                          "backends": {"sam": backends.sam_text, "propagation": backends.propagator_text,
                                       "details": backends.details.splitlines()}}, indent=1))
        return 0
    print(f"project {project.name!r} at {project.path}: {len(project.video_ids)} videos, "
          f"taxonomy {project.taxonomy.name} ({len(project.taxonomy)} classes)")
    print(f"backends: {backends.summary}")
    for r in rows:
        states = ", ".join(f"{k} {v}" for k, v in r["states"].items())
        print(f"  {r['video']}: {r['frames']} frames {r['size']} @ {r['dense_fps']:g} fps, "
              f"{r['keyframes']} keyframes, {r['tracks']} tracks ({r['things']} things); {states}")
    for v in project.incomplete_video_ids:
        print(f"  {v}: IMPORT DID NOT FINISH (delete and re-import)")
    return 0
