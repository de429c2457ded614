"""Project overview: one row per video (progress, review, lock, human effort) and its CSV (Qt-free).

Human effort, which no peer tool reports, comes from timestamps of human actions:

* label edits: ``videos/<id>/effort.jsonl``, one line per undoable edit command, appended by
  ``annotator.project.record_edit`` (the editing session calls it when it records a command),
  plus the timestamps still held by the undo history file
  (``videos/<id>/history``; bounded to its last steps, so it alone under-counts long sessions);
* review decisions and corrections: ``review`` events of the video log carry a ``time``.

Active editing time is the sum of the gaps between consecutive actions that are at most
``IDLE_GAP_S`` (2 minutes): a pause longer than that counts as idle, not as work. The share of
pixels drawn by people vs accepted from machines is read from per-track provenance of the
current label maps: pixels of tracks a person drew or refined on that frame (manual, refined)
vs pixels a machine made and nobody redrew (propagated, pre-annotated); tracks marked
``reviewed`` at import (ground truth) are of unknown origin and counted in neither share.

Everything here reads a video without its lock (read-only open) and writes nothing but
``effort.jsonl`` (from ``record_edit``, in the lock holder's process).
"""

from __future__ import annotations

import csv
import io
import json
import struct
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import AnnotatorError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import EFFORT_FILE, FrameState, read_effort_log
from annotator.project import record_edit as record_edit  # re-exported: the effort log's writer
from annotator.review import REVIEW_FILE, ReviewStore
from annotator.store import VideoLock, atomic_write_bytes

HISTORY_FILE = "history"  # = annotator.editing.session.HISTORY_FILE (the editing face does not export it)
IDLE_GAP_S = 120.0
#: video log kinds that are human actions (counted as edit actions); their events may carry ``time``
HUMAN_LOG_KINDS = ("correction", "undo", "review")


# ----------------------------------------------------------------- the undo history's timestamps
def history_times(path: Path) -> list[float]:
    """Timestamps of the edit commands in an undo history file, without loading its pixel blobs.

    Parses the record framing of ``annotator.editing.history`` read-only (the History class may
    rewrite the file on load, which a reader without the lock must not do).
    """
    try:
        data = path.read_bytes()
    except OSError:
        return []
    magic = b"VPSHIST1\n"
    if not data.startswith(magic):
        return []
    rec, hdr = struct.Struct("<II"), struct.Struct("<I")
    pos, out = len(magic), []
    while pos + rec.size <= len(data):
        n, _crc = rec.unpack_from(data, pos)
        payload = data[pos + rec.size:pos + rec.size + n]
        if len(payload) < n or len(payload) < hdr.size:
            break
        (hlen,) = hdr.unpack_from(payload, 0)
        try:
            header = json.loads(payload[hdr.size:hdr.size + hlen])
        except ValueError:
            break
        if header.get("op") == "push" and isinstance(header.get("time"), (int, float)):
            out.append(float(header["time"]))
        pos += rec.size + n
    return out


# ----------------------------------------------------------------- effort
@dataclass
class Effort:
    active_s: float  # active editing time (gaps <= IDLE_GAP_S)
    actions: int  # human actions: edits, corrections, undos, review decisions
    pixels_edited: int  # pixels changed by recorded edits (repeated changes count again)
    first: float  # epoch seconds of the first / last recorded action (0: none)
    last: float


def active_time(times: Iterable[float], idle_gap: float = IDLE_GAP_S) -> float:
    """Sum of the gaps between consecutive actions that are not longer than ``idle_gap``."""
    t = np.sort(np.asarray(list(times), np.float64))
    if t.size < 2:
        return 0.0
    gaps = np.diff(t)
    return float(gaps[gaps <= idle_gap].sum())


def video_effort(folder: Path, log: list[dict[str, Any]]) -> Effort:
    """Effort of one video from its effort log, undo history and video log."""
    recs = read_effort_log(folder)
    edit_times = {round(float(r["t"]), 6) for r in recs if r.get("op", "edit") == "edit"}
    other_times = [float(r["t"]) for r in recs if r.get("op", "edit") != "edit"]
    hist = {round(t, 6) for t in history_times(folder / HISTORY_FILE)}
    edits = edit_times | hist  # the same command is in both: one timestamp
    log_times = [float(e["time"]) for e in log if isinstance(e.get("time"), (int, float))]
    human_log = [e for e in log if e.get("kind") in HUMAN_LOG_KINDS]
    times = sorted(edits) + other_times + log_times
    pixels = sum(int(r.get("pixels", 0)) for r in recs)
    return Effort(active_time(times), len(edits) + len(other_times) + len(human_log), pixels,
                  min(times) if times else 0.0, max(times) if times else 0.0)


