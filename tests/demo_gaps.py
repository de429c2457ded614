"""A small demo video whose frames between keyframes are unlabelled: the start of every
propagation, draft and review test that needs gaps to fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.project import FrameState, Project
from resources.demo import write_demo_project

VID = "demo_crossing"


def demo_with_gaps(folder: Path, keep: set[int] | None = None) -> Path:
    """A 31-frame 128x72 ``crossing`` project; every frame but the keyframes (or but ``keep``) emptied."""
    path = write_demo_project(Path(folder) / "p.vpsproj", seed=1, scenarios=("crossing",), num_frames=31,
                              height=72, width=128)
    with Project.open(path).open_video(VID) as v:
        kept = set(v.keyframes) if keep is None else keep
        for i in range(v.num_frames):
            if i not in kept:
                v.write_label(i, np.zeros((v.height, v.width), np.uint16), state=FrameState.UNLABELLED,
                              provenance={})
        v.save()
    return path
