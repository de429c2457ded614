"""Ground truth the robot may look at, and the blank video it labels.

Why two objects: the robot works in a fresh project video that holds only the frames (and a link
to the full-rate source frames, which flow propagation follows), exactly as after an import; the
truth stays outside the project, in a :class:`GroundTruth`, so nothing in the pipeline can read it
by accident. Sources: the synthetic demo scenarios (``resources/demo.py``, exact truth), DAVIS-style
folders (one foreground class, background void, one track per object id) and project videos whose
every dense frame a human labelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from annotator.errors import InputError
from annotator.project import Project, SourceInfo, Video
from annotator.stages.evaluate import DAVIS_FPS, DavisSequence, ground_truth_frames
from resources.demo import generate_demo_video, write_demo_source

#: DAVIS has one foreground class; any thing class of the taxonomy will do (VIPSeg "person")
DAVIS_CATEGORY = 60


@dataclass
class GroundTruth:
    """Dense-frame truth of one video plus what is needed to rebuild the video for the robot."""

    video_id: str
    labels: list[np.ndarray]  # per dense frame, HxW uint16 ground-truth ids (0 = void)
    categories: dict[int, int]  # ground-truth id -> category id
    frames: list[np.ndarray]  # per dense frame, HxWx3 uint8 RGB
    source: SourceInfo = field(default_factory=SourceInfo)
    kind: str = "demo"  # demo | davis | project
    taxonomy: object = None  # annotator.taxonomy.Taxonomy of the categories (None: VIPSeg's)

    @property
    def num_frames(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.labels[0].shape)  # type: ignore[return-value]


def demo_truth(scenario: str, workdir: str | Path, seed: int = 0, num_frames: int = 100, height: int = 180,
               width: int = 320, fps: float = 25.0, dense_fps: float = 5.0) -> GroundTruth:
    """A demo scenario (exact truth); its full-rate frames are written as a PNG folder under ``workdir``."""

    demo = generate_demo_video(seed, num_frames, height, width, scenario, fps)
    idx = demo.dense_indices(dense_fps)
    folder = write_demo_source(demo, Path(workdir) / f"source_{scenario}_{seed}", "folder")
    src = SourceInfo(kind="folder", path=str(folder.resolve()), fps=fps, num_source_frames=num_frames,
                     source_indices=list(idx), original_size=(height, width),
                     files=[f"frame_{t}.png" for t in range(num_frames)])
    return GroundTruth(f"demo_{scenario}", [demo.labels[s].astype(np.uint16) for s in idx], dict(demo.tracks),
                       [demo.frames[s] for s in idx], src, "demo")


def davis_truth(root: str | Path, name: str, category: int = DAVIS_CATEGORY, dense_fps: float = 5.0) -> GroundTruth:
    """A DAVIS-style sequence at 5 fps: each object id one thing track of ``category``, background void."""

    seq = DavisSequence(root, name, DAVIS_FPS, dense_fps)
    labels = [seq.read_gt(i) for i in range(seq.num_frames)]
    ids = sorted({int(i) for lab in labels for i in np.unique(lab) if i})
    frames = [np.ascontiguousarray(seq.read_frame(i)) for i in range(seq.num_frames)]
    h, w = labels[0].shape
    src = SourceInfo(kind="folder", path=str(seq.images[0].parent.resolve()), fps=DAVIS_FPS,
                     num_source_frames=len(seq.images), source_indices=list(seq.source_indices),
                     original_size=(h, w), files=[p.name for p in seq.images])
    return GroundTruth(name, labels, {i: category for i in ids}, frames, src, "davis")


def project_truth(video: Video) -> GroundTruth:
    """A project video labelled by humans on every dense frame (its labels are the truth)."""

    frames = ground_truth_frames(video)
    if len(frames) != video.num_frames:
        raise InputError(f"video {video.id!r} has human labels on {len(frames)} of {video.num_frames} dense "
                         "frames; eval-effort needs ground truth on every dense frame")
    labels = [video.read_label(i) for i in range(video.num_frames)]
    used = {int(i) for lab in labels for i in np.unique(lab) if i}
    cats = {t: c for t, c in video.track_category().items() if t in used}
    src = video.source
    return GroundTruth(video.id, labels, cats, [np.array(video.read_frame(i)) for i in range(video.num_frames)],
                       SourceInfo.from_json(_source_dict(src)), "project", video.taxonomy)


def _source_dict(src: SourceInfo) -> dict:

    return asdict(src)


def blank_video(project: Project, truth: GroundTruth, video_id: str | None = None) -> Video:
    """A fresh video holding the truth's frames and source link, no tracks and no labels (as imported)."""
    h, w = truth.shape
    src = SourceInfo.from_json(_source_dict(truth.source))
    video = project.create_video(video_id or truth.video_id, [f"{i:05d}" for i in range(truth.num_frames)],
                                 h, w, source=src)
    for i, rgb in enumerate(truth.frames):
        video.write_frame_image(i, rgb)
    video.save()
    return video
