"""Drag and drop onto the window: a project opens, a video file or frame folder is imported.

What a dropped path is follows from the files alone (:func:`classify`), so the rules are tested
without a drag; the Qt part only reads the URLs and hands them to the window's menu actions.
Drops land on whichever child is under the mouse (the canvas view accepts drops itself), so the
filter sits on the window and on every child that accepts drops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PyQt5.QtCore import QEvent, QObject
from PyQt5.QtWidgets import QWidget

from annotator.project import IMAGE_EXTS, PROJECT_FILE, VIDEO_EXTS


@dataclass
class Dropped:
    projects: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)  # video files and frame folders
    ignored: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.projects or self.sources)


def classify(paths: Iterable[str | Path]) -> Dropped:
    """Sort dropped paths into projects, importable sources and the rest."""
    out = Dropped()
    for raw in paths:
        p = Path(raw)
        if p.is_file() and p.name == PROJECT_FILE:
            out.projects.append(p.parent)
        elif p.is_dir() and (p / PROJECT_FILE).is_file():
            out.projects.append(p)
        elif _is_source(p, VIDEO_EXTS, IMAGE_EXTS):
            out.sources.append(p)
        else:
            out.ignored.append(p)
    return out


def _is_source(p: Path, video_exts: tuple[str, ...], image_exts: tuple[str, ...]) -> bool:
    """A video file, or a folder holding at least one image."""
    if p.is_file():
        return p.suffix.lower() in video_exts
    return p.is_dir() and any(c.suffix.lower() in image_exts for c in p.iterdir() if c.is_file())


def _safe_classify(paths: Iterable[Path]) -> Dropped:
    """:func:`classify`, treating an unreadable path as not droppable (event handlers must not raise)."""
    try:
        return classify(paths)
    except OSError:
        return Dropped()


def _local_paths(mime) -> list[Path]:
    if mime is None or not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]


class DropHandler(QObject):
    """Accepts drags of projects/videos/folders over the window and calls ``on_drop(Dropped)``."""

    def __init__(self, window: QWidget, on_drop: Callable[[Dropped], None]) -> None:
        super().__init__(window)
        self.window = window
        self.on_drop = on_drop
        self._last: tuple[tuple[Path, ...], bool] = ((), False)
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        for child in window.findChildren(QWidget):
            if child.acceptDrops():
                child.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind in (QEvent.DragEnter, QEvent.DragMove):
            paths = tuple(_local_paths(event.mimeData()))
            if kind == QEvent.DragEnter or paths != self._last[0]:  # moves repeat: look at the files once
                self._last = (paths, bool(_safe_classify(paths)))
            if self._last[1]:
                event.acceptProposedAction()
                return True
            return False
        if kind == QEvent.Drop:
            dropped = _safe_classify(_local_paths(event.mimeData()))
            if not dropped:
                return False
            event.acceptProposedAction()
            self.on_drop(dropped)
            return True
        return False
