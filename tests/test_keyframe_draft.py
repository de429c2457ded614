"""Keyframe drafts: a later keyframe carried from a labelled one, machine work until a person accepts it."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.project import FrameState, Project
from annotator.stages.keyframe_draft import accept_keyframe_draft, can_draft, draft_keyframe, is_draft
from propagation.base import CopyPropagator
from tests.demo_gaps import VID, demo_with_gaps


@pytest.fixture
def video(tmp_path):
    with Project.open(demo_with_gaps(tmp_path, keep={0})).open_video(VID) as v:
        assert v.keyframes[0] == 0 and len(v.keyframes) >= 2
        yield v


def test_draft_carries_ids_and_is_not_human_until_accepted(video):
    first, second = video.keyframes[:2]
    assert can_draft(video, second) == ""
    result = draft_keyframe(video, second, propagator=CopyPropagator())
    label = video.read_label(second)
    assert np.array_equal(label, video.read_label(first))  # copy: ids kept pixel for pixel
    assert set(result.tracks) == {int(t) for t in np.unique(label) if t}
    assert is_draft(video, second)
    assert not video.frame_state(second).is_human
    assert not any(s.is_human for s in video.provenance(second).values())
    accept_keyframe_draft(video, second)
    assert not is_draft(video, second)
    assert video.frame_state(second) == FrameState.REVIEWED
    with pytest.raises(InputError, match="not an unaccepted keyframe draft"):
        accept_keyframe_draft(video, second)


def test_an_edited_draft_is_no_draft_and_a_non_keyframe_is_refused(video):
    first, second = video.keyframes[:2]
    draft_keyframe(video, second, propagator=CopyPropagator())
    label = video.read_label(second)
    video.write_label(second, label, state=FrameState.REFINED,
                      provenance={int(t): FrameState.REFINED for t in np.unique(label) if t})
    assert not is_draft(video, second)
    other = next(i for i in range(video.num_frames) if not video.is_keyframe(i))
    assert "not a keyframe" in can_draft(video, other)
    with pytest.raises(InputError):
        draft_keyframe(video, other, propagator=CopyPropagator())
