"""On-disk reliability primitives: atomic writes, versioned JSON, the per-video journal and lock.

Every file the project writes goes through :func:`atomic_write_bytes` (temp file in the same
folder + fsync + rename + fsync of the folder), so a process killed at any instant leaves either
the old or the new file, never a torn one. Metadata changes are appended to a journal (one fsynced
JSON line each) and folded into ``video.json`` on save, so a crash loses at most the operation
that was being written; multi-file operations are made all-or-nothing on top of this by
``annotator.project.Video.transaction``. A torn journal tail is cut on the next writable open
(:meth:`Journal.read`), and the lock's stale takeover is atomic (:class:`VideoLock`).

Test-only: ``VPS_TEST_KILL_AFTER_WRITES=N`` makes the process SIGKILL itself right after its N-th
durable write (see :func:`durable_write_done`); the kill harness uses it, the tool never sets it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from annotator.errors import ProjectError

SCHEMA_VERSION = 1

#: (kind, version) -> function upgrading a document of that version to version + 1
MIGRATIONS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


#: test-only fault injection: when set to N, the process SIGKILLs itself right after its N-th durable
#: write (an atomic file replace, a journal append, a transaction backup or lock write). The kill
#: harness (tests/kill_writer.py, tests/test_reliability_*.py) uses it to stop a writer at exact
#: points; it is read once at import and never set by the tool itself.
KILL_AFTER_WRITES_ENV = "VPS_TEST_KILL_AFTER_WRITES"
_kill_after: int | None = None
_writes_done = 0


def _init_kill_hook() -> None:
    global _kill_after
    raw = os.environ.get(KILL_AFTER_WRITES_ENV, "").strip()
    if raw:
        try:
            _kill_after = int(raw)
        except ValueError:
            _kill_after = None


_init_kill_hook()


def durable_write_done() -> None:
    """Count one durable write; under the test-only kill hook, die right after the N-th one.

    Every module that makes a durable change on disk without :func:`atomic_write_bytes` calls this
    after it, so the kill harness can stop the process at every write point.
    """
    global _writes_done
    _writes_done += 1
    if _kill_after is not None and _writes_done >= _kill_after:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def writes_done() -> int:
    """Durable writes made by this process so far (tests use it to size the kill range)."""
    return _writes_done


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


fsync_dir = _fsync_dir  # public: callers that rename or link files make the folder entry durable


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
    durable_write_done()


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
    """Append-only log of metadata operations, one fsynced JSON line per operation.

    Why the tail is cut on reopen: a process killed mid-append leaves a partial last line. If the
    next session appended after it, its first record would be glued onto the fragment and lost,
    and every later record after it would be unreadable. :meth:`read` with ``repair=True`` (the
    writer that holds the lock) truncates the file at the end of the last complete line, fsyncs it
    and reports it; a damaged line *followed by* complete ones is not a crash artefact but damage,
    and is an error naming the line, never silently skipped.
    """

    def __init__(self, path: Path,
                 check: Callable[[list[tuple[int, dict[str, Any]]]], None] | None = None) -> None:
        self.path = path
        #: called by :meth:`read` with ``(line number, record)`` of every complete record before
        #: anything is cut; it raises to refuse a journal whose records break their schema
        self.check = check
        self._fh = None
        self.count = 0
        #: bytes of complete records in the file (the offset the next record starts at)
        self.size = 0

    def append(self, record: dict[str, Any]) -> int:
        """Append one record durably; returns the byte offset it starts at."""
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across appends
        offset = self._fh.seek(0, os.SEEK_END)
        try:
            self._fh.write(json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except BaseException:
            # a partial line (full disk) must not stay: the next record would be glued onto it
            with contextlib.suppress(OSError):
                self.truncate(offset)
            raise
        self.count += 1
        self.size = self._fh.tell()
        durable_write_done()
        return offset

    def read(self, repair: bool = False) -> tuple[list[tuple[int, dict[str, Any]]], str]:
        """``(offset, record)`` of every complete line, and a note when a torn tail was found.

        ``repair``: cut the torn tail off the file (only the lock holder may). Raises
        ``ProjectError`` naming the line when a line other than the last is not a record.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.count = self.size = 0
            return [], ""
        except OSError as exc:
            raise ProjectError(f"cannot read {self.path} ({exc.strerror or exc})") from None
        lines = raw.split(b"\n")
        entries: list[tuple[int, dict[str, Any]]] = []
        numbered: list[tuple[int, dict[str, Any]]] = []
        pos = 0
        for n, line in enumerate(lines[:-1], start=1):
            start, pos = pos, pos + len(line) + 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
            except ValueError:
                raise ProjectError(
                    f"{self.path}, line {n}: damaged journal record (not a complete JSON record) before "
                    f"later records; nothing was changed. Restore the file from a backup, or move it aside "
                    f"to drop the changes made since the video was last saved") from None
            entries.append((start, record))
            numbered.append((n, record))
        if self.check is not None:
            self.check(numbered)  # before any repair: a refused journal is left as it is
        note = ""
        tail = lines[-1]
        if tail:  # no newline at the end: the last append was interrupted
            note = (f"{self.path.name}: cut a torn last record ({len(tail)} bytes) left by an interrupted "
                    "write; the operation it belonged to had not completed")
            if repair:
                self.truncate(pos)
        self.count = len(entries)
        self.size = pos
        return entries, note

    def replay(self) -> list[dict[str, Any]]:
        """Records of complete lines; a torn last line (crash mid-append) is ignored (not cut)."""
        return [r for _, r in self.read(repair=False)[0]]

    def truncate(self, offset: int) -> None:
        """Cut the file at ``offset`` (durably): drops a torn tail or an aborted transaction.

        Cut to nothing, the file is removed: a refused or rolled-back operation leaves no empty
        ``journal.jsonl`` behind (a refusal changes nothing on disk).
        """
        self.close()
        if offset == 0 and self.path.exists():
            self.clear()
            durable_write_done()
            return
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.size = offset
        durable_write_done()

    def clear(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.path.parent)
        self.count = 0
        self.size = 0

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
    token: str = ""  # unique per acquisition: tells one holder's lock from a later one's

    def describe(self) -> str:
        if self.pid == -3:
            return "nobody known: .lock is a folder, not a lock file (remove it if empty)"
        if self.pid < 0:
            return "an unknown holder (unreadable lock file, written just now or damaged)"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        return f"{self.user} on {self.host} (pid {self.pid}, since {when})"


