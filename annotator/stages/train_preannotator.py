"""Training the pre-annotator on a project: read the finished frames of its videos, train, score.

The training loop and the network are the engine ``models.clip_panofcn.train`` (arrays in,
checkpoint out); this stage is the part that knows projects: which frames a person finished
(:func:`annotator.stages.preannotate.human_frames`), resizing them to the training size, and
VPQ/STQ of a model on a held-out video with ``annotator.metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn
from annotator.metrics.engine import score_pairs
from annotator.metrics.types import Categories, Frame, Segment, VideoPair
from annotator.project import Project
from annotator.stages.preannotate import human_frames
from models.clip_panofcn.categories import channel_map
from models.clip_panofcn.checkpoint import load_clip_panofcn
from models.clip_panofcn.network import ClipPanoFCN
from models.clip_panofcn.train import TrainState, VideoData, build_trainee, scaled_inference, training_size
from models.clip_panofcn.train import train as train_on
from models.clip_panofcn.video import predict_video


def load_videos(project: Project, video_ids: list[str] | None = None) -> list[VideoData]:
    """Every frame a person finished (:func:`human_frames`) of the given videos (default: all),
    resized to the training size. Raises ``InputError`` when there is none."""
    out = []
    for vid in video_ids or project.video_ids:
        with project.open_video(vid, readonly=True) as video:
            idx = human_frames(video)
            if len(idx) < 1:
                continue
            h, w = training_size(video.height, video.width)
            frames = [cv2.resize(video.read_frame(i), (w, h), interpolation=cv2.INTER_AREA) for i in idx]
            labels = [cv2.resize(video.read_label(i), (w, h), interpolation=cv2.INTER_NEAREST) for i in idx]
            out.append(VideoData(vid, np.stack(frames), np.stack(labels),
                                 {t: tr.category_id for t, tr in video.tracks.items()}))
    if not out:
        raise InputError("no finished frames (manual/refined/reviewed) in the selected videos: nothing to train on")
    return out


def train(project: Project, out: str | os.PathLike[str], video_ids: list[str] | None = None, **kw: Any
          ) -> TrainState:
    """Train on the finished frames of ``video_ids`` (default: every video); ``kw`` are those of
    :func:`models.clip_panofcn.train.train` (minutes, max_steps, clip, lr, init, save_every, seed,
    progress, cancel). Resumes from ``out`` if it exists."""
    return train_on(load_videos(project, video_ids), project.taxonomy, out, **kw)


def initial_model(project: Project, out: str | os.PathLike[str], init: str | os.PathLike[str] | None = None
                  ) -> ClipPanoFCN:
    """The model a training run to ``out`` starts from: ``out`` itself when it exists (resume), else
    ``init`` or the small variant sized for the project's taxonomy."""
    out = Path(out)
    return load_clip_panofcn(out) if out.exists() else build_trainee(project.taxonomy, init)


@torch.no_grad()
def evaluate(model: ClipPanoFCN, project: Project, video_id: str) -> Any:
    """VPQ/STQ (``annotator.metrics`` report) of the model on a video's finished frames, at the training size."""
    model.eval()
    cmap = channel_map(project.taxonomy, model.config.thing_classes, model.config.stuff_classes)
    data = load_videos(project, [video_id])[0]
    h, w = data.frames.shape[1:3]
    pred = predict_video(lambda i: data.frames[i], len(data.frames), scaled_inference(h, w), model=model)
    cats = {k: (cmap.thing(c) if kind == "thing" else cmap.stuff(c))
            for k, (kind, c, _i) in enumerate(pred.keys, start=1)}
    gt, pr = [], []
    for i in range(len(data.frames)):
        ids = [int(t) for t in np.unique(data.labels[i]) if t and int(t) in data.categories]
        gt.append(Frame(data.labels[i].astype(np.int64), {t: Segment(data.categories[t]) for t in ids}, str(i)))
        pids = [int(k) for k in np.unique(pred.labels[i]) if k]
        pr.append(Frame(pred.labels[i].astype(np.int64), {k: Segment(cats[k]) for k in pids}, str(i)))
    return score_pairs([VideoPair(video_id, gt, pr)], Categories.from_taxonomy(project.taxonomy))


@dataclass(frozen=True)
class TrainOptions:
    """What ``train-preannotator`` asks for (the CLI's flags)."""

    out: str | os.PathLike[str]
    videos: list[str] | None = None  # training videos (default: all with finished frames)
    eval_video: str | None = None  # held out: VPQ/STQ before and after
    minutes: float = 5.0
    steps: int | None = None
    clip: int = 2
    lr: float = 1e-3
    init: str | os.PathLike[str] | None = None


@dataclass
class TrainRun:
    """What a training run did: the state, and the held-out scores before / after (or None)."""

    state: TrainState
    out: Path
    before: Any = None
    after: Any = None


def run_train_preannotator(project: Project, options: TrainOptions, progress: ProgressFn | None = None,
                           cancel: CancelToken | None = None,
                           on_start: Callable[[Any], None] | None = None) -> TrainRun:
    """Train the pre-annotator on a project (the stage face of ``train-preannotator``).

    ``options.eval_video`` is held out of training and scored before and after. ``on_start(before)``
    is called right before the training loop starts, with the score before training (None without
    ``eval_video``), so a caller can print it and open its progress bar. A ``KeyboardInterrupt``
    during training propagates after the checkpoint is saved.
    """
    videos = options.videos
    if options.eval_video and options.eval_video not in project.video_ids:
        raise InputError(f"project {project.path} has no video {options.eval_video!r}")
    if options.eval_video:
        videos = [v for v in (videos or project.video_ids) if v != options.eval_video]
    out = Path(options.out)
    before = None
    if options.eval_video:
        before = evaluate(initial_model(project, out, options.init), project, options.eval_video)
    if on_start is not None:
        on_start(before)
    state = train(project, out, videos, minutes=options.minutes, max_steps=options.steps, clip=options.clip,
                  lr=options.lr, init=options.init, progress=progress, cancel=cancel)
    after = evaluate(load_clip_panofcn(out), project, options.eval_video) if options.eval_video else None
    return TrainRun(state, out, before, after)
