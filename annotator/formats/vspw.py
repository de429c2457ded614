"""VSPW video semantic labels -> panoptic project: stuff tracks by class, thing instance proposals.

VIPSeg was made by adding instances to VSPW's semantic labels; this import starts the same work.
Layout read (the VSPW release)::

    <root>/label_num_dic_final.json        {"others": 0, "wall": 1, ...}  (or a class list, see below)
    <root>/data/<video>/origin/<frame>.jpg
    <root>/data/<video>/mask/<frame>.png   8-bit class index per pixel

Mask values: 0 = "others" and 255 = unlabelled are void; every other value must be in the class
list (else one-line :class:`InputError` naming file, value and pixel count). Classes are mapped to
the project taxonomy by name (VSPW's names are VIPSeg's, index = VIPSeg id + 1). The class list
may also be a text file with one name a line (line n = index n) or a ``{"categories": [{id, name}]}``
JSON. ``data/`` may be left out (videos directly under ``root``).

What the import makes of a frame: each stuff class present is one track of the video (the same on
every frame); each thing class region is cut into connected components (8-connectivity, parts
closer than ``gap`` pixels joined: a neck or a pole in front must not cut a person in two), each a
provisional track. From the second frame on, the previous frame's proposals are moved onto the
frame with the association's propagator and a component that covers two of them (two people
touching) is shared out between them (:func:`refine_with_motion`). Every frame is then a keyframe
and the association engine
(``annotator.stages.association.associate_video``, injected by the stage layer: propagate the previous frame, match by IoU and
the motion rounds, re-identify after gaps) carries the proposals across frames into video-wide
instance tracks. That is only a proposal - two touching people are one component - so every thing
track is flagged ``split_instances`` for review in ``review.json`` (:class:`annotator.review.ReviewStore`
cached flags, like the automatic flags), with extra flags on the frames where the number of
components of a class changes (where a merge or a split is likely). The reviewer fixes them with
the existing tools (split / merge / reassign from frame N).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from annotator.errors import InputError
from annotator.formats.common import ImportTarget, Summary, natural_key, read_dataset_image, select_videos
from annotator.formats.options import AssociateFn, ImportOptions
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState
from annotator.review import Flag, ReviewStore
from annotator.taxonomy import Taxonomy
from propagation.base import Reference
from propagation.factory import association_propagator

CLASS_FILE = "label_num_dic_final.json"
VOID_VALUES = (0, 255)  # "others" and unlabelled
FLAG_KIND = "split_instances"
FLAG_SCORE = 0.6  # above FlagConfig.min_score: shown by default


@dataclass
class VspwReport:
    """What the import did per video (the CLI prints ``summary.lines()``; tests read the rest)."""

    summary: Summary
    flags: dict[str, list[Any]] = field(default_factory=dict)  # video id -> annotator.review.Flag list
    proposals: dict[str, int] = field(default_factory=dict)    # video id -> thing tracks after association


def read_class_list(path: Path) -> dict[int, str]:
    """VSPW class index -> name from ``label_num_dic_final.json``, a names-per-line text file or categories JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the VSPW class list {path}: {exc.strerror}") from None
    if path.suffix.lower() != ".json":
        return {i: ln.strip() for i, ln in enumerate(text.splitlines()) if ln.strip()}
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "categories" in data:
            return {int(c["id"]): str(c["name"]) for c in data["categories"]}
        if isinstance(data, dict):
            return {int(v): str(k) for k, v in data.items()}
        return {int(c["id"]): str(c["name"]) for c in data}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a VSPW class list ({exc}); expected {{name: index}}") from None


def _class_lut(classes: dict[int, str], taxonomy: Taxonomy, where: Path) -> np.ndarray:
    """256-entry table: VSPW index -> project category id; -1 void, -2 not in the class list."""
    lut = np.full(256, -2, np.int64)
    lut[list(VOID_VALUES)] = -1
    missing = []
    for idx, name in classes.items():
        if idx in VOID_VALUES:
            continue
        if not 0 <= idx < 256:
            raise InputError(f"{where}: class index {idx} ({name}) does not fit an 8-bit mask")
        try:
            lut[idx] = taxonomy.by_name(name.strip()).id
        except InputError:
            missing.append(name)
    if missing:
        raise InputError(f"{where}: VSPW classes {', '.join(missing[:10])} are not in the project taxonomy "
                         f"{taxonomy.name!r}; import into a project with these classes")
    return lut


def _video_dirs(root: Path) -> tuple[Path, dict[str, Path]]:
    data = root / "data" if (root / "data").is_dir() else root
    vids = {p.name: p for p in sorted(data.iterdir(), key=lambda p: natural_key(p.name))
            if p.is_dir() and (p / "mask").is_dir()}
    if not vids:
        raise InputError(f"{root}: no VSPW video (data/<video>/mask/*.png) found")
    return data, vids


