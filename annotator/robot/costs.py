"""The cost model of the simulated annotator: seconds of human work per action, with sources.

Why a model and not a stopwatch: the robot does in milliseconds what a person does in seconds, so
its "minutes" are the sum of per-action prices. Every price below names where it comes from and
says whether it is a published measurement or our estimate derived from one. Comparisons between
pipelines (the headline: share of time saved against labelling every frame by hand) depend much
less on these prices than absolute minutes do, since both sides are priced the same way.

Published figures used (all from the papers' own text):

* COCO (Lin et al., ECCV 2014): instance polygons took "over 22 worker hours per 1,000
  segmentations", i.e. about 79 s per object including finding it.
* Extreme clicking (Papadopoulos et al., ICCV 2017): four clicks on an object's extreme boundary
  points take 7.0 s per object; drawing a conventional box took about 35 s (ILSVRC, Su et al. 2012).
  So a deliberate click on a well-defined boundary point costs ~1.75 s with search included.
* Cityscapes (Cordts et al., CVPR 2016): fine polygon annotation took more than 1.5 h per image
  (about 7 min for coarse); Polygon-RNN (Castrejon et al., CVPR 2017) cut the clicks per Cityscapes
  object 4.7x, confirming that polygon time scales with the number of vertices.
* Benenson et al. (CVPR 2019, "Large-scale interactive object segmentation with human annotators"):
  corrective-click interfaces produce masks ~3x faster than polygon drawing; a corrective click is
  therefore priced below a fresh polygon of the same region.
* Bearman et al. (ECCV 2016, "What's the point"): ~1 s per class to label an image's classes;
  picking one class in a searchable list of 124 is priced above that.
* Bearman et al. (ECCV 2016) also timed one click on an object ("point supervision") at 2.4 s per
  instance, search for the object included; a click on an already found region costs less.
* Mortensen and Barrett (SIGGRAPH 1995, "Intelligent scissors for image composition"): between two
  seed clicks the live-wire follows the image edge, so an outline needs a few seed points where a
  polygon needs a vertex at every bend; they report no per-click time we could use, so a seed
  (anchor) is priced above a polygon vertex (the person also watches the snapped preview).
* Caesar et al. (CVPR 2018, "COCO-Stuff"): stuff labelled by clicking/painting SLIC superpixels
  with a brush, reported several times faster than polygons for stuff regions; we use the protocol
  (one click takes a whole superpixel), not a per-click time, which is our estimate.
* Rother et al. (SIGGRAPH 2004, "GrabCut"): a mask refined by an iterated graph cut from a rough
  seed plus a few foreground/background strokes; the key and the strokes are priced as a key
  press and as brush strokes.
* VIPSeg (Miao et al., CVPR 2022) describes the sparse-to-dense pipeline this tool follows but,
  to our knowledge, reports no per-action times we could use: no VIPSeg figure is used here.

Prices per action (see :class:`CostModel`, all overridable):

============== ======== =======================================================================
action         seconds  source
============== ======== =======================================================================
vertex         1.5      estimate from extreme clicking (7.0 s / 4 boundary clicks = 1.75 s incl.
                        search); vertices follow the outline in order, so less search per click
polygon        3.0      estimate: start, close and check a polygon (fixed part of COCO's 79 s)
pick           2.0      estimate: class (or track) choice, > Bearman et al.'s ~1 s per class
brush_stroke   3.0      estimate: choose size, drag one stroke (< a polygon: Benenson et al. 3x)
erase          1.5      estimate: one click (delete a track on a frame, accept an erase)
correction     10.0     estimate: find the switch on the timeline, pick two tracks, choose the op
inspect_frame  2.0      estimate: look at one frame's overlay (every 5 fps frame, pass or not)
inspect_segment 0.5     estimate: per visible segment on an inspected frame
run            1.0      estimate: a click to start association or propagation (machine time and
                        waiting are not counted); also asking for a keyframe draft
scissors_ring  3.0      estimate: start, close and check an edge-following outline (as polygon)
scissors_anchor 2.0     estimate: one scissors seed on a boundary point (Mortensen and Barrett
                        1995); extreme clicking's 1.75 s per boundary click plus a glance at the
                        snapped preview
superpixel_click 1.0    estimate: one click taking a whole superpixel (COCO-Stuff's protocol);
                        below Bearman et al.'s 2.4 s per point, which includes finding the object
refine         1.5      estimate: the GrabCut-refine key plus a look at its preview (Rother et al.)
refine_stroke  3.0      estimate: one +/- stroke for the refine = one brush stroke
snap           1.5      estimate: the snap-outline key plus a look at its preview
cut_stroke     2.0      estimate: one short "cut here" drag across a leak (below a brush stroke:
                        no size to choose, no precise path)
draft_accept   1.0      estimate: one key accepting a keyframe draft (the look is inspect_frame)
repropagate    1.0      estimate: one click re-propagating one track from the fixed frame (as run)
undo           1.0      estimate: one key dropping a preview or an edit that did not help
============== ======== =======================================================================

The last eleven rows are the new tools of issue 24 (docs/effort.md has the figures per mode).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: action kinds and what one unit of each is
KINDS = {
    "vertex": "one polygon vertex placed",
    "polygon": "one polygon started and closed (its vertices are priced separately)",
    "pick": "one class or track chosen",
    "brush_stroke": "one brush or eraser stroke",
    "erase": "one delete-track-on-frame click",
    "correction": "one identity correction (swap, reassign, merge, split)",
    "inspect_frame": "one frame looked at",
    "inspect_segment": "one segment checked on an inspected frame",
    "run": "one click starting association or propagation",
    "scissors_ring": "one edge-following (intelligent scissors) outline started and closed",
    "scissors_anchor": "one intelligent-scissors anchor placed",
    "superpixel_click": "one superpixel taken by a click",
    "refine": "one GrabCut-refine key press (preview looked at)",
    "refine_stroke": "one +/- stroke for the GrabCut refine",
    "snap": "one snap-outline key press (preview looked at)",
    "cut_stroke": "one cut-here stroke removing a leaked part",
    "draft_accept": "one keyframe draft accepted",
    "repropagate": "one click re-propagating one track from a fixed frame",
    "undo": "one undo or dropped preview",
}


#: the report's stages (issue 24) and the action stages each one sums: drawing (keyframes, or every
#: frame by hand), identity fixes (association look + corrections), inspection, repair (fixes,
#: re-propagation clicks)
STAGES = {
    "keyframes": ("keyframes", "hand"),
    "identity": ("association",),
    "inspection": ("inspection",),
    "repair": ("fix", "propagation"),
}


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of each action kind (sources in the module docstring)."""

    vertex: float = 1.5
    polygon: float = 3.0
    pick: float = 2.0
    brush_stroke: float = 3.0
    erase: float = 1.5
    correction: float = 10.0
    inspect_frame: float = 2.0
    inspect_segment: float = 0.5
    run: float = 1.0
    scissors_ring: float = 3.0
    scissors_anchor: float = 2.0
    superpixel_click: float = 1.0
    refine: float = 1.5
    refine_stroke: float = 3.0
    snap: float = 1.5
    cut_stroke: float = 2.0
    draft_accept: float = 1.0
    repropagate: float = 1.0
    undo: float = 1.0

    def price(self, kind: str) -> float:
        if kind not in KINDS:
            raise KeyError(f"unknown action kind {kind!r}; known: {', '.join(KINDS)}")
        return float(getattr(self, kind))

    def polygon_seconds(self, vertices: int) -> float:
        """Price of one polygon with ``vertices`` vertices (used to choose brush vs redraw)."""
        return self.polygon + self.vertex * vertices

    def scissors_seconds(self, anchors: int) -> float:
        """Price of one edge-following outline through ``anchors`` anchors."""
        return self.scissors_ring + self.scissors_anchor * anchors

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Action:
    """One logged human action: what, where, how many units (vertices, strokes...)."""

    kind: str  # a key of KINDS
    frame: int | None = None
    track: int | None = None
    units: int = 1
    note: str = ""
    stage: str = ""  # keyframes | association | inspection | fix | propagation | hand (see STAGES)
    commands: int = 0  # undo-history steps the action produced (0: a look, a click, or a no-op edit)


