"""Label sources for scoring: project videos, VIPSeg exports and official prediction folders.

Each source lists its videos and frame names and loads a video as :class:`Frame` objects. Sources
hold only paths and options, so they pickle cheaply and each worker process reads its own frames.

* ``ProjectSource``: a ``.vpsproj`` folder, any label layer (``labels`` or a layer name such as
  ``propagated``/``preannotated``/``reviewed``). As ground truth only frames that have a label in
  that layer count; segments are listed like the VIPSeg export (stuff first, then things).
* ``VipsegSource``: an export root with ``panomasksRGB/`` + ``panoptic_gt_VIPSeg*.json``, or only raw
  16-bit ``panomasks/`` (decoded as :mod:`annotator.formats.vipseg` encodes: 0 void, v < 125 stuff v-1, else thing
  v//100 - 1 with instance v%100; anything else is an error).
* ``PredictionSource``: the official submission layout, ``pred.json`` + ``pan_pred/<video>/<frame>.png``.

Frames are matched by name; a prediction missing a GT video or frame, a size mismatch, or an id in a
PNG but not in the JSON (or the reverse) is an :class:`InputError` naming the file.

Sizes: the VIPSeg export scales labels to height 720 (``int(720 * w / h)`` wide, so an 854x480
project exports at 1281x720), and the official scripts compare only equal sizes. So that a 720p
export can be scored against its own project, :class:`MatchedPairs` with ``resize=True`` (what
``score`` and the scoring dialog use unless told ``--no-resize``) scales a prediction of another
size to the ground truth's by nearest neighbour - the export's own label rule,
:func:`annotator.formats.vipseg.resize_label` - and :meth:`MatchedPairs.size_notes` says so in the
report. Only a pure rescale is resized (the aspect ratios agree to a pixel); any other size
difference stays an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from annotator.errors import InputError
from annotator.formats.common import labelled_frames, natural_key
from annotator.formats.vipseg import decode_raw_value, resize_label, rgb_image_to_id
from annotator.metrics.types import Categories, Frame, Segment, VideoPair
from annotator.project import Project, image_size
from annotator.taxonomy import vipseg_taxonomy


def read_id_png(path: Path) -> np.ndarray:
    """Read a panoptic PNG: 3-channel -> RGB id, 1-channel 8/16-bit -> its values."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        if not path.exists():
            raise InputError(f"missing mask {path}")
        raise InputError(f"{path}: not a readable PNG")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[..., :3]
        return rgb_image_to_id(img[..., ::-1])
    return img


def decode_raw_panomask(raw: np.ndarray, isthing: dict[int, bool], where: str) -> dict[int, Segment]:
    """Segments of a raw VIPSeg panomask (segment id = raw value), stuff first then things.

    Decoding is :func:`annotator.formats.vipseg.decode_raw_value`: a value the
    official converter would silently mislabel is an error here.
    """
    segs: dict[int, Segment] = {}
    for v in np.unique(raw).tolist():
        if v == 0:
            continue
        dec = decode_raw_value(int(v), isthing)
        if isinstance(dec, str):
            raise InputError(f"{where}: raw value {v} does not decode: {dec}")
        segs[int(v)] = Segment(dec[0])
    return segs


