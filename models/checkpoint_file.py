"""A checkpoint file as bytes and as a state dict: reading it safely, hashing it, comparing keys.

Why apart from the registry (:mod:`models.weights`): these steps know nothing about model kinds,
and every kind needs them the same way. :func:`read_checkpoint` turns each way a file can be
wrong (missing, empty, a folder, a PNG or an HTML page, truncated, pickled Python objects) into a
:class:`CheckpointError` that names the file, the problem and the fix, instead of a torch
traceback; it never unpickles anything but plain weights (``weights_only=True``) and never
downloads.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annotator.errors import InputError


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, truncated or belongs to another model kind."""


_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def not_regular(path: Path) -> str:
    """What ``path`` is when it exists but is no regular file ("a FIFO", "a device", ...), else "".

    Why: ``/dev/urandom`` reports size 0 and never ends, and reading a FIFO blocks until someone
    writes; both must be refused by name before a byte is read, not called "empty" or hang.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def _require_regular(path: Path) -> None:
    what = not_regular(path)
    if what:
        raise CheckpointError(f"checkpoint path is {what}, not a regular file: {path}; point it at the "
                              "checkpoint file itself (.pth/.pt)")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, memoised on (path, size, mtime) since SAM-H weighs 2.5 GB."""
    p = Path(path).resolve()
    _require_regular(p)
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return digest


def unwrap_state_dict(obj: Any) -> dict[str, Any] | None:
    """The state dict inside a loaded checkpoint, or ``None`` if ``obj`` holds none.

    Accepts the common layouts: a plain ``{name: tensor}`` mapping, one nested under ``state_dict``,
    ``model``, ``network`` or ``model_state_dict``, and DataParallel's ``module.`` prefix (removed).
    """
    if not isinstance(obj, Mapping):
        return None
    for key in ("state_dict", "model", "network", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            obj = inner
            break
    if not obj or not all(isinstance(k, str) for k in obj):
        return None
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def read_checkpoint(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: the file's top-level object.

    Contract: returns whatever the file holds (usually a dict of tensors, or a dict nesting one);
    raises :class:`CheckpointError` for a missing, empty or folder path, a device or FIFO (not a
    regular file), a file that is neither a
    zip archive nor a pickle (checked from its first bytes, so a PNG or web page is named as such),
    a truncated or corrupt archive, or Python objects that are not plain weights.
    """
    import torch

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or configure another one)")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a folder, not a file: {path}")
    _require_regular(path)  # /dev/urandom, a FIFO: never read (endless, or blocks)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}; the download or copy failed, get it again")
    with path.open("rb") as f:
        magic = f.read(16)
    is_zip_magic = magic[:2] == b"PK"
    if not is_zip_magic and not magic.startswith(b"\x80"):
        # neither a zip archive (torch.save) nor a pickle (legacy torch.save): never unpickle it
        raise CheckpointError(f"not a PyTorch checkpoint: {path} looks like {_file_kind(magic)}; "
                              "configure the .pth/.pt file itself")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint is truncated ({size} bytes): {path}; the download or copy was "
                              f"interrupted, get the file again ({e})") from e
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "weights_only" in msg or "Weights only load failed" in msg:
            raise CheckpointError(f"checkpoint {path} contains Python objects that are not plain weights and "
                                  "is refused for safety (only tensors/dicts are loaded); re-save it with "
                                  "torch.save(model.state_dict(), path)") from e
        if is_zip_magic:
            raise CheckpointError(f"checkpoint is truncated or corrupt: {path} ({msg})") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({msg})") from e
    except RuntimeError as e:
        msg = str(e)
        if is_zip_magic or "zip archive" in msg or "central directory" in msg:
            raise CheckpointError(f"checkpoint is truncated or corrupt ({size} bytes): {path}; get the file "
                                  f"again ({msg.split('.')[0] if msg else 'unreadable archive'})") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({msg.splitlines()[0] if msg else e})") from e
    except Exception as e:  # noqa: BLE001 - the unpickler raises anything (KeyError, ValueError...) on junk
        if is_zip_magic:
            raise CheckpointError(f"checkpoint is truncated or corrupt ({size} bytes): {path}") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({type(e).__name__}: {e})") from e


_FILE_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive (unpack it first)"),
               (b"7z\xbc\xaf", "a 7-zip archive (unpack it first)"), (b"Rar!", "a RAR archive (unpack it first)"),
               (b"\x93NUMPY", "a NumPy .npy array"), (b"\x89HDF", "an HDF5 file (Keras/TensorFlow weights)"))


def _file_kind(magic: bytes) -> str:
    """A short guess of what a file is from its first bytes (for "not a checkpoint" messages)."""
    for prefix, what in _FILE_MAGIC:
        if magic.startswith(prefix):
            return what
    head = magic.lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return "an HTML page (a download link that returned a web page instead of the file)"
    if magic[:1] in (b"{", b"["):
        return "a JSON/text file"
    try:
        magic.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "a text file"


def compare_state_dict(expected: Mapping[str, Any], sd: Mapping[str, Any]) -> str | None:
    """What keeps ``sd`` from loading strictly into a model whose state dict is ``expected``, or ``None``."""

    def shape(v: Any) -> str:
        if not hasattr(v, "shape"):
            return type(v).__name__
        return "x".join(str(int(n)) for n in v.shape) if len(v.shape) else "scalar"

    def listing(items: list[str], limit: int = 5) -> str:
        return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")

    wrong = [f"'{k}' ({shape(sd[k])}, expected {shape(v)})" for k, v in expected.items()
             if k in sd and (not hasattr(sd[k], "shape") or tuple(sd[k].shape) != tuple(v.shape))]
    unexpected = [f"'{k}'" for k in sd if k not in expected]
    missing = [f"'{k}'" for k in expected if k not in sd]
    problems = [f"{what} {listing(items)}" for what, items in
                (("wrong shape for", wrong), ("unexpected keys", unexpected), ("missing keys", missing)) if items]
    return "; ".join(problems) or None