def _frames(vdir: Path) -> list[tuple[str, Path, Path]]:
    masks = sorted((vdir / "mask").glob("*.png"), key=lambda p: natural_key(p.stem))
    out = []
    for m in masks:
        img = next((vdir / "origin" / f"{m.stem}{ext}" for ext in (".jpg", ".png", ".jpeg")
                    if (vdir / "origin" / f"{m.stem}{ext}").exists()), None)
        if img is None:
            raise InputError(f"{m}: no image {vdir / 'origin' / m.stem}.jpg for this mask")
        out.append((m.stem, img, m))
    if not out:
        raise InputError(f"{vdir / 'mask'}: no mask PNG")
    return out


def read_class_mask(path: Path, lut: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    """Category id per pixel (-1 void) of one VSPW mask; unknown index or wrong size -> one-line InputError."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise InputError(f"{path}: not a readable PNG")
    if m.ndim == 3:
        if not (np.array_equal(m[..., 0], m[..., 1]) and np.array_equal(m[..., 0], m[..., 2])):
            raise InputError(f"{path}: a VSPW mask holds one class index per pixel, this PNG is colour")
        m = m[..., 0]
    if m.dtype != np.uint8 and int(m.max(initial=0)) > 255:
        bad = int(m.max())
        raise InputError(f"{path}: value {bad} on {int((m == bad).sum())} pixels is not a VSPW class index (0..255)")
    m = m.astype(np.uint8)
    if shape is not None and m.shape != shape:
        raise InputError(f"{path} is {m.shape[1]}x{m.shape[0]} but its image is {shape[1]}x{shape[0]}")
    cats = lut[m]
    if (cats == -2).any():
        vals, counts = np.unique(m[cats == -2], return_counts=True)
        raise InputError(f"{path}: value {int(vals[0])} on {int(counts[0])} pixels is not in the VSPW class list "
                         f"(unknown class index{'es ' + str(vals[:10].tolist()) if vals.size > 1 else ''})")
    return cats


def components(mask: np.ndarray, gap: int = 0) -> tuple[int, np.ndarray]:
    """Connected parts of ``mask`` (8-connectivity), parts closer than ``gap`` pixels counting as one.

    Why the gap: thin joints (a neck, a bicycle frame) or a pole in front cut one instance into
    parts a few pixels apart; growing the mask by ``gap`` before labelling joins them, and the
    labels are then read back only on the original pixels.
    """
    m = mask.astype(np.uint8)
    if gap > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
        n, comp = cv2.connectedComponents(cv2.dilate(m, k), connectivity=8)
        comp = np.where(mask, comp, 0)
        used = np.unique(comp)
        remap = np.zeros(n, np.int32)
        remap[used] = np.arange(used.size)
        return int(used.size), remap[comp]
    return cv2.connectedComponents(m, connectivity=8)


def split_frame(cats: np.ndarray, taxonomy: Taxonomy, stuff_track: dict[int, int], next_id: int, gap: int = 0
                ) -> tuple[np.ndarray, dict[int, int], dict[int, int], int]:
    """One frame's provisional label map: stuff class -> its track, thing regions -> one id per component.

    Returns (label, new thing ids {id: class}, components per thing class, next free id).
    """
    label = np.zeros(cats.shape, np.uint16)
    new: dict[int, int] = {}
    per_class: dict[int, int] = {}
    for c in np.unique(cats).tolist():
        if c < 0:
            continue
        mask = cats == c
        if not taxonomy.get(c).isthing:
            label[mask] = stuff_track[c]
            continue
        n, comp = components(mask, gap)
        ids = np.arange(next_id - 1, next_id - 1 + n, dtype=np.int64)
        ids[0] = 0
        label = np.where(mask, ids[comp], label).astype(np.uint16)
        for k in range(1, n):
            new[next_id + k - 1] = c
        per_class[c] = n - 1
        next_id += n - 1
    return label, new, per_class, next_id


def refine_with_motion(label: np.ndarray, cats: np.ndarray, carried: np.ndarray, cls_of: dict[int, int],
                       next_id: int, taxonomy: Taxonomy, gap: int = 0, min_pixels: int = 12,
                       min_share: float = 0.2, join_parts: bool = False) -> tuple[np.ndarray, dict[int, int], int, int]:
    """Fix the two ways connected components miss instances, using the previous frame moved here.

    * one component covering two instances that touch (two people crossing): it overlaps two
      carried instances of its class substantially, so its pixels are shared out by nearest carried
      pixel (a distance transform per component);
    * one instance cut in parts by an occluder of another class (a car behind a person): with
      ``join_parts``, parts lying mostly inside the same carried instance become one proposal. Off
      by default: on the demo it kept two people merged for good once they had touched (crossing
      scenario 93% -> 54% of thing pixels right); association's own rounds handle most of these.

    Association still decides every video-wide identity; this only corrects the per-frame split.
    Returns (label, {new id: class}, next free id, number of components changed).
    """
    out = label.copy()
    new: dict[int, int] = {}
    changed = 0
    for c in np.unique(cats).tolist():
        if c < 0 or not taxonomy.get(c).isthing:
            continue
        mask = cats == c
        n, comp = components(mask, gap)
        if n <= 1:
            continue
        owners_ids = np.array(sorted(t for t, k in cls_of.items() if k == c and t), np.int64)
        if owners_ids.size == 0:
            continue
        lut = np.zeros(int(carried.max(initial=0)) + 1, np.int64)
        keep = owners_ids[owners_ids < lut.size]
        lut[keep] = np.arange(1, keep.size + 1)
        cj = lut[carried]  # index of the carried instance of this class (0: none)
        m = keep.size + 1
        ov = np.bincount(comp[mask].astype(np.int64) * m + cj[mask], minlength=n * m).reshape(n, m)
        area_j = np.bincount(cj.ravel(), minlength=m)
        size_k = ov.sum(axis=1)
        sig = (ov >= min_pixels) & (ov >= min_share * np.maximum(area_j, 1)[None, :])
        sig[:, 0] = False
        single: dict[int, list[int]] = {}
        for k in range(1, n):
            js = np.flatnonzero(sig[k])
            if js.size == 1 and ov[k, js[0]] >= 0.5 * size_k[k]:
                single.setdefault(int(js[0]), []).append(k)
        for ks in single.values():
            if join_parts and len(ks) > 1:  # parts of one carried instance: one proposal
                tid = next_id
                next_id += 1
                new[tid] = c
                out[np.isin(comp, ks)] = tid
                changed += len(ks)
        for k in range(1, n):
            js = np.flatnonzero(sig[k])
            if js.size < 2:
                continue
            ys, xs = np.nonzero(comp == k)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            ck = comp[y0:y1, x0:x1] == k
            seeds = np.where(ck & np.isin(cj[y0:y1, x0:x1], js), cj[y0:y1, x0:x1], 0)
            _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            owner = seeds[iy, ix]
            for j in js.tolist():
                new[next_id] = c
                out[y0:y1, x0:x1][ck & (owner == j)] = next_id
                next_id += 1
            changed += 1
    return out, new, next_id, changed


def _flags(video: Any, counts: list[dict[int, int]], refined: dict[int, int]) -> list[Any]:
    """``split_instances`` flags: one per thing track (its span), one per frame where a class's component count changes."""
    tax = video.taxonomy
    flags = []
    for tid, t in sorted(video.tracks.items()):
        cat = tax.get(t.category_id)
        if not cat.isthing:
            continue
        frames = tuple(video.track_frames(tid))
        if not frames:
            continue
        flags.append(Flag(FLAG_KIND, frames[0], tid, FLAG_SCORE,
                          f"split into instances: {cat.name} proposal {tid} (connected parts tracked by association, "
                          f"frames {frames[0]}-{frames[-1]}); check it is one whole instance", frames))
    for i in range(1, len(counts)):
        for c in sorted(set(counts[i]) | set(counts[i - 1])):
            a, b = counts[i - 1].get(c, 0), counts[i].get(c, 0)
            if a and b and a != b:
                flags.append(Flag(FLAG_KIND, i, 0, FLAG_SCORE,
                                  f"split into instances: {tax.get(c).name} regions go from {a} to {b} parts on frame "
                                  f"{i}; instances may have merged or split here", (i - 1, i)))
    for i, n in sorted(refined.items()):
        if n:
            flags.append(Flag(FLAG_KIND, i, 0, FLAG_SCORE,
                              f"split into instances: {n} region(s) on frame {i} were split or joined by the motion of "
                              "the previous frame; check the boundary", (i,)))
    return flags


def import_vspw(root: str | Path, project_path: str | Path, videos: list[str] | None = None,
                class_list: str | Path | None = None, propagator: Any = None,
                associate: AssociateFn | None = None, propagator_for: Callable[[Any], Any] | None = None,
                motion: bool = True, gap: int | None = None,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> VspwReport:
    """Import VSPW-style semantic videos as panoptic proposals (see the module docstring).

    ``associate(video, propagator=..., cancel=...)``: the association step that carries the
    proposals into video-wide tracks; None skips it. The stage layer supplies
    ``annotator.stages.association.associate_video`` (:func:`annotator.stages.import_dataset.import_vspw`):
    formats sit below the stages and cannot import it. ``propagator``: the motion step's and the
    association's propagator; None: ``propagator_for(video)`` (the stage passes the project's
    association propagator), else optical flow (:func:`propagation.factory.association_propagator`).
    Frames get state ``manual`` (semantic classes are human work; the instance split is not: it is
    flagged).
    """

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"VSPW dataset {root} not found")
    cls_path = Path(class_list) if class_list else root / CLASS_FILE
    if not cls_path.exists():
        raise InputError(f"{root}: no class list {CLASS_FILE}; pass it with the class-list option")
    classes = read_class_list(cls_path)
    _, vids = _video_dirs(root)
    wanted = select_videos(list(vids), videos, str(root))
    report = VspwReport(Summary(path=str(project_path)))
    summary = report.summary
    with ImportTarget(project_path) as target:
        tax = target.project.taxonomy
        lut = _class_lut(classes, tax, cls_path)
        target.check_new_ids(wanted, summary.warnings)
        plans = [(v, _frames(vids[v])) for v in wanted]
        total = sum(len(f) for _, f in plans)
        done = 0
        for vid, frames in plans:
            check_cancel(cancel)
            first = read_dataset_image(frames[0][1])
            h, w = first.shape[:2]
            gap = max(2, round(min(h, w) / 40)) if gap is None else int(gap)
            cat_maps = []
            for _stem, _img, mask_path in frames:  # validate everything before writing anything
                check_cancel(cancel)
                cat_maps.append(read_class_mask(mask_path, lut, (h, w)))
            video = target.create_video(vid, [s for s, _, _ in frames], h, w)
            stuff = sorted({int(c) for m in cat_maps for c in np.unique(m) if c >= 0 and not tax.get(int(c)).isthing})
            stuff_track = {c: video.new_track(c).id for c in stuff}
            next_id = max([0, *video.tracks]) + 1
            counts: list[dict[int, int]] = []
            thing_class: dict[int, int] = {}
            refined: dict[int, int] = {}
            prev: np.ndarray | None = None
            prop = propagator or (propagator_for(video) if propagator_for else association_propagator())
            for i, ((_stem, img_path, _), cats) in enumerate(zip(frames, cat_maps, strict=True)):
                check_cancel(cancel)
                bgr = read_dataset_image(img_path)
                if bgr.shape[:2] != (h, w):
                    raise InputError(f"{img_path} is {bgr.shape[1]}x{bgr.shape[0]}, the video's first frame "
                                     f"{w}x{h}")
                video.write_frame_image(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                label, new, per_class, next_id = split_frame(cats, tax, stuff_track, next_id, gap)
                if prev is not None and motion and any(tax.get(c).isthing for c in per_class):
                    moved = prop.propagate(video, [Reference(i - 1, prev)], [i], cancel=cancel).labels[i]
                    label, more, next_id, n_fixed = refine_with_motion(label, cats, moved, thing_class, next_id, tax, gap)
                    new.update(more)
                    refined[i] = n_fixed
                new = {t: c for t, c in new.items() if (label == t).any()}
                for tid, c in new.items():
                    video.add_track(tid, c)
                    thing_class[tid] = c
                video.write_label(i, label, state=FrameState.MANUAL)
                prev = label
                counts.append(per_class)
                done += 1
                if progress:
                    progress(done, total, vid)
            video.set_keyframes(list(range(len(frames))))
            if associate is not None and any(counts):
                associate(video, propagator=prop, cancel=cancel)
            flags = _flags(video, counts, refined)
            ReviewStore(video).set_flags(flags)
            video.log_event("import_vspw", {"source": str(root), "proposals": sum(1 for f in flags if f.track),
                                            "flags": len(flags)})
            video.save()
            report.flags[vid] = flags
            report.proposals[vid] = sum(1 for t in video.tracks.values() if tax.get(t.category_id).isthing)
            summary.videos.append(vid)
            summary.frames += len(frames)
            summary.tracks += len(video.tracks)
        if any(report.flags.values()):
            summary.warnings.append(f"{sum(len(f) for f in report.flags.values())} '{FLAG_KIND}' review flags: thing "
                                    "regions were split into instance proposals; check them in review mode")
    return report


def import_with(dataset: str | Path, project: str | Path, options: ImportOptions,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Summary:
    """The registry's entry (:mod:`annotator.formats.registry`): typed options in, the summary out;
    per-video proposal counts go to ``summary.details``."""
    report = import_vspw(dataset, project, videos=options.videos, class_list=options.class_list,
                         associate=options.associate, propagator_for=options.propagator_for,
                         progress=progress, cancel=cancel)
    report.summary.details += [f"{vid}: {report.proposals[vid]} instance proposals, {len(flags)} "
                               f"'split_instances' flags" for vid, flags in report.flags.items()]
    return report.summary
