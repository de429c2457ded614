"""Read-ahead of frames and label maps on a background thread (part of the resource manager).

Why: at 720p a JPEG decode and a 16-bit PNG decode cost 10-30 ms on the target machine, most of
the 30 ms frame-switch budget. While the user looks at frame i, the next frames in the direction
of travel are decoded on a thread (OpenCV releases the GIL), so stepping through a video shows
each frame from memory. Images never change; label maps do: labels are not read ahead for frames
with pending edits (their file is stale), any edit drops cached labels and discards reads in
flight (``drop_labels``), and the controller uses a read-ahead label only for a frame with no
pending edit. Reads use the same decoding as ``Video.read_frame``/``read_label``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import cv2
import numpy as np

from annotator.project import Video


def decode_frame(video: Video, frame: int) -> np.ndarray:
    """The dense frame as RGB, decoded exactly as ``Video.read_frame`` does (imread + BGR->RGB)."""
    img = cv2.imread(str(video.frame_path(frame)), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"frame image {video.frame_path(frame)} is missing or corrupt")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


MAX_ITEMS = 8


class Prefetcher:
    def __init__(self, video: Video) -> None:
        self.video = video
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._labels: OrderedDict[int, np.ndarray] = OrderedDict()
        self._label_gen = 0  # bumped by drop_labels: a read started before is discarded
        self._wanted: list[tuple[int, bool]] = []  # (frame, read its label too)
        self._cond = threading.Condition()
        self._stop = False
        self.hits = 0
        self._thread = threading.Thread(target=self._run, name="frame-prefetch", daemon=True)
        self._thread.start()

    def want(self, frames: Iterable[int], skip_labels: Iterable[int] = ()) -> None:
        """Read these frames next (replacing the queue); no labels for ``skip_labels`` (pending edits)."""
        n = self.video.num_frames
        skip = set(skip_labels)
        with self._cond:
            self._wanted = [(f, f not in skip) for f in frames
                            if 0 <= f < n and (f not in self._images or (f not in skip and f not in self._labels))]
            self._cond.notify_all()

    def image(self, frame: int) -> np.ndarray | None:
        with self._cond:
            img = self._images.get(frame)
            if img is not None:
                self.hits += 1
            return img

    def label(self, frame: int) -> np.ndarray | None:
        with self._cond:
            return self._labels.get(frame)

    def drop_labels(self, frames: Iterable[int] | None = None) -> None:
        with self._cond:
            self._label_gen += 1
            if frames is None:
                self._labels.clear()
            else:
                for f in frames:
                    self._labels.pop(f, None)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._wanted:
                    self._cond.wait()
                if self._stop:
                    return
                frame, with_label = self._wanted.pop(0)
                gen = self._label_gen
                need_image = frame not in self._images
            try:
                img = decode_frame(self.video, frame) if need_image else None
                lab = self.video.read_label(frame) if with_label else None
            except Exception:  # noqa: BLE001 - a failed read-ahead is simply not used
                continue
            with self._cond:
                if img is not None:
                    img.setflags(write=False)
                    self._images[frame] = img
                    while len(self._images) > MAX_ITEMS:
                        self._images.popitem(last=False)
                if lab is not None and gen == self._label_gen:
                    lab.setflags(write=False)
                    self._labels[frame] = lab
                    while len(self._labels) > MAX_ITEMS:
                        self._labels.popitem(last=False)
