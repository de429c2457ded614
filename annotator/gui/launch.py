"""GUI entry point: pick what to open (demo, project, or a video to import) and start Qt.

Kept separate from the window so a missing screen gives one clear line, not a Qt abort.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEMO_PROJECT = Path("demo") / "demo.vpsproj"
NO_SCREEN = ("error: no screen found (DISPLAY/WAYLAND_DISPLAY unset). Run under a desktop session, "
             "or set QT_QPA_PLATFORM=offscreen (headless) or start a virtual screen with Xvfb "
             "(e.g. `xvfb-run make run`).")


def has_screen() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("darwin", "win32"))


def resolve_project(argv: list[str]) -> Path:
    """The project folder to open: the demo (generated if missing), a project, or an imported video."""
    from annotator.errors import InputError
    from annotator.project import PROJECT_FILE, Project

    if not argv:
        if not (DEMO_PROJECT / PROJECT_FILE).exists():
            from resources.demo import write_demo_project

            print(f"generating the demo project at {DEMO_PROJECT} ...", flush=True)
            write_demo_project(DEMO_PROJECT, scenarios=("mixed", "crossing", "occlusion", "enter_leave"))
        return DEMO_PROJECT
    target = Path(argv[0])
    if (target / PROJECT_FILE).exists():
        return target
    if not target.exists():
        raise InputError(f"{target} does not exist (give a project folder, a video file or a frame folder)")
    from annotator.jobs import TqdmProgress
    from annotator.video_io import import_source

    dest = target.parent / f"{target.stem}.vpsproj"
    if not os.access(target.parent, os.W_OK):
        dest = Path.home() / ".local" / "share" / "vps-annotator" / "projects" / f"{target.stem}.vpsproj"
    project = Project.open(dest) if (dest / PROJECT_FILE).exists() else Project.create(dest)
    if target.stem not in project.video_ids:
        with TqdmProgress(f"importing {target.name}") as bar:
            import_source(project, target, video_id=target.stem, progress=bar)
    return dest


def launch_gui(argv: list[str]) -> int:
    from annotator.errors import AnnotatorError

    if not has_screen():
        print(NO_SCREEN, file=sys.stderr)
        return 3
    try:
        path = resolve_project(argv)
        from PyQt5.QtWidgets import QApplication

        from annotator.gui.main_window import MainWindow
        from annotator.project import Project

        app = QApplication.instance() or QApplication(sys.argv[:1])
        window = MainWindow(Project.open(path))
        window.show()
        if os.environ.get("VPS_GUI_SCREENSHOT"):  # used to check `make run` headless
            app.processEvents()
            window.grab().save(os.environ["VPS_GUI_SCREENSHOT"])
            window.close()
            return 0
        return app.exec_()
    except AnnotatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
