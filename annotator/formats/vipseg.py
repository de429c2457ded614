"""VIPSeg format (DESIGN section 4): the one place that owns the raw panomask encoding.

Export writes the ``VIPSeg_720P/`` layout that DVIS and Video-K-Net read without conversion::

    images/<video>/<frame>.jpg         height 720, width int(720*w/h), bilinear (or original size)
    panomasks/<video>/<frame>.png      raw 16-bit: stuff = category+1, thing = (category+1)*100+instance
    panomasksRGB/<video>/<frame>.png   RGB, segment id = R + 256*G + 65536*B, 0 = void
    panoptic_gt_VIPSeg.json, panoptic_gt_VIPSeg_{train,val,test}.json, panoVIPSeg_categories.json
    train.txt val.txt test.txt
    vps_annotator.json                 our sidecar: segment -> track id/note, so a re-import keeps ids

Segment ids are a pure function of the video's tracks (stuff: the category colour; things: a
deterministic jitter of it, unique in the video and never a stuff colour), so two exports of the
same project are byte-identical. Import decodes raw masks (or RGB masks + JSON), refusing values
the official converter would silently mislabel, and reports them with file and pixel count.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.formats.common import (
    SPLITS,
    ImportTarget,
    Summary,
    ValueProblem,
    assign_splits,
    check_something_to_export,
    export_source,
    image_size,
    labelled_frames,
    natural_key,
    problems_error,
    project_frame_size,
    read_dataset_image,
    read_json_file,
    resized_shape,
    select_videos,
    staged_output,
    write_bytes,
    write_json,
    write_lines,
)
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.taxonomy import Taxonomy, vipseg_taxonomy

RAW_STUFF_LIMIT = 125      # raw 1..124: stuff of category v - 1
RAW_THING_LIMIT = 12500    # raw (category + 1) * 100 + instance < 12500
MAX_INSTANCES = 100        # instance numbers 0..99 per thing class and video
MAX_CATEGORY_ID = 123
SIDECAR = "vps_annotator.json"
CATEGORIES_FILE = "panoVIPSeg_categories.json"
GT_JSON = "panoptic_gt_VIPSeg.json"
JPEG_QUALITY = 95
_BAD = 0xFFFF  # raw-LUT sentinel for ids that are not tracks
#: lossless PNG settings ~3x faster than OpenCV's default adaptive filtering, and smaller on label maps
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


# ------------------------------------------------------------------------------------------ encoding
def encode_raw(category_id: int, isthing: bool, instance: int = 0) -> int:
    """Raw panomask value of a segment (DESIGN section 4)."""
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
    """Nearest-neighbour resize of an id map (pixel-centre exact, like PIL NEAREST)."""
    if label.shape == (height, width):
        return label
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def _thing_color(base: tuple[int, int, int], category_id: int, instance: int, used: set[int]) -> tuple[int, int, int]:
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
            sid = rgb_id(_thing_color(cat.color, cat.id, 1000, taken))
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
        sid = stuff_sid[cid] if v < RAW_STUFF_LIMIT else rgb_id(_thing_color(cat.color, cid, v % 100, used))
        used.add(sid)
        segment_id[v] = sid
    sidecar = {}
    for tid in sorted(raw, reverse=True):  # the lowest track id of a merged stuff segment wins
        sidecar[raw[tid]] = (tid, notes.get(tid, ""))
    return VideoEncoding(raw, segment_id, category, sidecar, warnings)


# ------------------------------------------------------------------------------------------ export
def _default_workers() -> int:
    return max(2, min(4, (os.cpu_count() or 2) + 1))


def export_vipseg(project: Any, out: str | Path, videos: list[str] | None = None,
                  splits: dict[str, list[str]] | None = None,
                  split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                  resize_height: int | None = 720, include_unlabelled: bool = False, overwrite: bool = False,
                  layer: str = "labels", workers: int | None = None, split_crowded: bool = False,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Write the VIPSeg layout of ``project`` (a Project or its path) into ``out`` atomically.

    ``split_crowded``: a video with more than 100 instances of a thing class is exported as
    consecutive parts ``<video>_partN`` with at most 100 per class each, instead of failing.
    """
    proj, ids = export_source(project, videos, deep=False)  # _export_frame checks each label map itself
    taxonomy = proj.taxonomy
    bad_cats = [c.id for c in taxonomy if c.id > MAX_CATEGORY_ID]
    if bad_cats:
        raise InputError(f"the taxonomy has class ids {bad_cats[:5]} > {MAX_CATEGORY_ID}; VIPSeg raw masks "
                         "cannot encode them")
    out = Path(out)
    summary = Summary(path=str(out))
    # plan: frames and encodings of every video first, so encoding errors write nothing at all
    plans: list[tuple[Any, str, list[int], list[int], VideoEncoding]] = []
    opened: list[Any] = []
    try:
        for vid in ids:
            video = proj.open_video(vid, readonly=True)
            opened.append(video)
            frames = labelled_frames(video, layer)
            labelled = set(frames)
            extra = [i for i in range(video.num_frames) if i not in labelled] if include_unlabelled else []
            if not frames and not extra:
                summary.skipped.append(f"{vid}: no labelled frames")
                continue
            all_tracks = video.tracks
            on_frame = {i: (video.frame_tracks(i) if layer == "labels" else list(all_tracks)) for i in frames}
            missing = sorted({t for ts in on_frame.values() for t in ts if t not in all_tracks})
            if missing:
                raise InputError(f"video {vid!r}: frames use track ids {missing[:10]} that are not in its track table")
            parts = _crowd_parts(frames, on_frame, all_tracks, taxonomy) if split_crowded else [frames]
            starts = [p[0] if p else 0 for p in parts]
            for k, part in enumerate(parts):
                out_id = vid if len(parts) == 1 else f"{vid}_part{k}"
                if len(parts) > 1 and out_id in proj.video_ids:
                    raise InputError(f"cannot split video {vid!r}: the project already has a video {out_id!r}")
                lo = starts[k] if k else -1
                hi = starts[k + 1] if k + 1 < len(parts) else video.num_frames
                part_extra = [i for i in extra if lo <= i < hi]
                present = {t for i in part for t in on_frame[i]}
                enc = encode_video(out_id, {t: all_tracks[t].category_id for t in present}, taxonomy,
                                   {t: all_tracks[t].note for t in present})
                summary.warnings.extend(enc.warnings)
                plans.append((video, out_id, part, part_extra, enc))
            if len(parts) > 1:
                summary.warnings.append(f"video {vid!r} has more than {MAX_INSTANCES} instances of a class; "
                                        f"exported as {len(parts)} parts {vid}_part0..{len(parts) - 1}")
        check_something_to_export(len(plans), summary, layer, proj.path)
        _write_vipseg(proj, out, plans, summary, splits, split_ratios, seed, resize_height, overwrite, layer,
                      workers, progress, cancel)
    finally:
        for video in opened:
            video.close()
    return summary


