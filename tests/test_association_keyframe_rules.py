"""Keyframe rules (docs/architecture.md): a keyframe holding only propagated labels is not association
evidence and is skipped; a pre-annotated keyframe is associated and flagged once as not checked."""

from __future__ import annotations

from annotator.project import FrameState, Project
from annotator.stages.association import associate_video, keyframe_evidence
from propagation.factory import association_propagator
from tests import reliability_project


def _project(tmp_path, keyframe_state: FrameState):
    path = reliability_project.build(tmp_path / "p.vpsproj")
    video = Project.open(path).open_video("v")
    label = video.read_label(4)
    video.write_label(4, label, state=keyframe_state, provenance={t: keyframe_state for t in video.frame_tracks(4)})
    return video


def test_propagated_only_keyframe_is_skipped(tmp_path):
    video = _project(tmp_path, FrameState.PROPAGATED)
    ev = keyframe_evidence(video)
    assert ev.propagated_only == [4] and 4 not in ev.annotated
    before = video.read_label(4).copy()
    res = associate_video(video, association_propagator("copy"))
    assert 4 in res.skipped and res.not_annotated == [4] and 4 not in res.keyframes
    assert (video.read_label(4) == before).all()  # the machine's guess is not relabelled as evidence
    video.close()


def test_preannotated_keyframe_is_associated_and_flagged_once(tmp_path):
    video = _project(tmp_path, FrameState.PREANNOTATED)
    res = associate_video(video, association_propagator("copy"))
    assert 4 in res.keyframes
    assert [f.frame for f in res.flags if f.kind == "not_checked"] == [4]
    again = associate_video(video, association_propagator("copy"))
    assert not [f for f in again.flags if f.kind == "not_checked"]
    video.close()
