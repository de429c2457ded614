"""On-disk reliability primitives: atomic writes, versioned JSON, the per-video journal and lock.

Every file the project writes goes through :func:`atomic_write_bytes` (temp file in the same
folder + fsync + rename + fsync of the folder), so a process killed at any instant leaves either
the old or the new file, never a torn one. Metadata changes are appended to a journal (one fsynced
JSON line each) and folded into ``video.json`` on save, so a crash loses at most the operation
that was being written.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from annotator.errors import ProjectError

SCHEMA_VERSION = 1

#: (kind, version) -> function upgrading a document of that version to version + 1
MIGRATIONS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | Path, doc: dict[str, Any], kind: str) -> None:
    """Write a JSON document stamped with its ``kind`` and the current schema version."""
    doc = dict(doc)
    doc["schema_version"] = SCHEMA_VERSION
    doc["kind"] = kind
    atomic_write_bytes(path, json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))


def read_json(path: str | Path, kind: str) -> dict[str, Any]:
    """Read a document written by :func:`atomic_write_json`, migrating older schema versions."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise ProjectError(f"{path} is unreadable or not valid JSON ({exc}); restore it from a backup") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise ProjectError(f"{path} is not a {kind} file")
    version = doc.get("schema_version")
    if not isinstance(version, int):
        raise ProjectError(f"{path} has no schema_version")
    if version > SCHEMA_VERSION:
        raise ProjectError(f"{path} was written by a newer VPS Annotator (schema {version} > {SCHEMA_VERSION}); "
                           "upgrade the tool")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get((kind, version))
        if step is None:
            raise ProjectError(f"{path}: no migration from schema {version} for {kind}")
        doc = step(doc)
        version += 1
        doc["schema_version"] = version
    return doc


class Journal:
    """Append-only log of metadata operations, one fsynced JSON line per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None
        self.count = 0

    def append(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across appends
        self._fh.write(json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.count += 1

    def replay(self) -> list[dict[str, Any]]:
        """Records of complete lines; a torn last line (crash mid-append) is dropped."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # only the last line can be torn; nothing after it was committed
        self.count = len(records)
        return records

    def clear(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.path.parent)
        self.count = 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class LockInfo:
    user: str
    host: str
    pid: int
    created: float
    heartbeat: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        return f"{self.user} on {self.host} (pid {self.pid}, since {when})"


#: a lock held from another machine counts as abandoned when its heartbeat is older than this
STALE_AFTER_S = 15 * 60


class VideoLock:
    """Exclusive lock file of one video, safe on shared (network) folders.

    Created with O_EXCL so two openers cannot both win; a lock whose process is dead (same host)
    or whose heartbeat is older than :data:`STALE_AFTER_S` (other host) is taken over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    @staticmethod
    def _me() -> LockInfo:
        now = time.time()
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            user = "unknown"
        return LockInfo(user=user, host=socket.gethostname(), pid=os.getpid(), created=now, heartbeat=now)

    def holder(self) -> LockInfo | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return LockInfo(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            # a torn lock file (writer killed between create and write): treat as stale
            return LockInfo("unknown", "unknown", -1, 0.0, 0.0)

    @staticmethod
    def is_stale(info: LockInfo) -> bool:
        if info.pid < 0:
            return True
        if info.host == socket.gethostname():
            if info.pid == os.getpid():
                return False
            try:
                return not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE
            except psutil.Error:
                return True
        return time.time() - info.heartbeat > STALE_AFTER_S

    def acquire(self) -> LockInfo | None:
        """Take the lock; returns None on success, else the live holder's info."""
        me = self._me()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self.holder()
                if info is None:
                    continue
                if not self.is_stale(info):
                    return info
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: take it over
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me.__dict__, fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
            return None
        return self.holder()

    def heartbeat(self) -> None:
        if self.held:
            info = self._me()
            old = self.holder()
            if old is not None:
                info.created = old.created
            atomic_write_bytes(self.path, json.dumps(info.__dict__).encode())

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False
