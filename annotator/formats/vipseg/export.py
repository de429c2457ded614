"""VIPSeg export: a project -> the ``VIPSeg_720P/`` layout DVIS and Video-K-Net read unconverted.

Layout and encoding: see :mod:`annotator.formats.vipseg`. Frames are encoded by a small thread
pool (OpenCV releases the GIL); the dataset is written into a staging folder and moved into place
at the end (:func:`annotator.formats.output.staged_output`).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.formats.common import (
    SPLITS,
    Summary,
    assign_splits,
    check_something_to_export,
    export_source,
    labelled_frames,
    resized_shape,
)
from annotator.formats.options import DEFAULT_SPLIT_RATIOS, ExportOptions
from annotator.formats.output import staged_output, write_bytes, write_json, write_lines
from annotator.formats.vipseg.codec import (
    _BAD,
    MAX_CATEGORY_ID,
    MAX_INSTANCES,
    VideoEncoding,
    encode_video,
    resize_label,
)
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import project_frame_size
from annotator.taxonomy import Taxonomy

SIDECAR = "vps_annotator.json"
CATEGORIES_FILE = "panoVIPSeg_categories.json"
GT_JSON = "panoptic_gt_VIPSeg.json"
JPEG_QUALITY = 95
#: lossless PNG settings ~3x faster than OpenCV's default adaptive filtering, and smaller on label maps
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


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


def export_with(project: Any, out: str | Path, options: ExportOptions, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): :func:`export_vipseg` with typed options
    (no ratios given: :data:`~annotator.formats.options.DEFAULT_SPLIT_RATIOS`)."""
    o = options
    return export_vipseg(project, out, videos=o.videos, splits=o.splits,
                         split_ratios=o.split_ratios or DEFAULT_SPLIT_RATIOS, seed=o.seed,
                         resize_height=o.resize_height, include_unlabelled=o.include_unlabelled,
                         overwrite=o.overwrite, layer=o.layer, workers=o.workers, split_crowded=o.split_crowded,
                         progress=progress, cancel=cancel)
