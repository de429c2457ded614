"""Cityscapes-VPS layout (VPSNet, mcahny/vps): what ``tools/eval_vpq.py`` and the data loaders read.

Export layout (names from ``prepare_data/create_panoptic_video_labels.py`` and ``tools/eval_vpq.py``)::

    panoptic_gt_<split>_city_vps.json      images / annotations (segments_info) / categories
    panoptic_im_<split>_city_vps.json      images / categories (the image-info file of the release)
    <split>/panoptic_video/<id>_final_mask.png   RGB panoptic PNG, segment id = R + 256 G + 65536 B
    <split>/img/<id>_newImg8bit.png              the frame image
    vps_annotator.json                     sidecar: project video ids, frame stems and track ids

``<id>`` is ``VVVV_FFFF_<frame stem>``: VPSNet takes the video as ``image_id[:4]`` and the image id
as ``file_name.rsplit('_', 2)[0]``, so the stem comes last and ``VVVV`` is the 4-digit video
number, ``FFFF`` the frame's source index. ``images`` are sorted by id: the script sorts the GT
PNG names but reads predictions in ``images`` order, and the two must agree. ``file_name`` of an
image is ``<id>_newImg8bit.png``; the script turns it into ``<id>_final_mask.png``.
Segments: stuff = the class colour (``IdGenerator`` gives stuff its category colour), things a
deterministic colour near the class colour, unique within the video and constant across frames
(the release jitters at random); ``category_id`` is the Cityscapes-VPS train id 0..18, ``iscrowd``
1 for thing tracks noted ``crowd`` (the release's raw value < 1000); ``area`` the pixel count.
The eval takes 6 annotated frames per video (every 5th source frame); export writes the labelled
frames of each video and says so when a video does not have 6.

Import reads the same layout back (the sidecar restores video ids, stems and track ids exactly;
without it videos are ``VVVV``, frame stems the rest of the id, tracks numbered by first sight).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.formats.common import (
    ImportTarget,
    Summary,
    check_something_to_export,
    export_source,
    labelled_frames,
    read_json_file,
    select_videos,
)
from annotator.formats.options import ExportOptions, ImportOptions
from annotator.formats.output import staged_output, write_bytes, write_json
from annotator.formats.vipseg.codec import rgb_image_to_id, stuff_segment_ids, thing_color
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState
from annotator.taxonomy import CITYSCAPES_VPS_CATEGORIES_FILE, Taxonomy, cityscapes_vps_taxonomy

SIDECAR = "vps_annotator.json"
MASK_SUFFIX = "_final_mask.png"
IMAGE_SUFFIX = "_newImg8bit.png"
FRAMES_PER_VIDEO = 6
_GT_RE = re.compile(r"^panoptic_gt_(?P<split>[A-Za-z0-9]+)_city_vps\.json$")


def gt_json_name(split: str) -> str:
    return f"panoptic_gt_{split}_city_vps.json"


def _categories_json(taxonomy: Taxonomy) -> list[dict]:
    """The release's category entries (supercategory, trainid, ...) when the taxonomy is Cityscapes-VPS."""
    released = {c["id"]: c for c in json.loads(CITYSCAPES_VPS_CATEGORIES_FILE.read_text("utf-8"))["categories"]}
    out = []
    for c in taxonomy:
        extra = released.get(c.id, {}) if released.get(c.id, {}).get("name") == c.name else {}
        out.append({"id": c.id, "name": c.name, "supercategory": extra.get("supercategory", c.parent or ""),
                    "isthing": int(c.isthing), "instance_eval": int(c.isthing),
                    "trainid": extra.get("trainid", c.id), "ori_id": extra.get("ori_id", c.id),
                    "color": list(c.color)})
    return out


