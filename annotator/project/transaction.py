"""All-or-nothing operations on a video, and the recovery of the ones a crash interrupted.

Why: an operation that writes many files (a correction over 80 frames, an association run, an
undo) must never be left half done. :class:`Transaction` (created by ``Video.transaction``)
journals a ``txn_begin`` record (its name and parameters) before any file is touched; every file
it replaces inside the video folder is first backed up into ``.txn/<id>/`` (a hard link, or an
fsynced copy) and the backup is journaled (``txn_file``) before the file is replaced; its
metadata records go to the journal as usual; ``txn_commit`` (one fsynced line) commits it.

On the next writable open, :func:`recover` **rolls back** a transaction without its commit (not
completed: its intent may depend on state a crash left half-written, while the backups restore
the exact previous state): the files are put back, the journal is cut where the transaction
began, the backups are removed, and the rollback is reported in the returned notes (the video's
``recovery_notes``; ``info`` and the window show it). A read-only opener ignores the uncommitted
records without touching any file, since the writer may still be running. A failure inside the
transaction (a full disk, a bug, a cancel) rolls it back in the process (:meth:`Transaction.abort`);
``OSError`` becomes one ``ProjectError`` line (:func:`os_error`). The journal is never compacted
inside a transaction.

The transaction works on its :class:`~annotator.project.document.VideoDocument` only (markers,
snapshot, restore, journal cut); the video keeps its caches in step (see ``Video.transaction``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import ProjectError
from annotator.project.document import Snapshot, VideoDocument
from annotator.project.model import JOURNAL_FILE, MAIN_LAYER, TXN_DIR
from annotator.store import durable_write_done, fsync_dir

#: temp files of interrupted atomic writes (``store.atomic_write_bytes``) and lock writes
_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$|^\.lock\.[0-9a-f]{12}\.tmp$")


def describe_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, (list, dict))) or "no parameters"


def os_error(exc: OSError, name: str) -> ProjectError:
    """One line for the user: what failed, where, and that nothing was changed."""
    what = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    where = f" writing {exc.filename}" if exc.filename else ""
    return ProjectError(f"{name} failed: {what}{where}; the operation was rolled back, nothing was changed"
                        + ("; free some space and retry" if exc.errno == errno.ENOSPC else ""))


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


class Transaction:
    """One all-or-nothing operation on a video's document (created by ``Video.transaction``)."""

    def __init__(self, document: VideoDocument, name: str, params: dict[str, Any]) -> None:
        self.document = document
        self.name = name
        self.params = params
        self.id = uuid.uuid4().hex[:16]
        self.folder = document.path / TXN_DIR / self.id
        self._files: list[tuple[Path, str | None]] = []
        self._seen: set[Path] = set()
        self._offset = 0
        self._snapshot: Snapshot | None = None
        self._begun = False

    @property
    def files(self) -> list[Path]:
        """Files the transaction replaced or created so far (in order)."""
        return [p for p, _ in self._files]

    def begin(self) -> None:
        d = self.document
        self._snapshot = d.snapshot()
        self._offset = d.journal_size  # where the rollback cuts, even if this very append fails
        self._begun = True
        d.append_marker({"op": "txn_begin", "txn": self.id, "name": self.name, "params": _jsonable(self.params)})
        d.in_transaction = True

    def protect(self, path: Path, copy_file: bool = False) -> None:
        """Back up ``path`` (or note it did not exist) durably, before the caller replaces it."""
        path = Path(path)
        if path in self._seen:
            return
        rel = path.relative_to(self.document.path).as_posix()
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
        self.document.append_marker({"op": "txn_file", "txn": self.id, "path": rel, "backup": backup})
        self._seen.add(path)
        self._files.append((path, backup))

    def commit(self) -> None:
        self.document.in_transaction = False
        self.document.append_marker({"op": "txn_commit", "txn": self.id})
        self._remove_backups()

    def _remove_backups(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()  # .txn itself, when no other backup is in it

    def abort(self) -> None:
        """Roll back in the process: files, journal (cut where the transaction began), memory.

        Raises ``OSError`` when a file cannot be put back; the journal then still says what to
        roll back, and the next writable open does it.
        """
        d = self.document
        d.in_transaction = False
        if self._begun:
            rollback_files(d.path, self.id, [(p.relative_to(d.path).as_posix(), b) for p, b in self._files])
            d.truncate_journal(self._offset)
        if self._snapshot is not None:
            d.restore(self._snapshot)
        self._remove_backups()


# ----------------------------------------------------------------- recovery on open
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


@dataclass
class Recovery:
    """What :func:`recover` found: notes for the user, and the frame whose label file may be stale."""

    notes: list[str]
    #: the frame of the journal's last record: label writes are journaled before the PNG is
    #: replaced (write-ahead), so only this frame's metadata may disagree with its file
    reconcile_frame: int | None = None


def recover(doc: VideoDocument) -> Recovery:
    """Apply the journal on top of ``video.json``; roll back an unfinished transaction.

    Records already folded into ``video.json`` (seq <= its seq) are skipped. Records between
    ``txn_begin`` and ``txn_commit`` are applied only once the commit is seen. A writable
    document gets a torn journal tail cut and an unfinished transaction rolled back; a read-only
    one only ignores them.
    """
    entries, torn = doc.journal.read(repair=not doc.readonly)
    notes: list[str] = []
    if torn:
        notes.append(torn if not doc.readonly else f"{torn} (ignored; read-only)")
    folded = doc.seq
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
                notes.append(f"dropped the unfinished operation {pending.name!r}")
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
        doc.apply(record)
    # new records continue after every kept record, transaction markers included, so a
    # record's seq always tells whether video.json already holds it
    doc.data["seq"] = max(doc.seq, last_seq)
    result = Recovery(notes)
    if pending is not None:
        if doc.readonly:
            notes.append(
                f"operation {pending.name!r} ({describe_params(pending.params)}) is unfinished: another "
                "process is running it, or was killed during it; its changes are not shown "
                "(it is rolled back when the video is next opened for writing)")
        else:
            rollback_files(doc.path, pending.id, [(f["path"], f.get("backup")) for f in pending.files])
            doc.truncate_journal(pending.offset)
            notes.append(
                f"rolled back the unfinished operation {pending.name!r} ({describe_params(pending.params)}), "
                f"interrupted before it completed: {len(pending.files)} files restored; nothing of it "
                "remains, run it again if it is still wanted")
    elif effective and effective[-1]["op"] == "frame" and entries and entries[-1][1] is effective[-1]:
        result.reconcile_frame = int(effective[-1]["i"])
    return result


def rollback_files(folder: Path, txn_id: str, files: list[tuple[str, str | None]]) -> None:
    """Put back every file a transaction replaced (newest first); idempotent, so a crash
    during a rollback is finished by the next open. ``files``: (path relative to the video
    folder ``folder``, backup name or None when the file did not exist before)."""
    backups = folder / TXN_DIR / txn_id
    root = folder.resolve()
    for rel, backup in reversed(files):
        target = folder / rel
        if root not in target.resolve().parents:
            raise ProjectError(f"{folder / JOURNAL_FILE} names a file outside the video folder "
                               f"({rel!r}); the journal is damaged")
        if backup is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        else:
            src = backups / backup
            if src.exists():
                os.replace(src, target)
        durable_write_done()
    for d in {(folder / rel).parent for rel, _ in files}:
        fsync_dir(d)


def clean_leftovers(folder: Path) -> None:
    """Remove what killed writers leave behind in a video folder: transaction backups of finished
    or rolled-back transactions and the temp files of interrupted atomic writes (only the lock
    holder may call this)."""
    txn_root = folder / TXN_DIR
    if txn_root.exists():
        shutil.rmtree(txn_root, ignore_errors=True)
    for sub in (folder, folder / MAIN_LAYER, folder / "undo", *_subfolders(folder / "arrays"),
                *_subfolders(folder / "layers")):
        try:
            names = [e.name for e in os.scandir(sub) if e.name.startswith(".") and e.name.endswith(".tmp")]
        except OSError:
            continue
        for name in names:
            if _TMP_RE.match(name):
                with contextlib.suppress(OSError):
                    (sub / name).unlink()


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir()]
    except OSError:
        return []
