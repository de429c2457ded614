"""What the pipeline may use of the window that composes it: the ``PipelineHost`` interface.

Why an interface: the pipeline (association, propagation, flags, review, dialogs) works through the
controller (the open video, its ``EditSession``, selection, messages) and the job runner; the window
only lends it a few views to show things in and a few public calls to refresh them. Naming them
here keeps the dependency one way - ``MainWindow`` imports and composes the pipeline, the pipeline
never imports the window (nor reaches for its private members) - as in Cutie's GUI split of view,
controller and resource manager, where the engines know no window.

A ``MainWindow`` is a ``PipelineHost``; tests may pass any object with these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the window's parts, none of which imports the pipeline
    from PyQt5.QtWidgets import QDockWidget, QMenuBar

    from annotator.gui.canvas import Canvas
    from annotator.gui.class_picker import ClassPicker
    from annotator.gui.controller import Controller
    from annotator.gui.job_runner import JobRunner
    from annotator.gui.timeline import Timeline
    from annotator.gui.track_panel import TrackPanel
    from annotator.project import Project


class PipelineHost(Protocol):
    """The window as the pipeline sees it (a ``QMainWindow``: menus, docks and actions go on it)."""

    controller: Controller  # the open video, its session, selection, messages, undo order
    job_runner: JobRunner  # background jobs with progress and cancel
    project: Project | None
    canvas: Canvas  # the heat-map item goes on its scene; drawing clicks are held during engine jobs
    timeline: Timeline  # recoloured while an engine job writes frames
    tracks: TrackPanel  # its ``action`` signal: track corrections (re-association follows them)
    picker: ClassPicker  # moved out of the way in review mode

    @property
    def jobs_dock(self) -> QDockWidget | None:
        """The shell's jobs dock (``None`` without the shell)."""
        ...

    def set_editing_paused(self, paused: bool) -> None:
        """Disable (or restore) the edit commands and autosave while an engine job writes labels."""
        ...

    def refresh_view(self) -> None:
        """Redraw the current frame from disk (read-ahead copies dropped): an engine wrote labels."""
        ...

    def open_video(self, video_id: str) -> None:
        """Select and open a video of the project (a damaged one is reported, not raised)."""
        ...

    def refresh_videos(self) -> None:
        """Re-read the project's video list (after an import)."""
        ...

    # the QMainWindow calls the pipeline makes
    def menuBar(self) -> QMenuBar: ...  # noqa: N802 - Qt's name
    def addDockWidget(self, area: Any, dock: QDockWidget) -> None: ...  # noqa: N802 - Qt's name
    def tabifyDockWidget(self, first: QDockWidget, second: QDockWidget) -> None: ...  # noqa: N802 - Qt's name
    def addAction(self, action: Any) -> None: ...  # noqa: N802 - Qt's name
