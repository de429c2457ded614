"""GUI entry point: pick what to open (demo, project, or a video to import) and start Qt.

Kept separate from the window so a machine that cannot show it gets one clear line, not a Qt
abort: no screen at all, or (the usual surprise on a fresh Linux desktop) system libraries that
PyQt5's xcb platform plugin needs but the distribution did not install. Qt itself would print
"Could not load the Qt platform plugin xcb" and dump core; we look at the plugin's libraries first.
That is why Qt (and every module that imports it: the window, the job runner) is imported inside
:func:`launch_gui`, after the checks; the Qt-free modules are imported at the top.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import weakref
from pathlib import Path

from annotator.errors import AnnotatorError, InputError
from annotator.jobs import TqdmProgress
from annotator.project import PROJECT_FILE, Project, import_source
from annotator.project import settings as user_settings
from resources.demo import write_demo_project

DEMO_PROJECT = Path("demo") / "demo.vpsproj"
NO_SCREEN = ("error: no screen found (DISPLAY/WAYLAND_DISPLAY unset). Run under a desktop session, "
             "or set QT_QPA_PLATFORM=offscreen (headless) or start a virtual screen with Xvfb "
             "(e.g. `xvfb-run make run`).")
#: exit code when the window cannot be shown on this machine (no screen, missing system libraries)
EXIT_NO_DISPLAY = 3
#: Debian/Ubuntu packages whose name does not follow from the library name (see ``debian_package``)
_PACKAGE_OVERRIDES = {"libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
                      "libgobject-2.0.so.0": "libglib2.0-0"}
#: what README lists: everything the bundled xcb plugin links against beyond a minimal Debian
XCB_PACKAGES = ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-xinerama0", "libxcb-image0", "libxcb-randr0",
                "libxcb-render-util0", "libxcb-shape0", "libxcb-xfixes0", "libxcb-xkb1", "libxcb-util1",
                "libxkbcommon-x11-0", "libx11-xcb1", "libgl1", "libfontconfig1", "libdbus-1-3")


def has_screen() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("darwin", "win32"))


# --------------------------------------------------------------------------- xcb plugin check
def uses_xcb(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether Qt will load the xcb plugin: Linux with no other platform chosen (Qt 5 defaults to
    xcb even in Wayland sessions)."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "").strip().lower()
    return not platform or platform.startswith("xcb")


def xcb_plugin_path() -> Path | None:
    """PyQt5's ``libqxcb.so`` (importing QtCore loads no platform plugin, so this is safe pre-Qt)."""
    try:  # here, not at the top: PyQt5 may be missing or broken, and this check must still answer
        from PyQt5.QtCore import QLibraryInfo
    except ImportError:
        return None
    plugins = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    candidates = [Path(plugins) / "libqxcb.so"] if plugins else []
    candidates.append(Path(QLibraryInfo.location(QLibraryInfo.PluginsPath)) / "platforms" / "libqxcb.so")
    return next((p for p in candidates if p.is_file()), None)