# ------------------------------------------------------------------------------------------ project
class ProjectSource:
    """Videos of a project, one label layer."""

    strict_gt = False

    def __init__(self, path: str | Path, layer: str = "labels", videos: list[str] | None = None) -> None:
        self.path = Path(path)
        self.layer = layer
        proj = Project.open(self.path)
        self._categories = Categories.from_taxonomy(proj.taxonomy)
        if videos:  # looked up one by one: scoring one video must not read every video.json
            missing = [v for v in videos if not proj.has_video(v)]
            if missing:
                raise InputError(f"project {self.path} has no video {', '.join(missing)}")
            ids = list(videos)
        else:
            ids = proj.video_ids
        self._ids = ids
        self.name = f"{self.path.name}:{layer}"
        if layer != "labels":
            self._check_layer(proj)

    def _check_layer(self, proj) -> None:
        """A layer no selected video has is a typo, not an empty prediction: scoring it would print
        zeros (as prediction) or fail with a vague message (as ground truth). Folder checks only
        (``videos/<id>/layers/<layer>/``), so a 3,000-video project is not opened video by video."""
        folders = [self.path / "videos" / vid / "layers" for vid in self._ids]
        if any((f / self.layer).is_dir() for f in folders):
            return
        found = sorted({p.name for f in folders if f.is_dir() for p in f.iterdir() if p.is_dir()})
        raise InputError(f"project {self.path} has no label layer {self.layer!r} in the selected videos "
                         f"(layers: {', '.join(['labels', *found])})")

    def video_ids(self) -> list[str]:
        return list(self._ids)

    def categories(self) -> Categories | None:
        return self._categories

    def _open(self, video_id: str):
        return Project.open(self.path).open_video(video_id, readonly=True)

    def frame_names(self, video_id: str, labelled_only: bool = True) -> list[str]:
        video = self._open(video_id)
        try:
            if labelled_only:
                # the export's definition (a label file and, on the main layer, a state other than
                # unlabelled), so a project scores against its own VIPSeg export frame for frame
                return [video.frame_names[i] for i in labelled_frames(video, self.layer)]
            return list(video.frame_names)
        finally:
            video.close()

    def frame_size(self, video_id: str, name: str) -> tuple[int, int]:
        """(height, width) of the video's label maps (one size per video in a project)."""
        video = self._open(video_id)
        try:
            return int(video.height), int(video.width)
        finally:
            video.close()

    def load(self, video_id: str, names: list[str] | None = None) -> list[Frame]:
        video = self._open(video_id)
        try:
            index = {n: i for i, n in enumerate(video.frame_names)}
            if names is None:
                names = [video.frame_names[i] for i in labelled_frames(video, self.layer)]
            cat = {tid: t.category_id for tid, t in video.tracks.items()}
            order = sorted(cat, key=lambda tid: (self._categories.isthing.get(cat[tid], False), cat[tid], tid))
            frames = []
            for n in names:
                if n not in index:
                    raise InputError(f"{self.name}: video {video_id!r} has no frame {n!r}")
                label = video.read_label(index[n], self.layer)
                present = set(np.flatnonzero(np.bincount(label.ravel())).tolist()) - {0}
                unknown = present - set(cat)
                if unknown:
                    raise InputError(f"{self.name}: video {video_id!r}, frame {n!r} has ids {sorted(unknown)[:5]} "
                                     f"that are not tracks")
                frames.append(Frame(label, {tid: Segment(cat[tid]) for tid in order if tid in present}, n))
            return frames
        finally:
            video.close()


# ------------------------------------------------------------------------------------- JSON layout
def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None


def _annotations_by_video(doc: dict, path: Path) -> dict[str, list[dict]]:
    try:
        return {str(a["video_id"]): list(a["annotations"]) for a in doc["annotations"]}
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: 'annotations' must be a list of {{video_id, annotations}} ({exc})") from None


def _stem(entry: dict) -> str:
    name = entry.get("file_name") or entry.get("image_id") or entry.get("id")
    if name is None:
        raise InputError(f"annotation entry without file_name/image_id: {str(entry)[:80]}")
    return Path(str(name)).stem


def segments_of(entry: dict, where: str) -> dict[int, Segment]:
    segs: dict[int, Segment] = {}
    try:
        for s in entry["segments_info"]:
            sid = int(s["id"])
            seg = Segment(int(s["category_id"]), int(s["area"]) if "area" in s else None, bool(s.get("iscrowd", 0)))
            if sid in segs:  # the official script sums the areas of repeated entries
                old = segs[sid]
                area = None if old.area is None or seg.area is None else old.area + seg.area
                seg = Segment(old.category_id, area, old.iscrowd)
            segs[sid] = seg
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed segments_info ({exc})") from None
    return segs


def _names_from_list(items) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in items if isinstance(c, dict) and "id" in c and "name" in c}


def source_category_names(source) -> dict[int, str]:
    """``{category id: name}`` a file source declares (JSON ``categories`` or the categories file); {} if none."""
    json_masks = source if isinstance(source, _JsonMasks) else getattr(source, "_json", None)
    if json_masks is not None and json_masks.names:
        return dict(json_masks.names)
    root = getattr(source, "root", None)
    if root is not None and (Path(root) / "panoVIPSeg_categories.json").exists():
        return _names_from_list(load_json(Path(root) / "panoVIPSeg_categories.json"))
    return {}


def _declared_names(source) -> dict[int, str]:
    if isinstance(source, ProjectSource):
        return {c.id: c.name for c in Project.open(source.path).taxonomy}
    try:
        return source_category_names(source)
    except InputError:
        return {}


