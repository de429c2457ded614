"""Per-video done markers: ``videos/<id>/batch/<stage>.json`` with the fingerprint of the inputs.

Why a fingerprint and not just "done": a person may relabel a keyframe after the batch ran; the
marker then no longer matches and the rerun redoes that video, while untouched videos are skipped.
The fingerprint is taken *after* the task (its own writes are part of the state it leaves), from
``video.json``'s bytes and the size and mtime of every label, layer and frame file, plus the
stage options; it costs a directory listing, never a pixel read. The marker is written atomically
through the store at the very end of a task, so a killed task leaves no marker and is redone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MARKER_DIR = "batch"
MARKER_KIND = "vps-batch-marker"
#: folders of a video whose files are the inputs/outputs of the stages
_WATCHED = ("labels", "layers", "frames", "arrays")


def marker_path(video_dir: Path, stage: str) -> Path:
    return Path(video_dir) / MARKER_DIR / f"{stage}.json"


def video_fingerprint(video_dir: Path, options: dict[str, Any], watched: tuple[str, ...] = _WATCHED) -> str:
    """sha256 over the stage options, video.json and the (name, size, mtime) of the watched files."""
    video_dir = Path(video_dir)
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode("utf-8"))
    vjson = video_dir / "video.json"
    h.update(vjson.read_bytes() if vjson.exists() else b"<no video.json>")
    for sub in watched:
        folder = video_dir / sub
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.name.startswith(".") or not p.is_file():
                continue
            st = p.stat()
            h.update(f"{p.relative_to(video_dir)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker document, or None when absent or unreadable (then the video is simply redone)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == MARKER_KIND else None


def is_done(path: Path, fingerprint: str) -> bool:
    doc = read_marker(path)
    return doc is not None and doc.get("fingerprint") == fingerprint


def write_marker(path: Path, stage: str, fingerprint: str, details: dict[str, Any]) -> None:
    """Atomic, durable marker write through the project store."""
    import time

    from annotator.store import atomic_write_json

    atomic_write_json(path, {"stage": stage, "fingerprint": fingerprint, "finished": time.time(),
                             "details": details}, MARKER_KIND)