#: a lock held from another machine counts as abandoned when its heartbeat is older than this
STALE_AFTER_S = 15 * 60
#: a lock file that cannot be parsed counts as "being written" (not stale) for this long
GARBAGE_GRACE_S = 10.0
#: how long an opener waits for another process's takeover of a stale lock
TAKEOVER_WAIT_S = 10.0


class VideoLock:
    """Exclusive lock file of one video, safe on shared (network) folders.

    Creation is atomic with its content (written to a temp file, then hard-linked to ``.lock``,
    which fails if it exists; O_EXCL where links are unsupported), so no opener ever sees a
    half-written lock of a live process. A lock whose process is dead (same host; also when the
    pid was reused by a process started after the lock) or whose heartbeat is older than
    :data:`STALE_AFTER_S` (other host) is taken over.

    Why the takeover is serialised: "check it is stale, then delete it" is two steps; a process
    delayed between them would delete the *new* lock another process just created, and both would
    write. The takeover therefore runs under an exclusive ``flock`` on the side file
    ``.lock.takeover`` (released by the kernel if the process dies, so it never goes stale), and
    re-reads the lock under it: only the exact lock that was inspected (same bytes) is removed.
    """

    #: test hook: seconds to sleep between deciding a lock is stale and taking it over
    takeover_pause = 0.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False
        self._mine: LockInfo | None = None

    @staticmethod
    def _me() -> LockInfo:
        now = time.time()
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            user = "unknown"
        return LockInfo(user=user, host=socket.gethostname(), pid=os.getpid(), created=now, heartbeat=now,
                        token=uuid.uuid4().hex)

    def _check_not_folder(self) -> None:
        if self.path.is_dir():
            raise ProjectError(f"{self.path} is a folder, not a lock file; if nobody is editing this video, "
                               f"remove it (`main.py unlock ... --force` removes an empty one)")

    def _read_raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            self._check_not_folder()
            raise
        except OSError as exc:
            raise ProjectError(f"cannot read lock file {self.path} ({exc.strerror or exc})") from None

    def _parse(self, raw: bytes) -> LockInfo:
        try:
            data = json.loads(raw.decode("utf-8"))
            info = LockInfo(**{k: data[k] for k in ("user", "host", "pid", "created", "heartbeat")},
                            token=str(data.get("token", "")))
            info.pid = int(info.pid)
            info.created, info.heartbeat = float(info.created), float(info.heartbeat)
            return info
        except (ValueError, TypeError, KeyError, AttributeError):
            # garbage (damaged disk, foreign file): "unknown" holder, stale unless just written
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                age = 0.0
            return LockInfo("unknown", "unknown", -1 if age > GARBAGE_GRACE_S else -2, 0.0, 0.0)

    def holder(self) -> LockInfo | None:
        """Who holds the lock (None: nobody); a ``.lock`` folder is reported, not raised, here."""
        if self.path.is_dir():
            return LockInfo("unknown", "unknown", -3, 0.0, 0.0)
        raw = self._read_raw()
        return None if raw is None else self._parse(raw)

    @staticmethod
    def advice(info: LockInfo, unlock: str = "main.py unlock PROJECT --video VIDEO --force") -> str:
        """What the user can do about a lock that is not taken over automatically; ``unlock``: the
        command that breaks it, spelled out for this video.

        Why ``unlock`` is named whenever the holder may not be editing: a lock whose pid now belongs
        to an unrelated process, one whose heartbeat lies in the future, and a damaged lock file
        never expire by themselves, and there is no "there" to close a damaged lock in.
        """
        if info.pid == -3:
            return f"if nobody is editing this video, remove the folder (`{unlock}` removes an empty one)"
        if info.pid < 0:
            return (f"the lock file is damaged or unreadable, so it names no holder to ask; if nobody is "
                    f"editing this video, break it with `{unlock}`")
        if info.heartbeat > time.time() + 60:
            return (f"its heartbeat lies in the future (the clock of {info.host} is set wrong), so it never "
                    f"expires; if nobody is editing this video there, break it with `{unlock}`")
        if info.host == socket.gethostname():
            return (f"close it there and retry; if process {info.pid} is not editing this video (its pid "
                    f"was reused after a restart), break the lock with `{unlock}`")
        return (f"close it there and retry (it is taken over {STALE_AFTER_S // 60} min after its last "
                f"heartbeat); if it is not running any more, break the lock with `{unlock}`")

    @staticmethod
    def is_stale(info: LockInfo) -> bool:
        if info.pid == -1:
            return True  # unreadable for a while: nobody is writing it
        if info.pid < 0:
            return False  # unreadable but just written (give its writer a moment), or a folder
        if info.host == socket.gethostname():
            if info.pid == os.getpid():
                return False
            try:
                proc = psutil.Process(info.pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return True
                # the pid was reused by a process started after the lock: its holder is gone
                return proc.create_time() > info.created + 2.0
            except psutil.Error:
                return True
        return time.time() - info.heartbeat > STALE_AFTER_S

    def _create(self, me: LockInfo) -> bool:
        """Create the lock with its content in one step; False if a lock exists."""
        data = json.dumps(me.__dict__).encode()
        tmp = self.path.with_name(f".lock.{me.token[:12]}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError:  # no hard links on this file system: exclusive create instead
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _fsync_dir(self.path.parent)
        durable_write_done()
        return True

    @contextlib.contextmanager
    def _takeover_guard(self) -> Iterator[bool]:
        """Exclusive flock on ``.lock.takeover``; yields False if it could not be had in time."""
        import fcntl

        side = self.path.with_name(self.path.name + ".takeover")
        fd = os.open(side, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            deadline = time.monotonic() + TAKEOVER_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        yield False
                        return
                    time.sleep(0.02)
                except OSError:  # flock unsupported (some network file systems): best effort
                    break
            yield True
        finally:
            os.close(fd)  # releases the flock

    def _remove_if_same(self, raw: bytes) -> bool:
        """Under the takeover guard: remove the lock only if it still holds exactly ``raw``."""
        if self._read_raw() != raw:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.path.parent)
        return True

    def acquire(self) -> LockInfo | None:
        """Take the lock; returns None on success, else the live holder's info.

        Raises ``ProjectError`` when ``.lock`` is a folder (it can be no holder's lock).
        """
        self._check_not_folder()
        me = self._me()
        for _ in range(20):
            if self._create(me):
                self.held, self._mine = True, me
                return None
            raw = self._read_raw()
            if raw is None:
                continue  # released meanwhile: try again
            info = self._parse(raw)
            if not self.is_stale(info):
                return info
            if self.takeover_pause:
                time.sleep(self.takeover_pause)
            with self._takeover_guard() as got:
                if not got:
                    return info
                if self._remove_if_same(raw) and self._create(me):
                    self.held, self._mine = True, me
                    return None
        return self.holder()

    def force_break(self) -> LockInfo | None:
        """Remove the lock whoever holds it (``unlock --force``); returns the holder it removed."""
        if self.path.is_dir():
            try:
                self.path.rmdir()
            except OSError:
                raise ProjectError(f"{self.path} is a folder with files in it, not a lock file; "
                                   "look at what it holds and remove it by hand") from None
            return LockInfo("unknown", "unknown", -1, 0.0, 0.0)
        with self._takeover_guard():
            raw = self._read_raw()
            if raw is None:
                return None
            self._remove_if_same(raw)
            return self._parse(raw)

    def _still_mine(self) -> bool:
        info = self.holder() if self._mine is not None else None
        return info is not None and self._mine is not None and info.token == self._mine.token \
            and info.pid == self._mine.pid

    def heartbeat(self) -> None:
        if self.held and self._mine is not None:
            if not self._still_mine():
                self.held = False  # broken by `unlock --force`: never overwrite another holder's lock
                return
            self._mine.heartbeat = time.time()
            atomic_write_bytes(self.path, json.dumps(self._mine.__dict__).encode())

    def release(self) -> None:
        if self.held:
            if self._still_mine():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False