@dataclass
class ActionLog:
    """Every action the robot took, priced by a :class:`CostModel`."""

    model: CostModel = field(default_factory=CostModel)
    actions: list[Action] = field(default_factory=list)

    def add(self, kind: str, units: int = 1, frame: int | None = None, track: int | None = None,
            note: str = "", stage: str = "") -> Action:
        self.model.price(kind)  # refuse unknown kinds at once
        if units < 0:
            raise ValueError(f"negative units for {kind}: {units}")
        a = Action(kind, frame, track, int(units), note, stage)
        self.actions.append(a)
        return a

    def units(self) -> Counter:
        """Units per kind (e.g. total vertices, total strokes)."""
        c: Counter = Counter()
        for a in self.actions:
            c[a.kind] += a.units
        return c

    def count(self, kind: str | None = None) -> int:
        """Number of logged actions (of one kind)."""
        return sum(1 for a in self.actions if kind is None or a.kind == kind)

    def seconds(self, kind: str | None = None, stage: str | None = None) -> float:
        return float(sum(self.model.price(a.kind) * a.units for a in self.actions
                         if (kind is None or a.kind == kind) and (stage is None or a.stage == stage)))

    @property
    def minutes(self) -> float:
        return self.seconds() / 60.0

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per report stage (:data:`STAGES`); an action of an unlisted stage counts as repair."""
        out = dict.fromkeys(STAGES, 0.0)
        where = {a: s for s, acts in STAGES.items() for a in acts}
        for a in self.actions:
            out[where.get(a.stage, "repair")] += self.model.price(a.kind) * a.units
        return out

    def breakdown(self) -> dict[str, dict[str, float]]:
        """Per kind: actions, units and seconds (the per-kind seconds sum to :meth:`seconds`)."""
        out: dict[str, dict[str, float]] = {}
        for a in self.actions:
            row = out.setdefault(a.kind, {"actions": 0, "units": 0, "seconds": 0.0})
            row["actions"] += 1
            row["units"] += a.units
            row["seconds"] += self.model.price(a.kind) * a.units
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.actions]
