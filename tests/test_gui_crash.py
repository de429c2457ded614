"""The GUI process is killed after strokes, before autosave: the next start recovers them and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from resources.demo import write_demo_project
from tests.gui_helpers_workspace import isolate_settings

DRIVER = Path(__file__).resolve().parent / "gui_crash_driver.py"


def test_killed_window_loses_no_stroke(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    proj = write_demo_project(tmp_path / "crash.vpsproj", scenarios=("mixed",), height=90, width=160)
    before = Project.open(proj).open_video("demo_mixed", readonly=True).read_label(0)
    out = tmp_path / "expected.npy"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(proj), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", proc.stderr.read() if proc.poll() is not None else line
        expected = np.load(out)
        assert not np.array_equal(expected, before)
        # nothing was flushed: the label file is still the old one
        np.testing.assert_array_equal(Project.open(proj).open_video("demo_mixed", readonly=True).read_label(0), before)
    finally:
        proc.kill()
        proc.wait(30)

    window = MainWindow(Project.open(proj))
    qtbot.addWidget(window)
    c = window.controller
    assert not c.video.readonly  # the dead process's lock is taken over
    assert c.session.recovered == [0]
    assert window.banner.isVisibleTo(window) and "Recovered unsaved edits" in window.banner.text()
    assert "frame(s) 1 (00000)" in window.banner.text()
    np.testing.assert_array_equal(c.session.label(0), expected)
    np.testing.assert_array_equal(c.video.read_label(0), expected)
    window.close()