def _crowd_parts(frames: list[int], on_frame: dict[int, list[int]], tracks: dict[int, Any],
                 taxonomy: Taxonomy) -> list[list[int]]:
    """Cut the frame list into consecutive parts with at most 100 instances of each thing class."""
    parts: list[list[int]] = [[]]
    seen: dict[int, set[int]] = {}
    for i in frames:
        add: dict[int, set[int]] = {}
        for t in on_frame[i]:
            cid = tracks[t].category_id
            if cid in taxonomy and taxonomy.get(cid).isthing:
                add.setdefault(cid, set()).add(t)
        if parts[-1] and any(len(seen.get(c, set()) | ts) > MAX_INSTANCES for c, ts in add.items()):
            parts.append([])
            seen = {}
        parts[-1].append(i)
        for c, ts in add.items():
            seen.setdefault(c, set()).update(ts)
    return parts


def _write_vipseg(proj: Any, out: Path, plans: list, summary: Summary, splits: dict[str, list[str]] | None,
                  split_ratios: tuple[float, float, float], seed: int, resize_height: int | None,
                  overwrite: bool, layer: str, workers: int | None, progress: ProgressFn | None,
                  cancel: CancelToken | None) -> None:
    """Second phase of the export: every file into a staging folder, then one rename into place."""
    taxonomy = proj.taxonomy
    split_map = assign_splits([p[1] for p in plans], splits, split_ratios, seed)
    total = sum(len(p[2]) + len(p[3]) for p in plans)
    done = 0
    with staged_output(out, overwrite, proj.path, summary.warnings) as stage:
        gt_videos: dict[str, tuple[dict, dict]] = {}
        sidecar: dict[str, list[dict]] = {}
        with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
            for video, vid, frames, extra, enc in plans:
                check_cancel(cancel)
                oh, ow = resized_shape(video.height, video.width, resize_height)
                raw_lut, bgr_lut = enc.luts(max(video.tracks, default=0) + 1)
                jobs: list[tuple[int, bool]] = sorted([(i, True) for i in frames] + [(i, False) for i in extra])
                futures: list[Future] = [pool.submit(_export_frame, video, i, with_mask, oh, ow, raw_lut,
                                                     bgr_lut, stage, layer, vid)
                                       for i, with_mask in jobs]
                images, anns = [], []
                try:
                    for fut in futures:
                        stem, areas = fut.result()
                        images.append({"id": stem, "width": ow, "height": oh, "file_name": f"{stem}.png"})
                        if areas is not None:
                            segs = [{"id": enc.segment_id[v], "category_id": enc.category[v], "iscrowd": 0,
                                     "area": a} for v, a in areas]
                            anns.append({"image_id": stem, "file_name": f"{stem}.png", "segments_info": segs})
                        done += 1
                        if progress:
                            progress(done, total, vid)
                        check_cancel(cancel)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
                gt_videos[vid] = ({"video_id": vid, "images": images}, {"video_id": vid, "annotations": anns})
                sidecar[vid] = [{"raw": v, "segment_id": enc.segment_id[v], "track_id": tid, "note": note}
                                for v, (tid, note) in sorted(enc.notes.items())]
                summary.videos.append(vid)
                summary.frames += len(frames) + len(extra)
                summary.tracks += len(enc.segment_id)
        cats = [c.to_json() for c in taxonomy]
        for c in cats:
            c.pop("parent", None)
        order = sorted(gt_videos)
        write_json(stage / GT_JSON, _gt_doc([gt_videos[v] for v in order], cats))
        for s in SPLITS:
            write_json(stage / f"panoptic_gt_VIPSeg_{s}.json",
                       _gt_doc([gt_videos[v] for v in split_map[s]], cats))
            write_lines(stage / f"{s}.txt", split_map[s])
        write_json(stage / CATEGORIES_FILE, cats)
        write_json(stage / SIDECAR, {"format": "vps-annotator-vipseg-tracks", "version": 1,
                                     "videos": {v: sidecar[v] for v in order}})


