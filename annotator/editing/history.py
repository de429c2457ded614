"""Undo/redo for label-map edits: a per-video command stack of compressed bounding-box patches.

Why patches: a 720p label map is 1.8 MB; a brush dab changes a few hundred pixels. Each command
keeps only the changed box of each frame it touched, before and after, zlib-compressed (label
maps are piecewise constant and compress 20-100x), so hundreds of steps fit in a few MB. The
stack is bounded both in steps and in bytes; the oldest steps go first.

Why a journal file: undo must survive closing the video. Every push/undo/redo is appended to
``<video>/history`` as a length- and CRC-framed record, so an edit costs one small append, a
crash loses at most the record being written (a torn tail is ignored on load), and the file is
rewritten compactly when it grows to twice its live size.

Each patch carries a CRC of the pixels it expects to find; if the label map was changed outside
the history (propagation, another tool) undo refuses with a clear message instead of pasting
stale pixels.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from annotator import panoptic
from annotator.store import durable_write_done

MAGIC = b"VPSHIST1\n"
_REC = struct.Struct("<II")  # payload length, crc32 of payload
_HDR = struct.Struct("<I")  # header (JSON) length inside the payload

DEFAULT_MAX_STEPS = 500
DEFAULT_MAX_BYTES = 64 << 20


def _pack(arr: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(arr, dtype=panoptic.LABEL_DTYPE).tobytes(), 1)


def region_crc(arr: np.ndarray) -> int:
    """Checksum of a label box, to detect that a frame changed outside the history."""
    return zlib.crc32(np.ascontiguousarray(arr, dtype=panoptic.LABEL_DTYPE).tobytes())


@dataclass
class FramePatch:
    """One frame's changed box before and after a command, plus its frame state and provenance."""

    frame: int
    y0: int
    x0: int
    h: int
    w: int
    before: bytes  # zlib of uint16 (h, w)
    after: bytes
    crc_before: int
    crc_after: int
    state_before: str = ""
    state_after: str = ""
    prov_before: dict[str, str] = field(default_factory=dict)
    prov_after: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, frame: int, y0: int, x0: int, before: np.ndarray, after: np.ndarray, **meta: Any) -> FramePatch:
        return cls(frame, y0, x0, before.shape[0], before.shape[1], _pack(before), _pack(after),
                   region_crc(before), region_crc(after), **meta)

    def _unpack(self, data: bytes) -> np.ndarray:
        return np.frombuffer(zlib.decompress(data), dtype=panoptic.LABEL_DTYPE).reshape(self.h, self.w)

    def before_array(self) -> np.ndarray:
        return self._unpack(self.before)

    def after_array(self) -> np.ndarray:
        return self._unpack(self.after)

    @property
    def box(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w)

    @property
    def nbytes(self) -> int:
        return len(self.before) + len(self.after) + 200

    def meta(self) -> dict[str, Any]:
        """Everything but the pixel blobs (the journal record header); no deep copy: it is serialised at once."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("before", "after")}


@dataclass
class Command:
    """One undoable user action (possibly touching several frames, e.g. a grouped copy)."""

    name: str
    patches: list[FramePatch]
    time: float = field(default_factory=time.time)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches) + 100

    @property
    def frames(self) -> list[int]:
        return sorted({p.frame for p in self.patches})


def _encode_push(cmd: Command) -> bytes:
    header = {"op": "push", "name": cmd.name, "time": cmd.time,
              "patches": [p.meta() for p in cmd.patches],
              "blobs": [n for p in cmd.patches for n in (len(p.before), len(p.after))]}
    hb = json.dumps(header, separators=(",", ":")).encode()
    return _HDR.pack(len(hb)) + hb + b"".join(b for p in cmd.patches for b in (p.before, p.after))


def _encode_simple(op: str) -> bytes:
    hb = json.dumps({"op": op}).encode()
    return _HDR.pack(len(hb)) + hb


def _frame(payload: bytes) -> bytes:
    return _REC.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> tuple[str, Command | None]:
    (hlen,) = _HDR.unpack_from(payload, 0)
    header = json.loads(payload[_HDR.size:_HDR.size + hlen])
    if header["op"] != "push":
        return header["op"], None
    pos = _HDR.size + hlen
    blobs = []
    for n in header["blobs"]:
        blobs.append(payload[pos:pos + n])
        pos += n
    patches = []
    for k, meta in enumerate(header["patches"]):
        patches.append(FramePatch(before=blobs[2 * k], after=blobs[2 * k + 1], **meta))
    return "push", Command(header["name"], patches, header["time"])


class History:
    """Bounded undo/redo stacks of :class:`Command`, optionally journaled to ``path``.

    The stack itself never touches label maps; ``EditSession`` applies the patches. ``path=None``
    keeps history in memory only (read-only videos, tests).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, max_steps: int = DEFAULT_MAX_STEPS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        self.path = Path(path) if path is not None else None
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self._undo: deque[Command] = deque()
        self._redo: list[Command] = []
        self._bytes = 0
        self.load_warning = ""  # set when a damaged journal was (partly) ignored
        self._file_bytes = 0
        if self.path is not None:
            self._load()

    # ----------------------------------------------------------------- queries

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_name(self) -> str:
        return self._undo[-1].name if self._undo else ""

    @property
    def redo_name(self) -> str:
        return self._redo[-1].name if self._redo else ""

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def redo_depth(self) -> int:
        return len(self._redo)

    @property
    def nbytes(self) -> int:
        """Compressed bytes held in memory by both stacks."""
        return self._bytes

    # ----------------------------------------------------------------- stack operations (in memory)

    def dropped_by_push(self, cmd: Command) -> list[Command]:
        """Commands that pushing ``cmd`` would forget: the redo stack and the oldest steps over the bounds.

        The session flushes the frames they touched first: crash recovery replays patches from
        the journal, so a frame whose file lags behind a forgotten patch could not be repaired.
        """
        dropped = list(self._redo)
        nbytes = self._bytes - sum(c.nbytes for c in self._redo) + cmd.nbytes
        n = len(self._undo) + 1
        for old in self._undo:
            if not (n > self.max_steps or (nbytes > self.max_bytes and n > 1)):
                break
            dropped.append(old)
            nbytes -= old.nbytes
            n -= 1
        return dropped

    def _push(self, cmd: Command) -> None:
        for c in self._redo:
            self._bytes -= c.nbytes
        self._redo.clear()
        self._undo.append(cmd)
        self._bytes += cmd.nbytes
        while len(self._undo) > self.max_steps or (self._bytes > self.max_bytes and len(self._undo) > 1):
            self._bytes -= self._undo.popleft().nbytes

    def _undo_one(self) -> Command | None:
        if not self._undo:
            return None
        cmd = self._undo.pop()
        self._redo.append(cmd)
        return cmd

    def _redo_one(self) -> Command | None:
        if not self._redo:
            return None
        cmd = self._redo.pop()
        self._undo.append(cmd)
        return cmd

    @property
    def undo_commands(self) -> list[Command]:
        """The undo stack, oldest first (the last one is undone next)."""
        return list(self._undo)

    @property
    def redo_commands(self) -> list[Command]:
        """The redo stack in redo order (the first one is redone next)."""
        return list(reversed(self._redo))

    def peek_undo(self) -> Command | None:
        return self._undo[-1] if self._undo else None

    def peek_redo(self) -> Command | None:
        return self._redo[-1] if self._redo else None

    # ----------------------------------------------------------------- journaled API

    def push(self, cmd: Command) -> None:
        """Record a new command; clears the redo stack."""
        self._push(cmd)
        self._append(_encode_push(cmd))

    def undo(self) -> Command | None:
        """Move the newest command to the redo stack and return it (the caller reverts its patches)."""
        cmd = self._undo_one()
        if cmd is not None:
            self._append(_encode_simple("undo"))
        return cmd

    def redo(self) -> Command | None:
        cmd = self._redo_one()
        if cmd is not None:
            self._append(_encode_simple("redo"))
        return cmd

    def drop_undo(self) -> None:
        """Forget the undo stack (the label maps no longer match it); redo is forgotten too."""
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0
        self._rewrite()

    def clear(self) -> None:
        self.drop_undo()

    # ----------------------------------------------------------------- persistence

    def _append(self, payload: bytes) -> None:
        if self.path is None:
            return
        rec = _frame(payload)
        if not self.path.exists() or self._file_bytes == 0:
            self._rewrite()
            return
        with self.path.open("ab") as f:
            f.write(rec)
        durable_write_done()  # counted for the test-only kill hook (annotator.store)
        self._file_bytes += len(rec)
        if self._file_bytes > 2 * self._bytes + (1 << 20):
            self._rewrite()

    def _rewrite(self) -> None:
        """Write the live stacks compactly (pushes, then undos for the redo stack), atomically."""
        if self.path is None:
            return
        redo = list(reversed(self._redo))  # oldest redo first = next-to-redo first
        parts = [MAGIC]
        parts += [_frame(_encode_push(c)) for c in list(self._undo) + redo]
        parts += [_frame(_encode_simple("undo")) for _ in redo]
        data = b"".join(parts)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        durable_write_done()
        self._file_bytes = len(data)

    def _load(self) -> None:
        assert self.path is not None
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            self.load_warning = f"undo history {self.path} is not a history file; starting a new one"
            self._rewrite()
            return
        pos = len(MAGIC)
        while pos + _REC.size <= len(data):
            n, crc = _REC.unpack_from(data, pos)
            payload = data[pos + _REC.size:pos + _REC.size + n]
            if len(payload) < n or zlib.crc32(payload) != crc:
                self.load_warning = f"undo history {self.path} ends with a damaged record (ignored)"
                break
            try:
                op, cmd = _decode(payload)
            except (ValueError, KeyError, TypeError, struct.error, zlib.error) as e:
                self.load_warning = f"undo history {self.path} has an unreadable record ({e}); later steps ignored"
                break
            if op == "push" and cmd is not None:
                self._push(cmd)
            elif op == "undo":
                self._undo_one()
            elif op == "redo":
                self._redo_one()
            pos += _REC.size + n
        else:
            if pos != len(data):
                self.load_warning = f"undo history {self.path} ends with a torn record (ignored)"
        self._file_bytes = pos
        if self.load_warning or self._file_bytes > 2 * self._bytes + (1 << 20):
            self._rewrite()
