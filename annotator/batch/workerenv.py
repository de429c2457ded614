"""Pool-worker setup: environment and the progress queue, set before any store module is imported.

Why a module of its own with no project imports: ``annotator.store`` reads its test-only kill hook
(``VPS_TEST_KILL_AFTER_WRITES``) once at import; the initializer must run first in a fresh
(spawned) worker, so neither this module nor the package ``__init__`` may import the store.
"""

from __future__ import annotations

import os
from typing import Any

_QUEUE: Any = None


def init_worker(env: dict[str, str] | None, queue: Any) -> None:
    global _QUEUE
    for key, value in (env or {}).items():
        os.environ[key] = value
    _QUEUE = queue


def progress_queue() -> Any:
    return _QUEUE
