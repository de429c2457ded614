"""The whole pipeline in the window (issue 12): association, propagation, flags, review, scoring,
export and the project overview, installed on a ``MainWindow`` by :func:`install_pipeline`.

Why a package of its own: the workspace (canvas, controller, tools) and the shell (menus, jobs dock)
are finished pieces; the pipeline only *calls* them (``window.controller``, ``window.job_runner``,
``window.canvas``) and the Qt-free engines (``annotator.stages.association``, ``annotator.stages.propagate``,
``annotator.review``, ``annotator.review.store``, ``annotator.metrics``, ``annotator.formats``,
``annotator.overview``), so each stays small and testable on its own.
"""

from __future__ import annotations

from typing import Any


def install_pipeline(window: Any) -> Any:
    """Add the Pipeline and Review menus, the flags dock, the review dock and the heat-map overlay."""
    from annotator.gui.pipeline.actions import Pipeline

    window.pipeline = Pipeline(window)
    return window.pipeline
