"""YouTube-VIS 2019 / LV-VIS JSON: thing tracks as video instances (COCO RLE via pycocotools).

Export layout::

    JPEGImages/<video>/<frame>.jpg          the project's dense frames (labelled ones)
    annotations.json                        videos, annotations, categories (things only)
    annotations_{train,val,test}.json       only when a split was asked for

``videos``: ``{id, file_names, width, height, length}`` (ids 1-based as in YouTube-VIS);
``annotations``: one per thing track, ``segmentations``/``areas``/``bboxes`` with one entry per
frame of the video (``null`` where the track is absent); ``categories``: the taxonomy's thing
classes with their own (0-based for VIPSeg) ids. Stuff is not part of this format.

Import accepts the same files (e.g. LV-VIS annotations), RLE or polygon segmentations; a JSON
without annotations (a test split) gives unlabelled frames. Instances
may overlap in these datasets, while a project label map has one owner per pixel: later
annotations win and the overlap is reported.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from annotator.errors import InputError
from annotator.formats.common import (
    SPLITS,
    ImportTarget,
    Summary,
    assign_splits,
    check_something_to_export,
    export_source,
    labelled_frames,
    read_dataset_image,
    read_json_file,
    select_videos,
)
from annotator.formats.options import ExportOptions, ImportOptions
from annotator.formats.output import staged_output, write_json
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, image_size, project_frame_size
from annotator.taxonomy import Category, Taxonomy, vipseg_taxonomy

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "JPEGImages"


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a boolean mask with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(seg: Any, height: int, width: int, where: str) -> np.ndarray:
    """Boolean mask from RLE (compressed or not) or polygons; a size mismatch is an InputError."""
    try:
        if isinstance(seg, list):  # polygons
            rles = mask_utils.frPyObjects(seg, height, width)
            rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
        elif isinstance(seg, dict):
            size = [int(v) for v in seg["size"]]
            if size != [height, width]:
                raise InputError(f"{where}: mask is {size[1]}x{size[0]} but the video is {width}x{height}")
            rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else \
                {"size": size, "counts": seg["counts"].encode("ascii") if isinstance(seg["counts"], str)
                 else seg["counts"]}
        else:
            raise InputError(f"{where}: segmentation must be RLE, polygons or null, got {type(seg).__name__}")
        with warnings.catch_warnings():  # pycocotools' Cython decode warns under numpy 2; harmless
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode([rle])[:, :, 0].astype(bool)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed RLE from pycocotools
        raise InputError(f"{where}: unreadable segmentation ({exc})") from None


# ------------------------------------------------------------------------------------------ export
def export_ytvis(project: Any, out: str | Path, videos: list[str] | None = None,
                 splits: dict[str, list[str]] | None = None,
                 split_ratios: tuple[float, float, float] | None = None, seed: int = 0,
                 overwrite: bool = False, layer: str = "labels",
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Write the thing tracks of ``project`` as a YouTube-VIS 2019 style dataset into ``out``."""
    proj, ids = export_source(project, videos)
    taxonomy = proj.taxonomy
    out = Path(out)
    summary = Summary(path=str(out))
    plans = []
    for vid in ids:
        with proj.open_video(vid, readonly=True) as video:
            frames = labelled_frames(video, layer)
            if not frames:
                summary.skipped.append(f"{vid}: no labelled frames")
                continue
            for t in video.tracks.values():
                if t.category_id not in taxonomy:
                    raise InputError(f"video {vid!r}: track {t.id} has unknown class id {t.category_id}")
            plans.append((vid, frames))
    check_something_to_export(len(plans), summary, layer, proj.path)
    split_map = assign_splits([v for v, _ in plans], splits, split_ratios, seed) \
        if (splits or split_ratios) else None
    total = sum(len(f) for _, f in plans)
    done = 0
    videos_json: list[dict] = []
    anns_json: list[dict] = []
    with staged_output(out, overwrite, proj.path, summary.warnings) as stage:
        for n, (vid, frames) in enumerate(plans, start=1):
            with proj.open_video(vid, readonly=True) as video:
                h, w = video.height, video.width
                things = {tid: t for tid, t in sorted(video.tracks.items()) if taxonomy.get(t.category_id).isthing}
                per_track: dict[int, dict[str, list]] = {
                    tid: {"segmentations": [], "areas": [], "bboxes": []} for tid in things}
                names = []
                for i in frames:
                    check_cancel(cancel)
                    stem = video.frame_names[i]
                    src = video.frame_path(i)
                    if project_frame_size(src) != (h, w):
                        raise InputError(f"frame image {src} does not match the video size {w}x{h}")
                    dst = stage / IMAGES_DIR / vid / f"{stem}.jpg"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(src.read_bytes())
                    names.append(f"{vid}/{stem}.jpg")
                    label = video.read_label(i, layer)
                    present = set(np.unique(label).tolist())
                    unknown = sorted(v for v in present if v != 0 and v not in video.tracks)
                    if unknown:
                        raise InputError(f"frame {stem} of video {vid!r} holds ids {unknown[:10]} that are not tracks")
                    for tid, acc in per_track.items():
                        if tid not in present:
                            acc["segmentations"].append(None)
                            acc["areas"].append(None)
                            acc["bboxes"].append(None)
                            continue
                        rle = encode_rle(label == tid)
                        coco = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
                        acc["segmentations"].append(rle)
                        acc["areas"].append(int(mask_utils.area([coco])[0]))
                        acc["bboxes"].append([float(v) for v in mask_utils.toBbox([coco])[0]])
                    done += 1
                    if progress:
                        progress(done, total, vid)
                videos_json.append({"id": n, "file_names": names, "width": w, "height": h, "length": len(frames)})
                for tid, acc in per_track.items():
                    if all(a is None for a in acc["areas"]):
                        continue
                    anns_json.append({"id": len(anns_json) + 1, "video_id": n,
                                      "category_id": things[tid].category_id, "iscrowd": 0,
                                      "width": w, "height": h, "length": 1, **acc})
                summary.videos.append(vid)
                summary.frames += len(frames)
                summary.tracks += sum(1 for a in per_track.values() if any(x is not None for x in a["areas"]))
        cats = [{"id": c.id, "name": c.name, "supercategory": c.parent or "object"} for c in taxonomy if c.isthing]
        write_json(stage / ANNOTATIONS_FILE, _doc(videos_json, anns_json, cats))
        if split_map is not None:
            index = {v: n for n, (v, _) in enumerate(plans, start=1)}
            for s in SPLITS:
                keep = {index[v] for v in split_map[s]}
                write_json(stage / f"annotations_{s}.json",
                           _doc([v for v in videos_json if v["id"] in keep],
                                [a for a in anns_json if a["video_id"] in keep], cats))
    return summary


