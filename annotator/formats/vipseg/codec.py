"""VIPSeg's raw panomask encoding, in one place: raw values, segment ids and colours.

Raw value of a segment: stuff = category + 1, thing = (category + 1) * 100 + instance (0..99 per
class and video). Segment ids (the RGB masks, R + 256 G + 65536 B) are a pure function of the
video's tracks - stuff: the category colour; things: a deterministic jitter of it, unique in the
video and never a stuff colour - so two exports of the same project are byte-identical. The
export (:mod:`.export`), the import (:mod:`.importer`), Cityscapes-VPS and the metrics read the
encoding from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.taxonomy import Taxonomy

RAW_STUFF_LIMIT = 125      # raw 1..124: stuff of category v - 1
RAW_THING_LIMIT = 12500    # raw (category + 1) * 100 + instance < 12500
MAX_INSTANCES = 100        # instance numbers 0..99 per thing class and video
MAX_CATEGORY_ID = 123
_BAD = 0xFFFF  # raw-LUT sentinel for ids that are not tracks


def encode_raw(category_id: int, isthing: bool, instance: int = 0) -> int:
    """Raw panomask value of a segment: stuff = category + 1, thing = (category + 1) * 100 + instance."""
    if not 0 <= category_id <= MAX_CATEGORY_ID:
        raise InputError(f"category id {category_id} cannot be encoded in VIPSeg raw masks (ids 0..{MAX_CATEGORY_ID})")
    if not isthing:
        return category_id + 1
    if not 0 <= instance < MAX_INSTANCES:
        raise InputError(f"instance {instance} out of range 0..{MAX_INSTANCES - 1}")
    return (category_id + 1) * 100 + instance


def rgb_id(color: tuple[int, int, int] | np.ndarray) -> int:
    """COCO/VIPSeg panoptic id of a colour: R + 256 G + 65536 B."""
    r, g, b = (int(c) for c in color)
    return r + 256 * g + 65536 * b


def id_to_rgb(seg_id: int) -> tuple[int, int, int]:
    return seg_id & 255, (seg_id >> 8) & 255, (seg_id >> 16) & 255


def rgb_image_to_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map: output pixel x takes input ``floor((x + 0.5) * in / out)``
    (OpenCV ``INTER_NEAREST_EXACT``), for uint8/uint16/int16/int32 maps.

    The size is VIPSeg's ``change2_720p.py`` rule (:func:`annotator.formats.common.resized_shape`:
    height 720, width ``int(720 * w / h)``, applied up or down, so 854x480 becomes 1281x720, not
    1280). That script resizes masks with PIL NEAREST, whose fixed-point arithmetic rounds exact
    pixel-centre ties down; this function takes the exact centre. The two agree on downscales
    such as 1080p -> 720p and differ by one source pixel on tie rows/columns of upscales (480p ->
    720p); see ``docs/formats.md``. Scoring resizes a prediction with this same function, so a
    720p export scores 100 against its own project.
    """
    if label.shape == (height, width):
        return label
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def thing_color(base: tuple[int, int, int], category_id: int, instance: int, used: set[int]) -> tuple[int, int, int]:
    """A colour near the class colour, unique in the video and never a stuff colour (deterministic)."""
    for attempt in range(10000):
        rng = np.random.default_rng([category_id, instance, attempt])
        spread = 48 + attempt // 50 * 16
        col = np.clip(np.asarray(base, np.int64) + rng.integers(-spread, spread + 1, 3), 0, 255)
        sid = rgb_id(col)
        if sid != 0 and sid not in used:
            return int(col[0]), int(col[1]), int(col[2])
    raise InputError(f"no free colour for class {category_id} instance {instance}")  # pragma: no cover


def stuff_segment_ids(taxonomy: Taxonomy) -> dict[int, int]:
    """Segment id of every stuff class: its colour, the same in every video of every export.

    Decided over the whole taxonomy (lowest class id keeps a shared colour, the others get a
    deterministic jitter; black is void), not per video: deciding per video gave a class a
    different id in videos where the class sharing its colour was absent.
    """
    out: dict[int, int] = {}
    taken: set[int] = {rgb_id(c.color) for c in taxonomy if not c.isthing}
    for cat in sorted((c for c in taxonomy if not c.isthing), key=lambda c: c.id):
        sid = rgb_id(cat.color)
        if sid == 0 or sid in out.values():
            sid = rgb_id(thing_color(cat.color, cat.id, 1000, taken))
            taken.add(sid)
        out[cat.id] = sid
    return out


