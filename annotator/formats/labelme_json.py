"""labelme JSON, one file per frame: export of label maps as shapes, import of labelme folders.

Export layout: ``<video>/<frame>.json`` next to ``<video>/<frame>.jpg`` (``imagePath`` relative,
``imageData`` null). Each track on a frame becomes shapes with ``label`` = class name and
``group_id`` = track id:

* ``polygon`` (default): OpenCV contours (``RETR_CCOMP``). labelme has no polygons with holes, so a
  hole is a polygon of the same label/group with ``flags: {"hole": true}`` (description "hole");
  our import subtracts it, and labelme itself still shows where the hole is.
* ``mask``: labelme 5+ mask shapes (bbox + base64 PNG), exact.

Track metadata (class id, note) is kept under the extra top-level key ``vps_annotator``.

Import reads a folder of per-frame JSONs (one video) or a folder of such folders (one video each),
masks via ``labelme.utils.shape_to_mask``; shapes of one ``group_id`` form one track, shapes
without one become one track each (things) or one track per class (stuff). Frame state ``reviewed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import labelme
import numpy as np
from labelme import utils as lm_utils

from annotator.errors import InputError
from annotator.formats.common import (
    ImportTarget,
    Summary,
    check_something_to_export,
    export_source,
    labelled_frames,
    natural_key,
    read_dataset_image,
    read_json_file,
    select_videos,
)
from annotator.formats.options import ExportOptions, ImportOptions
from annotator.formats.output import staged_output, write_bytes, write_json
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, image_size, project_frame_size
from annotator.taxonomy import Taxonomy

META_KEY = "vps_annotator"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
REGION_TYPES = ("polygon", "rectangle", "circle", "mask", None)
LINE_TYPES = ("line", "linestrip", "point", "points")  # label no pixels


# ------------------------------------------------------------------------------------------ shapes
def _shape(label: str, points: list[list[float]], group_id: int, shape_type: str = "polygon",
           hole: bool = False, mask: str | None = None) -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": group_id, "description": "hole" if hole else "",
            "shape_type": shape_type, "flags": {"hole": True} if hole else {}, "mask": mask}


def mask_to_polygons(mask: np.ndarray) -> list[tuple[list[list[float]], bool]]:
    """Contours of a boolean mask as ``(points, is_hole)``; outer contours first within each component."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    if hierarchy is None:
        return out
    for c, h in zip(contours, hierarchy[0], strict=True):
        pts = c.reshape(-1, 2).tolist()
        while len(pts) < 3:  # one- or two-pixel parts: labelme needs 3 points, repeats keep the pixels
            pts.append(list(pts[-1]))
        out.append(([[float(x), float(y)] for x, y in pts], bool(h[3] >= 0)))
    return out


def mask_shape(label: str, mask: np.ndarray, group_id: int) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    crop = mask[y1:y2 + 1, x1:x2 + 1].astype(np.uint8)
    return _shape(label, [[float(x1), float(y1)], [float(x2), float(y2)]], group_id, "mask",
                  mask=lm_utils.img_arr_to_b64(crop))


def _hole_interior(points: list[list[float]], shape: tuple[int, int]) -> np.ndarray:
    """Pixels strictly inside a hole contour (the contour itself is foreground, traced by OpenCV)."""
    filled = lm_utils.shape_to_mask(shape, points, "polygon")
    outline = np.zeros(shape, np.uint8)
    cv2.polylines(outline, [np.round(np.asarray(points)).astype(np.int32)], True, 1)
    return filled & (outline == 0)


