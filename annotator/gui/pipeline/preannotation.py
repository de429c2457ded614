"""Pre-annotation in the window: draft a video with Clip-PanoFCN, accept or reject drafts.

Why here and not in the engine: the Qt-free stage (``annotator.stages.preannotate.run_preannotate``, the
face ``main.py preannotate`` calls too) does the work; this module only turns menu actions into
background jobs on the open video, with the same
``EditSession`` contract as association and propagation (``EngineJobs``: flush before, invalidate
after, editing paused while the job writes). Drafts show as ``preannotated`` (purple on the
timeline); editing a draft with the normal tools makes it ``refined``; the scoring dialog compares
the ``preannotation`` layer with the final labels (the paper's model-vs-annotator figure).
"""

from __future__ import annotations

from typing import Any

from annotator.project import require_intact_labels
from annotator.stages.preannotate import (
    DRAFT_LAYER,
    PreannotateOptions,
    accept_draft,
    reject_draft,
    run_preannotate,
)
from models.weights import missing_message, resolve_checkpoint


def draft_checkpoint(settings: dict[str, Any]) -> tuple[Any, str]:
    """(the Clip-PanoFCN checkpoint source or None, the reason shown when there is none)."""
    src = resolve_checkpoint("clip_panofcn", settings=settings)
    return src, ("" if src is not None else missing_message("clip_panofcn"))


class Preannotation:
    """The Pipeline menu's pre-annotation actions on one window (kept as ``pipeline.preannotation``)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.window = pipeline.window

    def run(self, replace: bool = False) -> Any:
        """Draft the open video in the background; refuses with the reason when no checkpoint is set."""
        c = self.pipeline.controller
        src, why = draft_checkpoint(self.pipeline.settings())
        if src is None:
            c.message(f"pre-annotate: {why}")
            return None

        def work(video: Any, progress: Any, cancel: Any) -> Any:
            require_intact_labels(video, f"pre-annotation of video {video.id!r}")  # as the CLI (issue 28)
            return run_preannotate(video, PreannotateOptions(src.path, replace=replace), progress, cancel)

        return self.pipeline.jobs.start(f"pre-annotate {c.video.id if c.video else ''}", work, self._done)

    def _done(self, result: Any) -> None:
        self.pipeline.controller.message(result.summary())

    def decide(self, accept: bool, scope: str) -> Any:
        """Accept (``reviewed``) or reject the draft of this ``frame``, the selected ``track`` or the ``video``."""
        c = self.pipeline.controller
        if c.video is None:
            c.message("open a video first")
            return None
        frames = [c.index] if scope == "frame" else None
        tracks = None
        if scope == "track":
            if c.selected is None:
                c.message("select a track in the track panel first")
                return None
            tracks = [c.selected]
        verb = "accept" if accept else "reject"

        def work(video: Any, progress: Any, cancel: Any) -> int:
            require_intact_labels(video, f"{verb} draft of video {video.id!r}")  # as the CLI (issue 28)
            return (accept_draft if accept else reject_draft)(video, frames=frames, tracks=tracks)

        def done(n: int) -> None:
            c.message(f"{verb}ed the draft on {n} frame(s)" if n else f"no draft to {verb} there")

        return self.pipeline.jobs.start(f"{verb} draft", work, done)

    def score_draft(self) -> Any:
        """Open the scoring dialog set to the model's draft (prediction) against the final labels."""
        dlg = self.pipeline.open_score()
        here = str(self.window.project.path) if self.window.project is not None else ""
        dlg.gt.path.setText(here)
        dlg.gt.layer.setText("")
        dlg.pred.path.setText(here)
        dlg.pred.layer.setText(DRAFT_LAYER)
        return dlg