def _gt_doc(entries: list[tuple[dict, dict]], cats: list[dict]) -> dict:
    return {"videos": [e[0] for e in entries], "annotations": [e[1] for e in entries], "categories": cats}


def _export_frame(video: Any, i: int, with_mask: bool, oh: int, ow: int, raw_lut: np.ndarray,
                  bgr_lut: np.ndarray, stage: Path, layer: str, vid: str) -> tuple[str, list[tuple[int, int]] | None]:
    """Write one frame's image (and masks) under video folder ``vid``; return ``(stem, [(raw, area)])``."""
    stem = video.frame_names[i]
    src = video.frame_path(i)
    if project_frame_size(src) != (video.height, video.width):
        h, w = project_frame_size(src)
        raise InputError(f"frame image {src} is {w}x{h} but video {vid!r} is {video.width}x{video.height}")
    img_dst = stage / "images" / vid / f"{stem}.jpg"
    img_dst.parent.mkdir(parents=True, exist_ok=True)
    if (oh, ow) == (video.height, video.width):
        shutil.copyfile(src, img_dst)  # the project's JPEG as is: no second lossy encode
    else:
        bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"frame image {src} is not a readable image (corrupt or truncated)")
        bgr = cv2.resize(bgr, (ow, oh), interpolation=cv2.INTER_LINEAR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise InputError(f"could not encode {img_dst.name} as JPEG")
        write_bytes(img_dst, buf.tobytes())
    if not with_mask:
        return stem, None
    if layer == "labels" and not video.has_label(i, layer):  # deleted since the integrity check
        raise InputError(f"label PNG of frame {stem} of video {vid!r} is missing; restore it or re-label the frame")
    label = video.read_label(i, layer)
    if int(label.max(initial=0)) >= len(raw_lut):
        bad = int(label.max())
        raise InputError(f"frame {stem} of video {vid!r} holds id {bad}, which is not a track of the video")
    if layer == "labels":  # the deep integrity check, done here on the map the export decodes anyway
        present = [int(t) for t in np.flatnonzero(np.bincount(label.ravel())) if t != 0]
        if present != sorted(video.frame_tracks(i)):
            raise InputError(f"frame {stem} of video {vid!r}: label PNG holds tracks {present[:10]} but the metadata "
                             f"says {sorted(video.frame_tracks(i))[:10]} (video.json out of sync with the label "
                             "file); `main.py info PROJECT --check` lists every such frame")
    label = resize_label(label, oh, ow)
    raw = np.take(raw_lut, label)
    if int(raw.max(initial=0)) == _BAD:
        bad = sorted({int(t) for t in np.unique(label[raw == _BAD])})
        raise InputError(f"frame {stem} of video {vid!r} holds ids {bad[:10]} that are not tracks of the video "
                         "or not recorded on that frame (video.json out of sync with the label file)")
    counts = np.bincount(raw.ravel(), minlength=1)
    values = np.flatnonzero(counts)
    areas = [(int(v), int(counts[v])) for v in values if v != 0]
    bgr = cv2.cvtColor(np.take(bgr_lut, label).view(np.uint8).reshape(oh, ow, 4), cv2.COLOR_BGRA2BGR)
    ok1, png_raw = cv2.imencode(".png", raw, PNG_PARAMS)
    ok2, png_rgb = cv2.imencode(".png", bgr, PNG_PARAMS)
    if not (ok1 and ok2):
        raise InputError(f"could not encode the masks of frame {stem} of video {vid!r}")
    write_bytes(stage / "panomasks" / vid / f"{stem}.png", png_raw.tobytes())
    write_bytes(stage / "panomasksRGB" / vid / f"{stem}.png", png_rgb.tobytes())
    return stem, areas


# ------------------------------------------------------------------------------------------ import
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


@dataclass
class _Frame:
    stem: str
    image: Path
    mask: Path | None


def _find_gt_json(root: Path) -> dict[str, dict[str, list[dict]]] | None:
    """``video -> stem -> segments_info`` from panoptic_gt_VIPSeg.json (or all split files)."""
    files = [root / GT_JSON] if (root / GT_JSON).exists() else sorted(root.glob("panoptic_gt_VIPSeg*.json"))
    if not files:
        return None
    out: dict[str, dict[str, list[dict]]] = {}
    for f in files:
        doc = read_json_file(f, "VIPSeg annotation file")
        try:
            for entry in doc["annotations"]:
                frames = out.setdefault(str(entry["video_id"]), {})
                for ann in entry["annotations"]:
                    frames[Path(str(ann.get("file_name", ann["image_id"]))).stem] = list(ann["segments_info"])
        except (KeyError, TypeError) as exc:
            raise InputError(f"{f}: not a VIPSeg panoptic JSON (missing {exc})") from None
    return out


def _dataset_taxonomy(root: Path) -> Taxonomy:
    """Taxonomy of a new project made from a dataset: the dataset's declared classes.

    The categories file, else the panoptic JSON's ``categories`` (an RGB-only dataset used to get
    the VIPSeg classes whatever its JSON said, so grass/cow silently became wall/door). A list
    naming exactly VIPSeg classes gives the built-in VIPSeg taxonomy (with its parents).
    """
    cats = _declared_categories(root)
    if not cats:
        return vipseg_taxonomy()
    vip = vipseg_taxonomy()
    try:
        if all(int(c["id"]) in vip and vip.get(int(c["id"])).name.lower() == str(c["name"]).strip().lower()
               for c in cats):
            return vip
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{root}: the dataset's category list is malformed (each needs id and name)") from None
    items = []
    for c in cats:
        item = dict(c)
        if "color" not in item:  # official-style lists may omit colours: a stable one per id
            rng = np.random.default_rng(int(item["id"]))
            item["color"] = [int(v) for v in rng.integers(30, 226, 3)]
        items.append(item)
    return Taxonomy.from_json(items, name="custom")


def _declared_categories(root: Path) -> list[dict]:
    """The category list a dataset declares (categories file, else a panoptic JSON); [] if none."""
    p = root / CATEGORIES_FILE
    if p.exists():
        doc = read_json_file(p, "category file")
        return list(doc.get("categories", []) if isinstance(doc, dict) else doc)
    for f in sorted(root.glob("panoptic_gt_VIPSeg*.json")):
        doc = read_json_file(f, "VIPSeg annotation file")
        if isinstance(doc, dict) and doc.get("categories"):
            return list(doc["categories"])
    return []


def _check_same_classes(root: Path, taxonomy: Taxonomy, project: Path) -> None:
    """Refuse a dataset whose class ids mean other classes than in the existing project.

    Raw values and JSON category ids are only numbers: a dataset of a custom taxonomy imported into
    a VIPSeg project would turn grass (id 0) into wall (id 0) without any error.
    """
    clash = []
    for c in _declared_categories(root):
        try:
            cid, name = int(c["id"]), str(c["name"]).strip()
        except (KeyError, TypeError, ValueError):
            continue
        if cid in taxonomy and taxonomy.get(cid).name.strip().lower() != name.lower():
            clash.append(f"{cid} is {name!r} in the dataset but {taxonomy.get(cid).name!r} in the project")
    if clash:
        raise InputError(f"{root}: class ids do not match the taxonomy of project {project} ({'; '.join(clash[:5])}"
                         f"{' ...' if len(clash) > 5 else ''}); import into a new project to use the dataset's classes")


def import_vipseg(root: str | Path, project_path: str | Path, videos: list[str] | None = None,
                  on_invalid: str = "error", progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> Summary:
    """Import a VIPSeg-format dataset (raw ``panomasks/`` preferred, else ``panomasksRGB/`` + JSON).

    One project video per video folder, tracks from the encoded ids, frame state ``reviewed``.
    Undecodable values are an error listing file, value and pixel count (``on_invalid="void"``
    imports them as void and reports them instead). A failure leaves the project unchanged.
    """
    from annotator.project import FrameState

    if on_invalid not in ("error", "void"):
        raise InputError(f"on_invalid must be 'error' or 'void', not {on_invalid!r}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"VIPSeg dataset folder {root} not found")
    raw_dir, rgb_dir, img_dir = root / "panomasks", root / "panomasksRGB", root / "images"
    if not img_dir.is_dir() and (root / "imgs").is_dir():
        img_dir = root / "imgs"  # the original (non-720p) VIPSeg release
    gt = None
    use_raw = raw_dir.is_dir()
    if not use_raw:
        if not rgb_dir.is_dir():
            raise InputError(f"{root} is not a VIPSeg dataset: expected panomasks/ (raw 16-bit) or "
                             "panomasksRGB/ with panoptic_gt_VIPSeg*.json")
        gt = _find_gt_json(root)
        if gt is None:
            raise InputError(f"{root}: panomasksRGB/ needs panoptic_gt_VIPSeg.json (segment classes); none found")
    if not img_dir.is_dir():
        raise InputError(f"{root}: images/ (or imgs/) folder missing; the frames are needed to build a project")
    mask_dir = raw_dir if use_raw else rgb_dir
    available = sorted({p.name for p in mask_dir.iterdir() if p.is_dir()} | {p.name for p in img_dir.iterdir() if p.is_dir()})
    ids = select_videos(available, videos, f"dataset {root}")
    sidecar = _read_sidecar(root)
    summary = Summary(path=str(project_path))
    with ImportTarget(project_path, lambda: _dataset_taxonomy(root)) as target:
        target.check_new_ids(ids, summary.warnings)
        taxonomy = target.project.taxonomy
        if not target.created:
            _check_same_classes(root, taxonomy, Path(project_path))
        plans = [(vid, _list_frames(vid, img_dir / vid, mask_dir / vid)) for vid in ids]
        total = sum(len(f) for _, f in plans)
        done = 0
        for vid, frames in plans:
            check_cancel(cancel)
            h, w = image_size(frames[0].image)
            keys: list[np.ndarray | None] = []
            seg_cat: dict[int, int] = {}
            vprobs: list[ValueProblem] = []
            for fr in frames:
                if image_size(fr.image) != (h, w):
                    hh, ww = image_size(fr.image)
                    raise InputError(f"{fr.image} is {ww}x{hh}, other frames of video {vid!r} are {w}x{h}")
                if fr.mask is None:
                    keys.append(None)
                    continue
                key = _read_mask(fr.mask, use_raw)
                if key.shape != (h, w):
                    raise InputError(f"mask {fr.mask} is {key.shape[1]}x{key.shape[0]} but image {fr.image} is "
                                     f"{w}x{h}; masks and images must have the same size")
                segs = gt.get(vid, {}).get(fr.stem) if gt is not None else None
                if not use_raw and segs is None:
                    raise InputError(f"{fr.mask}: no entry for frame {fr.stem!r} of video {vid!r} in the JSON")
                key = _validate_keys(key, fr.mask, use_raw, segs, taxonomy, seg_cat, vprobs)
                keys.append(key)
            if vprobs and on_invalid == "error":
                raise problems_error(vprobs, f"video {vid!r}")
            summary.problems.extend(vprobs)
            track_of = _assign_tracks(seg_cat, taxonomy, sidecar.get(vid), use_raw)
            video = target.create_video(vid, [f.stem for f in frames], h, w)
            for key_val in sorted(track_of, key=lambda k: track_of[k][0]):
                tid, note = track_of[key_val]
                video.add_track(tid, seg_cat[key_val], note)
            for i, (fr, key) in enumerate(zip(frames, keys, strict=True)):
                check_cancel(cancel)
                bgr = read_dataset_image(fr.image)
                video.write_frame_image(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if key is not None:
                    video.write_label(i, _keys_to_tracks(key, track_of), state=FrameState.REVIEWED)
                done += 1
                if progress:
                    progress(done, total, vid)
            summary.videos.append(vid)
            summary.frames += len(frames)
            summary.tracks += len(track_of)
    return summary


def _read_sidecar(root: Path) -> dict[str, list[dict]]:
    p = root / SIDECAR
    if not p.exists():
        return {}
    try:
        doc = read_json_file(p, "track sidecar")
        return {str(k): list(v) for k, v in doc["videos"].items()}
    except (InputError, KeyError, TypeError, AttributeError):
        return {}  # the sidecar only restores ids; without it ids are assigned in order


def _list_frames(vid: str, img_folder: Path, mask_folder: Path) -> list[_Frame]:
    images = {p.stem: p for p in img_folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")} \
        if img_folder.is_dir() else {}
    masks = {p.stem: p for p in mask_folder.glob("*.png")} if mask_folder.is_dir() else {}
    orphans = sorted(set(masks) - set(images), key=natural_key)
    if orphans:
        raise InputError(f"video {vid!r}: masks {', '.join(orphans[:5])} have no frame image in {img_folder} "
                         "(missing frames); restore the images or remove those masks")
    if not images:
        raise InputError(f"video {vid!r}: no frame images in {img_folder}")
    return [_Frame(s, images[s], masks.get(s)) for s in sorted(images, key=natural_key)]


def _read_mask(path: Path, raw: bool) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError(f"mask {path} is not a readable PNG (corrupt or truncated)")
    if raw:
        if data.ndim != 2:
            raise InputError(f"raw panomask {path} must be single-channel, got {data.shape[2]} channels")
        return data.astype(np.int64)
    if data.ndim != 3:
        raise InputError(f"RGB panomask {path} must have 3 channels")
    return rgb_image_to_id(data[..., 2::-1]).astype(np.int64)


def _validate_keys(key: np.ndarray, path: Path, use_raw: bool, segs: list[dict] | None, taxonomy: Taxonomy,
                   seg_cat: dict[int, int], problems: list[ValueProblem]) -> np.ndarray:
    """Record the class of every valid value; invalid ones are reported and set to void (0)."""
    values, counts = np.unique(key, return_counts=True)
    seg_classes = {}
    if not use_raw:
        for s in segs or []:
            seg_classes[int(s["id"])] = int(s["category_id"])
    invalid = []
    for v, n in zip(values.tolist(), counts.tolist(), strict=True):
        if v == 0:
            continue
        if use_raw:
            dec = decode_raw_value(v, taxonomy)
            if isinstance(dec, str):
                problems.append(ValueProblem(str(path), v, n, dec))
                invalid.append(v)
                continue
            cid = dec[0]
        else:
            if v not in seg_classes:
                problems.append(ValueProblem(str(path), v, n, "RGB id not in the frame's segments_info"))
                invalid.append(v)
                continue
            cid = seg_classes[v]
            if cid not in taxonomy:
                problems.append(ValueProblem(str(path), v, n, f"class {cid} is not in the taxonomy"))
                invalid.append(v)
                continue
        if seg_cat.setdefault(v, cid) != cid:
            problems.append(ValueProblem(str(path), v, n, f"segment has class {cid} here but {seg_cat[v]} before"))
            invalid.append(v)
    if invalid:
        key = np.where(np.isin(key, invalid), 0, key)
    return key


def _assign_tracks(seg_cat: dict[int, int], taxonomy: Taxonomy, sidecar: list[dict] | None,
                   use_raw: bool) -> dict[int, tuple[int, str]]:
    """Track id (and note) for every segment key: from our sidecar when it fits, else in order."""
    keys = sorted(seg_cat, key=lambda k: (taxonomy.get(seg_cat[k]).isthing, seg_cat[k], k))
    if sidecar:
        field = "raw" if use_raw else "segment_id"
        try:
            side = {int(e[field]): (int(e["track_id"]), str(e.get("note", ""))) for e in sidecar}
        except (KeyError, TypeError, ValueError):
            side = {}
        tids = [side[k][0] for k in keys if k in side]
        if all(k in side for k in keys) and len(set(tids)) == len(tids) and all(1 <= t <= 65535 for t in tids):
            return {k: side[k] for k in keys}
    return {k: (n + 1, "") for n, k in enumerate(keys)}


def _keys_to_tracks(key: np.ndarray, track_of: dict[int, tuple[int, str]]) -> np.ndarray:
    uniq, inv = np.unique(key, return_inverse=True)
    lut = np.array([0 if v == 0 else track_of[int(v)][0] for v in uniq.tolist()], np.uint16)
    return lut[inv].reshape(key.shape)

