"""The application shell with real events: menus, new project as a background job, jobs panel,
drag and drop, preferences, F1 sheet, recent projects, view options."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PyQt5.QtCore import QMimeData, QPoint, Qt, QUrl
from PyQt5.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PyQt5.QtWidgets import QAction, QApplication, QLineEdit, QMessageBox, QShortcut

from annotator.errors import InputError
from annotator.gui import menus
from annotator.jobs import check_cancel
from annotator.project import Project
from annotator.project import settings as user_settings
from models.weights import REGISTRY
from resources.demo import write_demo_project
from tests.gui_helpers_workspace import shown_window


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    """Settings and recent projects in tmp: the real ~/.config is never read or written."""
    monkeypatch.setenv(user_settings.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    monkeypatch.setenv(user_settings.SETTINGS_FILE_ENV, str(tmp_path / "cfg" / "settings.json"))
    for kind in REGISTRY.values():
        for var in kind.env_vars:
            monkeypatch.delenv(var, raising=False)
    return tmp_path / "cfg"


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("shell") / "demo.vpsproj", scenarios=("mixed",),
                              num_frames=20)


@pytest.fixture()
def window(qtbot):
    w = shown_window(qtbot, None, focus_canvas=False)
    yield w
    w.close()


def make_video(path: Path, frames: int = 40, fps: float = 25.0, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        cv2.circle(img, (10 + 3 * i, size[1] // 2), 12, (0, 200, 255), -1)
        writer.write(img)
    writer.release()
    return path


def menu_action(window, menu_title: str, text: str) -> QAction:
    for menu in window.shell.menus:
        if menu.title().replace("&", "") == menu_title:
            for action in menu.actions():
                if action.text().replace("&", "").split("\t")[0].startswith(text):
                    return action
    raise AssertionError(f"no {menu_title} > {text}")


def open_menu_and_pick(qtbot, window, menu_title: str, text: str) -> None:
    """Open the menu with its Alt mnemonic and pick the entry by keyboard, as a person would."""
    menu = next(m for m in window.shell.menus if m.title().replace("&", "") == menu_title)
    action = menu_action(window, menu_title, text)
    mnemonic = menu.title()[menu.title().index("&") + 1]
    window.activateWindow()  # menu mnemonics are window shortcuts: the window must be active
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    qtbot.keyClick(window, getattr(Qt, f"Key_{mnemonic.upper()}"), Qt.AltModifier)
    qtbot.waitUntil(menu.isVisible, timeout=3000)
    menu.setActiveAction(action)
    qtbot.keyClick(menu, Qt.Key_Return)
    qtbot.waitUntil(lambda: not menu.isVisible(), timeout=3000)


def set_line(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key_Delete)
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key_Tab)


def test_menus_and_no_key_bound_twice(window):
    assert [m.title().replace("&", "") for m in window.shell.menus] == ["File", "Edit", "View", "Help"]
    assert window.shell.actions["undo"] is window.undo_action  # one action, one key owner
    assert window.shell.actions["redo"] is window.redo_action
    seen: dict[str, object] = {}
    owners = [(a, a.shortcuts()) for a in window.findChildren(QAction)]
    owners += [(s, [s.key()]) for s in window.findChildren(QShortcut)]
    for owner, seqs in owners:
        for seq in seqs:
            key = seq.toString(QKeySequence.PortableText)
            if key:
                assert key not in seen, f"{key} bound twice ({seen[key]} and {owner})"
                seen[key] = owner
    assert {"F1", "Ctrl+O", "Ctrl+Q", "Ctrl+Z", "T", "Ctrl+F"} <= set(seen)
    assert not window.shell.actions["add_video"].isEnabled()  # no project yet


def test_new_project_from_video_runs_as_job_and_opens(qtbot, window, tmp_path, config):
    video = make_video(tmp_path / "street.avi")
    open_menu_and_pick(qtbot, window, "File", "New project")
    dlg = window.shell.dialogs["import"]
    qtbot.waitExposed(dlg)
    set_line(qtbot, dlg.source_edit, str(video))
    qtbot.waitUntil(lambda: "frames" in dlg.source_info.text(), timeout=5000)
    assert "40 frames at 25 fps" in dlg.source_info.text() and "8 dense frames" in dlg.source_info.text()
    assert dlg.project_edit.text() == str(tmp_path / "street.vpsproj")  # proposed next to the video
    set_line(qtbot, dlg.project_edit, str(tmp_path / "projects" / "city.vpsproj"))
    set_line(qtbot, dlg.name_edit, "city")
    dlg.key_spin.setFocus()
    dlg.key_spin.selectAll()
    qtbot.keyClicks(dlg.key_spin, "2")
    qtbot.mouseClick(dlg.downscale, Qt.LeftButton, pos=QPoint(5, dlg.downscale.height() // 2))
    assert not dlg.downscale.isChecked()
    qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    runner = window.job_runner
    job = runner.jobs[-1]
    assert job.title.startswith("import street.avi")
    assert window.shell.dock.isVisible() and job in window.shell.jobs_panel.rows
    assert runner.wait_all(60, external=False)
    assert job.status == "done", job.error
    assert window.project is not None and window.project.name == "city"
    assert window.project.path == (tmp_path / "projects" / "city.vpsproj").resolve()
    v = window.controller.video
    assert v is not None and v.id == "street" and v.num_frames == 8 and v.keyframes == [0, 2, 4, 6]
    assert (v.height, v.width) == (120, 160)
    assert window.project.settings["resize_height"] is None
    assert user_settings.recent_projects()[0] == str(window.project.path)
    assert window.shell.actions["add_video"].isEnabled()
    row = window.shell.jobs_panel.rows[job]
    assert row.status.text() == "done" and not row.cancel_button.isVisible()


def test_add_video_and_refused_options(qtbot, window, tmp_path, demo_path):
    window.shell.open_project(demo_path)
    clip = make_video(tmp_path / "extra.avi", frames=15)
    open_menu_and_pick(qtbot, window, "File", "Add video")
    dlg = window.shell.dialogs["import"]
    set_line(qtbot, dlg.source_edit, str(tmp_path / "nope.avi"))
    qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    assert dlg.isVisible() and "does not exist" in dlg.error_label.text()
    set_line(qtbot, dlg.source_edit, str(clip))
    qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    assert window.job_runner.wait_all(60, external=False)
    assert "extra" in Project.open(demo_path).video_ids
    assert [window.video_box.itemText(i) for i in range(window.video_box.count())] == ["demo_mixed", "extra"]


def test_jobs_panel_cancel_and_failure_in_one_line(qtbot, window):
    runner = window.job_runner
    started = threading.Event()

    def slow(progress, cancel):
        started.set()
        for i in range(2000):
            progress(i, 2000, f"step {i}")
            check_cancel(cancel)
            threading.Event().wait(0.005)

    def broken(progress, cancel):
        raise InputError("video x.avi is corrupt;\nconvert it to mp4")

    threads = set()
    runner.job_changed.connect(lambda _job: threads.add(threading.current_thread()))
    job = runner.submit("slow work", slow)
    bad = runner.submit("broken work", broken)
    panel = window.shell.jobs_panel
    assert started.wait(10)
    qtbot.waitUntil(lambda: panel.rows[job].bar.value() > 0, timeout=5000)
    qtbot.mouseClick(panel.rows[job].cancel_button, Qt.LeftButton)
    assert runner.wait_all(20, external=False)
    assert job.status == "cancelled" and panel.rows[job].status.text() == "cancelled"
    assert threads == {threading.main_thread()}  # progress reaches the views on the GUI thread only
    assert bad.status == "failed" and bad.error == "video x.avi is corrupt; convert it to mp4"
    assert panel.rows[bad].status.text() == bad.error
    assert "broken work failed: video x.avi is corrupt" in window.statusBar().currentMessage()
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert "1 failed" in panel.summary.text()
    qtbot.mouseClick(panel.clear_button, Qt.LeftButton)
    assert job not in panel.rows and bad not in panel.rows


def test_f1_shows_the_shortcut_sheet(qtbot, window):
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_F1)
    sheet = window.shell.dialogs["shortcuts"]
    qtbot.waitExposed(sheet)
    rows = sheet.visible_rows()
    keys = {k for k, _ in rows}
    assert {"Ctrl+Z", "F1", "Ctrl+O", "Shift+1"} <= keys
    assert any("polygon" in what for _, what in rows)
    qtbot.keyClicks(sheet.filter, "redo")
    assert sheet.visible_rows() and all("redo" in (k + w).lower() for k, w in sheet.visible_rows())
    if os.environ.get("VPS_TEST_SHOTS"):
        qtbot.keyClick(sheet.filter, Qt.Key_A, Qt.ControlModifier)
        qtbot.keyClick(sheet.filter, Qt.Key_Delete)
        sheet.grab().save(str(Path(os.environ["VPS_TEST_SHOTS"]) / "shortcut_sheet.png"))


def test_view_menu_drives_the_canvas(qtbot, window, demo_path):
    window.shell.open_project(demo_path)
    style = window.canvas.style
    open_menu_and_pick(qtbot, window, "View", "Outlines only")
    assert style.outline_only
    open_menu_and_pick(qtbot, window, "View", "Hide stuff")
    assert style.hide_stuff
    open_menu_and_pick(qtbot, window, "View", "Overlay")
    assert not style.overlay
    qtbot.keyClick(window.canvas, Qt.Key_T)
    assert style.overlay and window.shell.actions["overlay"].isChecked()
    search = window.picker.findChild(QLineEdit)
    search.setFocus()
    qtbot.keyClicks(search, "to")  # letters typed in a text field never reach the view keys
    assert search.text() == "to" and style.overlay and style.outline_only
    window.shell.actions["opacity_75"].trigger()
    assert style.opacity == pytest.approx(0.75)


def test_drop_project_and_video(qtbot, window, demo_path, tmp_path):
    def drop(paths: list[Path], target) -> QDropEvent:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        pos = QPoint(target.width() // 2, target.height() // 2)
        enter = QDragEnterEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        QApplication.sendEvent(target, enter)
        assert enter.isAccepted()
        event = QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        QApplication.sendEvent(target, event)
        return event

    drop([demo_path], window.canvas.viewport() if hasattr(window.canvas, "viewport") else window.canvas)
    assert window.project is not None and window.project.path == demo_path.resolve()
    window.shell.close_project()
    assert window.project is None
    clip = make_video(tmp_path / "dropped.avi", frames=10)
    drop([clip], window)
    dlg = window.shell.dialogs["import"]
    assert dlg.create and dlg.source_edit.text() == str(clip)
    dlg.reject()
    text = tmp_path / "notes.txt"
    text.write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(text))])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    enter.ignore()
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_preferences_apply_to_window_and_recent_menu(qtbot, window, demo_path, monkeypatch):
    window.shell.open_project(demo_path)
    open_menu_and_pick(qtbot, window, "Edit", "Preferences")
    dlg = window.shell.dialogs["preferences"]
    qtbot.waitExposed(dlg)
    dlg.brush.setFocus()
    dlg.brush.selectAll()
    qtbot.keyClicks(dlg.brush, "21")
    refreshed = []
    window.refresh_backends = lambda *a: refreshed.append(a)  # spy on the instance
    qtbot.mouseClick(dlg.save_button, Qt.LeftButton)
    del window.refresh_backends
    assert refreshed  # checkpoints may have changed: the status bar re-resolves them
    assert user_settings.load_user()["brush_size"] == 21
    assert window.settings["brush_size"] == 21 and window.controller.brush_radius == 21
    window.shell.close_project()
    window.shell.recent_menu.aboutToShow.emit()
    entries = [a for a in window.shell.recent_menu.actions() if a.isEnabled() and not a.isSeparator()]
    assert entries[0].toolTip() == str(demo_path.resolve()) and entries[-1].text() == "Clear list"
    entries[0].trigger()
    assert window.project is not None and window.project.path == demo_path.resolve()
    monkeypatch.setattr(menus, "ask_directory", lambda parent, title: str(demo_path.parent))
    open_menu_and_pick(qtbot, window, "File", "Open project")
    assert "is not a VPS Annotator project" in window.statusBar().currentMessage()
    window.shell.close_project()
    monkeypatch.setattr(menus, "ask_directory", lambda parent, title: str(demo_path))
    open_menu_and_pick(qtbot, window, "File", "Open project")
    assert window.project.path == demo_path.resolve()


def test_job_runner_external_jobs_and_callback_errors(qtbot, window, capsys):
    runner = window.job_runner
    cancelled = []
    ext = runner.track_external("SAM embeddings of v", on_cancel=lambda: cancelled.append(True))
    worker = threading.Thread(target=lambda: [ext.update(i, 5, f"embedding {i}/5") for i in range(1, 4)])
    worker.start()
    worker.join()
    panel = window.shell.jobs_panel
    qtbot.waitUntil(lambda: panel.rows[ext].status.text() == "embedding 3/5", timeout=5000)
    assert not runner.wait_all(0.2)  # an external job runs until it finishes
    qtbot.mouseClick(panel.rows[ext].cancel_button, Qt.LeftButton)
    assert cancelled == [True]
    threading.Thread(target=ext.finish).start()
    assert runner.wait_all(10) and ext.status == "cancelled"

    def on_done(result):
        raise ValueError(f"bad result {result}")

    job = runner.submit("returns 7", lambda progress, cancel: 7, on_done=on_done)
    crash = runner.submit("crashes", lambda progress, cancel: {}["missing"])
    assert runner.wait_all(10)
    assert job.status == "failed" and job.error == "ValueError: bad result 7"
    assert crash.status == "failed" and crash.error == "KeyError: 'missing'"
    assert "Traceback" in capsys.readouterr().err  # unexpected errors stay debuggable, on stderr only


def test_run_import_from_frame_folder_and_cancel_leaves_nothing(tmp_path):
    from annotator.gui.dialogs.new_project import ImportOptions, run_import
    from annotator.jobs import Cancelled, CancelToken

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        cv2.imwrite(str(frames / f"f{i:03d}.png"), np.full((40, 60, 3), 20 * i, np.uint8))
    opts = ImportOptions(source=frames, project_path=tmp_path / "f.vpsproj", create=True, key_every=3)
    path, vid = run_import(opts)
    video = Project.open(path).open_video(vid, readonly=True)
    assert video.num_frames == 6 and video.keyframes == [0, 3]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_import(ImportOptions(source=frames, project_path=tmp_path / "g.vpsproj", create=True), cancel=token)
    assert not (tmp_path / "g.vpsproj").exists()  # a cancelled new project leaves no folder behind
