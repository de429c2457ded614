"""The one list of dataset formats: what each is called, whether it exports and/or imports, which
options it reads, and the entry points that run it with typed options.

The command line (``export --format`` / ``import-dataset --format`` choices), the window's
export/import dialogs (their format boxes) and batch read :data:`FORMATS` and call
:func:`export_dataset` / :func:`import_dataset`, so adding a format is one :class:`FormatSpec`
here plus the format's module, and no caller keeps a dispatch of its own.

Each format module defines ``export_with(project, out, options, progress, cancel)`` and/or
``import_with(dataset, project, options, progress, cancel)`` (typed :mod:`~annotator.formats.options`
in, a :class:`~annotator.formats.common.Summary` out). The spec names its module rather than
holding the functions because a format module pulls in its codec libraries (OpenCV, pycocotools,
labelme, SciPy): the CLI builds every subcommand's parser at start and must not pay for them.

The VSPW import needs the association stage, which sits above the formats: it runs through
:func:`annotator.stages.import_dataset.import_dataset`, which supplies it; calling
:func:`import_dataset` here directly imports VSPW without the association step.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.errors import InputError
from annotator.formats.options import ExportOptions, ImportOptions
from annotator.jobs import CancelToken, ProgressFn

if TYPE_CHECKING:  # the registry stays import-light: the CLI reads it at start
    from annotator.formats.common import Summary


@dataclass(frozen=True)
class FormatSpec:
    """One dataset format.

    ``export_options`` / ``import_options`` name the :class:`ExportOptions` / :class:`ImportOptions`
    fields the format reads (the others are ignored); ``no_export`` is the refusal when the format
    cannot be exported.
    """

    name: str
    label: str
    module: str
    exports: bool
    imports: bool
    export_options: tuple[str, ...] = ()
    import_options: tuple[str, ...] = ()
    no_export: str = ""

    def _entry(self, what: str) -> Any:
        return getattr(importlib.import_module(self.module), what)

    def export(self, project: Any, out: str | Path, options: ExportOptions, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> Summary:
        if not self.exports:
            raise InputError(self.no_export or f"{self.name} is an import format")
        return self._entry("export_with")(project, out, options, progress, cancel)

    def import_(self, dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
        if not self.imports:
            raise InputError(f"{self.name} is an export format")
        return self._entry("import_with")(dataset, project, options, progress, cancel)


_COMMON_EXPORT = ("videos", "overwrite", "layer")
SPECS: tuple[FormatSpec, ...] = (
    FormatSpec("vipseg", "VIPSeg", "annotator.formats.vipseg", True, True,
               _COMMON_EXPORT + ("splits", "split_ratios", "seed", "resize_height", "include_unlabelled",
                                 "workers", "split_crowded"),
               ("videos", "on_invalid")),
    FormatSpec("ytvis", "YouTube-VIS / LV-VIS", "annotator.formats.ytvis", True, True,
               _COMMON_EXPORT + ("splits", "split_ratios", "seed"), ("videos", "images")),
    FormatSpec("labelme", "labelme", "annotator.formats.labelme_json", True, True,
               _COMMON_EXPORT + ("shapes", "include_unlabelled"), ("videos",)),
    FormatSpec("cityscapes-vps", "Cityscapes-VPS", "annotator.formats.cityscapes_vps", True, True,
               _COMMON_EXPORT + ("split_name",), ("videos", "split_name")),
    FormatSpec("vspw", "VSPW (semantic)", "annotator.formats.vspw", False, True, (),
               ("videos", "class_list", "associate"),
               no_export="vspw is an import format (semantic labels have no instances to export); "
                         "export as vipseg or cityscapes-vps"),
)
#: every format name, in the order the CLI and the dialogs list them
FORMATS: tuple[str, ...] = tuple(s.name for s in SPECS)
EXPORT_FORMATS: tuple[str, ...] = tuple(s.name for s in SPECS if s.exports)
IMPORT_FORMATS: tuple[str, ...] = tuple(s.name for s in SPECS if s.imports)


def get_format(name: str) -> FormatSpec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise InputError(f"unknown dataset format {name!r}; use one of {', '.join(FORMATS)}")


def export_dataset(name: str, project: Any, out: str | Path, options: ExportOptions,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Export ``project`` (a Project or its path) as format ``name`` into ``out``.

    The caller prepares ``out`` first (:func:`annotator.formats.output.prepare_output`: leftovers
    of killed exports, refusal of dangerous folders) so its notes come before any progress.
    """
    return get_format(name).export(project, out, options, progress, cancel)


def import_dataset(name: str, dataset: str | Path, project: str | Path, options: ImportOptions,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Import ``dataset`` in format ``name`` into the project at ``project`` (created if needed)."""
    return get_format(name).import_(dataset, project, options, progress, cancel)
