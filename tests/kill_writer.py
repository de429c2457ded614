"""Writer process for the SIGKILL test: performs numbered operations and acknowledges each one.

Operation k creates a track and writes frame ``k % FRAMES`` as a rectangle (depending on k) of
that track; every 7th operation also saves (folds the journal). After an operation returns the
writer prints ``ack k tid`` so the test knows exactly what was committed before the kill.
"""

import sys

import numpy as np

from annotator.project import FrameState, Project

FRAMES = 6
H, W = 24, 32


def region(k: int) -> tuple[slice, slice]:
    r0 = k % 7
    c0 = (k * 3) % 11
    return slice(r0, r0 + 10 + k % 5), slice(c0, c0 + 12 + k % 9)


def expected_label(k: int, tid: int) -> np.ndarray:
    label = np.zeros((H, W), np.uint16)
    label[region(k)] = tid
    return label


def main() -> None:
    project_path, start = sys.argv[1], int(sys.argv[2])
    project = Project.open(project_path)
    video = project.open_video("v")
    assert not video.readonly, video.lock_message
    k = start
    while True:
        track = video.new_track(60 if k % 2 else 28)
        video.write_label(k % FRAMES, expected_label(k, track.id),
                          state=FrameState.MANUAL if k % 3 else FrameState.REFINED)
        if k % 7 == 0:
            video.save()
        print(f"ack {k} {track.id}", flush=True)
        k += 1


if __name__ == "__main__":
    main()
