"""The simulated annotator: labels one video to a quality bar through the tool's own functions.

It does what a person at the window does, in the same order and through the same Qt-free calls:

1. **keyframes** - every ground-truth segment of each keyframe is drawn as a polygon (holes of
   void cut out as separate polygons) under a fresh provisional track with its class picked
   (``EditSession`` + ``Paint``/``Erase`` + ``polygon_mask``); segments are drawn back to front
   (larger filled outline first), so a segment inside another's hole is painted over it;
2. **association** (``annotator.stages.association.associate_video``), then a look at each keyframe's
   identities and the corrections a person would issue - swap, reassign, merge, split - each
   through ``apply_correction`` (which re-associates from the corrected keyframe) and each logged;
3. **propagation** (``annotator.stages.propagate.propagate_video``);
4. **inspection sweeps** - every dense frame in time order: each (frame, object) whose IoU with
   the truth is under the bar (see :class:`RobotConfig`: a 1 px boundary band is ignored, but the
   plain IoU may not fall more than ``slack`` below the bar) is fixed with brush strokes on the
   error region or a redrawn polygon (tracks inside its outline locked first), whichever a person
   would finish sooner by the cost model - after two brush passes that did not reach the bar the
   mask is redrawn, and a redrawn mask is only touched up with the brush; a frame that passes is
   accepted (state ``reviewed``: a trusted reference); after fixing a frame the frames up to the
   next reference are re-propagated from it, so the frames not yet inspected profit from the fix.
   Frames still failing are inspected again in the next sweep, until every mask passes or the
   budget (sweeps, minutes) runs out.

The *hand* baseline draws every dense frame with polygons (tracks picked from the track panel, no
association, no propagation) and then runs the same sweeps. The robot reads the truth only where a
person looks at the picture: to trace what they see and to judge a mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from annotator import panoptic
from annotator.editing import (
    DeleteTrackOnFrame,
    EditSession,
    Erase,
    Operation,
    Paint,
    PaintMode,
    polygon_mask,
    stroke_mask,
)
from annotator.jobs import CancelToken, check_cancel
from annotator.project import FrameState, Video
from annotator.robot.costs import Action, ActionLog
from annotator.robot.tracing import MIN_AREA, Ring, Stroke, plan_strokes, trace_rings
from annotator.robot.truth import GroundTruth
from annotator.stages.association import apply_correction, associate_video
from annotator.stages.propagate import propagate_video
from propagation.base import Propagator

#: the brush plan aims this far above the bar so a fix does not land just under it
BAR_MARGIN = 0.02
#: fix rounds on one frame within a sweep before moving on (a person keeps fixing until it looks right)
ROUNDS_PER_FRAME = 3


@dataclass
class RobotConfig:
    """Quality bar and budget of one run."""

    bar: float = 0.9  # every (frame, object) mask must reach this IoU with the truth...
    #: ...ignoring pixels within this many px of a truth boundary (PASCAL VOC leaves a 5 px void band
    #: around objects; nobody places a boundary more exactly than a pixel, and the tool's smallest
    #: brush dab covers 3 pixels). Objects with no pixel outside the band are judged on plain IoU
    #: against half the bar. 0 = plain IoU everywhere.
    tolerance: int = 1
    #: ...and the plain IoU (band included) may fall at most this far below the bar, so objects made
    #: mostly of thin strands (kite lines: a third of DAVIS kite-surf lies in the 1 px band) are
    #: still held to their strands
    slack: float = 0.1
    max_sweeps: int = 6
    max_minutes: float | None = None  # simulated human minutes per video
    max_corrections: int = 200
    rounds_per_frame: int = ROUNDS_PER_FRAME


@dataclass
class RunStats:
    """What happened besides the priced actions."""

    sweeps: int = 0
    corrections: dict[str, int] = field(default_factory=dict)
    repropagations: int = 0
    failing: int = 0  # (frame, object) masks under the bar at the end
    masks: int = 0  # (frame, object) masks judged at the end
    budget_hit: bool = False


def pair_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (a, b) id pairs with their pixel counts, vectorised (one key per pixel)."""
    key = a.astype(np.int64).ravel() << 16 | b.astype(np.int64).ravel()
    keys, counts = np.unique(key, return_counts=True)
    return keys >> 16, keys & 0xFFFF, counts


