"""Command-line interface: ``main.py SUBCOMMAND ...``.

Every module in ``annotator/commands/`` defines ``register(sub)`` adding its subcommands, so each
feature owns its CLI next to nothing else. Errors meant for users (``AnnotatorError``), bad
arguments (argparse) and operating-system failures (disk full, read-only or forbidden folder) are
printed as one ``error: ...`` line with exit code 2, never as a traceback (set ``VPS_DEBUG=1`` to
see the traceback of an OS error). Every plain ``type=float`` argument refuses nan and inf, every
``--workers`` must be >= 1, and a command naming a ``--video`` of a project first checks that
video's ``video.json`` is well formed.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import NoReturn

import annotator.commands
from annotator.commands.argtypes import finite_float, positive_int
from annotator.errors import AnnotatorError
from annotator.jobs import Cancelled

#: commands that report or remove damaged videos, so they must not refuse one up front
_NO_PRECHECK = {"info", "delete-video", "unlock"}


class OneLineParser(argparse.ArgumentParser):
    """argparse parser whose errors are one ``error:`` line (exit 2) instead of usage + message.

    Subcommand parsers inherit the class (argparse creates them with ``type(parent)``).
    """

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _harden_types(parser: argparse.ArgumentParser) -> None:
    """Safety net over every (sub)parser: ``type=float`` refuses nan/inf, ``--workers`` must be >= 1.

    Subcommands should use ``annotator.commands.argtypes`` themselves (ranges are theirs to
    know); this catches what a module forgot, so no number can crash a command or reach a file.
    """
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        if action.type is int and "--workers" in action.option_strings:
            action.type = positive_int
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _harden_types(child)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="main.py",
        description="VPS Annotator: build video panoptic segmentation datasets. "
                    "Run without a subcommand to open the GUI.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(annotator.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"annotator.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    _harden_types(parser)
    return parser


def command_names() -> set[str]:
    """Names of all subcommands (main.py uses it to tell a CLI call from a path to open in the GUI)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _precheck(args: argparse.Namespace) -> None:
    """Check the types of the ``project.json`` files a command names, and of its ``--video``'s ``video.json``.

    Why here: a ``project.json`` or ``video.json`` with a missing or wrong-typed field used to end
    in a ``TypeError`` traceback inside whichever command touched the field first; one check at
    the entry point turns it into one message naming the field for every command. (``info`` and
    ``delete-video`` skip the video check: they report or remove damaged videos.)
    """
    from annotator.project import check_project_json, check_video_json

    for attr in ("project", "path", "gt", "pred"):  # every project the command names
        value = getattr(args, attr, None)
        if isinstance(value, str) and value and (Path(value) / "project.json").is_file():
            check_project_json(Path(value) / "project.json")
    if args.command in _NO_PRECHECK:
        return
    project, video = getattr(args, "project", None), getattr(args, "video", None)
    if not isinstance(project, str) or not isinstance(video, str) or not project or "/" in video:
        return
    vjson = Path(project) / "videos" / video / "video.json"
    if vjson.is_file():
        check_video_json(vjson)


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is exceeded: free some space and run the command again",
    errno.EROFS: "the file system is read-only: copy the project to a writable disk, or use a read-only "
                 "command (info, score, export to a writable --out)",
    errno.EACCES: "permission denied: check the folder's owner and permissions",
    errno.EPERM: "operation not permitted: check the folder's owner and permissions",
}


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and what to do."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _OS_HINTS.get(exc.errno or 0, "")
    return f"{what}{where}" + (f"; {hint}" if hint else "") + "; the operation was stopped"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # bad arguments (one error line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _precheck(args)
        return int(args.func(args) or 0)
    except AnnotatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not print a second traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # disk full, read-only file system, permissions: one line, not a traceback
        if os.environ.get("VPS_DEBUG"):
            raise
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