def shapes_to_masks(shapes: list[dict], shape: tuple[int, int], where: str) -> list[tuple[int, np.ndarray]]:
    """``[(shape index, mask)]`` for region shapes; holes are returned as negative indices."""
    out = []
    for k, s in enumerate(shapes):
        st = s.get("shape_type")
        try:
            if st == "mask":
                if not isinstance(s.get("mask"), str):
                    raise InputError(f"{where}: shape {k} is a mask shape without base64 mask data")
                crop = lm_utils.img_b64_to_arr(s["mask"]).astype(bool)
                if crop.ndim == 3:
                    crop = crop[..., 0]
                (x1, y1), _ = np.asarray(s["points"], float).astype(int)[:2]
                m = np.zeros(shape, bool)
                hh, ww = min(crop.shape[0], shape[0] - y1), min(crop.shape[1], shape[1] - x1)
                if y1 < 0 or x1 < 0 or hh <= 0 or ww <= 0:
                    raise InputError(f"{where}: mask shape {k} lies outside the {shape[1]}x{shape[0]} image")
                m[y1:y1 + hh, x1:x1 + ww] = crop[:hh, :ww]
            elif (s.get("flags") or {}).get("hole"):
                out.append((-k - 1, _hole_interior(s["points"], shape)))
                continue
            else:
                m = lm_utils.shape_to_mask(shape, s["points"], st)
        except InputError:
            raise
        except (AssertionError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise InputError(f"{where}: shape {k} ({s.get('label')!r}, {st}) is malformed ({exc})") from None
        out.append((k, m))
    return out


# ------------------------------------------------------------------------------------------ export
def export_labelme(project: Any, out: str | Path, videos: list[str] | None = None, overwrite: bool = False,
                   layer: str = "labels", shapes: str = "polygon", include_unlabelled: bool = False,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """One labelme JSON per labelled frame (plus its JPEG) under ``out/<video>/``."""

    if shapes not in ("polygon", "mask"):
        raise InputError(f"labelme shapes must be 'polygon' or 'mask', not {shapes!r}")
    proj, ids = export_source(project, videos)
    taxonomy = proj.taxonomy
    out = Path(out)
    summary = Summary(path=str(out))
    plans = []
    for vid in ids:
        with proj.open_video(vid, readonly=True) as video:
            frames = labelled_frames(video, layer)
            extra = sorted(set(range(video.num_frames)) - set(frames)) if include_unlabelled else []
            if not frames and not extra:
                summary.skipped.append(f"{vid}: no labelled frames")
                continue
            for t in video.tracks.values():
                if t.category_id not in taxonomy:
                    raise InputError(f"video {vid!r}: track {t.id} has unknown class id {t.category_id}")
            plans.append((vid, frames, extra))
    check_something_to_export(len(plans), summary, layer, proj.path)
    total = sum(len(f) + len(e) for _, f, e in plans)
    done = 0
    with staged_output(out, overwrite, proj.path, summary.warnings) as stage:
        for vid, frames, extra in plans:
            with proj.open_video(vid, readonly=True) as video:
                tracks = video.tracks
                used: set[int] = set()
                for i in sorted(frames + extra):
                    check_cancel(cancel)
                    stem = video.frame_names[i]
                    src = video.frame_path(i)
                    if project_frame_size(src) != video.shape:
                        raise InputError(f"frame image {src} does not match the video size {video.width}x{video.height}")
                    write_bytes(stage / vid / f"{stem}.jpg", src.read_bytes())
                    if i in extra:
                        done += 1
                        continue
                    label = video.read_label(i, layer)
                    present = [int(v) for v in np.unique(label) if v != 0]
                    unknown = [t for t in present if t not in tracks]
                    if unknown:
                        raise InputError(f"frame {stem} of video {vid!r} holds ids {unknown[:10]} that are not tracks")
                    order = sorted(present, key=lambda t: (taxonomy.get(tracks[t].category_id).isthing, t))
                    shp: list[dict] = []
                    for tid in order:
                        name = taxonomy.get(tracks[tid].category_id).name
                        m = label == tid
                        if shapes == "mask":
                            shp.append(mask_shape(name, m, tid))
                        else:
                            shp.extend(_shape(name, pts, tid, hole=hole) for pts, hole in mask_to_polygons(m))
                    used.update(present)
                    meta = {"video_id": vid, "frame_index": i, "frame": stem,
                            "tracks": [{"id": t, "category_id": tracks[t].category_id,
                                        "class": taxonomy.get(tracks[t].category_id).name, "note": tracks[t].note}
                                       for t in present]}
                    doc = {"version": labelme.__version__, "flags": {}, "shapes": shp, "imagePath": f"{stem}.jpg",
                           "imageData": None, "imageHeight": video.height, "imageWidth": video.width,
                           META_KEY: meta}
                    write_json(stage / vid / f"{stem}.json", doc)
                    done += 1
                    if progress:
                        progress(done, total, vid)
                summary.videos.append(vid)
                summary.frames += len(frames)
                summary.tracks += len(used)
    return summary


# ------------------------------------------------------------------------------------------ import
def _video_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError(f"labelme folder {root} not found")
    if any(root.glob("*.json")):
        return [root]
    subs = sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json"))), key=lambda p: natural_key(p.name))
    if not subs:
        raise InputError(f"{root} holds no labelme JSON files (neither directly nor in sub-folders)")
    return subs


def _parse_video(folder: Path, taxonomy: Taxonomy) -> dict[str, Any]:
    """Read and validate every JSON of one video before anything is written."""
    jsons = sorted(folder.glob("*.json"), key=lambda p: natural_key(p.stem))
    docs, referenced = [], set()
    size: tuple[int, int] | None = None
    for jp in jsons:
        doc = read_json_file(jp, "labelme file")
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            raise InputError(f"{jp}: not a labelme file (no 'shapes' list)")
        img_path = folder / str(doc.get("imagePath") or f"{jp.stem}.jpg").replace("\\", "/")
        if img_path.exists():
            hw = image_size(img_path)
            referenced.add(img_path.resolve())
        elif doc.get("imageData"):
            try:
                hw = lm_utils.img_b64_to_arr(doc["imageData"]).shape[:2]
            except Exception:  # noqa: BLE001 - any decode failure is one clear message
                raise InputError(f"{jp}: imageData is not a readable base64 image") from None
            img_path = None
        else:
            raise InputError(f"{jp}: its image {img_path.name} is missing (missing frame) and imageData is empty")
        decl = (doc.get("imageHeight"), doc.get("imageWidth"))
        if all(v is not None for v in decl) and (int(decl[0]), int(decl[1])) != tuple(hw):
            raise InputError(f"{jp}: imageHeight/imageWidth say {decl[1]}x{decl[0]} but the image is "
                             f"{hw[1]}x{hw[0]} (mask/image size mismatch)")
        if size is not None and tuple(hw) != size:
            raise InputError(f"{jp}: image is {hw[1]}x{hw[0]}, other frames of {folder.name!r} are {size[1]}x{size[0]}")
        size = (int(hw[0]), int(hw[1]))
        for k, s in enumerate(doc["shapes"]):
            if not isinstance(s, dict) or "label" not in s or "points" not in s:
                raise InputError(f"{jp}: shape {k} has no label or points")
            try:
                taxonomy.by_name(str(s["label"]).strip())
            except InputError:
                raise InputError(f"{jp}: shape {k} has unknown class {s['label']!r} (not in taxonomy "
                                 f"{taxonomy.name!r}); rename it or add the class") from None
            if s.get("shape_type") not in REGION_TYPES + LINE_TYPES:  # was dropped without a word
                raise InputError(f"{jp}: shape {k} has unknown shape_type {s.get('shape_type')!r}; labelme types "
                                 f"are {', '.join(t for t in REGION_TYPES + LINE_TYPES if t)}")
            gid = s.get("group_id")
            if gid is not None and (not isinstance(gid, int) or not 1 <= gid <= 65535):
                raise InputError(f"{jp}: shape {k} has group_id {gid!r}; use integers 1..65535 or null")
        docs.append((jp, doc, img_path))
    extra = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in referenced
             and not (folder / f"{p.stem}.json").exists()]
    return {"docs": docs, "extra": extra, "size": size}


def import_labelme(path: str | Path, project_path: str | Path, videos: list[str] | None = None,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """Import labelme folders (one video per folder) into a project; frame state ``reviewed``."""
    folders = {f.name: f for f in _video_folders(Path(path))}
    wanted = select_videos(list(folders), videos, f"labelme folder {path}")
    summary = Summary(path=str(project_path))
    with ImportTarget(project_path) as target:
        target.check_new_ids(wanted, summary.warnings)
        taxonomy = target.project.taxonomy
        parsed = {v: _parse_video(folders[v], taxonomy) for v in wanted}  # validate everything first
        total = sum(len(p["docs"]) + len(p["extra"]) for p in parsed.values())
        done = 0
        for vid in wanted:
            p = parsed[vid]
            h, w = p["size"]
            tracks = _plan_tracks(p["docs"], taxonomy)
            frames = [(jp.stem, img, doc, k) for k, (jp, doc, img) in enumerate(p["docs"])]
            frames += [(e.stem, e, None, -1) for e in p["extra"]]
            frames.sort(key=lambda f: natural_key(f[0]))
            stems = [f[0] for f in frames]
            if len(set(stems)) != len(stems):
                raise InputError(f"labelme video {vid!r}: two frames share the name {stems!r}")
            video = target.create_video(vid, stems, h, w)
            for tid in sorted(tracks["meta"]):
                cid, note = tracks["meta"][tid]
                video.add_track(tid, cid, note)
            for i, (stem, img, doc, k) in enumerate(frames):
                check_cancel(cancel)
                if img is not None:
                    bgr = read_dataset_image(img)
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                else:
                    rgb = lm_utils.img_b64_to_arr(doc["imageData"])
                    rgb = np.repeat(rgb[..., None], 3, 2) if rgb.ndim == 2 else rgb[..., :3]
                video.write_frame_image(i, np.ascontiguousarray(rgb, np.uint8))
                if doc is not None:
                    label = _compose(doc["shapes"], tracks["shape_track"][k], (h, w), f"{folders[vid] / stem}.json")
                    video.write_label(i, label, state=FrameState.REVIEWED)
                done += 1
                if progress:
                    progress(done, total, vid)
            summary.videos.append(vid)
            summary.frames += len(frames)
            summary.tracks += len(tracks["meta"])
    return summary


def _plan_tracks(docs: list[tuple[Path, dict, Any]], taxonomy: Taxonomy) -> dict[str, Any]:
    """Track id, class and note for every shape of a video (group ids kept, the rest numbered after)."""
    meta: dict[int, tuple[int, str]] = {}
    notes: dict[int, str] = {}
    for _, doc, _ in docs:
        for t in (doc.get(META_KEY) or {}).get("tracks", []) if isinstance(doc.get(META_KEY), dict) else []:
            if isinstance(t, dict) and isinstance(t.get("id"), int):
                notes[t["id"]] = str(t.get("note", ""))
    for jp, doc, _ in docs:
        for k, s in enumerate(doc["shapes"]):
            gid = s.get("group_id")
            if gid is None or s.get("shape_type") not in REGION_TYPES:
                continue
            cid = taxonomy.by_name(str(s["label"]).strip()).id
            if gid in meta and meta[gid][0] != cid:
                raise InputError(f"{jp}: shape {k} has group_id {gid} with class {s['label']!r}, but the same "
                                 f"group_id has class {taxonomy.get(meta[gid][0]).name!r} elsewhere in the video")
            meta.setdefault(gid, (cid, notes.get(gid, "")))
    next_id = max(meta, default=0) + 1
    stuff_track: dict[int, int] = {}
    shape_track: list[list[int]] = []
    for _, doc, _ in docs:
        ids = []
        for s in doc["shapes"]:
            gid = s.get("group_id")
            cid = taxonomy.by_name(str(s["label"]).strip()).id
            if s.get("shape_type") not in REGION_TYPES:
                ids.append(0)  # points and lines label no pixels: no track
                continue
            if gid is None:
                if not taxonomy.get(cid).isthing and cid in stuff_track:
                    gid = stuff_track[cid]
                else:
                    if next_id > 65535:
                        raise InputError("too many shapes without group_id (track ids run out at 65535)")
                    gid, next_id = next_id, next_id + 1
                    meta[gid] = (cid, "")
                    if not taxonomy.get(cid).isthing:
                        stuff_track[cid] = gid
            ids.append(gid)
        shape_track.append(ids)
    return {"meta": meta, "shape_track": shape_track}


def _compose(shapes: list[dict], track_ids: list[int], shape: tuple[int, int], where: str) -> np.ndarray:
    """One label map: per track union of its regions minus its holes, painted in order of first shape."""
    masks: dict[int, np.ndarray] = {}
    holes: dict[int, np.ndarray] = {}
    # lines and points carry no area: they label no pixels
    regions = [s for s in shapes if s.get("shape_type") in REGION_TYPES]
    index = [k for k, s in enumerate(shapes) if s.get("shape_type") in REGION_TYPES]
    for k, m in shapes_to_masks(regions, shape, where):
        tid = track_ids[index[k if k >= 0 else -k - 1]]
        target = masks if k >= 0 else holes
        target[tid] = target[tid] | m if tid in target else m
    label = np.zeros(shape, np.uint16)
    for tid, m in masks.items():  # dict order = order of first shape: later tracks win shared pixels
        if tid in holes:
            m = m & ~holes[tid]
        label[m] = tid
    return label


def export_with(project: Any, out: str | Path, options: ExportOptions, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): :func:`export_labelme` with typed options."""
    o = options
    return export_labelme(project, out, videos=o.videos, overwrite=o.overwrite, layer=o.layer, shapes=o.shapes,
                          include_unlabelled=o.include_unlabelled, progress=progress, cancel=cancel)


def import_with(dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """The registry's entry: :func:`import_labelme` with typed options."""
    return import_labelme(dataset, project, videos=options.videos, progress=progress, cancel=cancel)
