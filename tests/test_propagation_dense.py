"""Dense propagation of a project video: fills gaps, keeps human work bit for bit, stores confidence."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError, ProjectError
from annotator.jobs import Cancelled, CancelToken
from annotator.project import FrameState, Project
from annotator.stages.evaluate import score_labels
from annotator.stages.propagate import (
    find_references,
    load_confidence,
    load_flags,
    propagate_video,
    review_flags,
    store_confidence,
)
from propagation.base import CopyPropagator
from propagation.flow import FlowPropagator
from resources.demo import write_demo_project

VID = "demo_mixed"


@pytest.fixture
def demo(tmp_path):
    """A demo project whose non-keyframes are unlabelled again; returns (project, ground truth)."""
    path = write_demo_project(tmp_path / "demo.vpsproj", scenarios=("mixed",), num_frames=51, source="folder")
    proj = Project.open(path)
    with proj.open_video(VID) as v:
        gt = {i: v.read_label(i) for i in range(v.num_frames)}
        for i in range(v.num_frames):
            if not v.is_keyframe(i):
                v.write_label(i, np.zeros_like(gt[i]), state=FrameState.UNLABELLED, provenance={})
        v.save()
    return proj, gt


def test_fills_every_frame_with_state_confidence_and_quality(demo):
    proj, gt = demo
    with proj.open_video(VID) as v:
        assert v.keyframes == [0, 5, 10]
        refs, partial = find_references(v)
        assert [r.index for r in refs] == [0, 5, 10] and not partial
        calls: list[tuple[int, int]] = []
        report = propagate_video(v, FlowPropagator(), progress=lambda d, t, m: calls.append((d, t)))
        targets = [i for i in range(v.num_frames) if i not in (0, 5, 10)]
        assert sorted(report.written) == targets
        assert calls[-1] == (len(targets), len(targets))
        pred = {}
        for i in targets:
            assert v.frame_state(i) == FrameState.PROPAGATED
            assert set(v.provenance(i).values()) == {FrameState.PROPAGATED}
            conf = load_confidence(v, i)
            assert conf is not None and conf.shape == (v.height, v.width)
            assert conf.min() >= 0 and conf.max() <= 1
            assert isinstance(load_flags(v, i), list)
            pred[i] = v.read_label(i)
        for k in (0, 5, 10):  # references untouched
            assert np.array_equal(v.read_label(k), gt[k]) and v.frame_state(k) == FrameState.REVIEWED
        assert v.log[-1]["kind"] == "propagation"
    score = score_labels(pred, {i: gt[i] for i in targets})
    assert score.j >= 0.85  # the project path (source frames from the folder) reaches the target too


def test_human_tracks_survive_repropagation_bit_for_bit(demo):
    proj, gt = demo
    with proj.open_video(VID) as v:
        propagate_video(v, FlowPropagator())
        # frame 3: a human refines one track (a made-up shape), the rest stays propagated
        lab3 = v.read_label(3)
        tid = 5
        refined = np.where(lab3 == tid, 1, lab3).astype(np.uint16)
        refined[40:70, 100:140] = tid
        prov = {t: FrameState.PROPAGATED for t in np.unique(refined).tolist() if t}
        prov[tid] = FrameState.REFINED
        v.write_label(3, refined, state=FrameState.PROPAGATED, provenance=prov)
        # frame 7: fully manual (the ground truth with a twist)
        manual = gt[7].copy()
        manual[:10, :10] = 2
        v.write_label(7, manual, state=FrameState.MANUAL,
                      provenance={t: FrameState.MANUAL for t in np.unique(manual).tolist() if t})
        refs, partial = find_references(v)
        assert [r.index for r in refs] == [0, 3, 5, 7, 10] and partial == {3}
        assert next(r for r in refs if r.index == 3).fixed_tracks == frozenset({tid})

        report = propagate_video(v, CopyPropagator())  # a different backend: everything else changes
        assert report.recomposed == [3] and 3 not in report.written and 7 not in report.written
        new3 = v.read_label(3)
        assert np.array_equal(new3 == tid, refined == tid)  # the refined track, bit for bit, nowhere else
        assert v.provenance(3)[tid] == FrameState.REFINED
        assert not (new3 == 0).any()  # the track's old pixels got a machine label, not void
        assert np.array_equal(v.read_label(7), manual) and v.frame_state(7) == FrameState.MANUAL
        # the refined frame is a reference: the copy backend carries its human shape to frame 4
        assert np.array_equal(v.read_label(4) == tid, refined == tid)

        report = propagate_video(v, FlowPropagator())  # and once more with flow
        assert np.array_equal(v.read_label(3) == tid, refined == tid)
        assert np.array_equal(v.read_label(7), manual)


def test_cancel_keeps_finished_gaps(demo):
    proj, _ = demo
    token = CancelToken()

    def progress(done: int, total: int, msg: str) -> None:
        if done >= 4:  # the first gap (frames 1-4) is finished
            token.cancel()

    with proj.open_video(VID) as v:
        with pytest.raises(Cancelled):
            propagate_video(v, FlowPropagator(), progress=progress, cancel=token)
        assert all(v.frame_state(i) == FrameState.PROPAGATED for i in (1, 2, 3, 4))
        assert all(v.frame_state(i) == FrameState.UNLABELLED for i in (6, 7, 8, 9))


def test_frame_range_and_errors(demo, tmp_path):
    proj, _ = demo
    with proj.open_video(VID) as v:
        report = propagate_video(v, CopyPropagator(), frame_range=(6, 8))
        assert report.written == [6, 7, 8]
        assert v.frame_state(1) == FrameState.UNLABELLED
    with proj.open_video(VID, readonly=True) as ro, pytest.raises(ProjectError):
        propagate_video(ro, CopyPropagator())
    empty = Project.create(tmp_path / "empty.vpsproj")
    v = empty.create_video("v", ["a", "b"], 8, 8)
    try:
        with pytest.raises(InputError, match="keyframe"):
            propagate_video(v, CopyPropagator())
    finally:
        v.close()


def test_review_flags_and_confidence_storage(demo):
    label = np.ones((40, 40), np.uint16)
    label[10:30, 10:30] = 2
    conf = np.ones((40, 40), np.float32)
    conf[10:20, 10:30] = 0.1  # half of track 2 is unsure
    flags = review_flags(7, label, conf)
    assert [(f.track, f.frame) for f in flags] == [(2, 7)]
    assert flags[0].low_share == pytest.approx(0.5) and flags[0].bbox == (10, 10, 30, 20)
    proj, _ = demo
    with proj.open_video(VID) as v:
        c = np.zeros((v.height, v.width), np.float32)
        c[:, v.width // 2:] = 1
        store_confidence(v, 2, c)
        back = load_confidence(v, 2)
        assert back.shape == c.shape and abs(float(back.mean()) - 0.5) < 0.05
        assert load_confidence(v, 3) is None


class _Spy(CopyPropagator):
    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []

    def propagate(self, frames, references, targets, progress=None, cancel=None):
        self.calls.append(([r.index for r in references], list(targets)))
        return super().propagate(frames, references, targets, progress, cancel)


def test_one_sided_ends_are_chained_in_bounded_chunks(demo):
    proj, gt = demo
    with proj.open_video(VID) as v:
        for k in (0, 5):  # only the last keyframe stays labelled: everything before it is one-sided
            v.write_label(k, np.zeros_like(gt[k]), state=FrameState.UNLABELLED, provenance={})
        spy = _Spy()
        report = propagate_video(v, spy)
        assert sorted(report.written) == list(range(10))
        assert spy.calls == [([10], [5, 6, 7, 8, 9]), ([5], [0, 1, 2, 3, 4])]
        assert np.array_equal(v.read_label(0), gt[10])  # the copy backend carried frame 10 back to 0
        assert all(v.frame_state(i) == FrameState.PROPAGATED for i in range(10))


def test_machine_filled_keyframes_are_targets_and_human_keyframes_references(demo):
    proj, gt = demo
    with proj.open_video(VID) as v:
        # keyframe 5 only holds a propagated guess, keyframe 10 was drawn by a human
        v.write_label(5, gt[5], state=FrameState.PROPAGATED,
                      provenance={t: FrameState.PROPAGATED for t in np.unique(gt[5]).tolist() if t})
        v.write_label(10, gt[10], state=FrameState.MANUAL,
                      provenance={t: FrameState.MANUAL for t in np.unique(gt[10]).tolist() if t})
        refs, partial = find_references(v)
        assert [r.index for r in refs] == [0, 10] and not partial
        report = propagate_video(v, CopyPropagator())
        assert 5 in report.written and 10 not in report.written
        assert "9 frames propagated" in report.summary()


class _Exploding(CopyPropagator):
    """Copies the nearest reference, blows track ``track`` up on frame ``frame`` and reports it like
    the flow propagator's shape guard does."""

    def __init__(self, track: int, frame: int) -> None:
        self.track, self.frame = track, frame

    def propagate(self, frames, references, targets, progress=None, cancel=None):
        from propagation.shape_guard import EXPLOSION, GuardedResult, GuardEvent

        res = super().propagate(frames, references, targets, progress, cancel)
        events = {}
        if self.frame in res.labels:
            events[self.frame] = [GuardEvent(self.frame, self.track, EXPLOSION, 900, 300, "the forward chain alone",
                                             "track grew to 900 px, 3.00x the 300 px the motion predicts", (1, 2, 30, 40))]
        return GuardedResult(res.labels, res.confidence, events)


def test_guard_events_become_named_review_flags(demo):
    proj, gt = demo
    with proj.open_video(VID) as v:
        track = int(np.unique(gt[5])[-1])
        report = propagate_video(v, _Exploding(track, 7))
        flags = load_flags(v, 7)
        guard = [f for f in flags if f.kind == "explosion"]
        assert len(guard) == 1 and guard[0].track == track and guard[0].bbox == (1, 2, 30, 40)
        assert "3.00x" in guard[0].reason
        assert all(f.kind == "low_confidence" for f in load_flags(v, 6))  # other frames: confidence flags only
        assert any(f.kind == "explosion" for f in report.flags) and "1 collapsed/exploded" in report.summary()
        # flags written by an older version (plain N x 6 int rows) still load
        v.save_array("review_flags", 8, np.array([[track, 250, 0, 0, 4, 4]], np.int32))
        old = load_flags(v, 8)
        assert [(f.track, f.low_share, f.kind) for f in old] == [(track, 0.25, "low_confidence")]
