"""VIPSeg import: a VIPSeg-format dataset -> reviewed project videos.

Raw ``panomasks/`` are preferred, else ``panomasksRGB/`` + the GT JSON. Values the official
converter would silently mislabel are refused (or, with ``on_invalid="void"``, imported as void
and reported) with file and pixel count; our sidecar (``vps_annotator.json``) restores track ids
and notes of a previous export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.formats.common import (
    ImportTarget,
    Summary,
    ValueProblem,
    natural_key,
    problems_error,
    read_dataset_image,
    read_json_file,
    select_videos,
)
from annotator.formats.options import ImportOptions
from annotator.formats.vipseg.codec import decode_raw_value, rgb_image_to_id
from annotator.formats.vipseg.export import CATEGORIES_FILE, GT_JSON, SIDECAR
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, image_size
from annotator.taxonomy import Taxonomy, vipseg_taxonomy


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


def import_with(dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): :func:`import_vipseg` with typed options."""
    return import_vipseg(dataset, project, videos=options.videos, on_invalid=options.on_invalid,
                         progress=progress, cancel=cancel)
