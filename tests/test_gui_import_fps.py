"""Issue 23 item 2: a frame folder's source fps is set in the new-project dialog, with a live
preview of the dense frames and keyframes that the import then really gives (real key events)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PyQt5.QtCore import QMimeData, QPoint, Qt, QUrl
from PyQt5.QtGui import QDragEnterEvent, QDropEvent
from PyQt5.QtWidgets import QApplication

from annotator.gui.dialogs.new_project import FOLDER_EVERY_IMAGE, describe_source
from annotator.project import plan_dense, probe_source
from tests.gui_helpers_workspace import isolate_settings, shown_window

SHOTS = Path("/tmp/h23")


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


@pytest.fixture()
def window(qtbot):
    w = shown_window(qtbot, None, focus_canvas=False)
    yield w
    w.close()


def frame_folder(path: Path, n: int = 50, size: tuple[int, int] = (64, 48)) -> Path:
    """``n`` JPEG frames like a DAVIS sequence folder (00000.jpg ...)."""
    path.mkdir(parents=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 30, np.uint8)
        cv2.circle(img, (4 + i % 50, size[1] // 2), 6, (0, 180, 250), -1)
        cv2.imwrite(str(path / f"{i:05d}.jpg"), img)
    return path


def type_into(qtbot, widget, text: str) -> None:
    widget.setFocus()
    if hasattr(widget, "selectAll"):
        widget.selectAll()
    else:
        widget.lineEdit().selectAll()
    qtbot.keyClick(widget, Qt.Key_Delete)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key_Tab)


def test_plan_dense_is_the_import_rule():
    # DAVIS: 50 frames at 24 fps sampled at 5 fps -> every 4.8 source frames, a keyframe every 5
    dense, keys = plan_dense(50, 24.0, 5.0, 5)
    assert len(dense) == 11 and keys == [0, 5, 10]
    assert plan_dense(50, 5.0, 5.0, 5)[1] == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]


def test_folder_source_fps_previews_and_imports(qtbot, window, tmp_path):
    folder = frame_folder(tmp_path / "dog")
    window.shell.new_project()
    dlg = window.shell.dialogs["import"]
    qtbot.waitExposed(dlg)
    type_into(qtbot, dlg.source_edit, str(folder))
    qtbot.waitUntil(lambda: "dense frames" in dlg.source_info.text(), timeout=5000)
    # without a rate every image is a dense frame: what the CLI does without --source-fps
    assert "50 dense frames, 10 keyframes" in dlg.source_info.text()
    assert dlg.source_fps_spin.specialValueText() == FOLDER_EVERY_IMAGE
    type_into(qtbot, dlg.source_fps_spin, "24")
    assert dlg.source_fps() == 24.0
    assert "at 24 fps" in dlg.source_info.text() and "11 dense frames, 3 keyframes" in dlg.source_info.text()
    # now the dense rate matters: 10 fps from 24 fps footage
    type_into(qtbot, dlg.fps_spin, "10")
    assert "21 dense frames, 5 keyframes" in dlg.source_info.text()
    type_into(qtbot, dlg.fps_spin, "5")
    assert "11 dense frames, 3 keyframes" in dlg.source_info.text()
    dlg.grab().save(str(SHOTS / "item2_new_project_folder_fps.png")) if SHOTS.is_dir() else None
    qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    assert window.job_runner.wait_all(60, external=False)
    job = window.job_runner.jobs[-1]
    assert job.status == "done", job.error
    video = window.controller.video
    assert video is not None and video.num_frames == 11 and video.keyframes == [0, 5, 10]
    assert video.source.fps == 24.0 and video.source.source_indices[:3] == [0, 5, 10]
    # the preview and the import agree, frame for frame
    assert video.source.source_indices == plan_dense(50, 24.0, 5.0, 5)[0]


def test_video_file_shows_its_own_rate(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    for _ in range(30):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    src = probe_source(path)
    assert "30 frames at 25 fps" in describe_source(path, 5.0, 5, None, src)
    assert "(read as 50 fps)" in describe_source(path, 5.0, 5, 50.0, src)
    assert describe_source(path, 5.0, 5, 50.0, src).endswith("3 dense frames, 1 keyframes")


def test_dropped_folder_gets_the_source_fps_box(qtbot, window, tmp_path):
    folder = frame_folder(tmp_path / "drop_me", n=12)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    pos = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    dlg = window.shell.dialogs["import"]
    assert dlg.source_edit.text() == str(folder)
    type_into(qtbot, dlg.source_fps_spin, "25")
    assert "12 images at 25 fps" in dlg.source_info.text() and "3 dense frames, 1 keyframes" in dlg.source_info.text()
    options = dlg.options()
    assert options.source_fps == 25.0
    dlg.reject()
