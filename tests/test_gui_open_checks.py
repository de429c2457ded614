"""Opening a video in the window says what crash recovery did and which files are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from tests import reliability_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    from tests.gui_helpers_workspace import isolate_settings

    isolate_settings(tmp_path, monkeypatch)


def _open(qtbot, path: Path) -> MainWindow:
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    return w


def test_killed_operation_is_rolled_back_and_the_window_says_so(qtbot, tmp_path):
    proj = reliability_project.build(tmp_path / "p.vpsproj")
    before = [Project.open(proj).open_video("v", readonly=True).read_label(i) for i in range(6)]
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "correct", str(proj), "--video", "v",
                          "swap", "1", "2"], env={**os.environ, "VPS_TEST_KILL_AFTER_WRITES": "8"},
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == -9, run.stderr
    w = _open(qtbot, proj)
    assert not w.banner.isHidden()
    assert "Crash recovery" in w.banner.text() and "swap" in w.banner.text()
    v = w.controller.video
    assert all((v.read_label(i) == before[i]).all() for i in range(6))  # rolled back, not half-swapped
    w.close()


def test_missing_label_file_is_named_on_open(qtbot, tmp_path):
    proj = reliability_project.build(tmp_path / "p.vpsproj")
    (proj / "videos" / "v" / "labels" / "f003.png").unlink()
    w = _open(qtbot, proj)
    assert "integrity problem" in w.banner.text() and "f003" in w.banner.text()
    w.close()
