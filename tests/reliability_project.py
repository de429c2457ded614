"""A tiny synthetic project for the kill harness: every phase of correct / associate / undo, in
a few milliseconds per operation.

Video ``v``: 6 dense frames of 24x32, keyframes 0, 2, 4. Frames 0, 1, 3, 5 carry two people
(tracks 1 and 2) and a third person (track 3) as if propagated; keyframes 2 and 4 were drawn
with fresh ids for the same people (tracks 4, 5 and 6, 7), as an annotator labels keyframes before
association; sky (track 8, stuff) fills part of every frame. So ``associate`` relabels keyframes 2
and 4 and deletes the drawn tracks it merges away, and ``swap``/``merge``/``delete`` touch several
frames each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.project import FrameState, Project

H, W, FRAMES = 24, 32, 6
PERSON, SKY = 60, 28
VIDEO = "v"


def _boxes(i: int) -> dict[str, tuple[slice, slice]]:
    return {"a": (slice(4, 14), slice(2 + i, 10 + i)),
            "b": (slice(10, 20), slice(18 - i, 26 - i)),
            "c": (slice(16, 22), slice(12, 16))}


def frame_label(i: int, ids: dict[str, int], sky: int) -> np.ndarray:
    label = np.zeros((H, W), np.uint16)
    label[:3, :] = sky
    for name, box in _boxes(i).items():
        if name in ids:
            label[box] = ids[name]
    return label


def build(path: Path) -> Path:
    """Create the project at ``path`` (a NAME.vpsproj folder); returns its path."""
    project = Project.create(path)
    video = project.create_video(VIDEO, [f"f{i:03d}" for i in range(FRAMES)], H, W, keyframes=[0, 2, 4])
    for i in range(FRAMES):
        video.write_frame_image(i, np.full((H, W, 3), 20 * i, np.uint8))
    t = {n: video.new_track(PERSON).id for n in ("a", "b", "c")}  # 1, 2, 3
    drawn = {2: {"a": video.new_track(PERSON).id, "b": video.new_track(PERSON).id},  # 4, 5
             4: {"a": video.new_track(PERSON).id, "b": video.new_track(PERSON).id}}  # 6, 7
    sky = video.new_track(SKY).id  # 8
    for i in range(FRAMES):
        if i in drawn:
            video.write_label(i, frame_label(i, drawn[i], sky), state=FrameState.MANUAL)
        else:
            ids = t if i != 5 else {"a": t["a"], "b": t["b"]}
            state = FrameState.MANUAL if i == 0 else FrameState.PROPAGATED
            video.write_label(i, frame_label(i, ids, sky), state=state)
    video.close()
    return project.path


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1])))