class Robot:
    """A simulated person labelling one open, writable video against its ground truth."""

    def __init__(self, video: Video, truth: GroundTruth, log: ActionLog, config: RobotConfig | None = None,
                 propagator: Propagator | None = None, assoc_propagator: Propagator | None = None,
                 cancel: CancelToken | None = None) -> None:
        if truth.num_frames != video.num_frames or truth.shape != (video.height, video.width):
            raise ValueError(f"truth of {truth.video_id!r} does not fit video {video.id!r}")
        self.video = video
        self.truth = truth
        self.log = log
        self.cfg = config or RobotConfig()
        self.propagator = propagator
        self.assoc_propagator = assoc_propagator
        self.cancel = cancel
        self.session = EditSession(video)
        self.assign: dict[int, int] = {}  # ground-truth id -> track id (what the person knows)
        self.accepted: set[int] = set()
        self.stats = RunStats()
        self._bands: dict[int, np.ndarray] = {}
        #: (frame, object) -> (redraws, brush passes) so far
        self._attempts: dict[tuple[int, int], tuple[int, int]] = {}

    # ----------------------------------------------------------------- helpers
    def _over_budget(self) -> bool:
        m = self.cfg.max_minutes
        return m is not None and self.log.minutes >= m

    def _apply(self, frame: int, op: Operation, action: Action) -> None:
        """One edit through the session; the action remembers whether it made an undo step."""
        if self.session.apply(frame, op) is not None:
            action.commands += 1

    def _machine(self) -> None:
        """Before anything else writes label maps: write the session's pending frames."""
        self.session.flush()

    def _machine_done(self) -> None:
        self.session.invalidate()

    def _track_of(self, g: int, frame: int, stage: str) -> int:
        """The track of ground-truth object ``g``, created (class picked) the first time it is needed."""
        t = self.assign.get(g)
        if t is None or t not in self.video.tracks:
            t = self.video.new_track(self.truth.categories[g]).id
            self.assign[g] = t
            self.log.add("pick", frame=frame, track=t, note=f"new track for object {g}", stage=stage)
        return t

    # ----------------------------------------------------------------- drawing
    def _draw_rings(self, frame: int, track: int, rings: list[tuple[Ring, np.ndarray]], stage: str,
                    mode: PaintMode = PaintMode.REPLACE) -> None:
        """Paint each ring for ``track``, then cut out the holes that are void in the picture."""
        shape = self.truth.shape
        gt = self.truth.labels[frame]
        for ring, holes in rings:
            self._polygon(frame, track, ring, stage, Paint(polygon_mask(shape, ring.points), track, mode))
            void_holes = holes & (gt == panoptic.VOID)
            if void_holes.sum() >= MIN_AREA:
                for hole, _ in trace_rings(void_holes):
                    self._polygon(frame, track, hole, stage,
                                  Erase(polygon_mask(shape, hole.points), track_id=track), note="hole")

    def _polygon(self, frame: int, track: int, ring: Ring, stage: str, op: Operation, note: str = "") -> None:
        self.log.add("vertex", ring.vertices, frame, track, note, stage)
        a = self.log.add("polygon", 1, frame, track, note or op.describe(), stage)
        self._apply(frame, op, a)

    def draw_frame(self, frame: int, track_for: Callable[[int], int], stage: str) -> None:
        """Draw every ground-truth segment of a frame with polygons, back to front."""
        gt = self.truth.labels[frame]
        plans = []
        for g in (int(i) for i in panoptic.present_ids(gt)):
            rings = trace_rings(gt == g)
            if rings:
                filled = sum(int(np.count_nonzero(h)) for _, h in rings) + int(np.count_nonzero(gt == g))
                plans.append((filled, g, rings))
        plans.sort(key=lambda p: (-p[0], p[1]))
        for _, g, rings in plans:
            self._draw_rings(frame, track_for(g), rings, stage)

    def draw_keyframes(self) -> None:
        """Pipeline step 1: every keyframe drawn with provisional tracks (identity left to association)."""
        for k in self.video.keyframes:
            check_cancel(self.cancel)

            def provisional(g: int, k: int = k) -> int:
                t = self.video.new_track(self.truth.categories[g]).id
                self.log.add("pick", frame=k, track=t, note="class", stage="keyframes")
                return t

            self.draw_frame(k, provisional, "keyframes")

    def draw_all_frames(self) -> None:
        """Hand baseline: every dense frame drawn, the right track picked from the track panel."""
        for i in range(self.video.num_frames):
            check_cancel(self.cancel)

            def picked(g: int, i: int = i) -> int:
                known = g in self.assign
                t = self._track_of(g, i, "hand")
                if known:  # choosing an existing track in the panel costs a pick too
                    self.log.add("pick", frame=i, track=t, note="track", stage="hand")
                return t

            self.draw_frame(i, picked, "hand")

    # ----------------------------------------------------------------- association
    def associate(self) -> None:

        self._machine()
        self.log.add("run", note="associate", stage="association")
        associate_video(self.video, self.assoc_propagator)
        self._machine_done()

    def _owners(self, frame: int) -> list[tuple[int, int]]:
        """(track, ground-truth object under most of it) for each track on a frame; void-only tracks skipped."""
        label = self.video.read_label(frame)
        g_ids, t_ids, counts = pair_counts(self.truth.labels[frame], label)
        best: dict[int, tuple[int, int]] = {}
        for g, t, c in zip(g_ids.tolist(), t_ids.tolist(), counts.tolist(), strict=True):
            if t == 0 or g == 0:
                continue
            if c > best.get(t, (0, -1))[1]:
                best[t] = (g, c)
        return sorted((t, g) for t, (g, _) in best.items())

    def _first_identity_error(self) -> tuple[int, int, int, int | None, int | None, dict] | None:
        """Scan the labelled keyframes in time order as a person checks ids; the first mismatch.

        Returns ``(keyframe, track, object, expected track of the object, object the track had, owners)``
        and sets :attr:`assign` to the identities seen up to there.
        """
        expected: dict[int, int] = {}
        owner: dict[int, int] = {}
        try:
            for k in self.video.keyframes:
                pairs = self._owners(k)
                for t, g in pairs:
                    e, o = expected.get(g), owner.get(t)
                    if e is None and o is None:
                        expected[g], owner[t] = t, g
                    elif e != t:
                        return k, t, g, e, o, dict(pairs)
            return None
        finally:
            self.assign = dict(expected)

    def fix_identities(self) -> None:
        """Look at each keyframe's ids and correct them until every object keeps one track."""

        self._machine()
        for k in self.video.keyframes:  # the look at every keyframe's ids
            self.log.add("inspect_frame", frame=k, note="identities", stage="association")
        seen: set[tuple] = set()
        while True:
            check_cancel(self.cancel)
            err = self._first_identity_error()
            if err is None:
                break
            k, t, g, e, o, on_k = err
            if (k, t, g, e, o) in seen or sum(self.stats.corrections.values()) >= self.cfg.max_corrections:
                break  # the same error again: the corrections cannot resolve it; leave it to the sweeps
            seen.add((k, t, g, e, o))
            op, params = self._choose_correction(k, t, g, e, o, on_k)
            apply_correction(self.video, op, propagator=self.assoc_propagator, **params)
            self.stats.corrections[op] = self.stats.corrections.get(op, 0) + 1
            self.log.add("correction", frame=k, track=t, note=f"{op} {params}", stage="association")
        self._machine_done()

    def _choose_correction(self, k: int, t: int, g: int, e: int | None, o: int | None,
                           on_k: dict[int, int]) -> tuple[str, dict]:
        """The correction a person picks for "track t shows object g on keyframe k"."""
        v = self.video
        if e is None:  # g is new here but t already followed another object: t switched at k
            return "split", {"track": t, "at_frame": k}
        if e in on_k:  # the right track is on this keyframe too, showing another object
            if o is not None and on_k[e] == o:
                return "swap", {"track_a": t, "track_b": e, "from_frame": k}
            return "split", {"track": e, "at_frame": k}
        t_frames, e_frames = set(v.track_frames(t)), set(v.track_frames(e))
        if o is None and min(t_frames) >= k and not (t_frames & e_frames):
            return "merge", {"keep": e, "absorb": t}
        return "reassign", {"track": t, "to_track": e, "from_frame": k}

    # ----------------------------------------------------------------- propagation
    def propagate(self, frame_range: tuple[int, int] | None = None) -> None:

        if self.propagator is None:
            return
        self._machine()
        if frame_range is None:
            self.log.add("run", note="propagate", stage="propagation")
        else:
            self.stats.repropagations += 1
        propagate_video(self.video, self.propagator, frame_range=frame_range, cancel=self.cancel)
        self._machine_done()

    # ----------------------------------------------------------------- judging
    def band(self, frame: int) -> np.ndarray:
        """Pixels within ``tolerance`` px of a truth boundary (ignored by the quality bar)."""
        b = self._bands.get(frame)
        if b is None:
            gt = self.truth.labels[frame]
            r = int(self.cfg.tolerance)
            if r <= 0:
                b = np.zeros(gt.shape, bool)
            else:
                k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
                g32 = gt.astype(np.float32)
                b = cv2.dilate(g32, k) != cv2.erode(g32, k)
            self._bands[frame] = b
        return b

    def _ious(self, frame: int) -> tuple[dict[int, tuple[int | None, float]], dict[int, int]]:
        """Per truth object on a frame: (its track, judged IoU); plus the judged area of every track."""
        label = self.session.label(frame)
        gt = self.truth.labels[frame]
        keep = ~self.band(frame)

        def tables(g: np.ndarray, p: np.ndarray):
            g_ids, t_ids, counts = pair_counts(g, p)
            inter = {(a, b): c for a, b, c in zip(g_ids.tolist(), t_ids.tolist(), counts.tolist(), strict=True)}
            ga: dict[int, int] = {}
            ta: dict[int, int] = {}
            for (a, b), c in inter.items():
                ga[a] = ga.get(a, 0) + c
                ta[b] = ta.get(b, 0) + c
            return inter, ga, ta

        full = tables(gt, label)
        core = tables(gt[keep], label[keep]) if not keep.all() else full
        out: dict[int, tuple[int | None, float]] = {}
        def iou_of(tab, g: int, t: int | None) -> float:
            inter, ga, ta = tab
            i = inter.get((g, t), 0) if t is not None else 0
            u = ga.get(g, 0) + (ta.get(t, 0) if t is not None else 0) - i
            return i / u if u else 1.0

        for g in sorted(x for x in full[1] if x):
            t = self.assign.get(g)
            plain = iou_of(full, g, t)
            if core[1].get(g, 0) > 0:
                iou = min(iou_of(core, g, t), plain + self.cfg.slack)
            else:  # no pixel outside the band: judged on plain IoU, against half the bar
                iou = min(1.0, 2 * plain)
            out[g] = (t, iou)
        return out, core[2]

    def judge(self, frame: int) -> list[tuple[int | None, int | None, float]]:
        """(object, track, IoU) of every mask on a frame under the bar; object None = a stray track."""
        ious, t_area = self._ious(frame)
        bad: list[tuple[int | None, int | None, float]] = [
            (g, t, iou) for g, (t, iou) in ious.items() if iou < self.cfg.bar]
        known = {t for t, _ in ious.values()}
        owned = {t: g for g, t in self.assign.items()}
        for t in sorted(x for x, a in t_area.items() if x and a > 0 and x not in known):
            bad.append((owned.get(t), t, 0.0))  # a track whose object is not on this frame, or nobody's
        return bad

    # ----------------------------------------------------------------- fixing
    def _brush_plan(self, frame: int, g: int, t: int) -> tuple[list[tuple[Stroke, int | None]], int]:
        """Strokes over the error pieces worth brushing (largest first, until the mask would pass).

        Returns ``(stroke, target track)`` pairs (target None = erase ``t``) and the stroke count.
        """
        label = self.session.label(frame)
        gt = self.truth.labels[frame]
        gm, pm = gt == g, label == t
        goal = min(self.cfg.bar + BAR_MARGIN, 0.999)
        keep = ~self.band(frame)
        full_i, full_u = int(np.count_nonzero(gm & pm)), int(np.count_nonzero(gm | pm))
        if not (gm & keep).any():
            keep, goal = np.ones(gm.shape, bool), min(self.cfg.bar / 2 + BAR_MARGIN, 0.999)
        elif full_u and full_i / full_u + self.cfg.slack < self.cfg.bar:
            # the strands in the band are what is missing: work on every pixel, to the plain floor
            keep, goal = np.ones(gm.shape, bool), min(self.cfg.bar - self.cfg.slack + BAR_MARGIN, 0.999)
        inter = int(np.count_nonzero(gm & pm & keep))
        union = int(np.count_nonzero((gm | pm) & keep))
        pieces: list[tuple[int, int, int, np.ndarray, int | None]] = []  # area, y0, x0, crop, target
        for err, is_missing in ((gm & ~pm & keep, True), (pm & ~gm & keep, False)):
            if not err.any():
                continue
            n, comp, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
            for c in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[c])
                crop = comp[y:y + h, x:x + w] == c
                if is_missing:
                    pieces.append((area, y, x, crop, t))
                    continue
                owners = gt[y:y + h, x:x + w]
                for o in (int(v) for v in np.unique(owners[crop])):  # extra pixels go to their true owner
                    target = None if o == panoptic.VOID else self.assign.get(o)
                    if o != panoptic.VOID and target is None:
                        continue  # the owner has no track yet: its own fix will draw it
                    sub = crop & (owners == o)
                    pieces.append((int(np.count_nonzero(sub)), y, x, sub, target))
        pieces.sort(key=lambda p: -p[0])
        plan: list[tuple[Stroke, int | None]] = []
        for area, y, x, crop, target in pieces:
            if union and inter / union >= goal:
                break
            if target == t:
                inter += area
            else:
                union -= area
            for s in plan_strokes(crop):
                plan.append((Stroke(s.points + np.array([x, y], np.float64), s.radius), target))
        return plan, len(plan)

    def fix(self, frame: int, g: int | None, t: int | None, iou: float | None = None) -> None:
        """Fix one (frame, object) mask under the bar (its judged ``iou``) the way a person would."""
        model = self.log.model
        shape = self.truth.shape
        if g is None:  # a stray track no object owns: delete it on this frame
            a = self.log.add("erase", frame=frame, track=t, note="stray track", stage="fix")
            self._apply(frame, DeleteTrackOnFrame(int(t)), a)
            return
        if t is None or t not in self.video.tracks:
            t = self._track_of(g, frame, "fix")
        gt = self.truth.labels[frame]
        gm = gt == g
        present = bool(np.count_nonzero(self.session.label(frame) == t))
        rings = trace_rings(gm, min_area=1) if gm.any() else []
        redraw_cost = (sum(model.polygon_seconds(r.vertices) for r, _ in rings)
                       + (model.erase if present else 0.0))
        if not gm.any():  # the object is not on this frame: delete its track here
            a = self.log.add("erase", frame=frame, track=t, note=f"object {g} not on frame", stage="fix")
            self._apply(frame, DeleteTrackOnFrame(t), a)
            return
        plan, n_strokes = self._brush_plan(frame, g, t)
        brush_cost = n_strokes * model.brush_stroke
        # the cheaper tool first; after two brush passes that did not do it a person redraws; a
        # redrawn mask is not redrawn again (the same outline would come out) but touched up
        redraws, brushes = self._attempts.get((frame, g), (0, 0))
        redraw = bool(rings) and (not plan or (redraws == 0 and (redraw_cost < brush_cost or brushes >= 2)))
        self._attempts[(frame, g)] = (redraws + redraw, brushes + (not redraw))
        if redraw:
            if present:
                a = self.log.add("erase", frame=frame, track=t, note="delete before redraw", stage="fix")
                self._apply(frame, DeleteTrackOnFrame(t), a)
            # an outline around other objects (a road around cars): lock the tracks inside it first
            # (the track panel's lock toggles), so the objects inside keep their pixels
            inside: set[int] = set()
            for _, h in rings:
                for o in (int(x) for x in np.unique(gt[h])):
                    if o not in (panoptic.VOID, g) and self.assign.get(o) in self.video.tracks:
                        inside.add(self.assign[o])
            if inside:
                self.log.add("pick", frame=frame, track=t, note=f"lock {sorted(inside)}", stage="fix")
            before = set(self.session.locked)
            self.session.locked = before | inside
            try:
                self._draw_rings(frame, t, rings, "fix")
            finally:
                self.session.locked = before
            return
        for s, target in plan:
            region = stroke_mask(shape, s.points, s.radius)
            op: Operation = Erase(region, track_id=t) if target is None else Paint(region, target)
            a = self.log.add("brush_stroke", frame=frame, track=t if target is None else target,
                             note="erase" if target is None else "paint", stage="fix")
            self._apply(frame, op, a)

    def accept(self, frame: int) -> None:
        """The frame looks right: mark it reviewed (a trusted reference for re-propagation)."""
        self.session.flush([frame])
        label = self.video.read_label(frame)
        present = [int(i) for i in panoptic.present_ids(label)]
        self.video.write_label(frame, label, state=FrameState.REVIEWED,
                               provenance={i: FrameState.REVIEWED for i in present})
        self.session.invalidate(frame)
        self.accepted.add(frame)

    def _next_reference(self, frame: int) -> int:
        """The first frame after ``frame`` propagation would not overwrite (a keyframe or an accepted frame)."""
        later = [k for k in self.video.keyframes if k > frame] + [a for a in self.accepted if a > frame]
        return min(later, default=self.video.num_frames)

    def sweep(self) -> int:
        """Inspect every frame not accepted yet, in time order; returns the number of frames fixed."""
        fixed = 0
        for i in range(self.video.num_frames):
            if i in self.accepted:
                continue
            check_cancel(self.cancel)
            if self._over_budget():
                self.stats.budget_hit = True
                break
            label = self.session.label(i)
            self.log.add("inspect_frame", frame=i, stage="inspection")
            self.log.add("inspect_segment", len(panoptic.present_ids(label)), frame=i, stage="inspection")
            touched = False
            for _ in range(self.cfg.rounds_per_frame):
                bad = self.judge(i)
                if not bad:
                    break
                touched = True
                for g, t, iou in sorted(bad, key=lambda b: b[2]):
                    self.fix(i, g, t, iou)
            if not self.judge(i):
                self.accept(i)
            if touched:
                fixed += 1
                nxt = self._next_reference(i)
                if nxt - 1 > i:
                    self.propagate((i + 1, nxt - 1))
        self.stats.sweeps += 1
        return fixed

    def finish_sweeps(self) -> None:
        """Sweep until every frame is accepted or the budget is spent."""
        while len(self.accepted) < self.video.num_frames and self.stats.sweeps < self.cfg.max_sweeps:
            if self._over_budget():
                self.stats.budget_hit = True
                break
            self.sweep()
        self.session.flush()
        self.stats.failing = sum(len(self.judge(i)) for i in range(self.video.num_frames))
        self.stats.masks = sum(len(panoptic.present_ids(lab)) for lab in self.truth.labels)

    # ----------------------------------------------------------------- whole runs
    def run_pipeline(self) -> None:
        """Keyframes, association + corrections, propagation, inspection sweeps."""
        self.draw_keyframes()
        self.associate()
        self.fix_identities()
        self.propagate()
        self.finish_sweeps()

    def run_hand(self) -> None:
        """Every dense frame by hand with polygons, then the same inspection sweeps (no propagation)."""
        self.propagator = None
        self.draw_all_frames()
        self.finish_sweeps()

    def predicted_objects(self) -> dict[int, np.ndarray]:
        """The video's labels with tracks renamed to the objects the person gave them (scoring J&F)."""
        lut = np.full(panoptic.MAX_TRACK_ID + 1, 0xFFFF, np.uint16)
        lut[0] = 0
        for g, t in self.assign.items():
            lut[t] = g
        return {i: lut[self.video.read_label(i)] for i in range(self.video.num_frames)}
