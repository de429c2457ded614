"""Regressions found by driving the sparse tracking loop and dense propagation as an annotator would.

Each test names the workflow that went wrong: misleading CLI output, ground truth taken from
machine output, a frame range that was silently ignored, an undo refusal that asked for the
impossible.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from annotator.cli import main
from annotator.errors import InputError, ProjectError
from annotator.project import FrameState, Project
from annotator.stages import corrections
from annotator.stages.association import apply_correction
from annotator.stages.evaluate import evaluate_video
from annotator.stages.propagate import propagate_video
from annotator.stages.tracking_eval import write_shuffled_keyframes
from propagation.base import CopyPropagator
from propagation.flow import FlowPropagator
from resources.demo import write_demo_project

VIDEO = "demo_crossing"


def _clear_between_keyframes(video) -> None:
    """What an annotator starts from: labelled keyframes, cleared (all-void, unlabelled) frames between."""
    for i in range(video.num_frames):
        if not video.is_keyframe(i):
            video.write_label(i, np.zeros((video.height, video.width), np.uint16), state=FrameState.UNLABELLED,
                              provenance={})
    video.save()


@pytest.fixture()
def drawn(tmp_path):
    """Crossing demo: identity-free keyframe drawings, every other frame cleared."""
    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("crossing",), num_frames=51, height=90, width=160)
    with Project.open(path).open_video(VIDEO) as video:
        gt = {k: video.read_label(k) for k in video.keyframes}
        cats = video.track_category()
        _clear_between_keyframes(video)
        write_shuffled_keyframes(video, gt, cats, seed=1)
        video.save()
    return path


def test_associate_that_changes_nothing_does_not_suggest_undo(drawn, capsys):
    p = str(drawn)
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    first = capsys.readouterr().out
    assert "undo --id 000001" in first and "note:" not in first  # nothing propagated yet
    # the second run finds every id right: no undo step; `undo` would revert the first run instead
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "nothing to undo" in last and "correct" not in last
    with Project.open(drawn).open_video(VIDEO, readonly=True) as video:
        assert [e["undo"] for e in corrections.undo_stack(video)] == ["000001"]


def test_history_is_readable_while_another_annotator_holds_the_video(drawn, capsys):
    p = str(drawn)
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    capsys.readouterr()
    lock = drawn / "videos" / VIDEO / ".lock"
    info = {"user": "ann", "host": "elsewhere", "pid": 1, "created": time.time(), "heartbeat": time.time()}
    lock.write_text(json.dumps(info))
    assert main(["correct", p, "--video", VIDEO, "history"]) == 0
    assert "1 steps can be undone" in capsys.readouterr().out
    assert main(["correct", p, "--video", VIDEO, "undo"]) == 2  # writing still needs the lock
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ann on elsewhere" in err and len(err.strip().splitlines()) == 1
    assert main(["propagate", p, "--video", VIDEO]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: video 'demo_crossing' is being edited by ann on elsewhere") and err.count("\n") == 1
    assert lock.exists() and json.loads(lock.read_text())["host"] == "elsewhere"  # not taken over


def test_eval_propagation_never_takes_cleared_or_propagated_frames_as_ground_truth(tmp_path, capsys):
    path = write_demo_project(tmp_path / "p.vpsproj", scenarios=("crossing", "occlusion"), num_frames=26,
                              height=45, width=80)
    with Project.open(path).open_video("demo_occlusion") as video:
        _clear_between_keyframes(video)  # only its keyframes are labelled now
    assert main(["eval-propagation", str(path), "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert VIDEO in out and "demo_occlusion" not in out
    with Project.open(path).open_video("demo_occlusion") as video:
        propagate_video(video, CopyPropagator())  # every frame labelled now, but by a machine
        with pytest.raises(InputError, match="ground truth"):
            evaluate_video(video, {"copy": CopyPropagator})
    assert main(["eval-propagation", str(path), "--no-baselines"]) == 0
    assert "demo_occlusion" not in capsys.readouterr().out
    with Project.open(path).open_video(VIDEO) as video:
        _clear_between_keyframes(video)
    assert main(["eval-propagation", str(path), "--no-baselines"]) == 2
    assert "no video with every frame labelled" in capsys.readouterr().err


def test_propagate_frames_outside_the_video_is_an_error(drawn, capsys):
    p = str(drawn)
    assert main(["propagate", p, "--video", VIDEO, "--frames", "30-40"]) == 2  # 11 dense frames
    err = capsys.readouterr().err
    assert "outside video" in err and "0-10" in err
    with Project.open(drawn).open_video(VIDEO, readonly=True) as video:
        assert video.frame_state(3) == FrameState.UNLABELLED
    assert main(["propagate", p, "--video", VIDEO, "--frames", "8-40"]) == 0  # clipped to the video
    with Project.open(drawn).open_video(VIDEO, readonly=True) as video:
        assert [video.frame_state(i) for i in (7, 8, 9)] == [FrameState.UNLABELLED, FrameState.PROPAGATED,
                                                            FrameState.PROPAGATED]


def test_undo_of_a_correction_rewritten_by_propagation_says_why_and_how(drawn):
    with Project.open(drawn).open_video(VIDEO) as video:
        propagate_video(video, CopyPropagator())
        persons = sorted(t for t in video.frame_tracks(5) if video.tracks[t].category_id == 60)
        res, _ = apply_correction(video, "swap", reassociate=False, track_a=persons[0], track_b=persons[1],
                                  from_frame=5)
        assert 6 in res.frames  # the swap relabelled the propagated frames after keyframe 5
        propagate_video(video, FlowPropagator())  # rewrites them differently
        with pytest.raises(ProjectError, match="rewritten by dense propagation.*opposite correction"):
            corrections.undo_last(video)
        # the opposite correction is the way back, and is itself undoable
        back, _ = apply_correction(video, "swap", reassociate=False, track_a=persons[0], track_b=persons[1],
                                   from_frame=5)
        assert corrections.undo_last(video)["undo"] == back.undo_id


def test_a_track_the_annotator_deleted_on_a_propagated_frame_stays_deleted(drawn):
    from annotator.editing.operations import DeleteTrackOnFrame
    from annotator.editing.session import EditSession

    with Project.open(drawn).open_video(VIDEO) as video:
        propagate_video(video, CopyPropagator())
        thing = next(t for t in video.frame_tracks(3) if video.taxonomy.get(video.tracks[t].category_id).isthing)
        with EditSession(video, write_through=True, persist=False) as session:
            session.apply(3, DeleteTrackOnFrame(thing))  # "this object is not on frame 3"
            session.flush()
        edited = video.read_label(3)
        assert video.frame_state(3) == FrameState.REFINED and thing not in video.frame_tracks(3)
        report = propagate_video(video, FlowPropagator())
        assert 3 not in report.written and 3 in report.references
        np.testing.assert_array_equal(video.read_label(3), edited)
        assert video.frame_state(3) == FrameState.REFINED


def test_a_deletion_next_to_a_refined_track_stays_deleted(drawn):
    """Refine track B and delete track A on the same propagated frame: re-propagation keeps both."""
    from annotator.editing.operations import DeleteTrackOnFrame, Paint
    from annotator.editing.session import EditSession

    with Project.open(drawn).open_video(VIDEO) as video:
        propagate_video(video, CopyPropagator())
        things = [t for t in video.frame_tracks(3) if video.taxonomy.get(video.tracks[t].category_id).isthing]
        assert len(things) >= 2
        a, b = things[:2]
        label = video.read_label(3)
        ys, xs = np.nonzero(label == b)
        grow = np.zeros(label.shape, bool)
        grow[max(ys.min() - 3, 0):ys.min() + 3, max(xs.min() - 3, 0):xs.min() + 3] = True
        with EditSession(video, write_through=True, persist=False) as session:
            session.apply(3, Paint(grow, b))  # refine B: a human track on a frame with machine tracks
            session.apply(3, DeleteTrackOnFrame(a))  # "A is not on frame 3"
            session.flush()
        edited = video.read_label(3)
        assert a not in video.frame_tracks(3)
        propagate_video(video, FlowPropagator())
        np.testing.assert_array_equal(video.read_label(3), edited)
        assert a not in video.frame_tracks(3)


def test_undo_after_propagation_says_the_propagated_frames_are_stale(drawn, capsys):
    p = str(drawn)
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    assert main(["correct", p, "--video", VIDEO, "undo"]) == 0
    assert "note:" not in capsys.readouterr().out  # nothing propagated: nothing stale
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    assert main(["propagate", p, "--video", VIDEO]) == 0
    capsys.readouterr()
    assert main(["correct", p, "--video", VIDEO, "undo"]) == 0
    out = capsys.readouterr().out
    assert "undid association" in out and "re-run `main.py propagate" in out


@pytest.mark.parametrize("start", ["999", "-3"])
def test_associate_from_outside_the_video_is_an_error(drawn, capsys, start):
    assert main(["associate", str(drawn), "--video", VIDEO, "--from", start, "--propagator", "copy"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the (empty) progress bar
    assert last.startswith("error: ") and "outside video" in last and "0-10" in last


def test_undo_of_an_unknown_id_says_it_does_not_exist(drawn):
    with Project.open(drawn).open_video(VIDEO) as video:
        first, _ = apply_correction(video, "confirm", reassociate=False, frame=5)
        second, _ = apply_correction(video, "confirm", reassociate=False, frame=10)
        with pytest.raises(ProjectError, match="no step 000999"):
            corrections.undo_last(video, "000999")
        with pytest.raises(ProjectError, match="not the latest step"):
            corrections.undo_last(video, first.undo_id)
        corrections.undo_last(video, second.undo_id)
        with pytest.raises(ProjectError, match=f"no step {second.undo_id}"):  # already undone
            corrections.undo_last(video, second.undo_id)
        assert corrections.confirmed_keyframes(video) == {5}


def test_associate_after_propagation_says_the_propagated_frames_are_stale(drawn, capsys):
    p = str(drawn)
    assert main(["propagate", p, "--video", VIDEO]) == 0  # too early: the drawings carry no identities yet
    capsys.readouterr()
    assert main(["associate", p, "--video", VIDEO, "--quiet", "--propagator", "copy"]) == 0
    assert "re-run `main.py propagate" in capsys.readouterr().out


def test_merging_a_refined_track_into_a_propagated_one_keeps_the_refinement(drawn):
    with Project.open(drawn).open_video(VIDEO) as video:
        propagate_video(video, CopyPropagator())
        a, b = sorted(t for t in video.frame_tracks(3) if video.tracks[t].category_id == 60)[:2]
        lab = video.read_label(3)
        lab[:8, :8] = a  # the annotator refines track a on frame 3
        prov = video.provenance(3)
        prov[a] = FrameState.REFINED
        video.write_label(3, lab, state=FrameState.REFINED, provenance=prov)
        refined = video.read_label(3) == a
        before = video.provenance(3)
        res, _ = apply_correction(video, "merge", keep=b, absorb=a)
        assert video.provenance(3)[b] == FrameState.REFINED  # b was propagated here, a's pixels are human
        propagate_video(video, FlowPropagator())
        assert (video.read_label(3)[refined] == b).all()
        assert res.undo_id and before[a] == FrameState.REFINED
