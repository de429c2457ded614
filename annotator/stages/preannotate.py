"""Pre-annotation with Clip-PanoFCN: drafts into a project video, accept/reject, model-vs-annotator scores.

Qt-free driver shared by the CLI (``preannotate``, ``accept-draft``, ``reject-draft``) and, later,
the window's background job.

Where a draft goes
* layer ``preannotation`` (``layers/preannotation/<frame>.png``): the model's full output for every
  frame, untouched by later edits, so the model can be scored against the final labels (the
  paper's "model vs annotator" figure): ``score --gt P --pred P --pred-layer preannotation``.
* the main labels: the draft fills pixels no human owns. Pixels of tracks whose provenance on that
  frame is manual, refined or reviewed are never touched; pixels of propagated tracks are kept
  too unless ``over_propagated`` is set (propagation from human keyframes usually beats a draft).
  Draft tracks get provenance ``preannotated``; an unlabelled frame that receives pixels becomes
  ``preannotated``.

Draft tracks are ordinary tracks (note ``pre-annotation``) so the draft layer and the main labels
share ids. ``accept_draft`` turns a draft track (or every draft track of a frame) into
``reviewed`` - a person checked it; ``reject_draft`` removes its pixels from the main labels
(the draft layer keeps them for scoring). Editing a draft with the editing tools makes it
``refined`` as any edit does. Re-running with ``replace=True`` first removes the previous draft's
unaccepted pixels and the draft tracks left with no pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np

from annotator import panoptic
from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics.engine import score_pairs
from annotator.metrics.sources import ProjectSource
from annotator.metrics.types import VideoPair
from annotator.project import FrameState, Project, Video

DRAFT_LAYER = "preannotation"
DRAFT_NOTE = "pre-annotation"


@dataclass
class PreannotateResult:
    video_id: str
    frames: int
    tracks: int
    seconds: float
    filled_pixels: int
    kept_pixels: int  # pixels the draft wanted but a kept (human or propagated) track owns
    checkpoint: str

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames, 1)

    def summary(self) -> str:
        return (f"{self.video_id}: {self.frames} frames pre-annotated, {self.tracks} draft tracks, "
                f"{self.seconds_per_frame:.2f} s/frame ({self.seconds:.1f} s), {self.filled_pixels} pixels filled, "
                f"{self.kept_pixels} left to existing labels; draft layer '{DRAFT_LAYER}'")


def _draft_tracks(video: Video) -> list[int]:
    return [t.id for t in video.tracks.values() if t.note == DRAFT_NOTE]


def has_draft(video: Video) -> bool:
    return bool(_draft_tracks(video)) or DRAFT_LAYER in video.layers()


def _remove_unaccepted(video: Video, frames: Iterable[int], tracks: set[int] | None) -> int:
    """Clear pixels of tracks whose provenance on a frame is ``preannotated``; returns frames changed."""
    changed = 0
    for i in frames:
        prov = video.provenance(i)
        drop = [t for t, s in prov.items() if s == FrameState.PREANNOTATED and (tracks is None or t in tracks)]
        if not drop:
            continue
        label = video.read_label(i)
        label[np.isin(label, drop)] = panoptic.VOID
        keep_prov = {t: s for t, s in prov.items() if t not in drop}
        state = video.frame_state(i)
        if not panoptic.present_ids(label).size:
            state = FrameState.UNLABELLED
        elif state == FrameState.PREANNOTATED and keep_prov and all(s.is_human for s in keep_prov.values()):
            state = FrameState.REVIEWED
        video.write_label(i, label, state=state, provenance=keep_prov)
        changed += 1
    return changed


def clear_draft(video: Video) -> None:
    """Remove a previous draft: unaccepted pixels, draft tracks left without pixels, the draft layer."""
    _remove_unaccepted(video, range(video.num_frames), set(_draft_tracks(video)))
    # the layer goes first: delete_track would otherwise rewrite every draft frame once per track
    layer_dir = video.path / "layers" / DRAFT_LAYER
    if layer_dir.is_dir():
        for f in layer_dir.iterdir():
            f.unlink()
        layer_dir.rmdir()
    for tid in _draft_tracks(video):
        if not video.track_frames(tid):
            video.delete_track(tid)


def merge_draft(label: np.ndarray, prov: dict[int, FrameState], draft: np.ndarray,
                over_propagated: bool = False) -> tuple[np.ndarray, int, int]:
    """Main labels with the draft filled in where allowed; returns ``(new, filled, kept)`` pixel counts."""
    kept_tracks = [t for t, s in prov.items() if s.is_human or (s == FrameState.PROPAGATED and not over_propagated)]
    protected = np.isin(label, kept_tracks) if kept_tracks else np.zeros(label.shape, bool)
    # pixels of tracks with no provenance entry (should not happen) are protected as well
    known = np.isin(label, list(prov)) if prov else np.zeros(label.shape, bool)
    protected |= (label != panoptic.VOID) & ~known
    writable = ~protected
    new = label.copy()
    fill = writable & (draft != panoptic.VOID)
    new[fill] = draft[fill]
    # an overwritable machine pixel the draft leaves void becomes void (the draft replaces it)
    new[writable & (draft == panoptic.VOID) & (label != panoptic.VOID)] = panoptic.VOID
    return new, int(fill.sum()), int((protected & (draft != panoptic.VOID)).sum())


@dataclass(frozen=True)
class PreannotateOptions:
    """What a pre-annotation run is asked for (the ``preannotate`` command's flags, the window's job).

    ``checkpoint``: the Clip-PanoFCN file (validated when loaded); ``model``: that network already
    loaded (the GUI keeps it), else it is loaded from ``checkpoint``. ``clip`` overrides the frames
    per clip of ``inference`` (default ``InferenceConfig()``, 3 frames as released). Raises
    ``InputError`` at construction for ``workers`` or ``clip`` below 1.
    """

    checkpoint: str | os.PathLike[str]
    clip: int | None = None
    workers: int = 1
    replace: bool = False  # replace an existing draft (accepted draft tracks stay)
    over_propagated: bool = False  # the draft may replace propagated labels too (never human ones)
    inference: Any = None  # models.clip_panofcn.inference.InferenceConfig
    model: Any = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        if self.clip is not None and self.clip < 1:
            raise InputError(f"--clip must be at least 1, got {self.clip}")


def run_preannotate(video: Video, options: PreannotateOptions, progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> PreannotateResult:
    """Draft panoptic labels and track ids for an open video (the stage's face; see the module
    docstring), then save it. Raises ``InputError`` when the video is open read-only or already has
    a draft (without ``replace``). Cancelling during inference leaves the video unchanged."""
    from models.clip_panofcn.inference import InferenceConfig  # torch: loaded only when drafting

    cfg = options.inference or InferenceConfig()
    if options.clip is not None:
        cfg = dc_replace(cfg, clip=options.clip)
    if video.readonly:
        raise InputError(f"video {video.id!r} is open elsewhere: {video.lock_message}")
    result = preannotate_open_video(video, options.checkpoint, cfg, workers=options.workers, replace=options.replace,
                                    over_propagated=options.over_propagated, model=options.model,
                                    progress=progress, cancel=cancel)
    video.save()
    return result


def preannotate_video(project: Project | str | os.PathLike[str], video_id: str, checkpoint: str | os.PathLike[str],
                      clip: int | None = None, workers: int = 1, replace: bool = False,
                      over_propagated: bool = False, inference=None, model=None,
                      progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> PreannotateResult:
    """:func:`run_preannotate` on video ``video_id`` of ``project`` (opened and closed here).

    Without ``model`` the checkpoint is loaded and fully validated (keys, shapes, damage); a caller
    that keeps the network loaded (the GUI) passes it as ``model``, loaded from that same file.
    Cancelling during inference leaves the video unchanged. A process killed while the frames are
    written leaves a partial draft, which ``replace=True`` removes (unaccepted pixels only).
    """
    proj = project if isinstance(project, Project) else Project.open(project)
    options = PreannotateOptions(checkpoint, clip, workers, replace, over_propagated, inference, model)
    with proj.open_video(video_id) as video:
        return run_preannotate(video, options, progress, cancel)


def preannotate_open_video(video: Video, checkpoint: str | os.PathLike[str], cfg=None, workers: int = 1,
                           replace: bool = False, over_propagated: bool = False, model=None,
                           progress: ProgressFn | None = None,
                           cancel: CancelToken | None = None) -> PreannotateResult:
    """:func:`preannotate_video` on a video the caller holds open for writing (the window's job)."""
    # torch and the network: loaded only when drafting (the stage module is imported by the CLI and GUI)
    from models.clip_panofcn.categories import channel_map
    from models.clip_panofcn.checkpoint import load_clip_panofcn
    from models.clip_panofcn.inference import InferenceConfig
    from models.clip_panofcn.video import predict_video
    from models.weights import sha256_file

    cfg = cfg or InferenceConfig()
    video_id = video.id
    if has_draft(video) and not replace:
        raise InputError(f"video {video_id!r} already has a pre-annotation draft; pass --replace to redo it "
                         "(accepted draft tracks are kept)")
    net = model if model is not None else load_clip_panofcn(checkpoint)
    cmap = channel_map(video.taxonomy, net.config.thing_classes, net.config.stuff_classes)
    pred = predict_video(video.read_frame, video.num_frames, cfg, model=net,
                         checkpoint=str(checkpoint) if workers > 1 else None, workers=workers,
                         progress=progress, cancel=cancel)
    check_cancel(cancel)
    if replace:
        clear_draft(video)
    used = set()
    for lab in pred.labels:
        used.update(np.unique(lab).tolist())
    lut = np.zeros(len(pred.keys) + 1, np.uint16)
    for k, (kind, channel, _inst) in enumerate(pred.keys, start=1):
        if k in used:  # every key has pixels unless a post-processing limit is zero
            cat = cmap.thing(channel) if kind == "thing" else cmap.stuff(channel)
            lut[k] = video.new_track(cat, note=DRAFT_NOTE).id
    filled = kept = 0
    for i in range(video.num_frames):
        draft = lut[pred.labels[i]]
        video.write_label(i, draft, layer=DRAFT_LAYER)
        label, prov = video.read_label(i), video.provenance(i)
        new, f, k = merge_draft(label, prov, draft, over_propagated)
        filled += f
        kept += k
        if np.array_equal(new, label):
            continue
        present = set(panoptic.present_ids(new).tolist())
        new_prov = {t: s for t, s in prov.items() if t in present}
        for t in present - set(new_prov):
            new_prov[t] = FrameState.PREANNOTATED
        state = video.frame_state(i)
        if state == FrameState.UNLABELLED and present:
            state = FrameState.PREANNOTATED
        elif not present:
            state = FrameState.UNLABELLED
        video.write_label(i, new, state=state, provenance=new_prov)
    result = PreannotateResult(video_id, video.num_frames, int((lut > 0).sum()), pred.seconds, filled, kept,
                               str(Path(checkpoint)))
    video.log_event("preannotate", {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint),
                                    "clip": cfg.clip, "frames": video.num_frames, "tracks": result.tracks,
                                    "seconds": round(pred.seconds, 3)})
    return result


