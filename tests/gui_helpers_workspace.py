"""Shared helpers of the workspace GUI tests: isolated settings, a demo video file, a random SAM
checkpoint, and real mouse/key events at widget coordinates mapped from image coordinates."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt, QTimer
from PyQt5.QtGui import QContextMenuEvent, QMouseEvent
from PyQt5.QtWidgets import QApplication, QMenu


def isolate_settings(tmp_path: Path, monkeypatch) -> None:
    """No test reads or writes the real user's settings or checkpoints."""
    user = tmp_path / "user_config"
    monkeypatch.setenv("VPS_ANNOTATOR_SETTINGS", str(user / "settings.json"))
    monkeypatch.setenv("VPS_CONFIG_DIR", str(user))
    for k in list(os.environ):
        if k.startswith("VPS_") and k.endswith("_CHECKPOINT"):
            monkeypatch.delenv(k)


def demo_video_file(folder: Path, num_frames: int = 50, height: int = 120, width: int = 160) -> Path:
    from resources.demo import generate_demo_video, write_demo_source

    demo = generate_demo_video(seed=3, num_frames=num_frames, height=height, width=width, scenario="mixed")
    return write_demo_source(demo, folder / "clip.avi", kind="avi")


def random_sam_checkpoint(folder: Path) -> Path:
    """A vit_b checkpoint with random weights (checks the wiring only, as tests/test_sam.py does),
    stored as float16: half the bytes to write, hash and load (the loader casts to float32)."""
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    net = sam_model_registry["vit_b"](checkpoint=None)
    path = folder / "sam_vit_b_random.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)
    return path


def seed_sam_embeddings(project_path: Path, checkpoint: Path, video, frames: Sequence[int]) -> None:
    """Put synthetic SAM features (the right shape, as tests/test_sam.py's decoder tests use) into the
    project's embedding cache for ``frames``: the vit_b image encoder takes minutes on 2 busy cores,
    while the decoder and every piece of GUI wiring still run for real."""
    import numpy as np

    from models.sam import FEATURE_SHAPE, Embedding, EmbeddingCache, default_cache_dir, frame_hash
    from models.weights import sha256_file

    cache = EmbeddingCache(default_cache_dir(project_path))
    model_key = f"sam_vit_b-{sha256_file(checkpoint)[:16]}"
    rng = np.random.default_rng(0)
    h, w = video.height, video.width
    scale = 1024 / max(h, w)
    input_size = (int(h * scale + 0.5), int(w * scale + 0.5))
    for f in frames:
        feats = rng.normal(0, 0.5, FEATURE_SHAPE).astype(np.float16)
        key = f"{model_key}/{frame_hash(video.read_frame(f))}"
        cache.put(key, Embedding(feats, (h, w), input_size, key))


def shown_window(qtbot, project=None, focus_canvas: bool = True):
    """A MainWindow on ``project`` (``None``: no project), shown and exposed, the canvas focused so
    shortcuts reach it; the caller closes it."""
    from annotator.gui.main_window import MainWindow

    w = MainWindow(project)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    if focus_canvas:
        w.canvas.setFocus()
    return w


def at(window, x: float, y: float) -> QPoint:
    return window.canvas.image_to_widget(x, y)


def move(window, x: float, y: float, buttons=Qt.NoButton, mods=Qt.NoModifier) -> None:
    """A real QMouseEvent(MouseMove) through Qt's event dispatch. ``qtbot.mouseMove`` cannot be used
    for drags with Qt 5: it moves the cursor (QCursor::setPos), which the offscreen platform does not
    turn into move events while a button is held."""
    vp = window.canvas.viewport()
    pos = at(window, x, y)
    QApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, QPointF(pos), Qt.NoButton, buttons, mods))


def click(qtbot, window, x: float, y: float, button=Qt.LeftButton, mods=Qt.NoModifier) -> None:
    vp = window.canvas.viewport()
    move(window, x, y)
    qtbot.mouseClick(vp, button, mods, at(window, x, y))


def double_click(qtbot, window, x: float, y: float) -> None:
    qtbot.mouseDClick(window.canvas.viewport(), Qt.LeftButton, Qt.NoModifier, at(window, x, y))


def drag(qtbot, window, pts: Sequence[tuple[float, float]], button=Qt.LeftButton, mods=Qt.NoModifier) -> None:
    vp = window.canvas.viewport()
    move(window, *pts[0])
    qtbot.mousePress(vp, button, mods, at(window, *pts[0]))
    for p in pts[1:]:
        move(window, *p, buttons=button, mods=mods)
    qtbot.mouseRelease(vp, button, mods, at(window, *pts[-1]))


def key(qtbot, window, k, mods=Qt.NoModifier) -> None:
    qtbot.keyClick(window.canvas, k, mods)


def pick_class(qtbot, window, text: str) -> None:
    """C focuses the class search; type; Enter picks the first match and returns to the canvas."""
    window.canvas.setFocus()
    key(qtbot, window, Qt.Key_C)
    assert window.picker.search.hasFocus() or QApplication.focusWidget() is window.picker.search
    qtbot.keyClicks(window.picker.search, text)
    qtbot.keyClick(window.picker.search, Qt.Key_Return)


def right_click_menu(qtbot, widget, pos: QPoint) -> None:
    """Right click, then the QContextMenuEvent Qt's window system layer would send after it (QTest
    delivers mouse events to the widget directly, so Qt 5 never synthesises that event itself)."""
    vp = widget.viewport() if hasattr(widget, "viewport") else widget
    qtbot.mouseClick(vp, Qt.RightButton, Qt.NoModifier, pos)
    QApplication.sendEvent(vp, QContextMenuEvent(QContextMenuEvent.Mouse, pos, vp.mapToGlobal(pos)))


def choose_in_menu(qtbot, path: Sequence[str], open_menu: Callable[[], None]) -> list[str]:
    """Open a context menu with a real event and click through ``path`` (texts starting with each
    entry) in the popup(s), also with real mouse events; returns what was clicked."""
    clicked: list[str] = []

    def step() -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            QTimer.singleShot(20, step)
            return
        want = path[len(clicked)]
        act = next((a for a in menu.actions() if a.text().startswith(want)), None)
        assert act is not None, f"no menu entry {want!r} in {[a.text() for a in menu.actions()]}"
        clicked.append(act.text())
        pos = menu.actionGeometry(act).center()
        qtbot.mouseMove(menu, pos)
        if act.menu() is not None:
            qtbot.mouseClick(menu, Qt.LeftButton, pos=pos)
            QTimer.singleShot(50, lambda: step_sub(act.menu()))
        else:
            qtbot.mouseClick(menu, Qt.LeftButton, pos=pos)

    def step_sub(menu: QMenu) -> None:
        if not menu.isVisible():
            QTimer.singleShot(20, lambda: step_sub(menu))
            return
        want = path[len(clicked)]
        act = next((a for a in menu.actions() if a.text().startswith(want)), None)
        assert act is not None, f"no menu entry {want!r} in {[a.text() for a in menu.actions()]}"
        clicked.append(act.text())
        pos = menu.actionGeometry(act).center()
        qtbot.mouseMove(menu, pos)
        qtbot.mouseClick(menu, Qt.LeftButton, pos=pos)

    QTimer.singleShot(0, step)
    open_menu()
    qtbot.waitUntil(lambda: len(clicked) == len(path) and QApplication.activePopupWidget() is None, timeout=5000)
    return clicked
