"""Per-track re-propagation: only the chosen track moves on the frames of the gap; human tracks stay."""

from __future__ import annotations

import numpy as np

from annotator.project import FrameState, Project
from annotator.stages.propagate import propagate_video
from annotator.stages.repropagate import merge_tracks, repropagate_track
from propagation.base import CopyPropagator
from tests.demo_gaps import VID, demo_with_gaps


def test_merge_takes_only_the_chosen_track_and_keeps_protected_pixels():
    old = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 3, 3]], np.uint16)
    new = np.array([[2, 2, 2, 2], [1, 2, 2, 2], [2, 2, 2, 3]], np.uint16)
    out = merge_tracks(old, new, tracks=[2], protected=[3])
    assert (out[old == 3] == 3).all()  # protected track untouched
    assert out[2, 0] == 2 and out[2, 1] == 2  # void pixels the chosen track now covers
    assert (out[new != 2] != 2).all()  # the chosen track sits only where the proposal put it


def test_fixed_track_is_carried_alone_through_the_gap(tmp_path):
    path = demo_with_gaps(tmp_path)
    with Project.open(path).open_video(VID) as v:
        propagate_video(v, CopyPropagator())
        key = v.keyframes[0]
        label = v.read_label(key)
        ids = [int(t) for t in np.unique(label) if t]
        track, other = ids[-1], ids[0]
        fixed = label.copy()
        fixed[fixed == track] = 0
        fixed[:8, :8] = track  # the person moves the track to the corner on the keyframe
        v.write_label(key, fixed, state=FrameState.REFINED,
                      provenance={int(t): FrameState.REFINED for t in np.unique(fixed) if t})
        v.save()
        before = {i: v.read_label(i) for i in range(key + 1, v.num_frames) if not v.is_keyframe(i)}
        repropagate_track(v, key, track, CopyPropagator())
        target = min(before)
        after = v.read_label(target)
        assert (after[:8, :8] == track).all()
        assert (after[8:, :] != track).all() or (fixed[8:, :] == track).any()
        kept = before[target] == other
        assert (after[kept & (after != track)] == other).all()
        assert v.frame_state(key) == FrameState.REFINED
