"""VPS Annotator entry point: no arguments (or a video/project path) opens the GUI, a subcommand runs the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from annotator.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if argv and (argv[0] in commands or argv[0] in ("-h", "--help")):
        from annotator.cli import main as cli_main

        return cli_main(argv)
    from annotator.gui.launch import launch_gui

    return launch_gui(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
