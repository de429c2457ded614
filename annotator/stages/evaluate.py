"""Measure propagation quality: hide all but the keyframes of a ground-truth video, propagate, score.

Scores follow the DAVIS definitions (Perazzi et al. 2016, davis2017-evaluation code): region
similarity J (IoU, 1 when both masks are empty) and boundary F (precision/recall of boundary pixels
matched within ``ceil(0.008 * image diagonal)`` px). Also reported: the share of (frame, track)
masks with J < 0.9, i.e. those a human would have to fix. Works on a project video whose frames
are all labelled, and on a DAVIS-style folder (``JPEGImages/<seq>/*.jpg``,
``Annotations/<seq>/*.png``) read at its native rate (24 fps) with 5 fps targets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics import Categories, VideoPair, make_frame, score_pairs
from annotator.project import FrameState, dense_source_indices, natural_key
from propagation.base import CopyPropagator, FrameSource, Propagator, Reference
from propagation.factory import DEFAULT_SPEED, make_propagator
from propagation.flow import FlowPropagator

#: share of masks below this IoU counts as "needs a human fix"
FIX_IOU = 0.9
DAVIS_FPS = 24.0


# ---------------------------------------------------------------------------- metrics
def region_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index of two boolean masks; 1 when both are empty (DAVIS convention)."""
    inter = np.count_nonzero(pred & gt)
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else inter / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, exactly as the DAVIS evaluation computes it."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: pixels with x^2 + y^2 <= r^2."""
    r = np.arange(-radius, radius + 1)
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius).astype(np.uint8)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure of two boolean masks."""
    bound_pix = bound_th if bound_th >= 1 else int(np.ceil(bound_th * np.linalg.norm(pred.shape)))
    fg_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0
    disk = _disk(int(bound_pix))
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), disk) > 0
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), disk) > 0
    precision = np.count_nonzero(fg_b & gt_dil) / n_fg
    recall = np.count_nonzero(gt_b & fg_dil) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class Score:
    """Scores of one sequence (or the mean over sequences)."""

    name: str
    j: float
    f: float
    needs_fix: float  # share of (frame, track) masks with J < 0.9
    masks: int  # number of (frame, track) masks scored
    j_masks: float = float("nan")  # mean J over all (frame, track) masks (VPS view: stuff counts too)
    seconds: float = 0.0
    frames: int = 0
    vpq: float = float("nan")  # VPQ x100 over the target frames (project videos with a taxonomy)
    stq: float = float("nan")  # STQ x100 over the target frames
    guarded: int = 0  # (frame, track) masks the shape guard judged collapsed or exploded

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def score_labels(pred: dict[int, np.ndarray], gt: dict[int, np.ndarray], name: str = "") -> Score:
    """Per track: mean J and F over the frames where the track is in the GT or the prediction;
    the sequence score is the mean over tracks (DAVIS averages per object). Id 0 is ignored."""
    per_track: dict[int, list[tuple[float, float]]] = {}
    for t, g in gt.items():
        p = pred[t]
        ids = set(np.unique(g).tolist()) | set(np.unique(p).tolist())
        ids.discard(0)
        for tid in ids:
            gm, pm = g == tid, p == tid
            per_track.setdefault(tid, []).append((region_j(pm, gm), boundary_f(pm, gm)))
    if not per_track:
        return Score(name, 1.0, 1.0, 0.0, 0, 1.0)
    js = [np.mean([v[0] for v in vals]) for vals in per_track.values()]
    fs = [np.mean([v[1] for v in vals]) for vals in per_track.values()]
    all_j = [v[0] for vals in per_track.values() for v in vals]
    return Score(name, float(np.mean(js)), float(np.mean(fs)), float(np.mean(np.array(all_j) < FIX_IOU)),
                 len(all_j), float(np.mean(all_j)))


def mean_score(scores: list[Score], name: str = "overall") -> Score:
    """DAVIS-style overall: the mean of the per-sequence means (VPQ/STQ: mean over videos)."""
    if not scores:
        return Score(name, float("nan"), float("nan"), float("nan"), 0)
    masks = sum(s.masks for s in scores)

    def mean_finite(values: list[float]) -> float:
        v = [x for x in values if np.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    return Score(name, float(np.mean([s.j for s in scores])), float(np.mean([s.f for s in scores])),
                 float(sum(s.needs_fix * s.masks for s in scores) / max(masks, 1)), masks,
                 float(sum(s.j_masks * s.masks for s in scores) / max(masks, 1)),
                 sum(s.seconds for s in scores), sum(s.frames for s in scores),
                 mean_finite([s.vpq for s in scores]), mean_finite([s.stq for s in scores]),
                 sum(s.guarded for s in scores))


def panoptic_scores(pred: dict[int, np.ndarray], gt: dict[int, np.ndarray], track_category: dict[int, int],
                    taxonomy: object, name: str = "") -> tuple[float, float]:
    """VPQ and STQ (x100, ``annotator.metrics``) of the predicted frames against the ground truth."""
    def frames(maps: dict[int, np.ndarray]) -> list:
        out = []
        for t in sorted(gt):
            ids = maps[t]
            segs = {int(i): track_category[int(i)] for i in np.unique(ids) if i and int(i) in track_category}
            out.append(make_frame(ids, segs, str(t)))
        return out

    report = score_pairs([VideoPair(name, frames(gt), frames(pred))], Categories.from_taxonomy(taxonomy))
    vpq = report.vpq.vpq.get("all") if report.vpq else None
    stq = report.stq.stq if report.stq else None
    return (float("nan") if vpq is None else float(vpq),
            float("nan") if stq is None else float(stq) * 100)


# ---------------------------------------------------------------------------- data
class DavisSequence:
    """A DAVIS sequence as a ``FrameSource``: dense frames = 5 fps samples of the 24 fps images."""

    def __init__(self, root: str | Path, name: str, src_fps: float = DAVIS_FPS, dense_fps: float = 5.0) -> None:
        root = Path(root)
        self.name = name
        img_dir, ann_dir = root / "JPEGImages" / name, root / "Annotations" / name
        self.images = sorted((p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                             key=lambda p: natural_key(p.name))
        if not self.images:
            raise InputError(f"no frames in {img_dir}")
        self.annotations = [ann_dir / (p.stem + ".png") for p in self.images]
        missing = [str(p) for p in self.annotations if not p.exists()]
        if missing:
            raise InputError(f"{len(missing)} ground-truth masks missing in {ann_dir} (e.g. {missing[0]}); "
                             "every frame needs Annotations/<seq>/<frame>.png")
        self.source_indices = dense_source_indices(len(self.images), src_fps, dense_fps)
        self._cache: dict[int, np.ndarray] = {}
        self._colours: dict[int, int] = {0: 0}  # colour masks: RGB code -> id, stable over frames

    @property
    def num_frames(self) -> int:
        return len(self.source_indices)

    def _src(self, i: int) -> np.ndarray:
        if i not in self._cache:
            bgr = cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"cannot read {self.images[i]}")
            self._cache[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return self._cache[i]

    def read_frame(self, index: int) -> np.ndarray:
        return self._src(self.source_indices[index])

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        a, b = self.source_indices[start], self.source_indices[stop]
        return [self._src(i) for i in range(a, b + 1)]

    def read_gt(self, index: int) -> np.ndarray:
        """Dense frame's mask as a label map.

        Palette PNGs (DAVIS 2017) give their palette indices as ids; binary masks (DAVIS 2016:
        0/255) give object 1; colour PNGs get one id per distinct colour (black = background).
        Pillow is used because OpenCV expands palette images to colours.
        """
        path = self.annotations[self.source_indices[index]]
        try:
            with Image.open(path) as im:
                mode = im.mode
                m = np.array(im.convert("RGB") if mode not in ("P", "L", "I;16", "I", "1") else im)
        except OSError as exc:
            raise InputError(f"cannot read ground-truth mask {path}: {exc}") from exc
        if m.ndim == 3:
            flat = m.reshape(-1, 3).astype(np.int64)
            code = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
            colours = np.unique(code)
            ids = np.array([self._colours.setdefault(int(c), len(self._colours)) for c in colours])
            m = ids[np.searchsorted(colours, code)].reshape(m.shape[:2])
        elif mode in ("L", "1") and set(np.unique(m).astype(int).tolist()) <= {0, 1, 255}:
            return (m > 0).astype(np.uint16)
        return m.astype(np.uint16)


def davis_sequences(root: str | Path) -> list[str]:
    """Sequence names of a DAVIS-style folder, or an InputError explaining the expected layout."""
    root = Path(root)
    img, ann = root / "JPEGImages", root / "Annotations"
    if not img.is_dir() or not ann.is_dir():
        raise InputError(f"{root} is not a DAVIS-style folder: expected JPEGImages/<seq>/*.jpg and "
                         "Annotations/<seq>/*.png")
    names = sorted(p.name for p in img.iterdir() if p.is_dir() and (ann / p.name).is_dir())
    if not names:
        raise InputError(f"{root}: no sequence has both JPEGImages/<seq> and Annotations/<seq>")
    return names


# ---------------------------------------------------------------------------- evaluation
def keyframe_indices(num_frames: int, key_every: int) -> list[int]:
    """Every ``key_every``-th dense frame from 0 (the import default)."""
    if key_every < 1:
        raise InputError(f"--key-every must be >= 1 (got {key_every})")
    return list(range(0, num_frames, key_every))


def evaluate_frames(frames: FrameSource, gt: dict[int, np.ndarray], keyframes: list[int], propagator: Propagator,
                    name: str = "", progress: ProgressFn | None = None, cancel: CancelToken | None = None
                    ) -> tuple[Score, dict[int, np.ndarray]]:
    """Propagate from the GT at ``keyframes`` to every other GT frame and score those frames."""
    refs = [Reference(k, gt[k]) for k in keyframes]
    targets = [t for t in sorted(gt) if t not in set(keyframes)]
    t0 = time.perf_counter()
    res = propagator.propagate(frames, refs, targets, progress=progress, cancel=cancel)
    secs = time.perf_counter() - t0
    score = score_labels(res.labels, {t: gt[t] for t in targets}, name)
    score.seconds, score.frames = secs, len(targets)
    score.guarded = sum(len(v) for v in (getattr(res, "events", None) or {}).values())
    return score, res.labels


def baseline_propagators() -> dict[str, Callable[[], Propagator]]:
    """The two baselines every evaluation reports next to the chosen backend."""
    # the plain chain: both directions over the 5 fps samples only, no boundary refinement and no
    # shape guard (the naive chain of the issue-15 figures: docs/propagation.md)
    return {"copy-nearest-keyframe": CopyPropagator,
            "flow-5fps-chain": lambda: FlowPropagator(use_source=False, refine=False, guard=False)}


def evaluate_davis(root: str | Path, propagators: dict[str, Callable[[], Propagator]], key_every: int = 5,
                   dense_fps: float = 5.0, src_fps: float = DAVIS_FPS, sequences: list[str] | None = None,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None
                   ) -> dict[str, list[Score]]:
    """Scores per method, per sequence (last entry: overall) on a DAVIS-style folder."""
    names = sequences or davis_sequences(root)
    out: dict[str, list[Score]] = {m: [] for m in propagators}
    total = len(names) * len(propagators)
    done = 0
    for name in names:
        seq = DavisSequence(root, name, src_fps, dense_fps)
        gt = {i: seq.read_gt(i) for i in range(seq.num_frames)}
        keys = keyframe_indices(seq.num_frames, key_every)
        for method, make in propagators.items():
            check_cancel(cancel)
            score, _ = evaluate_frames(seq, gt, keys, make(), name, cancel=cancel)
            out[method].append(score)
            done += 1
            if progress:
                progress(done, total, f"{name} {method}")
    for method in out:
        out[method].append(mean_score(out[method]))
    return out


def ground_truth_frames(video: Any) -> list[int]:
    """Frames of a project video whose labels can serve as ground truth.

    Why not just ``has_label``: a cleared frame keeps an all-void label file (state unlabelled), and
    propagated or pre-annotated frames are machine output - scoring propagation against them
    would report a meaningless (perfect or zero) J.
    """
    machine = {FrameState.UNLABELLED, FrameState.PROPAGATED, FrameState.PREANNOTATED}
    return [i for i in range(video.num_frames) if video.frame_state(i) not in machine and video.has_label(i)]


def evaluate_video(video: Any, propagators: dict[str, Callable[[], Propagator]], key_every: int = 5,
                   progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> dict[str, Score]:
    """Scores per method on a project video whose dense frames are labelled by humans (ground truth)."""
    frames = ground_truth_frames(video)
    if not frames:
        raise InputError(f"video {video.id!r} has no ground-truth frames (labelled by a human, not unlabelled, "
                         "propagated or pre-annotated): eval-propagation needs ground truth on every frame")
    gt = {i: video.read_label(i) for i in frames}
    keys = [k for k in keyframe_indices(video.num_frames, key_every) if k in gt]
    if not keys or len(keys) == len(gt):  # else it would score nothing and print a perfect J = 1
        raise InputError(f"video {video.id!r} has ground truth on {len(gt)} of {video.num_frames} frames, "
                         f"{'none' if not keys else 'all'} of them keyframes (every {key_every}th frame): "
                         "eval-propagation needs ground truth on the keyframes and on the frames between")
    out: dict[str, Score] = {}
    cats = video.track_category()
    for done, (method, make) in enumerate(propagators.items(), 1):
        check_cancel(cancel)
        score, pred = evaluate_frames(video, gt, keys, make(), video.id, cancel=cancel)
        targets = {t: gt[t] for t in pred}
        if targets:
            score.vpq, score.stq = panoptic_scores(pred, targets, cats, video.taxonomy, video.id)
        out[method] = score
        if progress:
            progress(done, len(propagators), method)
    return out


def format_matrix(rows: dict[str, list[Score]], digits: int = 3) -> str:
    """Markdown table of J&F: one row per method, one column per sequence, then the overall mean.

    The per-sequence view is the one to judge a setting by (issue 15): an overall mean can hide a
    sequence that got worse than the plain 5 fps chain.
    """
    methods = [m for m, scores in rows.items() if scores]
    if not methods:
        return ""
    names = [s.name for s in rows[methods[0]]]
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in methods:
        by_name = {s.name: s for s in rows[m]}
        cells = [f"{by_name[n].jf:.{digits}f}" if n in by_name else "" for n in names]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(rows: dict[str, list[Score]]) -> str:
    """Plain-text table: one block per method, one line per sequence plus the overall mean; then the
    J&F matrix (methods x sequences) when there is more than one sequence."""
    pano = any(np.isfinite(s.vpq) or np.isfinite(s.stq) for scores in rows.values() for s in scores)
    head = (f"{'method':<24} {'sequence':<18} {'J':>6} {'F':>6} {'J&F':>6} {'J<0.9':>6} {'masks':>6} {'fps':>6} "
            f"{'guard':>5}")
    lines = [head + (f" {'VPQ':>6} {'STQ':>6}" if pano else "")]
    for method, scores in rows.items():
        for s in scores:
            fps = s.frames / s.seconds if s.seconds > 0 else float("nan")
            line = (f"{method:<24} {s.name:<18} {s.j:6.3f} {s.f:6.3f} {s.jf:6.3f} {s.needs_fix:6.1%} "
                    f"{s.masks:6d} {fps:6.1f} {s.guarded:5d}")
            lines.append(line + (f" {s.vpq:6.1f} {s.stq:6.1f}" if pano else ""))
    if any(len(scores) > 2 for scores in rows.values()):
        lines += ["", "J&F per sequence (last column: overall):", format_matrix(rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the stage's face
@dataclass(frozen=True)
class EvaluateOptions:
    """What an evaluation run is asked for (the ``eval-propagation`` command's flags).

    The chosen engine comes from :func:`propagation.factory.make_propagator` (``backend``,
    ``checkpoint``, ``preset``, ``speed``, ``settings``), named ``flow-<speed>`` for flow, and is
    scored beside :func:`baseline_propagators` unless ``baselines`` is off; :meth:`with_methods`
    builds that table once, so a bad backend fails early and every video reuses the same engine.
    """

    backend: str = "flow"
    checkpoint: str | None = None
    preset: str | None = None
    speed: str | None = None
    settings: Mapping[str, Any] | None = None
    key_every: int = 5
    baselines: bool = True
    methods: Mapping[str, Callable[[], Propagator]] | None = None  # method name -> engine builder

    def with_methods(self) -> EvaluateOptions:
        """These options with ``methods`` built (unchanged when they already are)."""
        if self.methods is not None:
            return self
        chosen = make_propagator(self.backend, self.checkpoint, self.preset, self.speed, self.settings)
        speed = self.speed or str((self.settings or {}).get("propagation_speed", DEFAULT_SPEED))
        name = self.backend if self.backend != "flow" else f"flow-{speed}"
        methods: dict[str, Callable[[], Propagator]] = {name: lambda: chosen}
        if self.baselines:
            methods.update(baseline_propagators())
        return replace(self, methods=methods)


def run_evaluate(video: Any, options: EvaluateOptions, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> dict[str, Score]:
    """Scores per method on a project video labelled by humans on every dense frame (the stage's
    face): :func:`evaluate_video` with the methods the options name."""
    methods = options.with_methods().methods
    assert methods is not None
    return evaluate_video(video, dict(methods), key_every=options.key_every, progress=progress, cancel=cancel)
