"""Projects (datasets) and their videos: the data model of DESIGN section 2.

Layout::

    NAME.vpsproj/
      project.json                     schema version, name, taxonomy, settings
      videos/<video_id>/
        video.json                     frames, keyframes, source, tracks, frame states, log
        journal.jsonl                  metadata operations since the last save (crash recovery)
        .lock                          who has the video open for writing
        frames/<frame>.jpg             dense frames (5 fps by default)
        labels/<frame>.png             16-bit track ids, 0 = void (the main label layer)
        layers/<layer>/<frame>.png     other label layers (pre-annotation drafts, ground truth...)
        arrays/<name>/<frame>.npy      per-frame arrays such as propagation confidence
        .txn/<id>/                     backups of the files an unfinished transaction replaced

The list of videos is the set of ``videos/*/video.json`` files, so two annotators adding or
editing different videos of a shared project never write the same file.

Transactions (:meth:`Video.transaction`): an operation that writes many files (a correction over
80 frames, an association run, an undo) is all-or-nothing. It journals a ``txn_begin`` record
(its name and parameters) before any file is touched; every file it replaces inside the video
folder is first backed up into ``.txn/<id>/`` (a hard link, or an fsynced copy) and the backup is
journaled (``txn_file``) before the file is replaced; its metadata records go to the journal as
usual; ``txn_commit`` (one fsynced line) commits it. On the next writable open, a transaction
without its commit is **rolled back** (not completed: its intent may depend on state a crash
left half-written, while the backups restore the exact previous state): the files are put back,
the journal is cut where the transaction began, the backups are removed, and the rollback is
reported in :attr:`Video.recovery_notes` (``info`` and the window show it). A read-only opener
ignores the uncommitted records without touching any file, since the writer may still be running.
A failure inside the transaction (a full disk, a bug, a cancel) rolls it back in the process;
``OSError`` becomes one ``ProjectError`` line. The journal is never compacted inside a transaction.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator import panoptic
from annotator.errors import InputError, ProjectError, ReadOnlyError
from annotator.project.media import FrameCache
from annotator.store import (
    Journal,
    VideoLock,
    atomic_write_bytes,
    atomic_write_json,
    durable_write_done,
    fsync_dir,
    read_json,
)
from annotator.taxonomy import Taxonomy, vipseg_taxonomy

PROJECT_FILE = "project.json"
VIDEO_FILE = "video.json"
MAIN_LAYER = "labels"
DEFAULT_SETTINGS: dict[str, Any] = {"dense_fps": 5.0, "key_every": 5, "resize_height": 720,
                                    "checkpoints": {}, "propagation_backend": "flow"}
_VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
#: the journal is folded into video.json once it holds this many operations
COMPACT_EVERY = 500


class FrameState(str, Enum):
    """How a frame (or one track on a frame) got its labels; propagation never overwrites human work."""

    UNLABELLED = "unlabelled"
    MANUAL = "manual"
    PROPAGATED = "propagated"
    PREANNOTATED = "preannotated"
    REFINED = "refined"
    REVIEWED = "reviewed"

    @property
    def is_human(self) -> bool:
        return self in (FrameState.MANUAL, FrameState.REFINED, FrameState.REVIEWED)


@dataclass
class Track:
    """A segment id living through the video: one thing instance, or one stuff class."""

    id: int
    category_id: int
    note: str = ""


@dataclass
class SourceInfo:
    """Where the dense frames came from, so flow can read the source frames between them."""

    kind: str = "none"  # "video" | "folder" | "none"
    path: str = ""
    fps: float = 0.0
    num_source_frames: int = 0
    source_indices: list[int] = field(default_factory=list)  # source index of every dense frame
    original_size: tuple[int, int] = (0, 0)  # (height, width) before any resize
    files: list[str] = field(default_factory=list)  # frame folders: file names in natural order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceInfo:
        data = dict(data)
        data["original_size"] = tuple(data.get("original_size", (0, 0)))
        return cls(**data)


def _check_video_id(video_id: str) -> str:
    if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id) or video_id in (".", ".."):
        raise InputError(f"invalid video id {video_id!r}: use letters, digits, '_', '-' and '.'")
    return video_id


class Project:
    """A dataset folder holding many videos and one taxonomy."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path.resolve()  # absolute, so source links and locks do not depend on the cwd
        self.name: str = doc.get("name", path.stem)
        self.taxonomy: Taxonomy = Taxonomy.from_json(doc["taxonomy"])
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, **doc.get("settings", {})}

    @classmethod
    def create(cls, path: str | Path, name: str | None = None, taxonomy: Taxonomy | None = None,
               settings: dict[str, Any] | None = None) -> Project:
        path = Path(path)
        if (path / PROJECT_FILE).exists():
            raise ProjectError(f"a project already exists at {path}")
        if path.exists() and any(path.iterdir()):
            raise ProjectError(f"{path} exists and is not empty; choose a new folder")
        (path / "videos").mkdir(parents=True, exist_ok=True)
        taxonomy = taxonomy or vipseg_taxonomy()
        doc = {"name": name or path.name.removesuffix(".vpsproj"), "taxonomy": taxonomy.to_json(),
               "settings": {**DEFAULT_SETTINGS, **(settings or {})}}
        atomic_write_json(path / PROJECT_FILE, doc, "project")
        return cls(path, doc)

    @classmethod
    def open(cls, path: str | Path) -> Project:
        path = Path(path)
        if path.is_file() and path.name == PROJECT_FILE:
            path = path.parent
        if not (path / PROJECT_FILE).exists():
            raise ProjectError(f"{path} is not a VPS Annotator project (no {PROJECT_FILE}); "
                               "create one with `main.py new`")
        doc = read_json(path / PROJECT_FILE, "project")
        if "taxonomy" not in doc:
            raise ProjectError(f"{path / PROJECT_FILE} has no taxonomy")
        return cls(path, doc)

    def save(self) -> None:
        doc = {"name": self.name, "taxonomy": self.taxonomy.to_json(), "settings": self.settings}
        atomic_write_json(self.path / PROJECT_FILE, doc, "project")

    @property
    def videos_dir(self) -> Path:
        return self.path / "videos"

    @property
    def video_ids(self) -> list[str]:
        """Videos whose import finished (a video.json marked complete)."""
        return [p.parent.name for p in sorted(self.videos_dir.glob(f"*/{VIDEO_FILE}"))
                if _is_complete(p)]

    def has_video(self, video_id: str) -> bool:
        """Whether ``video_id`` is a finished video, reading only its own ``video.json``: a task on
        one video of a 3,000-video project must not read every other video's metadata."""
        if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id) or video_id in (".", ".."):
            return False
        path = self.videos_dir / video_id / VIDEO_FILE
        return path.is_file() and _is_complete(path)

    @property
    def incomplete_video_ids(self) -> list[str]:
        """Videos whose import was interrupted; they cannot be opened until re-imported."""
        return [p.parent.name for p in sorted(self.videos_dir.glob(f"*/{VIDEO_FILE}")) if not _is_complete(p)]

    def create_video(self, video_id: str, frame_names: list[str], height: int, width: int,
                     source: SourceInfo | None = None, keyframes: list[int] | None = None) -> Video:
        """Start a new video (opened for writing); it is listed once its first ``save``/``close``."""
        _check_video_id(video_id)
        if not frame_names:
            raise InputError(f"video {video_id!r} has no frames")
        if len(set(frame_names)) != len(frame_names):
            raise InputError(f"video {video_id!r}: frame names must be unique")
        bad = [n for n in frame_names if not n or "." in n or "/" in n]
        if bad:
            raise InputError(f"video {video_id!r}: frame names may not contain '.' or '/': {bad[:3]}")
        if height <= 0 or width <= 0:
            raise InputError(f"video {video_id!r}: invalid frame size {width}x{height}")
        folder = self.videos_dir / video_id
        if (folder / VIDEO_FILE).exists():
            raise ProjectError(f"video {video_id!r} already exists in {self.path}")
        folder.mkdir(parents=True, exist_ok=True)
        n = len(frame_names)
        key_every = int(self.settings.get("key_every", 5))
        keys = sorted(set(keyframes)) if keyframes is not None else list(range(0, n, key_every))
        if any(k < 0 or k >= n for k in keys):
            raise InputError(f"video {video_id!r}: keyframe index out of range 0..{n - 1}")
        source = source or SourceInfo()
        if source.path:
            with contextlib.suppress(ValueError):  # keep sources inside the project relocatable
                source = SourceInfo(**{**asdict(source), "path": str(
                    Path(source.path).resolve().relative_to(self.path.resolve()))})
        doc = {"id": video_id, "complete": False, "height": int(height), "width": int(width),
               "frame_names": list(frame_names), "keyframes": keys,
               "dense_fps": float(self.settings.get("dense_fps", 5.0)),
               "source": asdict(source), "next_track_id": 1, "tracks": [],
               "frames": [{"state": FrameState.UNLABELLED.value, "provenance": {}, "tracks": []}
                          for _ in frame_names],
               "log": []}
        atomic_write_json(folder / VIDEO_FILE, doc, "video")
        return Video(self, folder, readonly=False)

    def open_video(self, video_id: str, readonly: bool = False) -> Video:
        """Open a video; if another process holds its lock it opens read-only (see ``lock_message``)."""
        folder = self.videos_dir / _check_video_id(video_id)
        if not (folder / VIDEO_FILE).exists():
            raise ProjectError(f"no video {video_id!r} in {self.path} (videos: {', '.join(self.video_ids) or 'none'})")
        if not _is_complete(folder / VIDEO_FILE):
            raise ProjectError(f"the import of video {video_id!r} did not finish; delete {folder} and import again")
        return Video(self, folder, readonly=readonly)

    def delete_video(self, video_id: str) -> None:
        folder = self.videos_dir / _check_video_id(video_id)
        lock = VideoLock(folder / ".lock")
        holder = lock.acquire()
        if holder is not None:
            raise ProjectError(f"video {video_id!r} is open by {holder.describe()}")
        shutil.rmtree(folder)