def _doc(videos: list[dict], anns: list[dict], cats: list[dict]) -> dict:
    return {"info": {"description": "exported by VPS Annotator", "version": "1.0"}, "licenses": [],
            "videos": videos, "annotations": anns, "categories": cats}


# ------------------------------------------------------------------------------------------ import
def _locate(path: Path, images: Path | None) -> tuple[Path, Path]:
    if path.is_file():
        json_path = path
    elif path.is_dir():
        cands = [path / ANNOTATIONS_FILE] if (path / ANNOTATIONS_FILE).exists() else sorted(path.glob("*.json"))
        if len(cands) != 1:
            raise InputError(f"{path}: expected one YouTube-VIS JSON ({ANNOTATIONS_FILE}); found "
                             f"{len(cands)}; pass the JSON file itself")
        json_path = cands[0]
    else:
        raise InputError(f"YouTube-VIS dataset {path} not found")
    if images is None:
        images = json_path.parent / IMAGES_DIR if (json_path.parent / IMAGES_DIR).is_dir() else json_path.parent
    return json_path, images


def _category_map(cats: list[dict], taxonomy: Taxonomy, json_path: Path) -> dict[int, int]:
    """Dataset category id -> project category id, by name."""
    out, unknown = {}, []
    for c in cats:
        try:
            out[int(c["id"])] = taxonomy.by_name(str(c["name"]).strip()).id
        except InputError:
            unknown.append(str(c["name"]))
    if unknown:
        raise InputError(f"{json_path}: categories {', '.join(unknown[:10])} are not in the project taxonomy "
                         f"{taxonomy.name!r} (unknown class); import into a new project to use the dataset's classes")
    return out


def _taxonomy_for(cats: list[dict]) -> Taxonomy:
    """VIPSeg if every class is a VIPSeg class, else the dataset's own classes (all things)."""
    vip = vipseg_taxonomy()
    try:
        if all(vip.by_name(str(c["name"])).id == int(c["id"]) for c in cats):
            return vip
    except InputError:
        pass
    out = []
    for c in cats:
        rng = np.random.default_rng(int(c["id"]))
        col = tuple(int(v) for v in rng.integers(30, 226, 3))
        out.append(Category(int(c["id"]), str(c["name"]), True, col))  # type: ignore[arg-type]
    return Taxonomy(out, name="ytvis")


