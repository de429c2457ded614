"""Frame access: the decoded-frame cache, the source-frame reader and image file checks.

Public API::

    SourceReader(source: SourceInfo, size=(h, w) | None)   # .read(i) -> RGB, .read_range(a, b) -> list, .close()
    FrameCache(max_bytes)                                  # byte-bounded LRU: .get(key, loader)
    image_truncation(data) -> str                          # why JPEG/PNG bytes are cut short ("" if intact)
    image_size(path) -> (h, w)                             # from the header, InputError if unreadable
    project_frame_size(path) -> (h, w)                     # same, refusing a truncated project frame
    natural_key(name) -> tuple                             # "f2" < "f10"

Why a reader of the *source*: annotators label 5 fps dense frames, while the flow propagator
wants every source frame in between; the import (:mod:`annotator.project.importing`) keeps the
link to the source (path, fps, source index of each dense frame) and :class:`SourceReader`
re-reads any source range on demand, at the dense frame size.

Why image checks: decoders fill the missing rows of a cut-off JPEG with grey without an error,
so a damaged frame would be imported, checked or exported as a plausible image; the checks here
look for the end marker instead.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotator.errors import InputError
from annotator.project.model import SourceInfo

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically ("frame2" before "frame10")."""
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", name) if p)


def resize_to(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or rgb.shape[:2] == tuple(size):
        return rgb
    h, w = size
    interp = cv2.INTER_AREA if h < rgb.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)


class FrameCache:
    """Byte-bounded LRU of decoded frames: bounded memory however long the video is."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, loader: Callable[[], np.ndarray]) -> np.ndarray:
        """Cached value of ``key``, calling ``loader()`` on a miss; the array is made read-only."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return item
        self.misses += 1
        item = loader()
        item.setflags(write=False)
        self.put(key, item)
        return item

    def put(self, key: Hashable, item: np.ndarray) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._items[key] = item
        self.nbytes += item.nbytes
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def pop(self, key: Hashable) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0


