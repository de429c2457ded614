"""Start-up checks: the xcb plugin's system libraries are looked at before Qt is created."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from annotator.gui import launch

REPO = Path(__file__).resolve().parent.parent

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt5XcbQpa.so.5 => /x/PyQt5/Qt5/plugins/platforms/../../lib/libQt5XcbQpa.so.5 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""


def test_parse_ldd_lists_each_missing_library_once():
    assert launch.parse_ldd_missing(LDD_MISSING) == ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    assert launch.parse_ldd_missing("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-xinerama.so.0", "libxcb-xinerama0"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libX11.so.6", "libx11-6"), ("libGL.so.1", "libgl1"),
    ("libdbus-1.so.3", "libdbus-1-3"), ("libglib-2.0.so.0", "libglib2.0-0")])
def test_debian_package_names(soname, package):
    assert launch.debian_package(soname) == package


def test_only_xcb_is_checked():
    if not sys.platform.startswith("linux"):
        pytest.skip("the xcb plugin exists on Linux only")
    assert launch.uses_xcb({})
    assert launch.uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not launch.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert launch.xcb_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_launch_exits_3_with_one_line_before_qt(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", ":97")
    monkeypatch.setattr(launch, "xcb_plugin_path", lambda: tmp_path / "libqxcb.so")
    monkeypatch.setattr(launch, "missing_xcb_libraries",
                        lambda plugin: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinerama.so.0"])
    monkeypatch.setattr(launch, "resolve_project", lambda argv: pytest.fail("must stop before opening anything"))
    assert launch.launch_gui([]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1, libxcb-xinerama.so.0" in err[0]
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in err[0]


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None,
                    reason="needs Linux and ldd")
def test_main_py_refuses_a_plugin_whose_libraries_are_missing(tmp_path):
    """A real run: main.py given a copy of the plugin that cannot find its Qt libraries (they are
    found relative to the original's location) must print one line and exit 3, not core-dump."""
    real = launch.xcb_plugin_path()
    if real is None:
        pytest.skip("PyQt5 ships no xcb plugin here")
    plugins = tmp_path / "platforms"
    plugins.mkdir()
    shutil.copy(real, plugins / "libqxcb.so")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=":97", QT_QPA_PLATFORM_PLUGIN_PATH=str(plugins), VPS_CONFIG_DIR=str(tmp_path / "cfg"))
    run = subprocess.run([sys.executable, str(REPO / "main.py"), str(tmp_path / "nothing")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 3, run.stderr
    assert len(lines) == 1 and "libQt5XcbQpa.so.5" in lines[0] and "apt-get install" in lines[0]
    assert "core dumped" not in run.stderr and "Could not load the Qt platform plugin" not in run.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X displays exist on Linux only")
def test_unreachable_display_is_one_line_not_a_qt_abort(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", f":{4000 + os.getpid() % 1000}")  # no X server listens there
    monkeypatch.setenv("XAUTHORITY", str(tmp_path / "none"))
    monkeypatch.setattr(launch, "missing_xcb_libraries", lambda plugin: [])
    if launch.xcb_plugin_path() is None:
        pytest.skip("PyQt5 ships no xcb plugin here")
    try:
        import ctypes

        ctypes.CDLL("libxcb.so.1")
    except OSError:
        pytest.skip("libxcb is not installed")
    monkeypatch.setattr(launch, "resolve_project", lambda argv: pytest.fail("must stop before opening anything"))
    assert launch.launch_gui([]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect to the X display" in err[0] and "Xvfb" in err[0]
    assert launch.display_problem({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":1"}) is None


def test_an_exception_in_a_slot_is_logged_not_fatal(qtbot, monkeypatch, capsys):
    from PyQt5.QtWidgets import QMainWindow

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    window = QMainWindow()
    qtbot.addWidget(window)
    launch._keep_running_on_errors(window)
    hook = sys.excepthook
    try:
        raise KeyError("slot bug")
    except KeyError as exc:
        hook(type(exc), exc, exc.__traceback__)
    assert window.statusBar().currentMessage() == "internal error: KeyError: 'slot bug' (details on stderr)"
    assert "Traceback" in capsys.readouterr().err
