"""VPS Annotator entry point: no arguments (or a video/project path) opens the GUI, a subcommand runs the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from annotator.cli import command_names
    from annotator.cli import main as cli_main

    if argv and (argv[0] in command_names() or argv[0] in ("-h", "--help")):
        return cli_main(argv)
    from annotator.gui.launch import launch_gui

    return launch_gui(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