def export_cityscapes_vps(project: Any, out: str | Path, videos: list[str] | None = None, split: str = "val",
                          overwrite: bool = False, layer: str = "labels", progress: ProgressFn | None = None,
                          cancel: CancelToken | None = None) -> Summary:
    """Write the labelled frames of ``project`` in the Cityscapes-VPS layout VPSNet evaluates on."""
    if not re.fullmatch(r"[A-Za-z0-9]+", split):
        raise InputError(f"split name {split!r} must be letters/digits (it is part of the JSON file name)")
    proj, ids = export_source(project, videos)
    taxonomy = proj.taxonomy
    stuff_ids = stuff_segment_ids(taxonomy)
    summary = Summary(path=str(out))
    plans = []
    for vid in ids:
        with proj.open_video(vid, readonly=True) as video:
            frames = labelled_frames(video, layer)
            if not frames:
                summary.skipped.append(f"{vid}: no labelled frames")
                continue
            if len(frames) != FRAMES_PER_VIDEO:
                summary.warnings.append(f"video {vid!r} has {len(frames)} labelled frames; VPSNet's eval_vpq.py "
                                        f"expects {FRAMES_PER_VIDEO} per video (it cuts the list into chunks of 6)")
            plans.append((vid, frames))
    check_something_to_export(len(plans), summary, layer, proj.path)
    if len(plans) > 9999:
        raise InputError(f"{len(plans)} videos: the Cityscapes-VPS ids hold 4-digit video numbers (at most 9999)")
    images, anns, side = [], [], {}
    total, done = sum(len(f) for _, f in plans), 0
    with staged_output(out, overwrite, proj.path, summary.warnings) as stage:
        for n, (vid, frames) in enumerate(plans):
            with proj.open_video(vid, readonly=True) as video:
                seg_of: dict[int, int] = {}
                used = set(stuff_ids.values())
                for tid in sorted(video.tracks):
                    t = video.tracks[tid]
                    cat = taxonomy.get(t.category_id)
                    if cat.isthing:
                        col = thing_color(cat.color, cat.id, tid, used)
                        sid = col[0] + 256 * col[1] + 65536 * col[2]
                        used.add(sid)
                        seg_of[tid] = sid
                    else:
                        seg_of[tid] = stuff_ids[cat.id]
                stuff_track: dict[int, int] = {}
                for tid, t in video.tracks.items():
                    if not taxonomy.get(t.category_id).isthing:
                        if t.category_id in stuff_track:
                            raise InputError(f"video {vid!r}: tracks {stuff_track[t.category_id]} and {tid} are both "
                                             f"stuff class {t.category_id}; merge them (one track per stuff class)")
                        stuff_track[t.category_id] = tid
                src_idx = video.source.source_indices if video.source and video.source.source_indices else []
                stems = []
                for i in frames:
                    check_cancel(cancel)
                    stem = video.frame_names[i]
                    fidx = int(src_idx[i]) if i < len(src_idx) else i
                    iid = f"{n:04d}_{fidx % 10000:04d}_{stem}"
                    label = video.read_label(i, layer)
                    present, areas = np.unique(label, return_counts=True)
                    lut = np.zeros(int(present.max()) + 1, np.uint32)
                    segs_stuff, segs_thing = [], []
                    for tid, area in zip(present.tolist(), areas.tolist(), strict=True):
                        if tid == 0:
                            continue
                        if tid not in seg_of:
                            raise InputError(f"frame {stem} of video {vid!r} holds id {tid}, which is not a track")
                        t = video.tracks[tid]
                        lut[tid] = seg_of[tid]
                        thing = taxonomy.get(t.category_id).isthing
                        entry = {"id": int(seg_of[tid]), "category_id": int(t.category_id),
                                 "iscrowd": int(thing and t.note == "crowd"), "area": int(area)}
                        (segs_thing if thing else segs_stuff).append(entry)
                    ids_map = lut[label]
                    rgb = np.stack([(ids_map >> s) & 255 for s in (0, 8, 16)], axis=-1).astype(np.uint8)
                    ok, buf = cv2.imencode(".png", rgb[..., ::-1])
                    write_bytes(stage / split / "panoptic_video" / f"{iid}{MASK_SUFFIX}", buf.tobytes())
                    ok2, img = cv2.imencode(".png", video.read_frame(i)[..., ::-1])
                    if not (ok and ok2):
                        raise InputError(f"cannot encode frame {stem} of video {vid!r}")  # pragma: no cover
                    write_bytes(stage / split / "img" / f"{iid}{IMAGE_SUFFIX}", img.tobytes())
                    images.append({"id": iid, "width": int(video.width), "height": int(video.height),
                                   "file_name": f"{iid}{IMAGE_SUFFIX}"})
                    anns.append({"image_id": iid, "file_name": f"{iid}{MASK_SUFFIX}",
                                 "segments_info": segs_stuff + segs_thing})
                    stems.append(stem)
                    done += 1
                    if progress:
                        progress(done, total, vid)
                side[f"{n:04d}"] = {"video_id": vid, "frames": stems,
                                    "tracks": {str(seg_of[t]): t for t in sorted(video.tracks)}}
                summary.videos.append(vid)
                summary.frames += len(frames)
                summary.tracks += len(video.tracks)
        order = sorted(range(len(images)), key=lambda k: images[k]["id"])
        images = [images[k] for k in order]
        anns = [anns[k] for k in order]
        cats = _categories_json(taxonomy)
        write_json(stage / gt_json_name(split), {"images": images, "annotations": anns, "categories": cats})
        write_json(stage / f"panoptic_im_{split}_city_vps.json", {"images": images, "categories": cats})
        write_json(stage / SIDECAR, {"format": "cityscapes-vps", "split": split, "videos": side})
    return summary