def _frames_arg(video: Video, frames: Iterable[int] | None) -> list[int]:
    out = list(range(video.num_frames)) if frames is None else sorted(set(int(f) for f in frames))
    bad = [f for f in out if not 0 <= f < video.num_frames]
    if bad:
        raise InputError(f"video {video.id!r} has frames 0..{video.num_frames - 1}; got {bad[:5]}")
    return out


def accept_draft(video: Video, frames: Iterable[int] | None = None, tracks: Iterable[int] | None = None) -> int:
    """Mark draft pixels as checked by a person (``reviewed``); returns the number of frames changed.

    ``frames`` / ``tracks`` restrict the acceptance (default: every frame / every draft track).
    A frame whose tracks are then all human-checked becomes ``reviewed``.
    """
    sel = None if tracks is None else {int(t) for t in tracks}
    if sel is not None:
        unknown = [t for t in sel if t not in video.tracks]
        if unknown:
            raise InputError(f"no track {unknown[0]} in video {video.id!r}")
    changed = 0
    for i in _frames_arg(video, frames):
        prov = video.provenance(i)
        hit = [t for t, s in prov.items() if s == FrameState.PREANNOTATED and (sel is None or t in sel)]
        if not hit:
            continue
        new_prov = {t: (FrameState.REVIEWED if t in hit else s) for t, s in prov.items()}
        state = video.frame_state(i)
        if all(s.is_human for s in new_prov.values()):
            state = FrameState.REVIEWED
        video.write_label(i, video.read_label(i), state=state, provenance=new_prov)
        changed += 1
    if changed:
        video.log_event("accept_draft", {"frames": changed, "tracks": sorted(sel) if sel else "all"})
    return changed


