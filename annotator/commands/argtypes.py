"""Argument types shared by every subcommand: numbers are checked when the command line is parsed.

Why: ``float("nan")``, ``float("inf")`` and negative counts are valid Python values, so plain
``type=float`` / ``type=int`` let ``--fps nan`` reach the code (a traceback, or ``Infinity``
written into ``video.json``), ``--fps 0`` be replaced silently by the default (``0 or default``)
and ``--workers -1`` crash a process pool. Each type here raises ``argparse.ArgumentTypeError``,
which the CLI prints as one ``error: argument --x: ...`` line with exit code 2 before anything
is read or written. ``annotator.cli`` also swaps every remaining plain ``type=float`` for
:func:`finite_float`, so no subcommand accepts nan/inf even if it forgot to use these types. The
validators the window's dialogs share live in :mod:`annotator.formats.options`; here they are
adapted to argparse.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from annotator.formats import options
from annotator.formats.options import OptionError

T = TypeVar("T")

__all__ = ["finite_float", "positive_float", "nonneg_float", "unit_float", "positive_int", "nonneg_int",
           "int_at_least", "ratio_triple", "frame_range", "size_wxh", "nonempty_path"]


def _adapt(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a validator of :mod:`annotator.formats.options` (its OptionError
    becomes the ``error: argument --x: ...`` line)."""

    def adapted(text: str) -> T:
        try:
            return parse(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    adapted.__name__ = parse.__name__
    return adapted


finite_float = _adapt(options.finite_float)
nonneg_float = _adapt(options.nonneg_float)
ratio_triple = _adapt(options.ratio_triple)


def positive_float(text: str) -> float:
    """A finite number > 0 (frame rates: 0 is refused, never replaced by a default)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A finite number in [0, 1] (thresholds on IoU or confidence)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum``."""
    return _adapt(options.int_at_least(minimum))


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def frame_range(text: str) -> tuple[int, int]:
    """``A-B``: inclusive dense frame indices, 0 <= A <= B."""
    a_txt, sep, b_txt = text.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        a, b = int(a_txt), int(b_txt)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B with dense frame indices, e.g. 10-30, got {text!r}") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return a, b


def size_wxh(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` with both at least 16 pixels and at most 8192."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x360, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"width and height must be 16..8192 pixels, got {text!r}")
    return w, h


def nonempty_path(text: str) -> str:
    """A path that is not empty or blank: an unset shell variable (``--out "$OUT"``) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a folder path")
    return text
