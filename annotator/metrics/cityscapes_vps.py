"""Cityscapes-VPS protocol: VPSNet's VPQ (``tools/eval_vpq.py`` of mcahny/vps), from the shared tables.

What the released script does (checked line by line against ``tools/eval_vpq.py`` at 138503e):

* Only every 5th source frame is annotated (lambda = 5): a val video is 6 annotated frames of a
  30-frame snippet. The windows are ``nframes`` = 1, 2, 3, 4 *annotated* frames (``for nframes in
  [1,2,3,4]``), reported as k = (nframes - 1) * 5 = 0, 5, 10, 15 source frames (``vpq-k.txt``).
* Every window start ``idx = 0 .. T - nframes`` (stride 1) of a video stacks its frames into tubes.
  Matching, IoU ``I / (A_pred + A_gt - I - I_void_pred) > 0.5`` with the JSON ``area`` of GT
  segments summed over the window and the PNG pixel count of predictions, FN for unmatched
  non-crowd GT, FP unless more than half of the prediction lies on GT void plus *one* crowd region
  of its class: the same rules as VIPSeg's script, so the per-frame tables
  (:mod:`annotator.metrics.tables`) and :func:`annotator.metrics.vpq.vpq_video_stats` are reused.
* The one difference: the crowd region an FP is measured against is the *last* crowd segment of
  its class in the window's segment order (``crowd_labels_dict[cat] = gt_label`` overwritten while
  iterating ``vid_gt_segms``), while the shared engine sums every crowd region of the class.
  Cityscapes-VPS has one crowd segment per class per video (``instid2color`` keyed by the raw
  value < 1000), so both agree there; for a video where a class has several crowd ids the window
  loop here applies the script's rule exactly.
* ``pq_average`` over classes with TP+FP+FN > 0 for All/Things/Stuff per k; the final numbers are
  the plain mean over the four k (``vpq-final.txt``), x100.
* Videos: the script reads all frames as one list and cuts it with ``np.array_split(list, len //
  6)``; with 6 annotated frames per video (the released val/test sets) that is one chunk per video,
  which is what ``grouping="video"`` does. ``grouping="official"`` reproduces the chunking for other
  counts (chunks may then straddle videos, as in the script); a note says when the two differ.
* Where the script divides by zero (no class in a group, or no video long enough for a window) the
  value is left out of the mean and a note says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from annotator.errors import InputError
from annotator.formats.cityscapes_vps import find_gt
from annotator.formats.common import labelled_frames
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics.engine import _check_categories
from annotator.metrics.sources import MatchedPairs, ProjectSource, load_json, read_id_png, segments_of
from annotator.metrics.tables import VideoTable, build_table
from annotator.metrics.types import Categories, Frame, VideoPair
from annotator.metrics.vpq import (
    ClassStats,
    GroupScore,
    VPQStats,
    _bin,
    _category_index,
    pq_average,
    vpq_video_stats,
)
from annotator.taxonomy import cityscapes_vps_taxonomy

LAMBDA = 5  # annotated every 5th source frame
NFRAMES: tuple[int, ...] = (1, 2, 3, 4)  # window lengths in annotated frames
FRAMES_PER_VIDEO = 6  # ``nframes_per_video`` of the script


def k_of(nframes: int) -> int:
    """Window size in source frames as the script names it: ``k = (nframes - 1) * 5``."""
    return (int(nframes) - 1) * LAMBDA


def annotated_positions(source_indices: Sequence[int], lam: int = LAMBDA) -> list[int]:
    """Positions of the annotated frames (every ``lam``-th source frame from the first one).

    For a project video that holds all source frames of a snippet, these are the frames the
    protocol scores; a video imported from a Cityscapes-VPS export holds only annotated frames.
    """
    if not source_indices:
        return []
    s0 = int(source_indices[0])
    return [i for i, s in enumerate(source_indices) if (int(s) - s0) % lam == 0]


# ----------------------------------------------------------------- statistics
def _insertion_keys(frames: list[Frame], ids: np.ndarray) -> np.ndarray:
    """(T, G) position of each GT id in each frame's ``segments_info`` (large where not listed)."""
    index = {int(s): i for i, s in enumerate(ids.tolist())}
    big = np.iinfo(np.int64).max // 4
    keys = np.full((len(frames), ids.size), big, dtype=np.int64)
    for t, f in enumerate(frames):
        for n, sid in enumerate(f.segments):
            keys[t, index[int(sid)]] = n
    return keys