def reject_draft(video: Video, frames: Iterable[int] | None = None, tracks: Iterable[int] | None = None) -> int:
    """Remove unaccepted draft pixels from the main labels (the draft layer keeps them)."""
    sel = None if tracks is None else {int(t) for t in tracks}
    changed = _remove_unaccepted(video, _frames_arg(video, frames), sel)
    if changed:
        video.log_event("reject_draft", {"frames": changed, "tracks": sorted(sel) if sel else "all"})
    return changed


def human_frames(video: Video) -> list[int]:
    """Frames a person finished: a human frame state and every track on it with human provenance."""
    out = []
    for i in range(video.num_frames):
        if not video.frame_state(i).is_human or not video.has_label(i):
            continue
        if all(s.is_human for s in video.provenance(i).values()):
            out.append(i)
    return out


def score_draft(project_path: str | os.PathLike[str], video_ids: list[str] | None = None,
                mode: str = "official"):
    """VPQ/STQ of the model's draft layer against the annotators' finished frames (the paper's
    "model vs annotator" comparison), computed by :mod:`annotator.metrics`.

    Only frames a person finished count (:func:`human_frames`): scoring the draft against
    frames still holding the draft itself would flatter the model.
    """
    gt = ProjectSource(project_path, "labels", video_ids)
    pred = ProjectSource(project_path, DRAFT_LAYER, video_ids)
    proj = Project.open(project_path)
    pairs, skipped = [], []
    for vid in gt.video_ids():
        with proj.open_video(vid, readonly=True) as video:
            names = [video.frame_names[i] for i in human_frames(video) if video.has_label(i, DRAFT_LAYER)]
        if not names:
            skipped.append(vid)
            continue
        pairs.append(VideoPair(vid, gt.load(vid, names), pred.load(vid, names)))
    if not pairs:
        raise InputError("no video has frames finished by a person and a draft; nothing to compare the model with")
    report = score_pairs(pairs, gt.categories(), mode=mode)
    report.gt_name, report.pred_name = "annotators (finished frames)", f"model (layer {DRAFT_LAYER})"
    if skipped:
        report.notes = [f"left out (no finished frame with a draft): {', '.join(skipped)}", *report.notes]
    return report
