"""A frame that became a reference loses its stale confidence map and flags when propagation runs,
from the CLI exactly as from the window (one path: ``run_propagate``)."""

from __future__ import annotations

import numpy as np

from annotator.cli import main as cli_main
from annotator.project import FrameState, Project
from annotator.project.array_names import CONFIDENCE_ARRAY
from tests.demo_gaps import VID, demo_with_gaps


def test_cli_propagate_drops_the_evidence_of_a_new_reference(tmp_path):
    path = demo_with_gaps(tmp_path)
    assert cli_main(["propagate", str(path), "--video", VID, "--speed", "fast"]) == 0
    with Project.open(path).open_video(VID) as v:
        target = next(i for i in range(v.num_frames) if not v.is_keyframe(i))
        assert v.load_array(CONFIDENCE_ARRAY, target) is not None  # machine evidence of a propagated frame
        label = v.read_label(target)  # a person refines the frame: it becomes a reference
        v.write_label(target, label, state=FrameState.REFINED,
                      provenance={int(t): FrameState.REFINED for t in np.unique(label) if t})
        v.save()
    assert cli_main(["propagate", str(path), "--video", VID, "--speed", "fast"]) == 0
    with Project.open(path).open_video(VID, readonly=True) as v:
        assert v.load_array(CONFIDENCE_ARRAY, target) is None  # no heat-map doubting the person's frame
        other = next(i for i in range(v.num_frames) if not v.is_keyframe(i) and i != target)
        assert v.load_array(CONFIDENCE_ARRAY, other) is not None