def _needs_crowd_rule(table: VideoTable) -> bool:
    """True when some class has two or more crowd GT ids in the video (the engine's rule differs there)."""
    cats = table.gt_cat[table.gt_crowd]
    return cats.size != np.unique(cats).size


def _official_window_stats(table: VideoTable, keys: np.ndarray, cats: Categories, windows: Sequence[int],
                           mode: str) -> VPQStats:
    """The script's per-window loop (vectorised over segment pairs), with its one-crowd-per-class FP rule."""
    n = len(cats.ids)
    G = table.gt_ids.size
    g_ci = _category_index(cats, table.gt_cat)
    p_ci = _category_index(cats, table.pred_cat)
    same = (table.gt_cat[:, None] == table.pred_cat[None, :]) & ~table.gt_crowd[:, None]
    gt_area = table.gt_area if mode == "official" else table.gt_pixel_area
    T = table.num_frames
    out = VPQStats()
    for L in windows:
        st = ClassStats.zeros(n)
        for s in range(0, max(0, T - L + 1)):
            W = table.counts[s:s + L].sum(axis=0)
            Ag = gt_area[s:s + L].sum(axis=0)
            presG = table.gt_listed[s:s + L].any(axis=0)
            presP = table.pred_listed[s:s + L].any(axis=0)
            Ap = W.sum(axis=0)[1:].astype(np.float64)
            Iv = W[0, 1:]
            inter = W[1:G + 1, 1:]
            union = Ap[None, :] + Ag[:, None] - inter - Iv[None, :]
            valid = same & (inter > 0) & presG[:, None] & presP[None, :] & (union > 0)
            iou = np.where(valid, inter / np.where(union > 0, union, 1), 0.0)
            tp = iou > 0.5
            st.tp += _bin(g_ci, tp.sum(axis=1).astype(np.float64), n).astype(np.int64)
            st.iou += _bin(g_ci, np.where(tp, iou, 0.0).sum(axis=1), n)
            fn = presG & ~tp.any(axis=1) & ~table.gt_crowd
            st.fn += _bin(g_ci, fn.astype(np.float64), n).astype(np.int64)
            # crowd_labels_dict: per class, the crowd id inserted last into vid_gt_segms
            first = np.argmin(np.where(table.gt_listed[s:s + L], 0, 1), axis=0)  # first listed frame in window
            order = first.astype(np.int64) * (1 << 32) + keys[s + first, np.arange(G)]
            ign = Iv.astype(np.float64)
            crowd = np.flatnonzero(presG & table.gt_crowd)
            chosen: dict[int, int] = {}
            for g in crowd[np.argsort(order[crowd], kind="stable")]:
                chosen[int(table.gt_cat[g])] = int(g)  # later insertion overwrites, as in the script
            for c, g in chosen.items():
                cols = table.pred_cat == c
                ign[cols] += inter[g, cols]
            ignored = ign / np.where(Ap > 0, Ap, 1) > 0.5
            fp = presP & ~tp.any(axis=0) & ~ignored
            st.fp += _bin(p_ci, fp.astype(np.float64), n).astype(np.int64)
            st.windows += 1
        out.by_length[L] = st
    return out


def video_stats(pair: VideoPair, cats: Categories, windows: Sequence[int] = NFRAMES, mode: str = "official",
                strict_gt: bool = False, force_window_loop: bool = False) -> tuple[int, VPQStats]:
    """Per-class sums of one video (or one chunk of the script) for every window length."""
    table = build_table(pair.video_id, pair.gt, pair.pred, strict_gt=strict_gt)
    _check_categories(table.video_id, "ground truth", table.gt_ids, table.gt_cat, cats)
    _check_categories(table.video_id, "prediction", table.pred_ids, table.pred_cat, cats)
    if force_window_loop or _needs_crowd_rule(table):
        return table.num_frames, _official_window_stats(table, _insertion_keys(pair.gt, table.gt_ids), cats,
                                                        windows, mode)
    return table.num_frames, vpq_video_stats(table, cats, tuple(windows), mode)


