"""Typed options of a dataset export or import, and the validators of their values.

Why here, below the CLI: the command line, the window's export/import dialogs and batch all
describe one export with the same options; each builds an :class:`ExportOptions` /
:class:`ImportOptions` (checked when built) and hands it to :mod:`annotator.formats.registry`,
so no caller builds an ``argparse.Namespace`` for another. The value validators raise
:class:`OptionError` (an :class:`~annotator.errors.InputError`); ``annotator.commands.argtypes``
adapts them to argparse types, the dialogs show the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annotator.errors import InputError

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
SHAPES = ("polygon", "mask")
ON_INVALID = ("error", "void")


class OptionError(InputError):
    """A bad option value; the message says what was expected and what was given."""


# ----------------------------------------------------------------------------- value validators
def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise OptionError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise OptionError(f"expected a finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (nan and inf refused)."""
    return float(_number(text, float))


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise OptionError(f"must be a number >= 0, got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A parser of integers >= ``minimum``."""

    def parse(text: str) -> int:
        value = int(_number(text.strip(), int))
        if value < minimum:
            raise OptionError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def ratio_triple(text: str) -> tuple[float, float, float]:
    """``TRAIN,VAL,TEST``: three finite numbers >= 0 with a positive sum (``0.8,0.1,0.1``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise OptionError(f"expected three numbers TRAIN,VAL,TEST like 0.8,0.1,0.1, got {text!r}")
    vals = []
    for p in parts:
        try:
            vals.append(nonneg_float(p))
        except OptionError as exc:
            raise OptionError(f"{text!r}: {exc}") from None
    if sum(vals) <= 0:
        raise OptionError(f"the ratios must not all be 0, got {text!r}")
    return vals[0], vals[1], vals[2]


def parse_name_list(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (None: all)."""
    if not values:
        return None
    out = [v.strip() for chunk in values for v in chunk.split(",") if v.strip()]
    return out or None


def parse_split_specs(specs: list[str] | None) -> dict[str, list[str]] | None:
    """``["train=a,b", "val=c"]`` -> ``{"train": ["a", "b"], "val": ["c"]}``."""
    if not specs:
        return None
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, ids = spec.partition("=")
        name = name.strip()
        if not sep or name not in SPLITS:
            raise InputError(f"--split {spec!r}: use SPLIT=VIDEO,VIDEO with SPLIT one of {', '.join(SPLITS)}")
        out.setdefault(name, []).extend(v.strip() for v in ids.split(",") if v.strip())
    return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


# ----------------------------------------------------------------------------- typed options
@dataclass(frozen=True)
class ExportOptions:
    """Everything an export may be told; each format reads the fields its spec lists.

    ``split_ratios`` None means "not asked for": VIPSeg then splits by :data:`DEFAULT_SPLIT_RATIOS`,
    YouTube-VIS writes one file without splits. ``workers`` None: the format's default.
    """

    videos: list[str] | None = None
    splits: dict[str, list[str]] | None = None
    split_ratios: tuple[float, float, float] | None = None
    seed: int = 0
    resize_height: int | None = 720
    include_unlabelled: bool = False
    overwrite: bool = False
    layer: str = "labels"
    split_crowded: bool = False
    shapes: str = "polygon"
    workers: int | None = None
    split_name: str | None = None

    def __post_init__(self) -> None:
        _choice("shapes", self.shapes, SHAPES)
        if self.seed < 0:
            raise OptionError(f"seed must be >= 0, got {self.seed}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"workers must be at least 1, got {self.workers}")
        if self.resize_height is not None and self.resize_height < 1:
            raise OptionError(f"resize height must be at least 1, got {self.resize_height}")
        if self.split_ratios is not None and (len(self.split_ratios) != 3 or min(self.split_ratios) < 0
                                              or sum(self.split_ratios) <= 0):
            raise OptionError(f"split ratios must be three numbers >= 0 with a positive sum, "
                              f"got {self.split_ratios!r}")


#: the association step of the VSPW import: ``associate(video, propagator=..., cancel=...)``;
#: supplied by the stage layer (:mod:`annotator.stages.import_dataset`), formats sit below it
AssociateFn = Callable[..., Any]


@dataclass(frozen=True)
class ImportOptions:
    """Everything an import may be told; each format reads the fields its spec lists."""

    videos: list[str] | None = None
    on_invalid: str = "error"
    images: str | None = None
    split_name: str | None = None
    class_list: str | None = None
    associate: AssociateFn | None = field(default=None, compare=False)
    #: ``propagator_for(video)``: the propagator of the VSPW motion and association steps
    propagator_for: Callable[[Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _choice("on_invalid", self.on_invalid, ON_INVALID)
