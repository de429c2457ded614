"""What the tracking loop remembers between keyframes: sightings, motion, stuff tracks, used ids.

Why its own module: the re-identification gap, the constant-velocity motion model (predictions
for the proximity round and the gate, shifts for extrapolated masks) and the one-track-per-stuff-
class rule are state carried across keyframes, independent of how a video is read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from propagation.matching import Prediction, centroid_step, segment_centroids


class TrackMemory:
    """What the loop knows about tracks so far: last sighting, stuff tracks, ids already used."""

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.last_seen: dict[int, int] = {}  # track -> keyframe it was last on
        self.missed: dict[int, int] = {}  # track -> labelled keyframes since (0 = on the previous one)
        self.seen: set[int] = set()
        self.stuff: dict[int, int] = {}  # stuff category -> its track
        self.labels: dict[int, np.ndarray] = {}
        self.history: dict[int, list[tuple[int, float, float]]] = {}  # track -> last 2 (k, cy, cx)
        self.area: dict[int, float] = {}  # thing track -> area on the keyframe it was last seen on

    def observe(self, k: int, present: Iterable[int], cats: Mapping[int, int], is_thing: Callable[[int], bool],
                label: np.ndarray | None = None) -> None:
        present = {int(t) for t in present}
        for t in list(self.missed):
            if t not in present:
                self.missed[t] += 1
                if self.missed[t] > self.max_gap:
                    del self.missed[t], self.last_seen[t]
        for t in present:
            self.last_seen[t], self.missed[t] = k, 0
            self.seen.add(t)
            c = cats.get(t)
            if c is not None and not is_thing(c):
                self.stuff.setdefault(c, t)
        if label is not None:
            self.labels[k] = label
            self._record_centroids(k, label, [t for t in present if t in cats and is_thing(cats[t])])
        needed = set(self.last_seen.values())
        for old in [key for key in self.labels if key not in needed]:
            del self.labels[old]

    def _record_centroids(self, k: int, label: np.ndarray, ids: list[int]) -> None:
        if not ids:
            return
        cy, cx, cnt = segment_centroids(label, np.array(sorted(ids), np.intp), centroid_step(label.shape))
        for t, y, x, a in zip(sorted(ids), cy, cx, cnt, strict=True):
            if a:
                self.history[t] = (self.history.get(t, []) + [(k, float(y), float(x))])[-2:]
                # the larger of the last two sightings: a partly hidden object is smaller than it is
                prior = self.area.get(t, 0.0) if len(self.history[t]) == 2 else 0.0
                self.area[t] = max(float(a), prior)

    def restart_motion(self, ids: Iterable[int]) -> None:
        for t in ids:
            if t in self.history:
                self.history[t] = self.history[t][-1:]

    def predict(self, t: int, target: int) -> Prediction | None:
        """Centroid of track ``t`` on frame ``target`` by constant velocity from its last sightings."""
        h = self.history.get(t)
        if not h or t not in self.last_seen or h[-1][0] != self.last_seen[t]:
            return None
        k1, y1, x1 = h[-1]
        dy, dx = 0.0, 0.0
        if len(h) == 2 and h[1][0] != h[0][0]:
            k0, y0, x0 = h[0]
            f = (target - k1) / (k1 - k0)
            dy, dx = (y1 - y0) * f, (x1 - x0) * f
        lost = self.missed.get(t, 0) > 0
        return Prediction(y1 + dy, x1 + dx, self.area.get(t, 0.0), k1, lost=lost, moving=len(h) == 2 and not lost)

    def shift(self, t: int, target: int) -> tuple[int, int]:
        """Constant-velocity displacement of track ``t`` from its last sighting to frame ``target``."""
        h = self.history.get(t, [])
        if len(h) < 2 or h[1][0] == h[0][0]:
            return 0, 0
        (k0, y0, x0), (k1, y1, x1) = h
        f = (target - k1) / (k1 - k0)
        return int(round((y1 - y0) * f)), int(round((x1 - x0) * f))

    def predictions(self, target: int, cats: Mapping[int, int], is_thing: Callable[[int], bool],
                    carried: np.ndarray | None = None) -> dict[int, Prediction]:
        """Predicted centroids of the thing tracks still followed (seen within the gap).

        A track seen only once has no velocity yet; if the propagator still carried a fair part
        of it (``carried``, the map carried from the previous keyframe), the carried mask's
        centroid is its prediction - the propagator's own motion estimate.
        """
        out: dict[int, Prediction] = {}
        for t in self.last_seen:
            c = cats.get(t)
            if c is not None and is_thing(c):
                p = self.predict(t, target)
                if p is not None:
                    out[t] = p
        once = np.array([t for t, p in out.items() if len(self.history.get(t, [])) == 1 and not p.lost], np.intp)
        if carried is not None and len(once):
            cy, cx, area = segment_centroids(carried, once, centroid_step(carried.shape))
            for t, y, x, a in zip(once.tolist(), cy, cx, area, strict=True):
                p = out[t]
                if a >= 0.25 * p.area:
                    out[t] = Prediction(float(y), float(x), p.area, p.source)
        return out

    def lost_groups(self) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for t, m in self.missed.items():
            if 1 <= m <= self.max_gap:
                groups.setdefault(self.last_seen[t], []).append(t)
        return groups
