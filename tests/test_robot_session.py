"""The simulated annotator on a tiny demo video: reaches the bar, counts every action, fixes ids."""

from pathlib import Path

import numpy as np
import pytest

from annotator import panoptic
from annotator.project import FrameState, Project
from annotator.robot import ActionLog, CostModel, Robot, RobotConfig, blank_video, demo_truth, run_mode
from propagation.base import CopyPropagator

FRAMES = 30  # 25 fps source -> 6 dense frames, keyframes 0 and 5


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return demo_truth("crossing", tmp_path_factory.mktemp("src"), num_frames=FRAMES)


def _robot(tmp_path: Path, truth, propagator=None, assoc=None, config=None):
    proj = Project.create(tmp_path / "robot.vpsproj")
    video = blank_video(proj, truth)
    return Robot(video, truth, ActionLog(CostModel()), config or RobotConfig(), propagator, assoc)


def _edit_actions(log: ActionLog) -> list:
    return [a for a in log.actions if a.kind in ("polygon", "brush_stroke", "erase")]


def test_hand_run_reaches_bar_and_replays_through_undo_history(tmp_path, truth):
    robot = _robot(tmp_path, truth)
    robot.run_hand()
    assert robot.stats.failing == 0
    n = robot.video.num_frames
    final = [robot.video.read_label(i).copy() for i in range(n)]
    # every drawn object is counted: one pick per (frame, object) plus one polygon per ring
    per_frame = sum(len(panoptic.present_ids(lab)) for lab in truth.labels)
    assert robot.log.count("pick") == per_frame
    # every edit action is one undo step, and only edit actions made undo steps
    commands = sum(a.commands for a in robot.log.actions)
    assert commands == len(robot.session.history) > 0
    assert all(a.commands in (0, 1) for a in _edit_actions(robot.log))
    assert sum(a.commands for a in robot.log.actions if a not in _edit_actions(robot.log)) == 0
    # the log replays through the undo history: undo all -> blank, redo all -> the same label maps
    while robot.session.can_undo:
        robot.session.undo()
    assert all(not robot.session.label(i).any() for i in range(n))
    while robot.session.can_redo:
        robot.session.redo()
    for i in range(n):
        np.testing.assert_array_equal(robot.session.label(i), final[i])
    robot.video.close()


@pytest.mark.slow
def test_pipeline_reaches_bar_and_costs_less_than_hand(tmp_path, truth):
    pipe = run_mode(truth, "pipeline", tmp_path)
    hand = run_mode(truth, "hand", tmp_path)
    assert pipe.passed and hand.passed
    assert pipe.stats.failing == 0 and pipe.stats.masks == hand.stats.masks > 0
    assert pipe.minutes < hand.minutes  # the point of the pipeline, on an easy video
    # every frame was looked at, every action priced
    assert pipe.log.count("inspect_frame") >= truth.num_frames
    assert pipe.log.seconds() == pytest.approx(sum(r["seconds"] for r in pipe.log.breakdown().values()))
    assert pipe.vpq > 80 and pipe.j > 0.85


def test_shuffled_ids_are_fixed_by_logged_corrections(tmp_path, truth):
    robot = _robot(tmp_path, truth, CopyPropagator(), CopyPropagator())
    robot.draw_keyframes()
    robot.associate()
    video = robot.video
    # sabotage: the two people swap their tracks on keyframe 5 (an identity switch)
    k = video.keyframes[1]
    cats = video.track_category()
    people = [t for t, _g in robot._owners(k) if cats[t] == 60][:2]
    assert len(people) == 2
    lab = video.read_label(k)
    swapped = panoptic.remap(lab, {people[0]: people[1], people[1]: people[0]})
    video.write_label(k, swapped, state=FrameState.MANUAL, provenance={int(i): FrameState.MANUAL
                                                                     for i in panoptic.present_ids(swapped)})
    assert robot._first_identity_error() is not None
    robot.fix_identities()
    assert sum(robot.stats.corrections.values()) >= 1
    assert robot.log.count("correction") == sum(robot.stats.corrections.values())
    assert robot._first_identity_error() is None
    # every object keeps one track over the keyframes
    seen: dict[int, int] = {}
    for key in video.keyframes:
        for t, g in robot._owners(key):
            assert seen.setdefault(g, t) == t
    assert any(e["kind"] == "correction" for e in video.log)
    video.close()


def test_budget_stops_the_loops(tmp_path, truth):
    robot = _robot(tmp_path, truth, CopyPropagator(), CopyPropagator(), RobotConfig(max_minutes=0.5))
    robot.run_pipeline()
    assert robot.stats.budget_hit
    assert robot.stats.failing > 0  # stopped before the bar
    robot.video.close()