# ----------------------------------------------------------------- reading inputs
def _read_image(path: Path) -> np.ndarray:
    """RGB uint8 of an image file, or InputError naming the file."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.exists() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        raise InputError(f"cannot read image {path}: the file is missing, empty or corrupt; "
                         "replace or remove it and import again")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_truncation(data: bytes) -> str:
    """Why encoded JPEG/PNG bytes are cut short ("" when complete or another format).

    JPEG: after the last start-of-scan marker (FFDA) an end-of-image marker (FFD9) must follow;
    entropy-coded data never contains either marker, and data some cameras append after the image
    comes after that EOI, so the check has no false alarms on intact files. PNG: the IEND chunk.
    """
    if data[:2] == b"\xff\xd8":
        sos = data.rfind(b"\xff\xda")
        if sos < 0 or data.find(b"\xff\xd9", sos) < 0:
            return "the JPEG data is cut short (no end-of-image marker)"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and data.rfind(b"IEND") < 0:
        return "the PNG data is cut short (no IEND chunk)"
    return ""


def read_source_image(path: Path) -> np.ndarray:
    """Like :func:`_read_image`, but a truncated file is an error (import of frame folders)."""
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    why = image_truncation(data)
    if why:
        raise InputError(f"image {path} is damaged: {why}; it would import with missing rows. Replace or remove "
                         "it and import again")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise InputError(f"cannot read image {path}: the file is missing, empty or corrupt; "
                         "replace or remove it and import again")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def header_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, reading only its header when Pillow can."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return int(h), int(w)
    except Exception:  # noqa: BLE001 - fall back to a full decode, which reports the error
        img = _read_image(path)
        return int(img.shape[0]), int(img.shape[1])


def list_images(folder: Path) -> list[str]:
    files = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
             and not p.name.startswith(".")]
    return sorted(files, key=natural_key)


def open_capture(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open video {path}: the file is corrupt or its codec is not supported "
                         "by OpenCV/FFmpeg; convert it to mp4 (H.264) or extract its frames to a folder")
    return cap


class SourceReader:
    """Random access to the source frames of a video, at the dense frame size.

    ``read(i)`` and ``read_range(a, b)`` (inclusive) return HxWx3 uint8 RGB. Video files are read
    sequentially after one seek, and the decoder position is remembered, so consecutive ranges
    (propagating forward) never seek again. Raises InputError if the source is gone or short.
    Not thread-safe: give each worker thread its own reader (the decoder has one position).
    """

    def __init__(self, source: SourceInfo, size: tuple[int, int] | None = None) -> None:
        self.source = source
        self.size = tuple(size) if size is not None else None
        self.kind = source.kind
        self.path = Path(source.path)
        self.num_frames = int(source.num_source_frames)
        self._cap: cv2.VideoCapture | None = None
        self._pos = -1  # index of the next frame the capture will return
        if self.kind == "folder":
            if not self.path.is_dir():
                raise InputError(f"source folder {self.path} is gone; source frames are unavailable")
            self._files = list(source.files) or list_images(self.path)
            self.num_frames = len(self._files)
        elif self.kind == "video":
            if not self.path.is_file():
                raise InputError(f"source video {self.path} is gone; source frames are unavailable")
        else:
            raise InputError(f"this video has no source to read (kind {self.kind!r})")

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _check(self, i: int) -> int:
        if not 0 <= i < self.num_frames:
            raise InputError(f"source frame {i} out of range 0..{self.num_frames - 1} of {self.path}")
        return int(i)

    def _seek(self, i: int) -> cv2.VideoCapture:
        if self._cap is None:
            self._cap = open_capture(self.path)
            self._pos = 0
        if self._pos != i:
            if i > self._pos and i - self._pos <= 16:  # short hop: decode forward, cheaper than a seek
                while self._pos < i:
                    if not self._cap.grab():
                        raise InputError(f"source video {self.path} ends before frame {i}")
                    self._pos += 1
            else:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                self._pos = i
        return self._cap

    def _next(self, i: int) -> np.ndarray:
        cap = self._seek(i)
        ok, img = cap.read()
        if not ok or img is None:
            self._pos = -1
            raise InputError(f"cannot decode frame {i} of source video {self.path}")
        self._pos = i + 1
        return resize_to(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), self.size)

    def read(self, i: int) -> np.ndarray:
        i = self._check(i)
        if self.kind == "folder":
            return resize_to(_read_image(self.path / self._files[i]), self.size)
        return self._next(i)

    def read_range(self, a: int, b: int) -> list[np.ndarray]:
        """Source frames ``a..b`` inclusive."""
        a, b = self._check(a), self._check(b)
        if b < a:
            raise InputError(f"empty source range {a}..{b}")
        return [self.read(i) for i in range(a, b + 1)]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file from its header only (cheap), or InputError."""
    if not path.exists():
        raise InputError(f"frame image {path} is missing; restore the file (or re-import the video)")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - any decoder failure is one clear message
        raise InputError(f"frame image {path} is not a readable image (corrupt or truncated)") from None
    return int(h), int(w)


def project_frame_size(path: Path) -> tuple[int, int]:
    """(height, width) of a frame file the project wrote itself, refusing a truncated file.

    Why: a header read alone accepts a JPEG cut short (disk full, interrupted copy of a project),
    and decoders then fill the missing rows with grey without an error, so the export would copy
    or re-encode a damaged frame silently. The project writes its frames with OpenCV, which
    never appends data after the end marker, so checking the last bytes is exact and costs one
    small read (a full decode would halve the export speed).
    """
    hw = image_size(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 12))
            tail = fh.read()
            fh.seek(0)
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read frame image {path}: {exc.strerror}") from None
    ok = True
    if head[:2] == b"\xff\xd8":
        ok = tail.endswith(b"\xff\xd9")
    elif head == b"\x89PNG\r\n\x1a\n":
        ok = tail[:8] == b"\x00\x00\x00\x00IEND"
    if not ok:
        raise InputError(f"frame image {path} is truncated (no end marker); re-import the video or restore the file")
    return hw