# ----------------------------------------------------------------- grouping
def official_chunks(pairs: Sequence[VideoPair], per_video: int = FRAMES_PER_VIDEO) -> list[VideoPair]:
    """The script's ``np.array_split(all_frames, len(all_frames) // 6)`` over the concatenated videos."""
    gt = [f for p in pairs for f in p.gt]
    pred = [f for p in pairs for f in p.pred]
    total = len(gt)
    if total < per_video:
        raise InputError(f"the released script needs at least {per_video} annotated frames (len // 6 chunks); "
                         f"got {total}; use grouping='video'")
    out = []
    for n, idx in enumerate(np.array_split(np.arange(total), total // per_video)):
        out.append(VideoPair(f"chunk{n:04d}", [gt[i] for i in idx], [pred[i] for i in idx]))
    return out


# ----------------------------------------------------------------- result
@dataclass
class CityscapesVPQ:
    """VPQ of the Cityscapes-VPS protocol: per-k groups and classes, and the final mean (x100)."""

    per_k: dict[int, dict[str, GroupScore | None]]   # k (0, 5, 10, 15) -> all/things/stuff
    per_class: dict[int, dict[int, dict]]             # k -> category id -> pq/sq/rq/iou/tp/fp/fn
    vpq: dict[str, float | None]                      # all/things/stuff, mean over k, x100
    videos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, names: dict[int, str] | None = None) -> str:
        """The script's ``vpq-k.txt`` tables for every k, then its ``vpq-final.txt`` lines."""
        lines = []
        for k, groups in self.per_k.items():
            lines.append(f"==> k = {k} ({k // LAMBDA + 1} annotated frames)")
            lines.append("{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"))
            lines.append("-" * (10 + 7 * 4))
            for label, key in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
                g = groups.get(key)
                if g is None:
                    lines.append(f"{label:10s}|   (no class: left out)")
                else:
                    lines.append(f"{label:10s}| {100 * g.pq:5.1f}  {100 * g.sq:5.1f}  {100 * g.rq:5.1f} {g.n:5d}")
            lines.append("{:4s}| {:>5s} {:>5s} {:>5s} {:>6s} {:>7s} {:>7s} {:>7s}  {}".format(
                "IDX", "PQ", "SQ", "RQ", "IoU", "TP", "FP", "FN", "class"))
            for c, r in self.per_class.get(k, {}).items():
                lines.append("{:4d} | {:5.1f} {:5.1f} {:5.1f} {:6.1f} {:7d} {:7d} {:7d}  {}".format(
                    c, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"], r["iou"], r["tp"], r["fp"], r["fn"],
                    (names or {}).get(c, "")))
        for key in ("all", "thing", "stuff"):
            v = self.vpq[key if key != "thing" else "things"]
            lines.append(f"vpq_{key}:" + ("n/a" if v is None else f"{v:.4f}"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def result_from_stats(stats: VPQStats, cats: Categories, windows: Sequence[int] = NFRAMES) -> CityscapesVPQ:
    """Per-k groups and the mean over k, leaving out what the script would divide by zero."""
    notes: list[str] = []
    per_k: dict[int, dict[str, GroupScore | None]] = {}
    per_class: dict[int, dict[int, dict]] = {}
    finals: dict[str, list[float]] = {"all": [], "things": [], "stuff": []}
    for L in windows:
        k = k_of(L)
        st = stats.by_length.get(L)
        if st is None or st.windows == 0:
            notes.append(f"k={k}: no video has {L} annotated frames; left out of the mean "
                         "(the released script divides by zero)")
            continue
        groups: dict[str, GroupScore | None] = {}
        for name, flag in (("all", None), ("things", True), ("stuff", False)):
            score, pc = pq_average(st, cats, flag)
            groups[name] = score
            if name == "all":
                per_class[k] = {c: pc.get(c, {"pq": 0.0, "sq": 0.0, "rq": 0.0, "iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
                                for c in cats.ids}
            if score is None:
                notes.append(f"k={k}: no {name} class occurs; left out of the {name} mean "
                             "(the released script divides by zero)")
            else:
                finals[name].append(100.0 * score.pq)
        per_k[k] = groups
    vpq = {k: (float(np.mean(v)) if v else None) for k, v in finals.items()}
    return CityscapesVPQ(per_k, per_class, vpq, notes=notes)


def score_cityscapes_vps(pairs: Sequence[VideoPair], cats: Categories | None = None, grouping: str = "video",
                         mode: str = "official", strict_gt: bool = False,
                         progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> CityscapesVPQ:
    """VPSNet's VPQ over videos of *annotated* frames (default classes: the 19 Cityscapes-VPS ones)."""
    if grouping not in ("video", "official"):
        raise InputError(f"grouping must be 'video' or 'official', got {grouping!r}")
    if cats is None:
        cats = Categories.from_taxonomy(cityscapes_vps_taxonomy())
    pairs = list(pairs)
    if not pairs:
        raise InputError("nothing to score: no video")
    notes = []
    odd = [p.video_id for p in pairs if len(p.gt) != FRAMES_PER_VIDEO]
    if odd:
        notes.append(f"{len(odd)} video(s) do not have {FRAMES_PER_VIDEO} annotated frames "
                     f"({', '.join(odd[:5])}); the released script cuts the frame list into len // 6 chunks "
                     f"instead of videos (grouping={grouping!r} used)")
    units = official_chunks(pairs) if grouping == "official" else pairs
    total = VPQStats()
    for i, unit in enumerate(units):
        check_cancel(cancel)
        _, st = video_stats(unit, cats, NFRAMES, mode, strict_gt)
        total += st
        if progress:
            progress(i + 1, len(units), unit.video_id)
    res = result_from_stats(total, cats)
    res.videos = [p.video_id for p in pairs]
    res.notes = notes + res.notes
    return res


def score_pair_source(source, cats: Categories | None = None, grouping: str = "video", mode: str = "official",
                      progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> CityscapesVPQ:
    """Same over a pair source (``video_ids`` + ``load``), e.g. ``annotator.metrics.sources.MatchedPairs``."""
    pairs = []
    for vid in source.video_ids:
        check_cancel(cancel)
        pairs.append(source.load(vid))
    if cats is None and hasattr(source, "categories"):
        cats = source.categories()
    res = score_cityscapes_vps(pairs, cats, grouping, mode, strict_gt=bool(getattr(source, "strict_gt", False)),
                               progress=progress, cancel=cancel)
    res.notes = list(getattr(source, "notes", [])) + ([source.order_note] if getattr(source, "order_note", "")
                                                      else []) + res.notes
    return res


# ----------------------------------------------------------------- file sources (the script's inputs)
class CityscapesVPSFiles:
    """Ground truth (``panoptic_gt_<split>_city_vps.json`` + ``<split>/panoptic_video/``) or a VPSNet
    submission (``pred.json`` + ``pan_pred/<image_id>.png``, as ``eval_vpq.py`` reads it).

    Videos are ``image_id[:4]`` and frames the image ids, as in the script. Prediction entries are
    matched by ``image_id``; the script pairs them by position, so a ``pred.json`` whose order differs
    from the GT's is scored correctly here but not there (``order_differs`` says so).
    """

    def __init__(self, path: str | Path, split: str | None = None, gt: CityscapesVPSFiles | None = None) -> None:
        path = Path(path)
        self.order_differs = False
        if (path / "pred.json").exists():
            self.kind, self.root, self.strict_gt = "pred", path, False
            self.name = f"Cityscapes-VPS prediction {path}"
            doc = load_json(path / "pred.json")
            entries = doc.get("annotations") if isinstance(doc, dict) else None
            if not isinstance(entries, list):
                raise InputError(f"{path / 'pred.json'}: needs an 'annotations' list as eval_vpq.py reads it")
            self._entries = {str(e.get("image_id")): e for e in entries}
            if gt is not None:
                self.order_differs = [str(e.get("image_id")) for e in entries] != gt.image_ids
            cats = doc.get("categories") or []
        else:
            gt_path, split = find_gt(path, split)
            self.kind, self.root, self.strict_gt = "gt", gt_path.parent, True
            self.split = split
            self.name = f"Cityscapes-VPS ground truth {gt_path}"
            doc = load_json(gt_path)
            try:
                self._entries = {str(a["image_id"]): a for a in doc["annotations"]}
                self.image_ids = sorted(str(im["id"]) for im in doc["images"])
            except (KeyError, TypeError) as exc:
                raise InputError(f"{gt_path}: not a Cityscapes-VPS JSON (missing {exc})") from None
            cats = doc.get("categories") or []
        self._categories = Categories.from_json_list(cats) if cats else None
        self._json = SimpleNamespace(names={int(c["id"]): str(c["name"]) for c in cats if "name" in c})
        self._videos: dict[str, list[str]] = {}
        for iid in sorted(self._entries):
            self._videos.setdefault(iid[:4], []).append(iid)

    def video_ids(self) -> list[str]:
        return list(self._videos)

    def categories(self) -> Categories | None:
        return self._categories

    def frame_names(self, video_id: str) -> list[str]:
        return list(self._videos.get(video_id, []))

    def load(self, video_id: str, names: list[str] | None = None) -> list[Frame]:
        out = []
        for n in names if names is not None else self.frame_names(video_id):
            entry = self._entries.get(n)
            if entry is None:
                raise InputError(f"{self.name}: no entry for image {n!r}")
            if self.kind == "pred":
                png = self.root / "pan_pred" / f"{n}.png"
            else:
                png = self.root / self.split / "panoptic_video" / str(entry.get("file_name") or f"{n}_final_mask.png")
            out.append(Frame(read_id_png(png), segments_of(entry, str(png)), n))
        return out


def annotated_project_source(path: str | Path, layer: str = "labels", videos: list[str] | None = None,
                             lam: int = LAMBDA):
    """A project as ground truth under this protocol: only every ``lam``-th source frame counts.

    Why: a project may hold all frames of a snippet (or propagated labels between the annotated
    ones); VPSNet's protocol scores the annotated frames only, so windows of k = 5 source frames
    are 2 consecutive annotated frames. A video whose frames are already the annotated ones (an
    import of a Cityscapes-VPS export) keeps all of them when its source indices step by ``lam``;
    an import without source information counts every frame.
    """
    class _Annotated(ProjectSource):
        def frame_names(self, video_id: str, labelled_only: bool = True) -> list[str]:
            video = self._open(video_id)
            try:
                if not labelled_only:
                    return list(video.frame_names)
                src = list(video.source.source_indices) if video.source is not None else []
                if video.source is None or video.source.kind == "none" or len(src) != video.num_frames:
                    keep = set(range(video.num_frames))
                else:
                    keep = set(annotated_positions(src, lam))
                return [video.frame_names[i] for i in labelled_frames(video, self.layer) if i in keep]
            finally:
                video.close()

    return _Annotated(path, layer, videos)


def open_pairs(gt: str | Path, pred: str | Path, split: str | None = None, videos: list[str] | None = None,
               gt_layer: str | None = None, pred_layer: str | None = None):
    """``MatchedPairs`` for the protocol: Cityscapes-VPS ground truth + VPSNet submission folder, or two projects.

    Frames are matched by name, so a file source pairs with a file source and a project with a
    project (export the project with ``export --format cityscapes-vps`` to score it against files).
    """
    g_proj, p_proj = (Path(gt) / "project.json").exists(), (Path(pred) / "project.json").exists()
    if g_proj != p_proj:
        raise InputError("under --protocol cityscapes-vps score a project against a project, or a Cityscapes-VPS "
                         "folder against a submission folder (pred.json + pan_pred/); export the project with "
                         "`export --format cityscapes-vps` first")
    if g_proj:
        return MatchedPairs(annotated_project_source(gt, gt_layer or "labels", videos),
                            ProjectSource(pred, pred_layer or "labels", videos), videos)
    g = CityscapesVPSFiles(gt, split)
    p = CityscapesVPSFiles(pred, split, gt=g)
    pairs = MatchedPairs(g, p, videos)
    if p.order_differs:
        pairs.order_note = ("pred.json lists its images in another order than the ground truth: matched by "
                            "image_id here; the released eval_vpq.py pairs them by position")
    return pairs