# ------------------------------------------------------------------------------------------ import
def find_gt(root: Path, split: str | None) -> tuple[Path, str]:
    if root.is_file():
        m = _GT_RE.match(root.name)
        if not m:
            raise InputError(f"{root}: expected panoptic_gt_<split>_city_vps.json")
        return root, m.group("split")
    if split:
        p = root / gt_json_name(split)
        if not p.exists():
            raise InputError(f"{root}: no {p.name}; is this a Cityscapes-VPS folder?")
        return p, split
    found = sorted(p for p in root.glob("panoptic_gt_*_city_vps.json") if _GT_RE.match(p.name))
    if len(found) != 1:
        raise InputError(f"{root}: expected one panoptic_gt_<split>_city_vps.json, found {len(found)}; "
                         "pass the split")
    return found[0], _GT_RE.match(found[0].name).group("split")  # type: ignore[union-attr]


def import_cityscapes_vps(root: str | Path, project_path: str | Path, videos: list[str] | None = None,
                          split: str | None = None, progress: ProgressFn | None = None,
                          cancel: CancelToken | None = None) -> Summary:
    """Import a Cityscapes-VPS folder (panoptic PNGs + GT JSON) as reviewed project videos."""
    root = Path(root)
    gt_path, split = find_gt(root, split)
    base = gt_path.parent
    doc = read_json_file(gt_path, "Cityscapes-VPS ground truth")
    side_path = base / SIDECAR
    side = read_json_file(side_path, "sidecar").get("videos", {}) if side_path.exists() else {}
    try:
        images = {str(im["id"]): im for im in doc["images"]}
        anns = {str(a["image_id"]): a for a in doc["annotations"]}
        cat_names = {int(c["id"]): str(c.get("name", "")).strip().lower() for c in doc["categories"]}
        cat_ids = set(cat_names)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{gt_path}: not a Cityscapes-VPS JSON (missing field {exc}); needs images, annotations, "
                         "categories") from None
    by_video: dict[str, list[str]] = {}
    for iid in sorted(images):
        if len(iid) < 11 or iid[4] != "_" or iid[9] != "_":
            raise InputError(f"{gt_path}: image id {iid!r} is not VVVV_FFFF_<name> as in Cityscapes-VPS")
        by_video.setdefault(iid[:4], []).append(iid)
    names = {v: str(side.get(v, {}).get("video_id", v)) for v in by_video}
    wanted = select_videos(list(names.values()), videos, str(gt_path))
    summary = Summary(path=str(project_path))
    with ImportTarget(project_path, cityscapes_vps_taxonomy) as target:
        tax = target.project.taxonomy
        bad = sorted(c for c in cat_ids if c not in tax)
        if bad:
            raise InputError(f"{gt_path}: categories {bad[:10]} are not in the project taxonomy {tax.name!r}")
        alias = {"vegitation": "vegetation"}  # the release's spelling of class 8
        clash = [f"{c} is {n!r} there but {tax.get(c).name!r} in the project" for c, n in sorted(cat_names.items())
                 if n and alias.get(n, n) != tax.get(c).name.lower()]
        if clash:
            raise InputError(f"{gt_path}: class ids mean other classes than in project {tax.name!r} "
                             f"({'; '.join(clash[:3])}); import into a new project or one made with the "
                             "Cityscapes-VPS classes")
        target.check_new_ids(wanted, summary.warnings)
        total = sum(len(by_video[v]) for v in by_video if names[v] in wanted)
        done = 0
        for v, iids in by_video.items():
            if names[v] not in wanted:
                continue
            info = side.get(v, {})
            stems = list(info.get("frames") or [iid[10:] for iid in iids])
            if len(stems) != len(iids):
                raise InputError(f"{side_path}: video {v} lists {len(stems)} frames but the JSON has {len(iids)}")
            h, w = int(images[iids[0]]["height"]), int(images[iids[0]]["width"])
            video = target.create_video(names[v], stems, h, w)
            track_of_seg = {int(k): int(t) for k, t in (info.get("tracks") or {}).items()}
            seg_cat: dict[int, tuple[int, bool]] = {}
            for iid in iids:  # every segment of the video first: tracks are created in id order
                ann = anns.get(iid)
                if ann is None:
                    raise InputError(f"{gt_path}: image {iid} has no annotation entry")
                for s in ann["segments_info"]:
                    sid, cid = int(s["id"]), int(s["category_id"])
                    if cid not in tax:
                        raise InputError(f"{gt_path}: segment {sid} of {iid} has unknown category {cid}")
                    if sid in seg_cat and seg_cat[sid][0] != cid:
                        raise InputError(f"{gt_path}: segment {sid} changes class in video {v}")
                    seg_cat.setdefault(sid, (cid, bool(s.get("iscrowd", 0))))
                    if sid not in track_of_seg:
                        track_of_seg[sid] = max([0, *track_of_seg.values()]) + 1
            for sid, tid in sorted(track_of_seg.items(), key=lambda kv: kv[1]):
                if sid in seg_cat:
                    cid, crowd = seg_cat[sid]
                    video.add_track(tid, cid, "crowd" if crowd else "")
            for i, iid in enumerate(iids):
                check_cancel(cancel)
                ann = anns[iid]
                mpath = base / split / "panoptic_video" / str(ann.get("file_name") or f"{iid}{MASK_SUFFIX}")
                rgb = cv2.imread(str(mpath), cv2.IMREAD_COLOR)
                if rgb is None:
                    raise InputError(f"missing or unreadable mask {mpath}")
                ids = rgb_image_to_id(rgb[..., ::-1])
                if ids.shape != (h, w):
                    raise InputError(f"{mpath} is {ids.shape[1]}x{ids.shape[0]}, the video is {w}x{h}")
                listed = {int(s["id"]) for s in ann["segments_info"]}
                present = [int(x) for x in np.unique(ids) if x != 0]
                unlisted = [x for x in present if x not in listed]
                if unlisted:
                    raise InputError(f"{mpath}: segment ids {unlisted[:5]} are in the PNG but not in {gt_path.name}")
                keys = np.array(present, np.int64)
                label = np.zeros((h, w), np.uint16)
                if keys.size:
                    pos = np.searchsorted(keys, ids.astype(np.int64))
                    pos = np.clip(pos, 0, keys.size - 1)
                    hit = keys[pos] == ids
                    vals = np.array([track_of_seg[int(s)] for s in keys], np.uint16)
                    label = np.where(hit, vals[pos], 0).astype(np.uint16)
                ipath = base / split / "img" / str(images[iid]["file_name"])
                img = cv2.imread(str(ipath), cv2.IMREAD_COLOR)
                if img is not None:
                    if img.shape[:2] != (h, w):
                        raise InputError(f"{ipath} is {img.shape[1]}x{img.shape[0]}, the JSON says {w}x{h}")
                    video.write_frame_image(i, img[..., ::-1].copy())
                else:
                    summary.warnings.append(f"no image {ipath}; frame left without picture")
                video.write_label(i, label, state=FrameState.REVIEWED)
                done += 1
                if progress:
                    progress(done, total, names[v])
            summary.videos.append(names[v])
            summary.frames += len(iids)
            summary.tracks += len(video.tracks)
    return summary


def export_with(project: Any, out: str | Path, options: ExportOptions, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): one split, named by ``split_name``
    (default ``val``); split lists are refused."""
    if options.splits:
        raise InputError("cityscapes-vps writes one split: name it with --split-name (e.g. --split-name val)")
    return export_cityscapes_vps(project, out, videos=options.videos, split=options.split_name or "val",
                                 overwrite=options.overwrite, layer=options.layer, progress=progress, cancel=cancel)


def import_with(dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """The registry's entry: :func:`import_cityscapes_vps` with typed options."""
    return import_cityscapes_vps(dataset, project, videos=options.videos, split=options.split_name,
                                 progress=progress, cancel=cancel)
