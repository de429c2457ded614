"""Where an export writes: a staging folder next to the destination, moved into place at the end.

Why a staging folder: a dataset export is hundreds of files; a crash, a cancel or a bad frame half
way must never leave a half-written dataset that training code would silently read. Everything is
written into ``.<name>.staging-<pid>-<random>/`` next to the destination (same file system, so the
final rename is atomic) and only moved into place when every file was written. Every export
carries a marker file (``.vps_annotator_export``) at its root: ``--overwrite`` replaces only a
folder holding it, or an empty one, and never the cwd, ``/``, home or the project. Leftovers of
killed exports (staging folders, a previous export moved aside) are cleaned up or put back by
the next export to the same destination (:func:`recover_output`). The deterministic writers
(:func:`dumps_json`, :func:`write_lines`) keep two exports of one project byte-identical.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.project import check_export_marker
from annotator.store import atomic_write_bytes

#: file written at the root of every export; ``--overwrite`` replaces only folders holding it (or empty ones)
EXPORT_MARKER = ".vps_annotator_export"
_MARKER_BYTES = b'{"tool": "vps-annotator", "kind": "dataset export"}\n'
_STAGING_RE = re.compile(r"^\.(?P<name>.+)\.(?P<what>staging|old)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
#: staging folders of exports running in this process (a stale folder may carry our pid from a past boot)
_ACTIVE: set[str] = set()


def _refuse_dangerous(raw: str | Path, protect: Path | None) -> Path:
    """The absolute destination, or InputError for one whose replacement would destroy user data.

    Why: ``export --out "$OUT" --overwrite`` with an unset variable passed ``""``, which is the
    current folder, and replaced it with the dataset. The current folder (or a folder containing
    it), ``/``, the home folder (or a parent of it) and the project (itself, a parent or a
    subfolder) are never an output.
    """
    if isinstance(raw, str) and not raw.strip():
        raise InputError("the output folder is empty (an unset shell variable?); give --out a folder path")
    out = Path(raw).absolute()
    dest = out.resolve()
    cwd = Path.cwd().resolve()
    if dest == cwd or dest in cwd.parents:
        raise InputError(f"output {raw} is the current folder or contains it; choose a new folder for --out")
    home = Path.home().resolve()
    if dest == Path(dest.anchor) or dest == home or dest in home.parents:
        raise InputError(f"output {raw} is the root or the home folder (or contains it); choose a new folder "
                         "for --out")
    if protect is not None:
        prot = Path(protect).resolve()
        if dest == prot or dest in prot.parents:
            raise InputError(f"output {raw} would replace the project {protect} or a folder holding it; "
                             "choose another --out")
        if prot in dest.parents:
            raise InputError(f"output {raw} is inside the project {protect}; choose an --out outside the project")
    return out


def is_previous_export(folder: Path) -> bool:
    """True when ``folder`` holds the marker file this tool writes at the root of every export, intact
    (``annotator.project.check_export_marker``: a stray or damaged file is no marker)."""
    marker = Path(folder) / EXPORT_MARKER
    if not marker.is_file():
        return False
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return not check_export_marker(doc, str(marker))


def check_output_dir(out: str | Path, overwrite: bool, protect: Path | None = None) -> None:
    """Refuse a destination that must not be written or replaced (checked before any work).

    - never the current folder, ``/``, home, or the project ``protect`` (see ``_refuse_dangerous``);
    - an existing folder must be empty, or with ``overwrite`` hold a previous export of this tool
      (the :data:`EXPORT_MARKER` file): ``--overwrite`` never deletes a folder of other files.
    """
    out = _refuse_dangerous(out, protect)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {out} is not empty; choose an empty or new folder, "
                             "or pass --overwrite to replace a previous export")
        if not is_previous_export(out):
            raise InputError(f"output folder {out} is not empty and holds no export of this tool (no "
                             f"intact {EXPORT_MARKER} file); --overwrite only replaces a previous export or an empty "
                             "folder: delete its contents yourself or choose another --out")


def _owner_alive(pid: int | None, path: Path) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return str(path) in _ACTIVE
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process vanished: not alive
        return False


def recover_output(out: str | Path) -> list[str]:
    """Clean up after exports to ``out`` that were killed; returns what was done, for the user.

    - ``.<name>.staging-<pid>-<id>`` folders of dead processes (a killed export, or the previous
      export being deleted after a swap) are removed;
    - a kill between the two renames of the fallback replacement (file systems without an atomic
      exchange) left ``out`` missing and the previous export in ``.<name>.old-<pid>-<id>``: it is
      moved back, so the old or the new export is always in place, never neither.
    """
    out = Path(out).absolute()
    parent = out.parent
    notes: list[str] = []
    if not parent.is_dir():
        return notes
    stale: dict[str, list[Path]] = {"staging": [], "old": []}
    for p in parent.iterdir():
        m = _STAGING_RE.match(p.name)
        if not m or m.group("name") != out.name or not p.is_dir():
            continue
        pid = int(m.group("pid")) if m.group("pid") else None
        if not _owner_alive(pid, p):
            stale[m.group("what")].append(p)
    olds = sorted(stale["old"], key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not out.exists():
        os.replace(olds.pop(0), out)
        notes.append(f"restored the previous export {out}: the export replacing it was killed between its renames")
    for p in stale["staging"] + olds:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        shutil.rmtree(p, ignore_errors=True)
        notes.append(f"removed {p.name} ({size / 1e6:.1f} MB) left behind by a killed export")
    return notes


def prepare_output(out: str | Path, overwrite: bool, protect: Path | None = None,
                   notes: list[str] | None = None) -> list[str]:
    """Recover killed exports to ``out``, then check it (the CLI calls this before any work).

    What the recovery did goes into ``notes`` (also returned) even when the check then refuses.
    """
    notes = notes if notes is not None else []
    _refuse_dangerous(out, protect)
    notes.extend(recover_output(out))
    check_output_dir(out, overwrite, protect)
    return notes


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    res = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE))
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool = False, protect: Path | None = None,
                  notes: list[str] | None = None) -> Iterator[Path]:
    """Yield a staging folder that replaces ``out`` only if the ``with`` body finishes.

    On any exception (including cancel and KeyboardInterrupt) the staging folder is deleted and
    ``out`` is left untouched. With ``overwrite`` an existing export at ``out`` is replaced as a
    whole, by one atomic exchange of the two folders where the file system supports it (then the
    old export, now under the staging name, is deleted; a kill meanwhile leaves it for the next
    run to delete). ``notes`` receives what the recovery of earlier killed exports did.
    """
    prepare_output(out, overwrite, protect, notes)
    out = Path(out).absolute()
    staging = out.parent / f".{out.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:  # e.g. a parent of --out is a file, or no permission
        raise InputError(f"cannot create the output folder {out}: {exc.strerror}; choose another --out") from None
    _ACTIVE.add(str(staging))
    try:
        write_bytes(staging / EXPORT_MARKER, _MARKER_BYTES)
        yield staging
        check_output_dir(out, overwrite)  # someone may have written there meanwhile
        if out.exists() and _exchange(staging, out):
            pass  # out is the new export; staging now holds the old one, deleted below
        elif out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            _ACTIVE.add(str(old))
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(old, out)
                raise
            finally:
                _ACTIVE.discard(str(old))
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _ACTIVE.discard(str(staging))


def dumps_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (key order as built, no timestamps) so exports are byte-identical."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj))


def write_lines(path: Path, lines: list[str]) -> None:
    """One item a line, every line (the last too) ending in a newline."""
    atomic_write_bytes(path, "".join(f"{ln}\n" for ln in lines).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Plain write for files inside a staging folder (the folder rename is the atomic step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