def _is_complete(video_json: Path) -> bool:
    try:
        return bool(read_json(video_json, "video").get("complete", False))
    except ProjectError:
        return True  # a corrupt file is reported when the video is opened, not hidden


class Video:
    """One video of a project: frames, label maps, tracks and states, with journaled metadata."""

    FRAME_CACHE_BYTES = 256 * 1024 * 1024

    def __init__(self, project: Project, folder: Path, readonly: bool = False) -> None:
        self.project = project
        self.path = folder
        self.id = folder.name
        self.taxonomy = project.taxonomy
        self.lock_message = ""
        self._lock = VideoLock(folder / ".lock")
        if not readonly:
            holder = self._lock.acquire()
            if holder is not None:
                readonly = True
                self.lock_message = (f"video {self.id!r} is being edited by {holder.describe()}; "
                                     "opened read-only")
        self.readonly = readonly
        #: what opening found and repaired (a rolled-back operation, a cut journal tail), one line
        #: each, for the user to see; a writable open also logs them as a ``recovery`` log event
        self.recovery_notes: list[str] = []
        self._txn: Transaction | None = None
        self._save_deferred = False
        self._broken = False  # a rollback failed: only a reopen may repair the video
        self._journal = Journal(folder / "journal.jsonl")
        try:
            self._doc = read_json(folder / VIDEO_FILE, "video")
            self._complete_on_disk = bool(self._doc.get("complete", False))
            self._tracks = {int(t["id"]): Track(int(t["id"]), int(t["category_id"]), t.get("note", ""))
                            for t in self._doc["tracks"]}
            self._replay()
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            self._lock.release()
            raise ProjectError(f"{folder / VIDEO_FILE} or its journal is malformed ({exc!r})") from None
        except OSError as exc:
            self._lock.release()
            raise ProjectError(f"cannot open video {self.id!r}: {exc.strerror or exc} "
                               f"({exc.filename or folder})") from None
        except BaseException:
            self._lock.release()
            raise
        self._frame_cache = FrameCache(self.FRAME_CACHE_BYTES)
        self._source_reader: Any = None
        self._closed = False

    # ----------------------------------------------------------------- crash recovery
    def _replay(self) -> None:
        """Apply the journal on top of ``video.json``; roll back an unfinished transaction.

        Records already folded into ``video.json`` (seq <= its seq) are skipped. Records between
        ``txn_begin`` and ``txn_commit`` are applied only once the commit is seen.
        """
        entries, torn = self._journal.read(repair=not self.readonly)
        if torn:
            self.recovery_notes.append(torn if not self.readonly else f"{torn} (ignored; read-only)")
        folded = int(self._doc.get("seq", 0))
        effective: list[dict[str, Any]] = []
        pending: _PendingTxn | None = None
        last_seq = folded  # of the records kept (an unfinished transaction's are cut or ignored)
        for offset, r in entries:
            seq = int(r.get("seq", 0))
            if seq <= folded:
                continue
            op = r["op"]
            if pending is None or op == "txn_commit":
                last_seq = max(last_seq, seq)
            if op == "txn_begin":
                if pending is not None:  # cannot happen with one writer; never apply a torso
                    self.recovery_notes.append(f"dropped the unfinished operation {pending.name!r}")
                pending = _PendingTxn(offset, r)
            elif op == "txn_commit":
                if pending is not None and pending.id == r.get("txn"):
                    effective += pending.records
                    pending = None
            elif op == "txn_file":
                if pending is not None:
                    pending.files.append(r)
            elif pending is not None:
                pending.records.append(r)
            else:
                effective.append(r)
        for record in effective:
            self._apply(record)
        # new records continue after every kept record, transaction markers included, so a
        # record's seq always tells whether video.json already holds it
        self._doc["seq"] = max(int(self._doc.get("seq", 0)), last_seq)
        if pending is not None:
            if self.readonly:
                self.recovery_notes.append(
                    f"operation {pending.name!r} ({_describe_params(pending.params)}) is unfinished: another "
                    "process is running it, or was killed during it; its changes are not shown "
                    "(it is rolled back when the video is next opened for writing)")
            else:
                self._rollback_files(pending.id, [(f["path"], f.get("backup")) for f in pending.files])
                self._journal.truncate(pending.offset)
                self.recovery_notes.append(
                    f"rolled back the unfinished operation {pending.name!r} ({_describe_params(pending.params)}), "
                    f"interrupted before it completed: {len(pending.files)} files restored; nothing of it "
                    "remains, run it again if it is still wanted")
        elif effective and effective[-1]["op"] == "frame" and entries and entries[-1][1] is effective[-1]:
            self._reconcile_frame(effective[-1]["i"])
        if not self.readonly:
            self._clean_leftovers()
            if self.recovery_notes:  # durable, so `info` and the window can say it later too
                self._commit({"op": "log", "event": {"kind": "recovery", "time": round(time.time(), 3),
                                                     "notes": list(self.recovery_notes)}})

    def _rollback_files(self, txn_id: str, files: list[tuple[str, str | None]]) -> None:
        """Put back every file a transaction replaced (newest first); idempotent, so a crash
        during a rollback is finished by the next open."""
        folder = self.path / TXN_DIR / txn_id
        root = self.path.resolve()
        for rel, backup in reversed(files):
            target = self.path / rel
            if root not in target.resolve().parents:
                raise ProjectError(f"{self.path / 'journal.jsonl'} names a file outside the video folder "
                                   f"({rel!r}); the journal is damaged")
            if backup is None:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
            else:
                src = folder / backup
                if src.exists():
                    os.replace(src, target)
            durable_write_done()
        for d in {(self.path / rel).parent for rel, _ in files}:
            fsync_dir(d)

    def _clean_leftovers(self) -> None:
        """Remove what killed writers leave behind: transaction backups of finished or rolled-back
        transactions and the temp files of interrupted atomic writes (only the lock holder may)."""
        txn_root = self.path / TXN_DIR
        if txn_root.exists():
            shutil.rmtree(txn_root, ignore_errors=True)
        for sub in (self.path, self.path / MAIN_LAYER, self.path / "undo", *self._subfolders("arrays"),
                    *self._subfolders("layers")):
            try:
                names = [e.name for e in os.scandir(sub) if e.name.startswith(".") and e.name.endswith(".tmp")]
            except OSError:
                continue
            for name in names:
                if _TMP_RE.match(name):
                    with contextlib.suppress(OSError):
                        (sub / name).unlink()

    def _subfolders(self, name: str) -> list[Path]:
        folder = self.path / name
        try:
            return [Path(e.path) for e in os.scandir(folder) if e.is_dir()]
        except OSError:
            return []

    # ----------------------------------------------------------------- transactions
    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    @contextlib.contextmanager
    def transaction(self, name: str, params: dict[str, Any] | None = None) -> Iterator[Transaction]:
        """Make every change inside the block one all-or-nothing operation (see the module docstring).

        Nested calls join the outer transaction. On an exception everything the block changed is
        rolled back (files and metadata) and the exception is re-raised; an ``OSError`` (full disk,
        permissions) is re-raised as one ``ProjectError`` line saying nothing was changed.
        """
        if self._txn is not None:
            yield self._txn
            return
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        if self._journal.count >= COMPACT_EVERY:
            self.save()  # compact before, never inside
        txn = Transaction(self, name, dict(params or {}))
        try:
            txn.begin()
        except OSError as exc:
            txn.abort()
            raise _os_error(exc, name) from None
        self._txn = txn
        try:
            yield txn
        except BaseException as exc:
            self._txn = None
            try:
                txn.abort()
            except OSError as exc2:
                # never fold this state into video.json: the journal still says what to roll back
                self._broken = True
                raise ProjectError(f"{name} failed ({exc}) and could not be rolled back now "
                                   f"({exc2.strerror or exc2}); it will be rolled back when video "
                                   f"{self.id!r} is next opened") from None
            if isinstance(exc, OSError):
                raise _os_error(exc, name) from None
            raise
        self._txn = None
        try:
            txn.commit()
        except OSError as exc:
            txn.abort()
            raise _os_error(exc, name) from None
        if self._save_deferred:
            self._save_deferred = False
            self.save()

    def _protect(self, path: Path, copy_file: bool = False) -> None:
        """Inside a transaction: back up ``path`` (or record its absence) before it is replaced."""
        if self._txn is not None:
            self._txn.protect(path, copy_file)

    def write_file(self, path: Path, data: bytes) -> None:
        """Atomically replace a file inside the video folder (part of the current transaction)."""
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        self._protect(path)
        atomic_write_bytes(path, data)

    # ----------------------------------------------------------------- context / lifecycle
    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Video({self.id!r}, frames={self.num_frames}, tracks={len(self._tracks)})"

    def save(self) -> None:
        """Fold the journal into ``video.json`` (atomic) and keep the lock fresh."""
        if self.readonly:
            return
        if self._txn is not None:
            self._save_deferred = True  # never compact the journal inside a transaction
            return
        if self._broken:
            return
        if self._journal.size or not self._complete_on_disk:  # else video.json already says it all
            self._doc["complete"] = True
            self._doc["tracks"] = [asdict(t) for t in sorted(self._tracks.values(), key=lambda t: t.id)]
            atomic_write_json(self.path / VIDEO_FILE, self._doc, "video")
            self._complete_on_disk = True
            self._journal.clear()
        with contextlib.suppress(OSError):  # a full disk must not fail a save over its heartbeat
            self._lock.heartbeat()

    def discard(self) -> None:
        """Delete a video whose import failed, without ever listing it (import clean-up)."""
        self.readonly = True  # close() must not save: saving marks the video complete
        self.close()
        self._lock.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.readonly:
                self.save()
        finally:  # even when the save fails (full disk): the journal keeps what it did not fold
            self._journal.close()
            self._lock.release()
            self._closed = True

    # ----------------------------------------------------------------- journaled mutations
    def _commit(self, record: dict[str, Any]) -> None:
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        if self._broken:
            raise ProjectError(f"video {self.id!r} must be reopened: an operation could not be rolled back "
                               "in this session (it is rolled back when the video is opened again)")
        if self._journal.count >= COMPACT_EVERY and self._txn is None:
            self.save()  # compact first, so the record below is always in the journal when we return
        record["seq"] = int(self._doc.get("seq", 0)) + 1
        self._journal.append(record)
        self._apply(record)

    def _reconcile_frame(self, index: int) -> None:
        """After a crash, make the last journaled frame's metadata match its label PNG.

        Label writes are journaled *before* the PNG is replaced (write-ahead), so only the frame of
        the last journal record can disagree with its file: the PNG may still be the old one.
        """
        f = self._doc["frames"][index]
        path = self._label_path(index, MAIN_LAYER)
        try:
            present = [int(i) for i in panoptic.present_ids(panoptic.read_label_png(path))] if path.exists() else []
        except InputError:
            return
        if present != f["tracks"]:
            f["tracks"] = present
            f["provenance"] = {k: v for k, v in f["provenance"].items() if int(k) in present}

    def _apply(self, r: dict[str, Any]) -> None:
        """Apply one journal record to the in-memory document (used live and on crash replay)."""
        op = r["op"]
        self._doc["seq"] = int(r.get("seq", self._doc.get("seq", 0)))
        if op == "frame":
            self._doc["frames"][r["i"]] = {"state": r["state"], "provenance": r["provenance"],
                                           "tracks": r["tracks"]}
        elif op == "track":
            self._tracks[r["id"]] = Track(r["id"], r["category_id"], r.get("note", ""))
            self._doc["next_track_id"] = max(self._doc["next_track_id"], r["id"] + 1)
        elif op == "track_del":
            self._tracks.pop(r["id"], None)
        elif op == "keyframes":
            self._doc["keyframes"] = r["keyframes"]
        elif op == "log":
            self._doc["log"].append(r["event"])
        else:
            raise ProjectError(f"{self.path / 'journal.jsonl'}: unknown operation {op!r}")

    # ----------------------------------------------------------------- frames
    @property
    def num_frames(self) -> int:
        return len(self._doc["frame_names"])

    @property
    def frame_names(self) -> list[str]:
        return list(self._doc["frame_names"])

    @property
    def height(self) -> int:
        return int(self._doc["height"])

    @property
    def width(self) -> int:
        return int(self._doc["width"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def dense_fps(self) -> float:
        return float(self._doc.get("dense_fps", 5.0))

    @property
    def source(self) -> SourceInfo:
        """Source link; a path stored relative to the project (sources inside it) is resolved here,
        so a project folder can be moved or shared without losing its source frames."""
        src = SourceInfo.from_json(self._doc["source"])
        if src.path and not Path(src.path).is_absolute():
            src.path = str(self.project.path / src.path)
        return src

    @property
    def keyframes(self) -> list[int]:
        return list(self._doc["keyframes"])

    def is_keyframe(self, index: int) -> bool:
        return index in self._doc["keyframes"]

    def set_keyframes(self, keyframes: list[int]) -> None:
        keys = sorted({int(k) for k in keyframes})
        if any(k < 0 or k >= self.num_frames for k in keys):
            raise InputError(f"keyframe index out of range 0..{self.num_frames - 1}")
        self._commit({"op": "keyframes", "keyframes": keys})

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.num_frames:
            raise InputError(f"frame index {index} out of range 0..{self.num_frames - 1} in video {self.id!r}")
        return int(index)

    def frame_path(self, index: int) -> Path:
        return self.path / "frames" / f"{self._doc['frame_names'][self._check_index(index)]}.jpg"

    def write_frame_image(self, index: int, rgb: np.ndarray, quality: int = 95) -> None:
        """Store a dense frame (used by import and the demo generator)."""
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        if rgb.shape[:2] != self.shape or rgb.ndim != 3:
            raise InputError(f"frame {index}: image is {rgb.shape[1]}x{rgb.shape[0]}, video is {self.width}x{self.height}")
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise InputError(f"frame {index}: could not encode JPEG")
        self._protect(self.frame_path(index))
        atomic_write_bytes(self.frame_path(index), buf.tobytes())
        self._frame_cache.pop(index)

    def read_frame(self, index: int) -> np.ndarray:
        """Dense frame as HxWx3 uint8 RGB (read-only), decoded lazily through a byte-bounded LRU."""
        return self._frame_cache.get(index, lambda: self._decode_frame(index))

    def _decode_frame(self, index: int) -> np.ndarray:
        path = self.frame_path(index)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"frame image {path} is missing or corrupt")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        """All source frames from dense ``start`` to dense ``stop`` inclusive, at the dense size.

        Optical flow follows fast motion far better over the source's small steps than over the
        5 fps samples; when the source is gone or has nothing in between, the dense frames are used.
        """
        self._check_index(start)
        self._check_index(stop)
        if stop <= start:
            raise InputError("read_source_frames needs start < stop")
        src = self.source
        dense = [self.read_frame(i) for i in range(start, stop + 1)]
        if src.kind == "none" or len(src.source_indices) != self.num_frames:
            return dense
        a, b = src.source_indices[start], src.source_indices[stop]
        if b - a <= stop - start:
            return dense
        try:
            if self._source_reader is None:
                from annotator.project.media import SourceReader

                self._source_reader = SourceReader(src, (self.height, self.width))
            frames = list(self._source_reader.read_range(a, b))
        except (InputError, OSError, ImportError):
            return dense  # source moved or unreadable: fall back to the dense samples
        if len(frames) != b - a + 1:
            return dense
        frames[0], frames[-1] = dense[0], dense[-1]  # endpoints exactly as the annotator sees them
        return frames

    # ----------------------------------------------------------------- tracks
    @property
    def tracks(self) -> dict[int, Track]:
        return dict(self._tracks)

    def track_category(self) -> dict[int, int]:
        """``track id -> category id`` for every track (for semantic maps and metrics)."""
        return {t.id: t.category_id for t in self._tracks.values()}

    def new_track(self, category_id: int, note: str = "") -> Track:
        self.taxonomy.get(category_id)
        tid = int(self._doc["next_track_id"])
        if tid > panoptic.MAX_TRACK_ID:
            raise ProjectError(f"video {self.id!r} ran out of track ids")
        self._commit({"op": "track", "id": tid, "category_id": int(category_id), "note": note})
        return self._tracks[tid]

    def add_track(self, track_id: int, category_id: int, note: str = "") -> Track:
        """Create a track with an explicit id (dataset import); an id ever used before is refused."""
        self.taxonomy.get(category_id)
        track_id = int(track_id)
        if not 1 <= track_id <= panoptic.MAX_TRACK_ID:
            raise InputError(f"track id {track_id} out of range 1..{panoptic.MAX_TRACK_ID}")
        if track_id in self._tracks:
            raise InputError(f"duplicate track id {track_id} in video {self.id!r}")
        if track_id < self._doc["next_track_id"]:
            raise InputError(f"track id {track_id} was used before in video {self.id!r}; ids are never reused")
        self._commit({"op": "track", "id": track_id, "category_id": int(category_id), "note": note})
        return self._tracks[track_id]

    def restore_track(self, track: Track) -> Track:
        """Bring a deleted track back under its old id: for undo of a delete/merge only.

        Ids are never *reused* for a different object; undo restores the same object, so the id
        it had is the right one. Refused for an id that is live or was never issued.
        """
        self.taxonomy.get(track.category_id)
        tid = int(track.id)
        if tid in self._tracks:
            raise ProjectError(f"cannot restore track {tid}: the id is in use in video {self.id!r}")
        if not 1 <= tid < self._doc["next_track_id"]:
            raise ProjectError(f"cannot restore track {tid}: it was never created in video {self.id!r}")
        self._commit({"op": "track", "id": tid, "category_id": int(track.category_id), "note": track.note})
        return self._tracks[tid]

    def _track(self, track_id: int) -> Track:
        try:
            return self._tracks[int(track_id)]
        except KeyError:
            raise InputError(f"no track {track_id} in video {self.id!r}") from None

    def set_track_category(self, track_id: int, category_id: int) -> None:
        t = self._track(track_id)
        self.taxonomy.get(category_id)
        self._commit({"op": "track", "id": t.id, "category_id": int(category_id), "note": t.note})

    def set_track_note(self, track_id: int, note: str) -> None:
        t = self._track(track_id)
        self._commit({"op": "track", "id": t.id, "category_id": t.category_id, "note": note})

    def delete_track(self, track_id: int) -> None:
        """Remove a track and clear its pixels on every frame and layer (its id is never reused)."""
        t = self._track(track_id)
        with self.transaction("delete_track", {"track": t.id}):
            self._delete_track(t)

    def _delete_track(self, t: Track) -> None:
        for i in self.track_frames(t.id):
            label = self.read_label(i)
            label[label == t.id] = panoptic.VOID
            prov = {k: v for k, v in self.provenance(i).items() if k != t.id}
            self.write_label(i, label, provenance=prov)
        for layer in self.layers():
            for i in range(self.num_frames):
                if self.has_label(i, layer):
                    label = self.read_label(i, layer)
                    if (label == t.id).any():
                        label[label == t.id] = panoptic.VOID
                        self.write_label(i, label, layer=layer)
        self._commit({"op": "track_del", "id": t.id})

    def track_frames(self, track_id: int) -> list[int]:
        return [i for i, f in enumerate(self._doc["frames"]) if int(track_id) in f["tracks"]]

    # ----------------------------------------------------------------- labels
    def _label_path(self, index: int, layer: str) -> Path:
        name = self._doc["frame_names"][self._check_index(index)]
        if layer == MAIN_LAYER:
            return self.path / MAIN_LAYER / f"{name}.png"
        if not _VIDEO_ID_RE.match(layer):
            raise InputError(f"invalid layer name {layer!r}")
        return self.path / "layers" / layer / f"{name}.png"

    def layers(self) -> list[str]:
        """Names of the extra label layers (the main layer is ``labels``)."""
        folder = self.path / "layers"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def has_label(self, index: int, layer: str = MAIN_LAYER) -> bool:
        return self._label_path(index, layer).exists()

    def read_label(self, index: int, layer: str = MAIN_LAYER) -> np.ndarray:
        path = self._label_path(index, layer)
        if not path.exists():
            return panoptic.empty_label(self.height, self.width)
        return panoptic.read_label_png(path, self.shape)

    def write_label(self, index: int, label: np.ndarray, state: FrameState | None = None,
                    provenance: dict[int, FrameState] | None = None, layer: str = MAIN_LAYER) -> None:
        """Store a label map atomically after checking its size and that every id is a track.

        Provenance defaults to: tracks already on the frame keep theirs, new ones get ``state``.
        The frame state defaults to the old one, or ``manual`` when an unlabelled frame gets pixels.
        """
        index = self._check_index(index)
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        panoptic.check_label_array(label, self.shape)
        label = np.ascontiguousarray(label, dtype=panoptic.LABEL_DTYPE)
        present = [int(i) for i in panoptic.present_ids(label)]
        unknown = [i for i in present if i not in self._tracks]
        if unknown:
            raise InputError(f"frame {index} of video {self.id!r}: ids {unknown[:10]} are not tracks of the video; "
                             "create the tracks first")
        data = panoptic.encode_label_png(label)
        self._protect(self._label_path(index, layer))
        if layer != MAIN_LAYER:
            atomic_write_bytes(self._label_path(index, layer), data)
            return
        old_state = self.frame_state(index)
        if state is None:
            state = FrameState.MANUAL if old_state == FrameState.UNLABELLED and present else old_state
        state = FrameState(state)
        old_prov = self.provenance(index)
        if provenance is None:
            provenance = {t: old_prov.get(t, state) for t in present}
        prov_json = {str(int(t)): FrameState(s).value for t, s in provenance.items() if int(t) in present}
        old_record = {"op": "frame", "i": index, **self._doc["frames"][index]}
        # write-ahead: journal first, then the file (see _reconcile_frame)
        self._commit({"op": "frame", "i": index, "state": state.value, "provenance": prov_json, "tracks": present})
        try:
            atomic_write_bytes(self._label_path(index, layer), data)
        except BaseException:
            if self._txn is None:  # inside a transaction its rollback restores the record
                self._commit({k: v for k, v in old_record.items() if k != "seq"})
            raise

    def frame_state(self, index: int) -> FrameState:
        return FrameState(self._doc["frames"][self._check_index(index)]["state"])

    def set_frame_state(self, index: int, state: FrameState) -> None:
        f = self._doc["frames"][self._check_index(index)]
        self._commit({"op": "frame", "i": index, "state": FrameState(state).value,
                      "provenance": dict(f["provenance"]), "tracks": list(f["tracks"])})

    def provenance(self, index: int) -> dict[int, FrameState]:
        prov = self._doc["frames"][self._check_index(index)]["provenance"]
        return {int(k): FrameState(v) for k, v in prov.items()}

    def frame_tracks(self, index: int) -> list[int]:
        """Track ids with pixels on a frame (from the metadata, no image read)."""
        return list(self._doc["frames"][self._check_index(index)]["tracks"])

    def state_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {s.value: 0 for s in FrameState}
        for f in self._doc["frames"]:
            counts[f["state"]] += 1
        return counts

    # ----------------------------------------------------------------- per-frame arrays and log
    def _array_path(self, name: str, index: int) -> Path:
        if not _VIDEO_ID_RE.match(name):
            raise InputError(f"invalid array name {name!r}")
        return self.path / "arrays" / name / f"{self._doc['frame_names'][self._check_index(index)]}.npy"

    def save_array(self, name: str, index: int, array: np.ndarray) -> None:
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        self._protect(self._array_path(name, index))
        atomic_write_bytes(self._array_path(name, index), buf.getvalue())

    def load_array(self, name: str, index: int) -> np.ndarray | None:
        path = self._array_path(name, index)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._commit({"op": "log", "event": {"kind": kind, **payload}})

    @property
    def log(self) -> list[dict[str, Any]]:
        return list(self._doc["log"])

    def heartbeat(self) -> None:
        """Refresh the lock (the GUI calls this with autosave) so others see it is alive."""
        with contextlib.suppress(OSError):
            self._lock.heartbeat()


# ----------------------------------------------------------------- transactions
TXN_DIR = ".txn"
_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$|^\.lock\.[0-9a-f]{12}\.tmp$")


def _describe_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, (list, dict))) or "no parameters"


