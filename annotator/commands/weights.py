"""CLI: ``weights`` - list model kinds and where their checkpoints come from, check a checkpoint file.

``main.py weights list [--project P]`` shows, per kind, the configured path and its origin (or why
it is missing; sources: environment variables, the project's settings, the user settings file);
``main.py weights check PATH --kind sam_vit_b`` loads the file with
``weights_only=True``, compares every key and shape with the network of that kind, checks the values
for damage (NaN/Inf, absurd magnitudes, constant or zeroed weights) and prints its kind, size,
tensor count and sha256, or a one-line error (missing, truncated, not a checkpoint and what it
looks like, weights of another model, the first wrong keys/shapes, the damaged tensors). No network access.
"""

from __future__ import annotations

import argparse
from typing import Any

from annotator.project import Project
from annotator.project.settings import effective
from models.weights import REGISTRY, availability, detect_checkpoint_kind, validate_checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="model checkpoints: list configured ones, validate a file")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    lp = wsub.add_parser("list", help="model kinds and the checkpoint configured for each")
    lp.add_argument("--project", help="project folder whose settings name checkpoints")
    lp.add_argument("--deep", action="store_true", help="also load each configured file to validate it")
    lp.set_defaults(func=run_list)
    cp = wsub.add_parser("check", help="validate a checkpoint file and print its sha256")
    cp.add_argument("path", help="checkpoint file (.pth/.pt)")
    cp.add_argument("--kind", help="expected model kind (default: detect it); one of " + ", ".join(sorted(REGISTRY)))
    cp.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _settings(project: str | None) -> dict[str, Any]:
    """The effective settings: defaults < the user's file < the project's (if a project is given)."""
    return effective(Project.open(project).settings if project else None, strict=True)


def run_list(args: argparse.Namespace) -> int:
    settings = _settings(args.project)
    for name in sorted(REGISTRY):
        ok, reason = availability(name, settings=settings, deep=args.deep)
        print(f"{name:14s} {'ok     ' if ok else 'missing'} {reason}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    kind = args.kind if args.kind is not None else detect_checkpoint_kind(args.path)
    info = validate_checkpoint(args.path, kind, "command line")
    print(f"kind: {info.kind}{'' if args.kind else ' (detected)'}")
    print(f"path: {info.path}")
    print(f"size: {info.size} bytes")
    print(f"tensors: {info.num_tensors}")
    print(f"sha256: {info.sha256}")
    print("validation: ok (every key and shape of the network, no damaged values)")
    return 0