def parse_ldd_missing(ldd_output: str) -> list[str]:
    """Library names ``ldd`` reports as ``=> not found`` (transitive ones included), in order, once."""
    found = re.findall(r"^\s*(\S+)\s*=>\s*not found", ldd_output, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package shipping a library: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``,
    ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0`` (Debian's naming rule), a few overrides."""
    if soname in _PACKAGE_OVERRIDES:
        return _PACKAGE_OVERRIDES[soname]
    base, _, version = soname.partition(".so")
    version = version.lstrip(".").split(".")[0]
    base = base.lower()
    if not version:
        return base
    return f"{base}-{version}" if base[-1:].isdigit() else f"{base}{version}"


def missing_xcb_libraries(plugin: Path) -> list[str]:
    """Shared libraries the plugin needs that the dynamic loader cannot find."""
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20,
                                 env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None:
            return parse_ldd_missing(out)
    # no ldd (e.g. a minimal container): the loader names the first missing library
    try:
        ctypes.CDLL(str(plugin))
    except OSError as exc:
        m = re.search(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
        return [m.group(1)] if m else [str(exc)]
    return []


def xcb_problem(env: dict[str, str] | None = None) -> str | None:
    """One line naming the missing system libraries and the install command, or ``None`` if the xcb
    plugin can load (or is not going to be used)."""
    if not uses_xcb(env):
        return None
    plugin = xcb_plugin_path()
    if plugin is None:
        return None  # a system Qt or an unusual layout: let Qt speak for itself
    missing = missing_xcb_libraries(plugin)
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (f"error: Qt's xcb platform plugin cannot load, missing system libraries: {', '.join(missing)}; "
            f"install them with `sudo apt-get install -y {packages}` (Debian/Ubuntu; README lists all packages), "
            "or run headless with QT_QPA_PLATFORM=offscreen")


def display_problem(env: dict[str, str] | None = None) -> str | None:
    """One line when the X display in ``$DISPLAY`` cannot be reached (Qt would abort with "could not
    connect to display"), else ``None``. Uses libxcb, which the xcb plugin loads anyway."""
    env = os.environ if env is None else env
    display = env.get("DISPLAY", "")
    if not uses_xcb(env) or not display:
        return None
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # reported by the library check
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    failed = bool(xcb.xcb_connection_has_error(conn))
    xcb.xcb_disconnect(conn)
    if not failed:
        return None
    return (f"error: cannot connect to the X display DISPLAY={display} (no X server there, or access refused); "
            "start one (e.g. `Xvfb :99 &` and DISPLAY=:99, or `xvfb-run -a make run`), "
            "or run headless with QT_QPA_PLATFORM=offscreen")


# --------------------------------------------------------------------------- what to open
def resolve_project(argv: list[str]) -> Path:
    """The project folder to open: the demo (generated if missing), a project, or an imported video."""
    if not argv:
        if not (DEMO_PROJECT / PROJECT_FILE).exists():
            print(f"generating the demo project at {DEMO_PROJECT} ...", flush=True)
            write_demo_project(DEMO_PROJECT, scenarios=("mixed", "crossing", "occlusion", "enter_leave"))
        return DEMO_PROJECT
    target = Path(argv[0])
    if (target / PROJECT_FILE).exists():
        return target
    if not target.exists():
        raise InputError(f"{target} does not exist (give a project folder, a video file or a frame folder)")
    dest = target.parent / f"{target.stem}.vpsproj"
    if not os.access(target.parent, os.W_OK):
        dest = Path.home() / ".local" / "share" / "vps-annotator" / "projects" / f"{target.stem}.vpsproj"
    project = Project.open(dest) if (dest / PROJECT_FILE).exists() else Project.create(dest)
    if target.stem not in project.video_ids:
        with TqdmProgress(f"importing {target.name}") as bar:
            import_source(project, target, video_id=target.stem, progress=bar)
    return dest


def _save_screenshot(app, window, path: str, timeout_s: float = 10.0) -> None:
    """Wait until the window system shows the window (mapped and exposed), then save it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        handle = window.windowHandle()
        if handle is not None and handle.isExposed():
            break
        time.sleep(0.02)
    for _ in range(5):  # let the first paints land
        app.processEvents()
        time.sleep(0.02)
    window.grab().save(path)


def _keep_running_on_errors(window) -> None:
    """PyQt5 aborts the process on an exception escaping a slot (with the default ``sys.excepthook``):
    one bug in a menu handler would close the window with unsaved strokes. Log it instead, and say
    so in the status bar."""
    from annotator.gui.job_runner import error_line  # imports Qt: only once the window exists

    ref = weakref.ref(window)

    def hook(kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        w = ref()
        if w is not None:
            with contextlib.suppress(RuntimeError):  # the window is gone
                w.statusBar().showMessage(f"internal error: {error_line(value)} (details on stderr)", 15000)

    sys.excepthook = hook


def _share_settings_file() -> None:
    """With only ``$VPS_CONFIG_DIR`` set, point ``models.weights`` (``$VPS_ANNOTATOR_SETTINGS``) at the
    same file, so the window, the settings dialog and checkpoint resolution read one settings file."""
    if os.environ.get(user_settings.CONFIG_DIR_ENV) and not os.environ.get(user_settings.SETTINGS_FILE_ENV):
        os.environ[user_settings.SETTINGS_FILE_ENV] = str(user_settings.settings_path())


def launch_gui(argv: list[str]) -> int:
    if not has_screen():
        print(NO_SCREEN, file=sys.stderr)
        return EXIT_NO_DISPLAY
    problem = xcb_problem() or display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_NO_DISPLAY
    _share_settings_file()
    try:
        path = resolve_project(argv)
        # Qt only now: the checks above ran without it (a missing system library would abort here)
        from PyQt5.QtCore import Qt
        from PyQt5.QtWidgets import QApplication

        from annotator.gui.main_window import MainWindow

        if QApplication.instance() is None:  # HiDPI: must be set before the application exists
            QApplication.setAttribute(Qt.AA_EnableHighDpiScaling, True)
            QApplication.setAttribute(Qt.AA_UseHighDpiPixmaps, True)
        app = QApplication.instance() or QApplication(sys.argv[:1])
        app.setApplicationName("VPS Annotator")
        project = Project.open(path)
        user_settings.add_recent(project.path)
        window = MainWindow(project)
        _keep_running_on_errors(window)
        window.show()
        if os.environ.get("VPS_GUI_SCREENSHOT"):  # used to check `make run` headless and on Xvfb
            _save_screenshot(app, window, os.environ["VPS_GUI_SCREENSHOT"])
            window.close()
            return 0
        return app.exec_()
    except AnnotatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
