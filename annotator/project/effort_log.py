"""The effort log of a video: ``videos/<id>/effort.jsonl``, one line per human edit action.

Why in the data model: the editing session appends to it for every undoable command, and the
project overview (``annotator.overview``) reads it to report active editing time and actions;
the file belongs to the video folder, so its writer (:func:`record_edit`) and its reader
(:func:`read_effort_log`) live here, and neither the editor nor the overview imports the other. Each line is ``{"t": time, "op": "edit"|"undo"|"redo", "name": command
name, "frames": [dense indices], "pixels": pixels changed}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

EFFORT_FILE = "effort.jsonl"


def record_edit(video: Any, command: Any, op: str = "edit") -> None:
    """Append one human action (an ``annotator.editing.history.Command``) to the effort log.

    ``video``: anything with ``path`` (its folder) and ``readonly``; ``command``: anything with
    ``time``, ``name``, ``frames`` and ``patches`` (each with ``before_array()``/``after_array()``).
    Cheap on purpose (called for every brush stroke): one buffered append, no fsync. Losing the
    last lines in a crash only under-counts effort. Read-only videos record nothing.
    """
    if getattr(video, "readonly", False):
        return
    pixels = 0
    for p in getattr(command, "patches", ()):
        try:
            pixels += int(np.count_nonzero(p.before_array() != p.after_array()))
        except (ValueError, TypeError, AttributeError):  # a malformed patch must not break an edit
            continue
    rec = {"t": float(getattr(command, "time", 0.0) or time.time()), "op": op,
           "name": str(getattr(command, "name", "")), "frames": list(getattr(command, "frames", [])),
           "pixels": pixels}
    try:
        with open(Path(video.path) / EFFORT_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    except OSError:
        pass  # effort figures are not worth failing an edit for


def read_effort_log(folder: Path) -> list[dict[str, Any]]:
    """Records of ``folder / effort.jsonl`` in file order (a torn or malformed line is skipped, as
    is a record without a numeric ``t``); ``[]`` when the file is missing or unreadable."""
    out = []
    try:
        raw = (Path(folder) / EFFORT_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError, UnicodeDecodeError):
        return out
    for line in raw.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("t"), (int, float)):
            out.append(rec)
    return out