def pixel_shares(video: Any, cancel: CancelToken | None = None) -> tuple[float, float]:
    """(share drawn by people, share made by machines and kept) of the labelled pixels of a video."""
    human_states = {FrameState.MANUAL, FrameState.REFINED}
    machine_states = {FrameState.PROPAGATED, FrameState.PREANNOTATED}
    human = machine = total = 0
    for i in range(video.num_frames):
        check_cancel(cancel)
        if video.frame_state(i) == FrameState.UNLABELLED or not video.frame_tracks(i):
            continue
        label = video.read_label(i)
        area = np.bincount(label.ravel())
        prov = video.provenance(i)
        total += int(area[1:].sum())
        for t, s in prov.items():
            if t < len(area):
                if s in human_states:
                    human += int(area[t])
                elif s in machine_states:
                    machine += int(area[t])
    return (human / total, machine / total) if total else (0.0, 0.0)


# ----------------------------------------------------------------- rows
@dataclass
class VideoRow:
    """One line of the project overview table."""

    video: str
    frames: int
    keyframes: int
    keyframes_annotated: int  # keyframes with human labels (manual, refined, reviewed)
    propagated: int
    refined: int
    reviewed: int
    tracks: int
    open_flags: int | None  # None: flags never computed for this video
    lock_holder: str  # "" when nobody has it open for writing
    last_edit: float  # epoch seconds (0: unknown)
    active_minutes: float
    edit_actions: int
    pixels_edited: int
    human_pixel_share: float | None  # None when not computed (pixels=False)
    machine_pixel_share: float | None
    error: str = ""  # a video that could not be read: why

    def as_csv(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_edit"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_edit)) if self.last_edit else ""
        d["active_minutes"] = round(self.active_minutes, 2)
        for k in ("human_pixel_share", "machine_pixel_share"):
            d[k] = "" if d[k] is None else round(d[k], 4)
        d["open_flags"] = "" if self.open_flags is None else self.open_flags
        return d


CSV_FIELDS = [f.name for f in fields(VideoRow)]


def _lock_holder(folder: Path) -> str:
    lock = VideoLock(folder / ".lock")
    info = lock.holder()
    if info is None or VideoLock.is_stale(info):
        return ""
    return info.describe()


def _last_edit(folder: Path, effort: Effort) -> float:
    stamps = [effort.last]
    for name in ("video.json", "journal.jsonl", HISTORY_FILE, EFFORT_FILE, REVIEW_FILE):
        try:
            stamps.append((folder / name).stat().st_mtime)
        except OSError:
            continue
    return max(stamps)


def video_row(project: Any, video_id: str, pixels: bool = True, cancel: CancelToken | None = None) -> VideoRow:
    """The overview row of one video (opened read-only: never waits for or takes its lock)."""
    folder = project.videos_dir / video_id
    try:
        video = project.open_video(video_id, readonly=True)
    except AnnotatorError as exc:
        return VideoRow(video_id, 0, 0, 0, 0, 0, 0, 0, None, _lock_holder(folder), 0.0, 0.0, 0, 0, None, None,
                        error=str(exc))
    try:
        counts = video.state_counts()
        human = {FrameState.MANUAL, FrameState.REFINED, FrameState.REVIEWED}
        keys = video.keyframes
        annotated = sum(1 for k in keys if video.frame_state(k) in human)
        try:
            open_flags = ReviewStore(video).open_flags()
        except AnnotatorError:
            open_flags = None
        effort = video_effort(folder, video.log)
        shares = pixel_shares(video, cancel) if pixels else (None, None)
        return VideoRow(video_id, video.num_frames, len(keys), annotated, counts[FrameState.PROPAGATED.value],
                        counts[FrameState.REFINED.value], counts[FrameState.REVIEWED.value], len(video.tracks),
                        None if open_flags is None else len(open_flags), _lock_holder(folder),
                        _last_edit(folder, effort), effort.active_s / 60, effort.actions, effort.pixels_edited,
                        shares[0], shares[1])
    finally:
        video.close()


def overview_rows(project: Any, pixels: bool = True, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> list[VideoRow]:
    """Rows of every video of a project, in id order. ``pixels=False`` skips reading label maps
    (the pixel shares are then None), which makes the table of a large project instant."""
    ids = project.video_ids
    rows = []
    for n, vid in enumerate(ids):
        check_cancel(cancel)
        rows.append(video_row(project, vid, pixels, cancel))
        if progress:
            progress(n + 1, len(ids), vid)
    return rows


def write_overview_csv(path: str | Path, rows: list[VideoRow]) -> Path:
    """The overview table as CSV (written atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow(r.as_csv())
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path
