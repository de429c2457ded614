"""A simulated annotator ("robot") that measures the human work the pipeline saves.

It labels a video to a quality bar through the same Qt-free functions the window calls
(``annotator.editing``, ``annotator.stages.association``, ``annotator.stages.corrections``,
``annotator.stages.propagate``), looking at the ground truth only as a person looks at the picture, and
prices every action with a cost model whose sources are stated in :mod:`annotator.robot.costs`.

Modules: ``costs`` (cost model, action log), ``tracing`` (masks -> polygons and brush strokes),
``truth`` (ground truth: demo scenarios, DAVIS folders, project videos; the blank video),
``session`` (the robot), ``evaluate`` (the three modes: pipeline, copy, hand; scoring),
``report`` (tables, totals, JSON). CLI: ``main.py eval-effort``; bench: ``bench/robot_annotator.py``.
"""

from annotator.robot.costs import KINDS, Action, ActionLog, CostModel
from annotator.robot.evaluate import MODES, ModeResult, VideoResult, run_mode, run_videos
from annotator.robot.session import Robot, RobotConfig, RunStats
from annotator.robot.truth import GroundTruth, blank_video, davis_truth, demo_truth, project_truth

__all__ = [
    "KINDS", "MODES", "Action", "ActionLog", "CostModel", "GroundTruth", "ModeResult", "Robot", "RobotConfig",
    "RunStats", "VideoResult", "blank_video", "davis_truth", "demo_truth", "project_truth", "run_mode",
    "run_videos",
]
