"""Dataset import as a stage: the format registry's import with the association step wired in.

Why here: the VSPW import carries its instance proposals into video-wide tracks with the
association stage, and the formats sit below the stages, so they take that step as an injected
callable. The command line (``import-dataset``) and the window's import dialog import through
:func:`import_dataset`, which supplies :func:`annotator.stages.association.associate_video` and
the project's association propagator; the other formats ignore both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from annotator.formats import registry
from annotator.formats.common import Summary
from annotator.formats.options import ImportOptions
from annotator.formats.vspw import VspwReport
from annotator.formats.vspw import import_vspw as _import_vspw
from annotator.jobs import CancelToken, ProgressFn
from annotator.stages.association import associate_video, default_propagator


def with_association(options: ImportOptions) -> ImportOptions:
    """``options`` with the association step and its propagator filled in where not given."""
    return dataclasses.replace(options, associate=options.associate or associate_video,
                               propagator_for=options.propagator_for or default_propagator)


def import_dataset(name: str, dataset: str | Path, project: str | Path, options: ImportOptions,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Import ``dataset`` in format ``name`` into ``project`` (see :func:`annotator.formats.registry.import_dataset`)."""
    return registry.import_dataset(name, dataset, project, with_association(options), progress, cancel)


def import_vspw(root: str | Path, project_path: str | Path, **kwargs: Any) -> VspwReport:
    """:func:`annotator.formats.vspw.import_vspw` with the association step (``associate=None`` skips it)."""
    kwargs.setdefault("associate", associate_video)
    kwargs.setdefault("propagator_for", default_propagator)
    return _import_vspw(root, project_path, **kwargs)
