"""Command-line interface: ``main.py SUBCOMMAND ...``.

Every module in ``annotator/commands/`` defines ``register(sub)`` adding its subcommands, so each
feature owns its CLI next to nothing else. Errors meant for users (``AnnotatorError``) are printed
as one line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import annotator.commands
from annotator.errors import AnnotatorError
from annotator.jobs import Cancelled


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="VPS Annotator: build video panoptic segmentation datasets. "
                    "Run without a subcommand to open the GUI.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(annotator.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"annotator.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def command_names() -> set[str]:
    """Names of all subcommands (main.py uses it to tell a CLI call from a path to open in the GUI)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AnnotatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not print a second traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
