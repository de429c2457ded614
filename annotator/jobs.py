"""Progress reporting and cancellation shared by every long operation.

Long work (propagation, export, scoring, SAM embeddings) takes a ``progress`` callback and a
``CancelToken`` so that the GUI (worker thread + progress dialog) and the CLI (tqdm) drive the
same code. Nothing here imports Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: ``progress(done, total, message)``; ``total`` may be 0 when unknown.
ProgressFn = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised inside a long operation when its cancel token was triggered."""


class CancelToken:
    """Thread-safe flag a caller sets to ask a running operation to stop at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("operation cancelled by the user")


def no_progress(done: int, total: int, message: str = "") -> None:
    """Default progress callback: report nothing."""


def check_cancel(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set (``None`` means not cancellable)."""
    if cancel is not None:
        cancel.raise_if_cancelled()


class TqdmProgress:
    """Adapter that turns ``progress(done, total, message)`` calls into a tqdm bar (CLI use)."""

    def __init__(self, desc: str, unit: str = "frame") -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit=unit, total=0, dynamic_ncols=True)

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