def _check_same_class_names(gt, pred) -> None:
    """Refuse sources whose category ids mean different classes (e.g. a prediction project made
    from a YouTube-VIS import, whose own taxonomy numbers 'person' 1): ids are compared, not names,
    so scoring them would pair unrelated classes."""
    g, p = _declared_names(gt), _declared_names(pred)
    clash = [f"{cid} is {g[cid]!r} in the ground truth but {p[cid]!r} in the prediction"
             for cid in sorted(set(g) & set(p)) if g[cid].strip().lower() != p[cid].strip().lower()]
    if clash:
        raise InputError(f"ground truth {gt.name} and prediction {pred.name} number their classes differently "
                         f"({'; '.join(clash[:3])}{' ...' if len(clash) > 3 else ''}); use sources with the same "
                         "taxonomy")


class _JsonMasks:
    """Masks in ``<mask_dir>/<video>/<stem>.png`` described by a COCO-style video JSON."""

    def __init__(self, json_path: Path, mask_dir: Path, name: str) -> None:
        self.json_path = json_path
        self.mask_dir = mask_dir
        self.name = name
        doc = load_json(json_path)
        self._annos = _annotations_by_video(doc, json_path)
        self._videos = [str(v["video_id"]) for v in doc.get("videos", [])] or list(self._annos)
        cats = doc.get("categories")
        self._categories = Categories.from_json_list(cats) if cats else None
        self.names = _names_from_list(cats or [])  # kept: the JSON can be large, never parse it twice

    def video_ids(self) -> list[str]:
        return list(self._videos)

    def categories(self) -> Categories | None:
        return self._categories

    def frame_names(self, video_id: str) -> list[str]:
        if video_id not in self._annos:
            raise InputError(f"{self.name}: no annotations for video {video_id!r} in {self.json_path}")
        return [_stem(e) for e in self._annos[video_id]]

    def frame_size(self, video_id: str, name: str) -> tuple[int, int]:
        """(height, width) of one mask, from the PNG header."""
        return image_size(self.mask_dir / video_id / f"{name}.png")

    def load(self, video_id: str, names: list[str] | None = None) -> list[Frame]:
        entries = {_stem(e): e for e in self._annos.get(video_id, [])}
        names = names if names is not None else self.frame_names(video_id)
        frames = []
        for n in names:
            if n not in entries:
                raise InputError(f"{self.name}: video {video_id!r} has no frame {n!r} in {self.json_path}")
            path = self.mask_dir / video_id / f"{n}.png"
            ids = read_id_png(path)
            frames.append(Frame(ids, segments_of(entries[n], str(path)), n))
        return frames


