"""The project's label-map encoding: one uint16 track id per pixel, 0 = unlabelled (void).

A label map gives exactly one owner per pixel, so stuff and things share it and the panoptic
invariant holds by construction. Category and instance come from the video's track table
(``annotator.project.Video.tracks``); the VIPSeg raw encoding lives in ``annotator.formats.vipseg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from annotator.errors import InputError

LABEL_DTYPE = np.uint16
VOID = 0
MAX_TRACK_ID = int(np.iinfo(LABEL_DTYPE).max)


def empty_label(height: int, width: int) -> np.ndarray:
    """An all-void label map of the given size."""
    return np.zeros((height, width), dtype=LABEL_DTYPE)


def encode_label_png(label: np.ndarray) -> bytes:
    """16-bit single-channel PNG bytes of a label map (lossless)."""
    check_label_array(label)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(label, dtype=LABEL_DTYPE),
                           [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InputError("could not encode label map as PNG")
    return buf.tobytes()


def decode_label_png(data: bytes, where: str = "label map") -> np.ndarray:
    """Decode bytes written by :func:`encode_label_png`; corrupt or wrong-mode data is an InputError."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if arr is None:
        raise InputError(f"{where}: not a readable PNG (file is corrupt or truncated)")
    if arr.ndim != 2:
        raise InputError(f"{where}: label maps must be single-channel, got {arr.shape[2]} channels")
    if arr.dtype == np.uint8:
        arr = arr.astype(LABEL_DTYPE)
    if arr.dtype != LABEL_DTYPE:
        raise InputError(f"{where}: label maps must be 8- or 16-bit, got {arr.dtype}")
    return arr


def read_label_png(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label PNG, checking its size against ``expected_shape`` (height, width)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read label map {path}: {exc.strerror}") from None
    label = decode_label_png(data, str(path))
    if expected_shape is not None and label.shape != tuple(expected_shape):
        raise InputError(f"{path}: label map is {label.shape[1]}x{label.shape[0]}, "
                         f"the video is {expected_shape[1]}x{expected_shape[0]}")
    return label


def check_label_array(label: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    """Raise InputError unless ``label`` is a 2-D integer array that fits uint16 (and has ``shape``)."""
    if not isinstance(label, np.ndarray) or label.ndim != 2:
        raise InputError(f"a label map must be a 2-D array, got {getattr(label, 'shape', type(label))}")
    if not np.issubdtype(label.dtype, np.integer):
        raise InputError(f"a label map must hold integer track ids, got {label.dtype}")
    if label.dtype != LABEL_DTYPE and label.size and (label.min() < 0 or label.max() > MAX_TRACK_ID):
        raise InputError(f"track ids must be in 0..{MAX_TRACK_ID}")
    if shape is not None and label.shape != tuple(shape):
        raise InputError(f"label map is {label.shape[1]}x{label.shape[0]}, expected {shape[1]}x{shape[0]}")


def present_ids(label: np.ndarray) -> np.ndarray:
    """Sorted track ids present in a label map, void excluded."""
    counts = np.bincount(label.ravel(), minlength=1)
    ids = np.flatnonzero(counts)
    return ids[ids != VOID]


def id_areas(label: np.ndarray) -> dict[int, int]:
    """Pixel count of every track present (void excluded)."""
    counts = np.bincount(label.ravel(), minlength=1)
    ids = np.flatnonzero(counts)
    return {int(i): int(counts[i]) for i in ids if i != VOID}


def unknown_ids(label: np.ndarray, known: set[int] | Mapping[int, object]) -> list[int]:
    """Track ids present in ``label`` that are not in ``known``."""
    return [int(i) for i in present_ids(label) if int(i) not in known]


def lookup_table(mapping: Mapping[int, int], default: int, dtype=np.int32, size: int | None = None) -> np.ndarray:
    """A dense array ``lut`` with ``lut[key] = mapping[key]`` and ``default`` elsewhere (for fast remaps)."""
    size = size if size is not None else (max(mapping, default=0) + 1)
    lut = np.full(size, default, dtype=dtype)
    for k, v in mapping.items():
        lut[int(k)] = v
    return lut


def remap(label: np.ndarray, mapping: Mapping[int, int], default: int | None = None) -> np.ndarray:
    """Replace ids by ``mapping`` in one vectorised lookup; unmapped ids keep their value unless ``default``."""
    size = max(int(label.max(initial=0)), max(mapping, default=0)) + 1
    lut = np.arange(size, dtype=np.int64) if default is None else np.full(size, default, dtype=np.int64)
    for k, v in mapping.items():
        lut[int(k)] = v
    return lut[label].astype(label.dtype if default is None or default >= 0 else np.int64)


def semantic_map(label: np.ndarray, track_category: Mapping[int, int], void: int = -1) -> np.ndarray:
    """Per-pixel category id (int32) from a label map and a ``track id -> category id`` table."""
    lut = lookup_table(track_category, void, np.int32, size=max(int(label.max(initial=0)) + 1,
                                                                  max(track_category, default=0) + 1))
    lut[VOID] = void
    return lut[label]


def boundaries(label: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boolean mask of pixels whose 4-neighbourhood holds another id (segment outlines)."""
    edge = np.zeros(label.shape, dtype=bool)
    diff_v = label[1:, :] != label[:-1, :]
    diff_h = label[:, 1:] != label[:, :-1]
    edge[1:, :] |= diff_v
    edge[:-1, :] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    if thickness > 1:
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((thickness, thickness), np.uint8)).astype(bool)
    return edge


def track_color(track_id: int, category_color: tuple[int, int, int], isthing: bool) -> tuple[int, int, int]:
    """Display colour: stuff uses its class colour; things a deterministic per-track variation of it."""
    if not isthing:
        return tuple(int(c) for c in category_color)  # type: ignore[return-value]
    rng = np.random.default_rng(track_id * 7919 + 17)
    jitter = rng.integers(-60, 61, size=3)
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(category_color, jitter, strict=True))  # type: ignore[return-value]


def colorize(label: np.ndarray, colors: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    """RGB image of a label map given ``track id -> colour`` (void and unknown ids are black)."""
    size = max(int(label.max(initial=0)), max(colors, default=0)) + 1
    lut = np.zeros((size, 3), dtype=np.uint8)
    for tid, col in colors.items():
        lut[int(tid)] = col
    lut[VOID] = 0
    return lut[label]


def blend_overlay(image: np.ndarray, label: np.ndarray, colors: Mapping[int, tuple[int, int, int]],
                  alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """Image with a semi-transparent panoptic overlay and white instance outlines (void stays clear)."""
    color_img = colorize(label, colors)
    out = image.astype(np.float32)
    labelled = label != VOID
    out[labelled] = (1 - alpha) * out[labelled] + alpha * color_img[labelled]
    out = out.astype(np.uint8)
    if outline:
        out[boundaries(label)] = 255
    return out