def _os_error(exc: OSError, name: str) -> ProjectError:
    """One line for the user: what failed, where, and that nothing was changed."""
    what = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    where = f" writing {exc.filename}" if exc.filename else ""
    return ProjectError(f"{name} failed: {what}{where}; the operation was rolled back, nothing was changed"
                        + ("; free some space and retry" if exc.errno == errno.ENOSPC else ""))


@dataclass
class _PendingTxn:
    """A transaction found in the journal without its commit record."""

    offset: int
    begin: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.begin.get("txn"))

    @property
    def name(self) -> str:
        return str(self.begin.get("name", "operation"))

    @property
    def params(self) -> dict[str, Any]:
        p = self.begin.get("params")
        return p if isinstance(p, dict) else {}


class Transaction:
    """One all-or-nothing operation on a video (created by :meth:`Video.transaction`)."""

    def __init__(self, video: Video, name: str, params: dict[str, Any]) -> None:
        self.video = video
        self.name = name
        self.params = params
        self.id = uuid.uuid4().hex[:16]
        self.folder = video.path / TXN_DIR / self.id
        self._files: list[tuple[Path, str | None]] = []
        self._seen: set[Path] = set()
        self._offset = 0
        self._snapshot: tuple[dict[str, Any], dict[int, Track], int] | None = None
        self._begun = False

    def _append(self, record: dict[str, Any]) -> int:
        v = self.video
        record["seq"] = int(v._doc.get("seq", 0)) + 1
        offset = v._journal.append(record)
        v._doc["seq"] = record["seq"]
        return offset

    def begin(self) -> None:
        v = self.video
        self._snapshot = (copy.deepcopy(v._doc), dict(v._tracks), v._journal.count)
        self._offset = v._journal.size  # where the rollback cuts, even if this very append fails
        self._begun = True
        self._append({"op": "txn_begin", "txn": self.id, "name": self.name, "params": _jsonable(self.params)})

    def protect(self, path: Path, copy_file: bool = False) -> None:
        """Back up ``path`` (or note it did not exist) durably, before the caller replaces it."""
        path = Path(path)
        if path in self._seen:
            return
        rel = path.relative_to(self.video.path).as_posix()
        backup: str | None = None
        if path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            backup = f"{len(self._files):06d}"
            dst = self.folder / backup
            try:
                if copy_file:
                    raise OSError("copy requested")
                os.link(path, dst)  # no space used; the writer replaces the path, the link keeps the old file
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    dst.unlink()
                shutil.copyfile(path, dst)
                with open(dst, "rb") as fh:
                    os.fsync(fh.fileno())
            fsync_dir(self.folder)
            durable_write_done()
        self._append({"op": "txn_file", "txn": self.id, "path": rel, "backup": backup})
        self._seen.add(path)
        self._files.append((path, backup))

    def commit(self) -> None:
        self._append({"op": "txn_commit", "txn": self.id})
        self._remove_backups()

    def _remove_backups(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()  # .txn itself, when no other backup is in it

    def abort(self) -> None:
        """Roll back in the process: files, journal (cut where the transaction began), memory."""
        v = self.video
        if self._begun:
            v._rollback_files(self.id, [(p.relative_to(v.path).as_posix(), b) for p, b in self._files])
            v._journal.truncate(self._offset)
        if self._snapshot is not None:
            doc, tracks, count = self._snapshot
            v._doc, v._tracks = doc, tracks
            v._journal.count = count
        for path, _ in self._files:
            if path.parent.name == "frames":
                with contextlib.suppress(ValueError):
                    v._frame_cache.pop(v._doc["frame_names"].index(path.stem))
        self._remove_backups()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