def import_ytvis(path: str | Path, project_path: str | Path, videos: list[str] | None = None,
                 images: Path | None = None, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> Summary:
    """Import a YouTube-VIS / LV-VIS JSON (+ JPEGImages) as project videos with reviewed frames."""
    json_path, image_root = _locate(Path(path), images)
    doc = read_json_file(json_path, "YouTube-VIS annotation file")
    try:
        vids_json = list(doc["videos"])
        anns_json = list(doc.get("annotations") or [])
        cats = [{"id": int(c["id"]), "name": str(c["name"])} for c in doc["categories"]]
        by_id = {}
        for v in vids_json:
            by_id[int(v["id"])] = {"id": int(v["id"]), "file_names": [str(f) for f in v["file_names"]],
                                   "height": int(v["height"]), "width": int(v["width"])}
        for a in anns_json:
            a["video_id"], a["category_id"] = int(a["video_id"]), int(a["category_id"])
            if not isinstance(a.get("segmentations"), list):
                raise TypeError(f"annotation {a.get('id')} segmentations")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{json_path}: not a YouTube-VIS JSON (missing or bad field {exc}); videos need id, "
                         "file_names, height, width; annotations video_id, category_id, segmentations") from None
    vids_json = list(by_id.values())
    names: dict[str, int] = {}
    for v in vids_json:
        fns = v.get("file_names") or []
        if not fns:
            raise InputError(f"{json_path}: video {v.get('id')} has no file_names")
        parent = Path(str(fns[0])).parent.name
        name = parent or f"video_{v['id']}"
        if name in names:
            raise InputError(f"{json_path}: two videos named {name!r}")
        names[name] = int(v["id"])
    wanted = select_videos(list(names), videos, f"{json_path}")
    anns_by_video: dict[int, list[dict]] = {}
    for a in anns_json:
        anns_by_video.setdefault(a["video_id"], []).append(a)
    summary = Summary(path=str(project_path))
    orphans = sorted(str(a.get("id")) for a in anns_json if a["video_id"] not in by_id)
    if orphans:  # were dropped without a word
        summary.warnings.append(f"{len(orphans)} annotation(s) refer to videos not listed in 'videos' and were "
                                f"skipped (ids {', '.join(orphans[:10])}{' ...' if len(orphans) > 10 else ''})")
    with ImportTarget(project_path, lambda: _taxonomy_for(cats)) as target:
        target.check_new_ids(wanted, summary.warnings)
        cat_map = _category_map(cats, target.project.taxonomy, json_path)
        total = sum(len(by_id[names[n]]["file_names"]) for n in wanted)
        done = 0
        for name in wanted:
            check_cancel(cancel)
            v = by_id[names[name]]
            h, w = int(v["height"]), int(v["width"])
            files = [image_root / str(f) for f in v["file_names"]]
            stems = [f.stem for f in files]
            if len(set(stems)) != len(stems):
                raise InputError(f"{json_path}: video {name!r} lists the same frame twice")
            for f in files:
                if image_size(f) != (h, w):
                    hh, ww = image_size(f)
                    raise InputError(f"{f} is {ww}x{hh} but {json_path} says video {name!r} is {w}x{h}")
            anns = sorted(anns_by_video.get(v["id"], []), key=lambda a: int(a.get("id") or 0))
            for a in anns:
                if int(a["category_id"]) not in cat_map:
                    raise InputError(f"{json_path}: annotation {a.get('id')} has category {a['category_id']}, "
                                     "which is not in categories (unknown class)")
                if len(a.get("segmentations") or []) != len(files):
                    raise InputError(f"{json_path}: annotation {a.get('id')} has {len(a.get('segmentations') or [])} "
                                     f"segmentations but video {name!r} has {len(files)} frames")
            video = target.create_video(name, stems, h, w)
            tracks = [video.add_track(k + 1, cat_map[int(a["category_id"])],
                                      "crowd" if a.get("iscrowd") else "") for k, a in enumerate(anns)]
            overlap = 0
            for i, f in enumerate(files):
                check_cancel(cancel)
                bgr = read_dataset_image(f)
                video.write_frame_image(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if anns_json:  # a test split without any annotations: frames stay unlabelled
                    label = np.zeros((h, w), np.uint16)
                    for a, t in zip(anns, tracks, strict=True):
                        seg = a["segmentations"][i]
                        if seg is None:
                            continue
                        m = decode_segmentation(seg, h, w, f"{json_path}: annotation {a.get('id')} frame {i}")
                        overlap += int(np.count_nonzero(label[m]))
                        label[m] = t.id
                    video.write_label(i, label, state=FrameState.REVIEWED)
                done += 1
                if progress:
                    progress(done, total, name)
            if overlap:
                summary.warnings.append(f"video {name!r}: {overlap} pixels claimed by two instances; the later "
                                        "annotation kept them")
            summary.videos.append(name)
            summary.frames += len(files)
            summary.tracks += len(tracks)
    return summary


def export_with(project: Any, out: str | Path, options: ExportOptions, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): :func:`export_ytvis` with typed options;
    splits only when asked for (split lists or ratios), else one annotation file."""
    o = options
    return export_ytvis(project, out, videos=o.videos, splits=o.splits,
                        split_ratios=o.split_ratios if (o.split_ratios or o.splits) else None, seed=o.seed,
                        overwrite=o.overwrite, layer=o.layer, progress=progress, cancel=cancel)


def import_with(dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """The registry's entry: :func:`import_ytvis` with typed options."""
    return import_ytvis(dataset, project, videos=options.videos,
                        images=Path(options.images) if options.images else None, progress=progress, cancel=cancel)
