"""A small valid project whose every file kind holds records (issue #28's tests and fuzzing).

``build(path)`` writes a demo project (3 dense frames of 64x48, every frame reviewed), then
leaves real, unfolded records in ``journal.jsonl`` (a frame write, track create/update, a
keyframes change, a log event and a committed transaction), a ``review.json`` with decisions and
flags and an ``effort.jsonl``: the files the schema of ``annotator.project.schema`` covers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from annotator.project import FrameState, Project
from annotator.store import atomic_write_json
from resources.demo import write_demo_project

VIDEO = "demo_mixed"
_CACHE: dict[str, Path] = {}


def build(path: Path) -> Path:
    write_demo_project(path, num_frames=15, height=48, width=64, source=None)
    proj = Project.open(path)
    v = proj.open_video(VIDEO)
    v.write_label(1, v.read_label(1), state=FrameState.REFINED)
    t = v.new_track(28, note="extra")
    v.set_track_note(1, "sky note")
    v.set_keyframes([0, 2])
    v.log_event("test", {"x": 1})
    v.delete_track(t.id)  # a transaction: txn_begin, track_del, txn_commit
    # leave the records in the journal, as a process that has not saved yet would
    v._journal.close()
    v._lock.release()
    folder = path / "videos" / VIDEO
    atomic_write_json(folder / "review.json", {
        "decisions": [
            {"target": "track", "id": 1, "decision": "accept", "comment": "ok", "user": "u", "time": 1.0,
             "key": "", "prev_state": "", "auto": False},
            {"target": "frame", "id": 0, "decision": "reject", "comment": "", "user": "u", "time": 2.0,
             "key": "", "prev_state": "reviewed", "auto": False},
            {"target": "flag", "id": 0, "decision": "accept", "comment": "", "user": "u", "time": 3.0,
             "key": "low_iou:1:2:0", "prev_state": "", "auto": False}],
        "flags": [{"kind": "low_iou", "frame": 1, "track": 2, "score": 0.5, "reason": "r", "frames": [1],
                   "other": 0}],
        "flags_time": 4.0}, "review")
    (folder / "effort.jsonl").write_text(
        json.dumps({"t": 1.0, "op": "edit", "name": "paint", "frames": [0], "pixels": 10}) + "\n"
        + json.dumps({"t": 2.0, "op": "undo", "name": "paint", "frames": [0], "pixels": 10}) + "\n")
    return path


def copy(tmp: Path) -> Path:
    """A fresh copy of the (cached) project under ``tmp``: building it once keeps the fuzz fast."""
    key = "base"
    if key not in _CACHE or not _CACHE[key].exists():
        import tempfile

        base = Path(tempfile.mkdtemp(prefix="records_base_")) / "p.vpsproj"
        _CACHE[key] = build(base)
    dest = tmp / "p.vpsproj"
    shutil.copytree(_CACHE[key], dest)
    return dest