class VipsegSource:
    """A VIPSeg export root (or the ``panomasksRGB`` folder itself with ``json_path``)."""

    strict_gt = True

    def __init__(self, root: str | Path, split: str | None = None, json_path: str | Path | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.name = self.root.name
        self._json: _JsonMasks | None = None
        rgb = self.root / "panomasksRGB"
        if json_path is not None or rgb.is_dir():
            jp = Path(json_path) if json_path else self._find_json()
            self._json = _JsonMasks(jp, rgb if rgb.is_dir() else self.root, self.name)
            self._categories = self._json.categories() or _default_categories(self.root)
            self._raw_dir = None
        elif (self.root / "panomasks").is_dir():
            self._raw_dir = self.root / "panomasks"
            self._categories = _default_categories(self.root)
        else:
            raise InputError(f"{self.root} is not a VIPSeg export: expected panomasksRGB/ with "
                             f"panoptic_gt_VIPSeg*.json, or panomasks/")

    def _find_json(self) -> Path:
        if self.split:
            p = self.root / f"panoptic_gt_VIPSeg_{self.split}.json"
            if not p.exists():
                raise InputError(f"{p} not found (split {self.split!r})")
            return p
        p = self.root / "panoptic_gt_VIPSeg.json"
        if p.exists():
            return p
        found = sorted(self.root.glob("panoptic_gt_VIPSeg*.json"))
        if len(found) == 1:
            return found[0]
        raise InputError(f"{self.root}: cannot tell which panoptic_gt_VIPSeg*.json to use; pass a split")

    def video_ids(self) -> list[str]:
        if self._json is not None:
            return self._json.video_ids()
        ids = sorted(p.name for p in self._raw_dir.iterdir() if p.is_dir())
        if self.split:
            lst = self.root / f"{self.split}.txt"
            if not lst.exists():
                raise InputError(f"{lst} not found (split {self.split!r})")
            wanted = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
            missing = [v for v in wanted if v not in ids]
            if missing:
                raise InputError(f"{self._raw_dir}: videos of {lst.name} missing: {', '.join(missing[:5])}")
            ids = wanted
        return ids

    def categories(self) -> Categories:
        return self._categories

    def frame_names(self, video_id: str) -> list[str]:
        if self._json is not None:
            return self._json.frame_names(video_id)
        folder = self._raw_dir / video_id
        if not folder.is_dir():
            raise InputError(f"{folder} not found")
        # temporal order, as the JSON lists it: 'frame_2' before 'frame_10' (a plain string sort would
        # reorder unpadded names and build VPQ windows from frames that are not consecutive)
        return sorted((p.stem for p in folder.glob("*.png")), key=natural_key)

    def frame_size(self, video_id: str, name: str) -> tuple[int, int]:
        """(height, width) of one mask, from the PNG header."""
        if self._json is not None:
            return self._json.frame_size(video_id, name)
        return image_size(self._raw_dir / video_id / f"{name}.png")

    def load(self, video_id: str, names: list[str] | None = None) -> list[Frame]:
        if self._json is not None:
            return self._json.load(video_id, names)
        names = names if names is not None else self.frame_names(video_id)
        frames = []
        for n in names:
            path = self._raw_dir / video_id / f"{n}.png"
            raw = read_id_png(path)
            frames.append(Frame(raw, decode_raw_panomask(raw, dict(self._categories.isthing), str(path)), n))
        return frames


def _default_categories(root: Path) -> Categories:
    p = root / "panoVIPSeg_categories.json"
    if p.exists():
        return Categories.from_json_list(load_json(p))
    return Categories.from_taxonomy(vipseg_taxonomy())


class PredictionSource(_JsonMasks):
    """The official submission layout: ``pred.json`` + ``pan_pred/<video>/<frame>.png``."""

    strict_gt = True

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not (root / "pred.json").exists():
            raise InputError(f"{root} has no pred.json (expected pred.json + pan_pred/<video>/<frame>.png)")
        super().__init__(root / "pred.json", root / "pan_pred", root.name)
        self.root = root
        self._videos = list(self._annos)


# ------------------------------------------------------------------------------------------ sizes
def is_rescale(src: tuple[int, int], dst: tuple[int, int]) -> bool:
    """True when ``src`` (h, w) scaled to ``dst``'s height gives ``dst``'s width to a pixel, and
    the reverse: a resize such as VIPSeg's 720p rule (854x480 -> 1281x720), not a crop or pad."""
    (sh, sw), (dh, dw) = src, dst
    if min(sh, sw, dh, dw) <= 0:
        return False
    return abs(sw * dh / sh - dw) <= 1.0 and abs(dw * sh / dh - sw) <= 1.0


def resize_ids(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map of any integer dtype, with the VIPSeg export's label
    rule (:func:`annotator.formats.vipseg.resize_label`), so an export and its project compare
    pixel for pixel. RGB ids (< 2**24) go through int32, which OpenCV resizes."""
    if ids.shape == (height, width):
        return ids
    if ids.dtype in (np.uint8, np.uint16, np.int16, np.int32):
        return resize_label(ids, height, width)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= 2**31):
        raise InputError(f"cannot resize a label map with ids outside 0..2^31 ({ids.dtype})")
    return resize_label(ids.astype(np.int32), height, width).astype(ids.dtype)


def fit_prediction(fg: Frame, fp: Frame, video_id: str) -> Frame:
    """``fp`` at ``fg``'s size (nearest neighbour) when it is a rescale of it; segments that lost
    every pixel in a downscale are dropped (their JSON area no longer holds: areas become None)."""
    if fp.ids.shape == fg.ids.shape:
        return fp
    (gh, gw), (ph, pw) = fg.ids.shape, fp.ids.shape
    if not is_rescale((ph, pw), (gh, gw)):
        raise InputError(f"video {video_id!r}, frame {fg.name!r}: ground truth is {gw}x{gh}, prediction {pw}x{ph}, "
                         "and the prediction is not a resize of it (another aspect ratio); export or predict at "
                         "the ground truth's size")
    ids = resize_ids(fp.ids, gh, gw)
    present = set(np.unique(ids).tolist())
    segs = {sid: Segment(seg.category_id, None, seg.iscrowd) for sid, seg in fp.segments.items() if sid in present}
    return Frame(ids, segs, fp.name)


# ------------------------------------------------------------------------------------------ pairing
class MatchedPairs:
    """Ground truth and prediction sources matched by video id and frame name (a pair source).

    ``resize``: a prediction frame of another size than its ground truth, but a rescale of it,
    is resized to the ground truth's size by nearest neighbour (:func:`fit_prediction`) instead of
    failing the run; :meth:`size_notes` names the videos for the report.
    """

    def __init__(self, gt, pred, videos: list[str] | None = None, resize: bool = False) -> None:
        self.gt, self.pred = gt, pred
        self.resize = bool(resize)
        self.strict_gt = bool(getattr(gt, "strict_gt", False))
        gt_ids = gt.video_ids()
        ids = list(videos) if videos else gt_ids
        bad = [v for v in ids if v not in gt_ids]
        if bad:
            raise InputError(f"ground truth {gt.name} has no video {', '.join(bad[:5])}")
        # a GT video without any labelled frame (not annotated yet, or images only as in a test split)
        # contributes nothing to the official sums: leave it out and say so, instead of failing the run
        names = {v: self._gt_names(v) for v in ids}
        self.skipped = [v for v in ids if not names[v]]
        ids = [v for v in ids if v not in self.skipped]
        self._first = {v: names[v][0] for v in ids}  # the frame whose size :meth:`size_notes` reads
        if not ids:
            if self.skipped:
                raise InputError(f"ground truth {gt.name} has no labelled frame in any selected video "
                                 f"({', '.join(self.skipped[:5])}); nothing to score")
            raise InputError(f"ground truth {gt.name} has no video; nothing to score")
        pred_ids = set(pred.video_ids())
        missing = [v for v in ids if v not in pred_ids]
        if missing:
            raise InputError(f"prediction {pred.name} lacks {len(missing)} video(s) of the ground truth: "
                             f"{', '.join(missing[:5])}")
        self.video_ids = ids
        _check_same_class_names(gt, pred)

    def _gt_names(self, video_id: str) -> list[str]:
        return self.gt.frame_names(video_id)

    @property
    def notes(self) -> list[str]:
        if not self.skipped:
            return []
        return [f"left out {len(self.skipped)} ground-truth video(s) without labelled frames: "
                f"{', '.join(self.skipped[:10])}{' ...' if len(self.skipped) > 10 else ''}"]

    def size_notes(self) -> list[str]:
        """The report's note on predictions scored after a resize (first frame of each video,
        read from headers; nothing when ``resize`` is off or every size matches)."""
        if not self.resize:
            return []
        changed = []
        for vid in self.video_ids:
            try:
                g = self.gt.frame_size(vid, self._first[vid])
                p = self.pred.frame_size(vid, self._first[vid])
            except (InputError, AttributeError):  # unreadable here: the scoring itself reports it
                continue
            if g != p and is_rescale(p, g):
                changed.append(f"{vid} {p[1]}x{p[0]} -> {g[1]}x{g[0]}")
        if not changed:
            return []
        more = " ..." if len(changed) > 5 else ""
        return [f"prediction label maps resized to the ground truth's size by nearest neighbour (the VIPSeg "
                f"export's label rule) in {len(changed)} video(s): {', '.join(changed[:5])}{more}"]

    def categories(self) -> Categories:
        cats = self.gt.categories()
        if cats is None:
            raise InputError(f"ground truth {self.gt.name} has no category list")
        return cats

    def load(self, video_id: str) -> VideoPair:
        names = self.gt.frame_names(video_id)
        if not names:
            raise InputError(f"ground truth {self.gt.name}: video {video_id!r} has no labelled frame")
        pred_names = set(self.pred.frame_names(video_id) if not isinstance(self.pred, ProjectSource)
                         else self.pred.frame_names(video_id, labelled_only=False))
        missing = [n for n in names if n not in pred_names]
        if missing:
            raise InputError(f"prediction {self.pred.name}: video {video_id!r} lacks frame(s) "
                             f"{', '.join(missing[:5])}")
        gt = self.gt.load(video_id, names)
        pred = self.pred.load(video_id, names)
        if self.resize:
            pred = [fit_prediction(fg, fp, video_id) for fg, fp in zip(gt, pred, strict=True)]
        return VideoPair(video_id, gt, pred)


def open_source(spec: str | Path, layer: str | None = None, split: str | None = None,
                json_path: str | Path | None = None, videos: list[str] | None = None):
    """Guess the kind of a source from its folder: project, prediction folder or VIPSeg export."""
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if (path / "project.json").exists():
        return ProjectSource(path, layer or "labels", videos)
    if layer:
        raise InputError(f"{path}: a label layer can only be chosen for a project")
    if (path / "pred.json").exists():
        return PredictionSource(path)
    if (path / "panomasksRGB").is_dir() or (path / "panomasks").is_dir() or json_path:
        return VipsegSource(path, split, json_path)
    raise InputError(f"{path}: not a project (project.json), a prediction folder (pred.json + pan_pred/) "
                     f"or a VIPSeg export (panomasksRGB/ or panomasks/)")