@dataclass
class VideoEncoding:
    """Per-video mapping of track ids to raw values and segment ids (RGB ids)."""

    raw: dict[int, int]            # track id -> raw panomask value
    segment_id: dict[int, int]     # raw value -> RGB segment id
    category: dict[int, int]       # raw value -> category id
    notes: dict[int, tuple[int, str]]  # raw value -> (track id, note) for the sidecar
    warnings: list[str]

    def luts(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Track-id-indexed lookup tables: raw uint16 (sentinel for non-tracks) and BGRA packed in uint32.

        One uint32 gather per pixel is ~8x faster than indexing an (N, 3) table.
        """
        size = max(size, max(self.raw, default=0) + 1)
        raw = np.full(size, _BAD, np.uint16)
        raw[0] = 0
        bgra = np.zeros((size, 4), np.uint8)
        for tid, v in self.raw.items():
            raw[tid] = v
            r, g, b = id_to_rgb(self.segment_id[v])
            bgra[tid] = (b, g, r, 0)
        return raw, bgra.view(np.uint32).ravel()


def encode_video(video_id: str, tracks: dict[int, int], taxonomy: Taxonomy,
                 notes: dict[int, str] | None = None) -> VideoEncoding:
    """Raw values and segment ids for the tracks present in the exported frames of one video.

    Instances are numbered 0..99 per thing class in track-id order, so the numbering is stable
    across frames and exports. More than 100 instances of a class is an error naming video,
    class and count (nothing is written: callers run this before writing).
    """
    notes = notes or {}
    stuff_ids = {rgb_id(c.color) for c in taxonomy if not c.isthing}
    by_class: dict[int, list[int]] = {}
    raw: dict[int, int] = {}
    warnings: list[str] = []
    for tid in sorted(tracks):
        cid = tracks[tid]
        if cid not in taxonomy:
            raise InputError(f"video {video_id!r}: track {tid} has unknown class id {cid} (not in the project "
                             "taxonomy); set its class before exporting")
        if not 0 <= cid <= MAX_CATEGORY_ID:
            raise InputError(f"video {video_id!r}: class id {cid} of track {tid} cannot be encoded in VIPSeg "
                             f"raw masks (ids 0..{MAX_CATEGORY_ID})")
        if taxonomy.get(cid).isthing:
            if (cid + 1) * 100 < RAW_STUFF_LIMIT:
                # raw 100..124 decode as stuff 99..123: thing class 0 cannot be stored in VIPSeg masks
                raise InputError(f"video {video_id!r}: thing class {taxonomy.get(cid).name!r} has id {cid}; VIPSeg "
                                 f"raw masks encode things as (id+1)*100+instance, which for id 0 collides with "
                                 "stuff values. Give thing classes ids >= 1 in the taxonomy")
            by_class.setdefault(cid, []).append(tid)
        else:
            raw[tid] = encode_raw(cid, False)
    for cid, tids in by_class.items():
        if len(tids) > MAX_INSTANCES:
            raise InputError(f"video {video_id!r}: class {taxonomy.get(cid).name!r} (id {cid}) has {len(tids)} "
                             f"instances; VIPSeg encodes at most {MAX_INSTANCES} per class and video. Merge "
                             "tracks or split the video before exporting")
        for inst, tid in enumerate(tids):
            raw[tid] = encode_raw(cid, True, inst)
    stuff_tracks: dict[int, list[int]] = {}
    for tid, v in raw.items():
        if v < RAW_STUFF_LIMIT:
            stuff_tracks.setdefault(v, []).append(tid)
    for v, tids in stuff_tracks.items():
        if len(tids) > 1:
            warnings.append(f"video {video_id!r}: stuff tracks {tids} of class {taxonomy.get(v - 1).name!r} "
                            "become one segment (VIPSeg has one segment per stuff class)")
    segment_id: dict[int, int] = {}
    category: dict[int, int] = {}
    stuff_sid = stuff_segment_ids(taxonomy)
    used: set[int] = stuff_ids | set(stuff_sid.values())
    for v in sorted(set(raw.values())):
        cid = v - 1 if v < RAW_STUFF_LIMIT else v // 100 - 1
        cat = taxonomy.get(cid)
        category[v] = cid
        sid = stuff_sid[cid] if v < RAW_STUFF_LIMIT else rgb_id(thing_color(cat.color, cid, v % 100, used))
        used.add(sid)
        segment_id[v] = sid
    sidecar = {}
    for tid in sorted(raw, reverse=True):  # the lowest track id of a merged stuff segment wins
        sidecar[raw[tid]] = (tid, notes.get(tid, ""))
    return VideoEncoding(raw, segment_id, category, sidecar, warnings)


def decode_raw_value(v: int, categories: Taxonomy | Mapping[int, bool]) -> tuple[int, int] | str:
    """``(category id, instance)`` of a raw value (instance -1 for stuff), or the reason it is invalid.

    ``categories`` is a taxonomy or a plain ``{category id: isthing}`` map (the metrics read
    category lists from JSON files, without names).
    """
    def describe(cid: int) -> str:
        return f"class {cid} ({categories.get(cid).name})" if isinstance(categories, Taxonomy) else f"class {cid}"

    def isthing(cid: int) -> bool:
        return bool(categories.get(cid).isthing) if isinstance(categories, Taxonomy) else bool(categories[cid])

    if v < RAW_STUFF_LIMIT:
        cid = v - 1
        if cid not in categories:
            return f"class {cid} is not in the taxonomy"
        if isthing(cid):
            return f"stuff encoding of {describe(cid)}, which is a thing class"
        return cid, -1
    if v >= RAW_THING_LIMIT:
        return f">= {RAW_THING_LIMIT}: out of range, no such class"
    cid = v // 100 - 1
    if cid not in categories:
        return f"class {cid} is not in the taxonomy"
    if not isthing(cid):
        return f"instance encoding of {describe(cid)}, which is not a thing class"
    return cid, v % 100
