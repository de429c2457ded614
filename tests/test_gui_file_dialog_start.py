"""Issue 23 item 9: every file and folder dialog starts by the project (its folder's parent, where
the project and its exports sit side by side), never in the program's working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QFileDialog, QPushButton

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from resources.demo import write_demo_project
from tests.gui_helpers_workspace import isolate_settings


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


@pytest.fixture()
def asked(monkeypatch):
    """Answer every QFileDialog with "cancel" and record (title, start folder)."""
    calls: list[tuple[str, str]] = []

    def folder(_parent, title, start="", *a, **k):
        calls.append((title, start))
        return ""

    def file(_parent, title, start="", *a, **k):
        calls.append((title, start))
        return "", ""

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(folder))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(file))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(file))
    return calls


@pytest.fixture()
def window(qtbot, tmp_path):
    path = write_demo_project(tmp_path / "work" / "demo.vpsproj", scenarios=("mixed",), num_frames=6)
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def click_button(qtbot, dialog, text: str, index: int = 0) -> None:
    buttons = [b for b in dialog.findChildren(QPushButton) if b.text() == text and b.isVisible()]
    assert len(buttons) > index, f"no visible {text!r} button"
    qtbot.mouseClick(buttons[index], Qt.LeftButton)


def test_pipeline_dialogs_start_beside_the_project(qtbot, window, asked, monkeypatch):
    beside = str(Path(window.project.path).parent)
    ex = window.pipeline.open_export()
    qtbot.waitExposed(ex)
    click_button(qtbot, ex, "...")
    assert asked[-1] == ("Export into", beside)
    ex.close()

    sc = window.pipeline.open_score()
    qtbot.waitExposed(sc)
    click_button(qtbot, sc, "...", 0)  # ground truth: empty field
    assert asked[-1] == ("Label source folder", beside)
    sc.result = {"report": None, "names": {}}
    sc.save_button.setEnabled(True)
    qtbot.mouseClick(sc.save_button, Qt.LeftButton)
    assert asked[-1] == ("Report folder", beside)
    sc.close()

    window.pipeline.review.save_csv()
    assert asked[-1] == ("Save review report", str(Path(beside) / "review.csv"))

    monkeypatch.chdir("/")  # the bug: dialogs opened in the working directory
    window.shell.choose_project()
    assert asked[-1][1] == beside


def test_new_project_and_add_video_choosers_start_by_the_project(qtbot, window, asked):
    window.shell.add_video()
    dlg = window.shell.dialogs["import"]
    qtbot.waitExposed(dlg)
    beside = str(Path(window.project.path).parent)
    click_button(qtbot, dlg, "File...")
    assert asked[-1] == ("Video file", beside)
    click_button(qtbot, dlg, "Folder...")
    assert asked[-1] == ("Folder of frames", beside)
    dlg.reject()
    window.shell.close_project()
    window.shell.new_project()
    dlg = window.shell.dialogs["import"]
    qtbot.waitExposed(dlg)
    click_button(qtbot, dlg, "Folder...")
    assert asked[-1][1] != "" and Path(asked[-1][1]).is_dir()
    click_button(qtbot, dlg, "Browse...")  # the new project's own folder: never the working directory
    assert asked[-1][0] == "New project folder" and asked[-1][1] != ""
    dlg.reject()
