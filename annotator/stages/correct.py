"""The correction stage's face: one correction, re-associated from the keyframe it fixed.

``run_correction(video, CorrectionOptions(op, params), progress, cancel)`` is what the ``correct``
command (and any other caller that wants the whole step) runs. It lives apart from
``annotator.stages.corrections`` (the operations) because re-association needs
``annotator.stages.association``, which itself builds on the operations; this module sits above
both, so there is no circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from annotator.jobs import CancelToken, ProgressFn
from annotator.project import Video
from annotator.stages.association import CORRECTIONS, AssociationConfig, AssociationResult, apply_correction
from annotator.stages.corrections import CorrectionResult
from propagation.base import Propagator
from propagation.factory import association_propagator


@dataclass(frozen=True)
class CorrectionOptions:
    """One correction: ``op`` (a key of :data:`annotator.stages.association.CORRECTIONS`: reassign,
    swap, merge, split, set-class, delete, confirm, unconfirm) and ``params`` (those of the
    operation's function in :mod:`annotator.stages.corrections`, e.g. ``track_a``, ``track_b``,
    ``from_frame`` for ``swap``). Frame-based operations (reassign, swap, split, confirm) re-run
    association from the keyframe they fixed when ``reassociate``, carrying tracks with
    ``propagator`` (flow | copy | None, see :func:`propagation.factory.association_propagator`)
    unless ``engine`` is given."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)
    reassociate: bool = True
    propagator: str | None = None
    engine: Propagator | None = None
    config: AssociationConfig | None = None

    @property
    def reassociates(self) -> bool:
        """Whether this correction re-runs association (a frame-based operation, asked to)."""
        return self.reassociate and CORRECTIONS.get(self.op, (None, None))[1] is not None

    def with_engine(self) -> CorrectionOptions:
        """These options with the association engine built when the correction re-associates."""
        if self.engine is not None or not self.reassociates:
            return self
        return replace(self, engine=association_propagator(self.propagator))


@dataclass
class CorrectionRun:
    """What a correction did, and the re-association that followed it (None when none ran)."""

    correction: CorrectionResult
    association: AssociationResult | None = None


def run_correction(video: Video, options: CorrectionOptions, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> CorrectionRun:
    """Apply one correction on an open, writable video, re-associating after it (one undo step):
    :func:`annotator.stages.association.apply_correction` with the options' engine."""
    opts = options.with_engine()
    res, assoc = apply_correction(video, opts.op, reassociate=opts.reassociate, propagator=opts.engine,
                                  config=opts.config, progress=progress, cancel=cancel, **opts.params)
    return CorrectionRun(res, assoc)
