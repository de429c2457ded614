"""The project's label-map encoding: one uint16 track id per pixel, 0 = unlabelled (void).

A label map gives exactly one owner per pixel, so stuff and things share it and the panoptic
invariant holds by construction. Category and instance come from the video's track table
(``annotator.project.Video.tracks``); the VIPSeg raw encoding lives in ``annotator.formats.vipseg``.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Iterable, Mapping
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


def track_color(track_id: int, category_color: tuple[int, int, int], isthing: bool,
                instance: int | None = None) -> tuple[int, int, int]:
    """Display colour: stuff uses its class colour; a thing the shade of its class colour for its
    ``instance`` (0 = first instance of the class in the video; see :func:`instance_shades`), or,
    without ``instance``, a shade picked by track id. Display only: exports have their own colours."""
    if not isthing:
        return tuple(int(c) for c in category_color)  # type: ignore[return-value]
    k = int(instance) if instance is not None else max(int(track_id) - 1, 0)
    shades = instance_shades(tuple(int(c) for c in category_color), k + 1)  # type: ignore[arg-type]
    return shades[k]


def display_colors(tracks: Iterable[tuple[int, int, tuple[int, int, int], bool]]) -> dict[int, tuple[int, int, int]]:
    """``track id -> display colour`` from ``(track id, category id, class colour, isthing)`` rows.

    Instances of one class get distinct shades of the class colour, numbered by track id within the
    class (as CVAT and X-AnyLabeling colour instances); stuff keeps its class colour."""
    rows = sorted(tracks)
    rank: dict[int, int] = {}
    out: dict[int, tuple[int, int, int]] = {}
    for tid, cid, color, isthing in rows:
        k = rank.get(cid, 0)
        if isthing:
            rank[cid] = k + 1
        out[int(tid)] = track_color(tid, color, isthing, instance=k)
    return out


#: hue offsets (fraction of the colour wheel), lightness levels and saturation steps of the shades
_HUE_STEPS = (0.0, -0.05, 0.05, -0.10, 0.10)
_LIGHT_STEPS = (0.25, 0.35, 0.45, 0.55, 0.65, 0.78)


@functools.lru_cache(maxsize=512)
def instance_shades(color: tuple[int, int, int], n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` shades of ``color``, each as far (RGB distance) from the earlier ones as the candidate
    shades allow: the class colour first, then farthest-point picks among hue (+-36 deg), lightness and
    saturation variations. Deterministic; the first shades of a longer list equal a shorter one's."""
    h, lum, s = colorsys.rgb_to_hls(*(c / 255.0 for c in color))
    sats = (s, min(1.0, s + 0.35)) if s < 0.5 else (s, s - 0.35)
    cands = [tuple(int(c) for c in color)]
    for sat in sats:
        for dh in _HUE_STEPS:
            for li in _LIGHT_STEPS:
                rgb = colorsys.hls_to_rgb((h + dh) % 1.0, li, sat)
                cands.append(tuple(int(round(c * 255)) for c in rgb))
    pts = np.array(cands, np.float64)
    chosen = [0]
    dist = np.linalg.norm(pts - pts[0], axis=1)
    while len(chosen) < n:
        i = int(np.argmax(dist))
        if dist[i] <= 0:  # every candidate used: repeat the list
            chosen.extend(chosen[:n - len(chosen)])
            break
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[i], axis=1))
    return tuple(cands[i] for i in chosen[:n])  # type: ignore[misc]


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
