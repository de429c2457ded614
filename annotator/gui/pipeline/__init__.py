"""The whole pipeline in the window (issue 12): association, propagation, flags, review, scoring,
export and the project overview (:class:`Pipeline`, composed by ``MainWindow``).

Why a package of its own: the workspace (canvas, controller, tools) and the shell (menus, jobs dock)
are finished pieces; the pipeline only *calls* the controller and the job runner, shows things in
the few views a ``host.PipelineHost`` lends it, and runs the Qt-free stages and engines
(``annotator.stages.association``, ``annotator.stages.propagate``, ``annotator.review``,
``annotator.metrics``, ``annotator.formats``, ``annotator.overview``), so each stays small and
testable on its own. Nothing here imports the main window.
"""

from __future__ import annotations

from annotator.gui.pipeline.actions import Pipeline
from annotator.gui.pipeline.host import PipelineHost

__all__ = ["Pipeline", "PipelineHost"]

