"""Run the robot on videos in its modes and score the result against the truth.

Modes (the same cost model, the same quality bar; each one a :class:`Mode` in :data:`MODES`):

* ``pipeline`` - keyframes + association (flow) + corrections + flow propagation + sweeps;
* ``copy`` - the same with the copy-nearest-keyframe propagator instead of flow (association too);
* ``hand`` - every dense frame drawn with polygons, no propagation, then the same sweeps;
* ``pipeline+`` / ``hand+`` (issue 24, not registered yet): the pipeline and the hand baseline with
  the new tools; their planners exist (:mod:`annotator.robot.scissors_plan`), the robot does not.

A new mode is one :func:`register_mode` call (a robot class, what it runs, its propagators and the
mode its saving is measured against). Each run works in a fresh project (``workdir``) so runs
never see each other's labels.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.metrics import Categories, VideoPair, make_frame, score_pairs
from annotator.project import Project
from annotator.robot.costs import ActionLog, CostModel
from annotator.robot.session import Robot, RobotConfig, RunStats
from annotator.robot.truth import GroundTruth, blank_video
from annotator.stages.evaluate import score_labels
from propagation.base import CopyPropagator, Propagator
from propagation.flow import FlowConfig, FlowPropagator

#: a propagator factory per flow speed (None: no propagator / the tool's default)
PropagatorFactory = Callable[[str], Callable[[], Propagator] | None]


def _flow(speed: str) -> Callable[[], Propagator]:
    return lambda: FlowPropagator(FlowConfig.profile(speed))


def _none(_speed: str) -> None:
    return None


def _copy(_speed: str) -> Callable[[], Propagator]:
    return CopyPropagator


@dataclass(frozen=True)
class Mode:
    """One way of labelling a video: which robot, what it runs, with which engines, against what."""

    name: str
    description: str
    run: Callable[[Robot], None]  # e.g. Robot.run_pipeline
    robot: type[Robot] = Robot
    dense: PropagatorFactory = _none  # speed -> dense propagator factory
    assoc: PropagatorFactory = _none  # speed -> association propagator factory (None: association's)
    baseline: str | None = "hand"  # the mode whose minutes this one's saving is measured against


#: every mode by name, in report order (register more with :func:`register_mode`)
MODES: dict[str, Mode] = {}


def register_mode(mode: Mode) -> Mode:
    """Add a mode (a later registration under the same name replaces the earlier one)."""
    MODES[mode.name] = mode
    return mode


register_mode(Mode("pipeline", "today's tools: keyframes, association, flow propagation, sweeps",
                   Robot.run_pipeline, dense=_flow))
register_mode(Mode("copy", "the pipeline with copy-nearest-keyframe propagation", Robot.run_pipeline,
                   dense=_copy, assoc=_copy))
register_mode(Mode("hand", "every frame by hand with polygons, then sweeps", Robot.run_hand, baseline=None))

def check_modes(modes: Sequence[str]) -> None:
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InputError(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")


@dataclass
class ModeResult:
    """One video labelled in one mode: the action log, what happened, and the final quality."""

    video_id: str
    mode: str
    log: ActionLog
    stats: RunStats
    vpq: float = float("nan")  # x100, the video alone, against the truth
    stq: float = float("nan")  # x100
    j: float = float("nan")
    f: float = float("nan")
    seconds_machine: float = 0.0  # wall-clock seconds the run took (propagation etc.), not human time
    pairs: object = None  # metrics.VideoPair for pooled scoring
    categories: object = None  # metrics.Categories it was scored with

    @property
    def minutes(self) -> float:
        return self.log.minutes

    @property
    def actions(self) -> int:
        return len(self.log.actions)

    @property
    def passed(self) -> bool:
        return self.stats.failing == 0

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass
class VideoResult:
    video_id: str
    kind: str
    frames: int
    objects: int
    modes: dict[str, ModeResult] = field(default_factory=dict)

    def saved(self, mode: str = "pipeline", against: str | None = None) -> float:
        """Share of the ``against`` time (default: the mode's baseline) that ``mode`` saves (0.8 = 80 %)."""
        if against is None:
            against = MODES[mode].baseline if mode in MODES else None
        if against is None or mode not in self.modes or against not in self.modes or self.modes[against].minutes <= 0:
            return float("nan")
        return 1.0 - self.modes[mode].minutes / self.modes[against].minutes


def default_propagators(speed: str = "fast") -> dict[str, tuple[Callable[[], Propagator] | None,
                                                                   Callable[[], Propagator] | None]]:
    """Per mode: (dense propagator factory, association propagator factory); None = none / tool default."""
    return {name: (m.dense(speed), m.assoc(speed)) for name, m in MODES.items()}


#: metrics mode: "clean" - the official STQ treats the first listed segment of a video as crowd when
#: it is a thing, which makes STQ 0 on every single-object DAVIS sequence (annotator.metrics.stq)
SCORE_MODE = "clean"


def score_mode(robot: Robot, truth: GroundTruth, result: ModeResult) -> None:
    """VPQ/STQ (annotator.metrics, ``SCORE_MODE``) and DAVIS J&F of the labelled video against the truth."""

    video = robot.video
    cats = video.track_category()
    gt_frames, pred_frames = [], []
    for i in range(video.num_frames):
        g = truth.labels[i]
        p = video.read_label(i)
        gt_frames.append(make_frame(g, {int(x): truth.categories[int(x)] for x in np.unique(g) if x}, str(i)))
        pred_frames.append(make_frame(p, {int(x): cats[int(x)] for x in np.unique(p) if x}, str(i)))
    pair = VideoPair(f"{truth.video_id}", gt_frames, pred_frames)
    result.categories = Categories.from_taxonomy(video.taxonomy)
    rep = score_pairs([pair], result.categories, mode=SCORE_MODE)
    vpq = rep.vpq.vpq.get("all") if rep.vpq else None
    result.vpq = float("nan") if vpq is None else float(vpq)
    result.stq = float("nan") if rep.stq is None else float(rep.stq.stq) * 100
    s = score_labels(robot.predicted_objects(), {i: truth.labels[i] for i in range(truth.num_frames)}, truth.video_id)
    result.j, result.f = s.j, s.f
    result.pairs = pair


def run_mode(truth: GroundTruth, mode: str, workdir: Path, config: RobotConfig | None = None,
             model: CostModel | None = None, propagators: dict | None = None,
             cancel: CancelToken | None = None) -> ModeResult:
    """Label one video in one mode in a fresh project under ``workdir``; scored."""
    check_modes([mode])
    spec = MODES[mode]
    props = propagators or default_propagators()
    make_dense, make_assoc = props[mode] if mode in props else (spec.dense("fast"), spec.assoc("fast"))
    proj = Project.create(Path(workdir) / f"{truth.video_id}_{mode}.vpsproj", taxonomy=truth.taxonomy)
    video = blank_video(proj, truth)
    log = ActionLog(model or CostModel())
    t0 = time.perf_counter()
    try:
        robot = spec.robot(video, truth, log, config, make_dense() if make_dense else None,
                           make_assoc() if make_assoc else None, cancel=cancel)
        spec.run(robot)
        result = ModeResult(truth.video_id, mode, log, robot.stats, seconds_machine=time.perf_counter() - t0)
        score_mode(robot, truth, result)
    finally:
        video.close()
    return result


def run_videos(truths: Sequence[Callable[[Path], GroundTruth]], modes: Sequence[str] = ("pipeline", "copy", "hand"),
               config: RobotConfig | None = None, model: CostModel | None = None, speed: str = "fast",
               workdir: str | Path | None = None, keep: bool = False, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None,
               on_result: Callable[[VideoResult], None] | None = None) -> list[VideoResult]:
    """Run every mode on every video; ``truths`` are loaders (called with a scratch folder)."""
    check_modes(modes)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="robot_"))
    root.mkdir(parents=True, exist_ok=True)
    props = default_propagators(speed)
    out: list[VideoResult] = []
    try:
        for n, load in enumerate(truths):
            check_cancel(cancel)
            scratch = root / f"v{n}"
            scratch.mkdir(exist_ok=True)
            truth = load(scratch)
            vr = VideoResult(truth.video_id, truth.kind, truth.num_frames, len(truth.categories))
            for mode in modes:
                if progress:
                    progress(n * len(modes) + list(modes).index(mode), len(truths) * len(modes),
                             f"{truth.video_id} {mode}")
                vr.modes[mode] = run_mode(truth, mode, scratch, config, model, props, cancel)
            out.append(vr)
            if on_result:
                on_result(vr)
            if not keep:
                shutil.rmtree(scratch, ignore_errors=True)
        if progress:
            progress(len(truths) * len(modes), len(truths) * len(modes), "done")
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return out
