"""The stages' faces (``run_<stage>(video, options, progress, cancel)``) give what the functions behind them give."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.project import FrameState, Project
from annotator.stages import corrections
from annotator.stages.association import AssociateOptions, associate_video, run_associate
from annotator.stages.correct import CorrectionOptions, run_correction
from annotator.stages.evaluate import EvaluateOptions, run_evaluate
from annotator.stages.preannotate import PreannotateOptions
from annotator.stages.propagate import PropagateOptions, propagate_video, run_propagate
from propagation.base import CopyPropagator
from propagation.factory import make_propagator
from resources.demo import write_demo_project

VID = "demo_crossing"


def _sparse_copy(tmp_path, name: str) -> Project:
    """A small demo project whose non-keyframes are unlabelled again."""
    path = write_demo_project(tmp_path / f"{name}.vpsproj", seed=1, scenarios=("crossing",), num_frames=31,
                              height=72, width=128)
    proj = Project.open(path)
    with proj.open_video(VID) as v:
        for i in range(v.num_frames):
            if not v.is_keyframe(i):
                v.write_label(i, np.zeros((v.height, v.width), np.uint16), state=FrameState.UNLABELLED,
                              provenance={})
        v.save()
    return proj


def _labels(proj: Project) -> list[bytes]:
    with proj.open_video(VID, readonly=True) as v:
        return [v.read_label(i).tobytes() + str(v.frame_state(i)).encode() for i in range(v.num_frames)]


def test_run_propagate_and_run_associate_match_the_functions_behind_them(tmp_path):
    a, b = _sparse_copy(tmp_path, "a"), _sparse_copy(tmp_path, "b")
    with a.open_video(VID) as v:
        res_a = associate_video(v, CopyPropagator())
        rep_a = propagate_video(v, make_propagator("flow", speed="fast"))
    calls = []
    with b.open_video(VID) as v:
        opts = AssociateOptions(propagator="copy").with_engine()
        assert opts.engine is not None and opts.engine.name == "copy"
        res_b = run_associate(v, opts)
        rep_b = run_propagate(v, PropagateOptions(speed="fast"), progress=lambda d, t, m: calls.append(d))
    assert [(m.keyframe, m.segment, m.track) for m in res_a.matches] == \
        [(m.keyframe, m.segment, m.track) for m in res_b.matches]
    assert not res_b.stale_propagation  # nothing was propagated before association ran
    assert rep_a.summary() == rep_b.summary() and rep_a.written == rep_b.written
    assert calls and calls[-1] == len(rep_b.written)
    assert _labels(a) == _labels(b)


def test_run_propagate_refuses_a_read_only_video(tmp_path):
    proj = _sparse_copy(tmp_path, "a")
    with proj.open_video(VID, readonly=True) as v, pytest.raises(InputError, match="close it there"):
        run_propagate(v, PropagateOptions(engine=CopyPropagator()))


def test_run_correction_reassociates_and_undoes_as_one_step(tmp_path):
    proj = _sparse_copy(tmp_path, "a")
    with proj.open_video(VID) as v:
        run_associate(v, AssociateOptions(propagator="copy"))
        things = sorted(t for t, tr in v.tracks.items() if v.taxonomy.get(tr.category_id).isthing
                        and v.track_frames(t))
        cats = {t: v.tracks[t].category_id for t in things}
        pair = next((x, y) for x in things for y in things if x < y and cats[x] == cats[y])
        before = [v.read_label(i).copy() for i in range(v.num_frames)]
        run = run_correction(v, CorrectionOptions("swap", {"track_a": pair[0], "track_b": pair[1],
                                                           "from_frame": 0}, propagator="copy"))
        assert run.correction.op == "swap" and run.correction.frames
        assert run.association is not None and run.association.propagator == "copy"
        other = next(c.id for c in v.taxonomy if c.id != cats[pair[0]])
        plain = run_correction(v, CorrectionOptions("set-class", {"track": pair[0], "category_id": other}))
        assert plain.association is None  # not a frame-based correction: no re-association
        corrections.undo_last(v)
        corrections.undo_last(v)
        assert v.tracks[pair[0]].category_id == cats[pair[0]]
        assert all(np.array_equal(before[i], v.read_label(i)) for i in range(v.num_frames))


def test_options_check_their_arguments_and_name_the_methods():
    with pytest.raises(InputError, match="workers"):
        PreannotateOptions("x.pth", workers=0)
    with pytest.raises(InputError, match="clip"):
        PreannotateOptions("x.pth", clip=0)
    methods = EvaluateOptions(speed="balanced").with_methods().methods
    assert methods is not None and list(methods) == ["flow-balanced", "copy-nearest-keyframe", "flow-5fps-chain"]
    assert list(EvaluateOptions(baselines=False, settings={"propagation_speed": "quality"})
                .with_methods().methods or {}) == ["flow-quality"]


def test_run_evaluate_scores_a_ground_truth_video(tmp_path):
    path = write_demo_project(tmp_path / "gt.vpsproj", seed=1, scenarios=("crossing",), num_frames=31,
                              height=72, width=128)
    with Project.open(path).open_video(VID, readonly=True) as v:
        scores = run_evaluate(v, EvaluateOptions(baselines=False))
    (score,) = scores.values()
    assert 0.5 < score.jf <= 1.0 and score.frames > 0
