"""Association of keyframe masks into video-wide tracks: the sparse tracking loop (docs/architecture.md).

Where the annotator's keyframe drawings live: directly on the **main label layer** of each
keyframe, under *provisional* tracks. The annotator draws every instance of a keyframe without
caring about identity (the GUI gives each new instance a fresh track, or any track it likes);
association then relabels the keyframe in place so each segment carries its video-wide track id.
A provisional track that ends up merged into an earlier track and owns no pixel anywhere any more
is deleted (its id stays retired). Only the *partition* of a keyframe into segments and each
segment's class matter to association, never the ids drawn, so running it again - for instance
after a correction - is well defined: an already associated keyframe is just a keyframe whose
segments happen to carry good ids. There is no second "raw" layer to keep in sync.

All or nothing: a run (its relabelling, the tracks it creates and deletes, its match tables and
its undo record) is one video transaction (:meth:`annotator.project.Video.transaction`), as is
:func:`apply_correction` with its re-association; a kill, a cancel or a full disk leaves no
half-relabelled keyframes and no orphan tracks.

For consecutive labelled keyframes k0 < k1 (:func:`associate_video`):

1. carry k0's label map to k1 with a :class:`~propagation.base.Propagator` (optical flow by default,
   the copy propagator when flow is unavailable); tracks missing on k0 but seen on one of the
   ``max_gap`` keyframes before are carried too: their last seen mask moved at their last
   velocity (re-identification after an occlusion or a short exit);
2. match k1's segments to the carried tracks (:mod:`propagation.matching`: one-``bincount`` IoU
   table, Hungarian over same-category pairs with IoU >= ``threshold``, then containment and
   proximity rounds, a motion gate against crossings; stuff by class, one track per stuff class
   per video); unmatched thing segments become new tracks;
3. relabel k1 in place, unless k1 is a **confirmed** keyframe: one a correction rewrote or the
   annotator confirmed (:func:`annotator.stages.corrections.confirmed_keyframes`). A confirmed keyframe
   is a fixed anchor, "the corrected instances are inputs of the tracker": its ids are kept and
   the next keyframes follow them, and a carried track that would have taken another of its
   segments is reported as a ``disputed`` match and review flag instead of applied. So a later
   full run from keyframe 0 never overwrites a correction.

What the loop remembers between keyframes (sightings, velocities, stuff tracks) is
:class:`~propagation.track_memory.TrackMemory`. Every match keeps its IoU; review flags
(:mod:`annotator.stages.association_records`) list matches below ``review_threshold``, thing tracks that
appear after the first keyframe, thing tracks that vanish, tracks re-identified after a gap and
disputes on confirmed keyframes. Per keyframe the match table is stored as the array
``association`` (see :func:`stored_matches`), which ``annotator.review`` reads; each run is logged
in ``video.json`` with an undo record (``annotator.stages.corrections.undo_last`` reverts it).
Corrections (:func:`apply_correction`) re-run association from the keyframe they fixed, as one
undo step. Evaluation against ground truth is in :mod:`annotator.stages.tracking_eval`. Every public
name of those modules that other code uses stays importable from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from annotator import panoptic
from annotator.errors import InputError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState, Video
from annotator.stages import corrections
from annotator.stages.association_records import (
    ARRAY_NAME,
    CRITERIA,
    KINDS,
    Match,
    ReviewFlag,
    review_flags,
    store_matches,
    stored_flags,
    stored_matches,
)
from annotator.stages.corrections import EditRecorder
from annotator.stages.tracking_eval import identity_metrics, write_shuffled_keyframes
from propagation.base import Propagator, Reference
from propagation.factory import association_propagator
from propagation.matching import (
    CarriedMap,
    Overlap,
    Prediction,
    SegmentMatch,
    extrapolate,
    match_segments,
    overlap,
    present_ids,
    relabel,
    segment_centroids,
)
from propagation.track_memory import TrackMemory

#: names other modules import from here (the pieces live in the modules above)
__all__ = [
    "ARRAY_NAME", "CORRECTIONS", "CRITERIA", "KINDS", "AssociationConfig", "AssociationResult", "CarriedMap",
    "AssociateOptions", "Match", "Overlap", "Prediction", "ReviewFlag", "SegmentMatch", "apply_correction",
    "associate_video", "run_associate",
    "default_propagator", "identity_metrics", "match_segments", "overlap",
    "reassociate_from", "relabel", "review_flags", "segment_centroids", "stored_flags", "stored_matches",
    "write_shuffled_keyframes",
]


@dataclass(frozen=True)
class AssociationConfig:
    """Tunables of association (defaults from the issue / VIPSeg practice)."""

    threshold: float = 0.3  # accept a thing match at IoU >= threshold
    review_threshold: float = 0.5  # flag matches below this IoU for review
    max_gap: int = 3  # a vanished track can be re-identified after missing up to this many keyframes
    min_confidence: float = 0.0  # carried pixels below this propagation confidence count as void
    #: second pass for pairs left unmatched by IoU: accept when this fraction of the smaller of the two
    #: masks lies inside the other (partial occlusion shrinks a segment far below IoU 0.3); 0 = off
    containment: float = 0.5
    #: last round for what is still unmatched: a segment within this many object radii of where a
    #: track's own motion puts it (occluded objects the propagator lost); 0 = off
    proximity: float = 2.0
    #: a match with IoU below ``review_threshold`` is vetoed when its segment lies further than this
    #: many object radii from where the track's measured velocity puts it (crossings); 0 = off
    gate: float = 2.5

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"association threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.containment <= 1.0:
            raise InputError(f"containment must be in [0, 1], got {self.containment}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise InputError(f"review threshold must be in [0, 1], got {self.review_threshold}")
        if self.proximity < 0 or self.gate < 0:
            raise InputError(f"proximity and gate must be >= 0 object radii, got {self.proximity}, {self.gate}")
        if self.max_gap < 0:
            raise InputError(f"max gap must be >= 0 keyframes, got {self.max_gap}")


@dataclass
class AssociationResult:
    matches: list[Match] = field(default_factory=list)
    flags: list[ReviewFlag] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)  # keyframes associated (or kept fixed)
    skipped: list[int] = field(default_factory=list)  # keyframes without any label (not annotated yet)
    fixed: list[int] = field(default_factory=list)  # keyframes of the run kept as they are (confirmed)
    new_tracks: list[int] = field(default_factory=list)  # tracks created by this run
    deleted_tracks: list[int] = field(default_factory=list)  # provisional tracks merged away
    undo_id: str | None = None
    propagator: str = ""
    not_annotated: list[int] = field(default_factory=list)  # keyframes holding only propagated labels (skipped)
    #: set by :func:`run_associate`: ids changed while propagated frames exist (they keep the old ids)
    stale_propagation: bool = False


#: video log kind recording the pre-annotated keyframes already flagged "not checked by a person"
UNCHECKED_EVENT = "unchecked_keyframes_flagged"


@dataclass
class KeyframeEvidence:
    """Which keyframes association may use (docs/architecture.md, keyframe rules).

    A keyframe is evidence when it holds human labels (manual, refined, reviewed) or a
    pre-annotation; one holding only propagated labels is the machine's guess, not evidence, and is
    skipped ("keyframe not annotated"); a pre-annotated keyframe is used and flagged once.
    """

    annotated: list[int]
    propagated_only: list[int]
    preannotated: list[int]  # evidence with pre-annotated labels and no human ones
    flagged_unchecked: set[int]


def keyframe_evidence(video: Video) -> KeyframeEvidence:
    annotated, propagated_only, pre = [], [], []
    for k in video.keyframes:
        tracks = video.frame_tracks(k)
        if not tracks:
            continue
        prov = video.provenance(k)
        states = {prov.get(t, video.frame_state(k)) for t in tracks}
        if any(s.is_human for s in states):
            annotated.append(k)
        elif FrameState.PREANNOTATED in states:
            annotated.append(k)
            pre.append(k)
        elif states <= {FrameState.PROPAGATED, FrameState.UNLABELLED}:
            propagated_only.append(k)
        else:
            annotated.append(k)
    flagged = {int(f) for e in video.log if e.get("kind") == UNCHECKED_EVENT for f in e.get("frames", [])}
    return KeyframeEvidence(annotated, propagated_only, pre, flagged)


# ----------------------------------------------------------------- propagator choice
def default_propagator(video: Video | None = None) -> Propagator:
    backend = video.project.settings.get("propagation_backend") if video is not None else None
    return association_propagator("copy" if backend == "copy" else None)


# ----------------------------------------------------------------- video driver
def _track_classes(video: Video) -> dict[int, int]:
    cats = video.track_category()
    bad = {t: c for t, c in cats.items() if c not in video.taxonomy}
    if bad:
        t, c = next(iter(bad.items()))
        raise InputError(f"video {video.id!r}: track {t} has category {c}, unknown to taxonomy "
                         f"{video.taxonomy.name!r}; fix it with `correct ... set-class`")
    return cats


def _read_keyframe(video: Video, k: int, cats: Mapping[int, int]) -> np.ndarray:
    label = video.read_label(k)
    unknown = [int(i) for i in present_ids(label) if int(i) not in cats]
    if unknown:
        raise InputError(f"keyframe {k} of video {video.id!r} has pixels with ids {unknown[:10]} that are not "
                         "tracks, so their class is unknown; give them a class or erase them")
    return label


def _carry(propagator: Propagator, video: Video, ref: Reference, target: int, cfg: AssociationConfig,
           cancel: CancelToken | None) -> np.ndarray:
    res = propagator.propagate(video, [ref], [target], cancel=cancel)
    label = res.labels.get(target)
    if label is None or label.shape != ref.label.shape:
        got = "nothing" if label is None else f"{label.shape[1]}x{label.shape[0]}"
        raise InputError(f"propagator {propagator.name!r} returned {got} for frame {target}, "
                         f"expected {ref.label.shape[1]}x{ref.label.shape[0]}")
    label = np.asarray(label)
    if cfg.min_confidence > 0 and target in res.confidence:
        label = np.where(res.confidence[target] >= cfg.min_confidence, label, panoptic.VOID)
    return label.astype(panoptic.LABEL_DTYPE, copy=False)


def associate_video(video: Video, propagator: Propagator | None = None, config: AssociationConfig | None = None,
                    start: int | None = None, fixed: Iterable[int] = (), recorder: EditRecorder | None = None,
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> AssociationResult:
    """Give every segment of the labelled keyframes from ``start`` on its video-wide track.

    Keyframes before ``start`` are trusted as they are. Keyframes in ``fixed`` and the keyframes a
    human confirmed (:func:`annotator.stages.corrections.confirmed_keyframes`: corrected or explicitly
    confirmed, including those pending in ``recorder``) are fixed anchors: the carried tracks are
    matched against them as usual, but their ids are kept - the next keyframes follow them - and
    every carried track that would have taken another segment is reported (``disputed`` match,
    review flag) instead of applied. So a full re-run never undoes an annotator's correction. Keyframes with no label at all are
    skipped (not annotated yet) and do not count in the re-identification gap. Changes go through
    ``recorder`` (a new one, logged as an ``association`` event with its undo record, by default).
    """
    if recorder is None and not getattr(video, "in_transaction", True):
        # all or nothing with its undo record: a kill or a full disk leaves no half-relabelled keyframes
        with corrections.video_transaction(video, "associate", {"start": start}):
            return associate_video(video, propagator, config, start, fixed, recorder, progress, cancel)
    cfg = config or AssociationConfig()
    prop = propagator or default_propagator(video)
    fixed = {int(k) for k in fixed} | corrections.confirmed_keyframes(video, recorder)
    tax = video.taxonomy
    cats = _track_classes(video)

    def is_thing(c: int) -> bool:
        return tax.get(c).isthing

    keys = video.keyframes
    first = 0 if start is None else int(start)
    if not 0 <= first < video.num_frames:  # else the run silently associates nothing
        raise InputError(f"start frame {first} is outside video {video.id!r}, whose dense frames are "
                         f"0-{video.num_frames - 1}")
    evidence = keyframe_evidence(video)
    labelled = [k for k in keys if k in evidence.annotated]
    before = [k for k in labelled if k < first]
    run = [k for k in labelled if k >= first]
    result = AssociationResult(skipped=[k for k in keys if k >= first and k not in labelled], propagator=prop.name,
                               not_annotated=[k for k in evidence.propagated_only if k >= first])
    own = recorder is None
    rec = recorder or EditRecorder(video, "associate", {"start": first, "fixed": sorted(fixed),
                                                        "threshold": cfg.threshold, "propagator": prop.name},
                                   kind="association")
    state = TrackMemory(cfg.max_gap)
    for n_b, k in enumerate(before):  # the last few prefix keyframes give sightings and velocities
        recent = n_b >= len(before) - cfg.max_gap - 2
        state.observe(k, video.frame_tracks(k), cats, is_thing, _read_keyframe(video, k, cats) if recent else None)
        if k in fixed:  # as the loop below does, so a partial run sees the motion a full run sees
            state.restart_motion(video.frame_tracks(k))
    first_labelled = labelled[0] if labelled else None
    replaced: set[int] = set()
    prev: int | None = before[-1] if before else None
    try:
        for n, k in enumerate(run):
            check_cancel(cancel)
            if progress:
                progress(n, len(run), f"keyframe {k}")
            segs = _read_keyframe(video, k, cats)
            if prev is None:
                mapping = _initial_mapping(segs, cats, is_thing, state, fixed=k in fixed)
                kind = "fixed" if k in fixed else "initial"
                matches = [Match(k, s, t, cats[s], kind, 1.0 if kind == "fixed" else 0.0)
                           for s, t in mapping.items()]
            else:
                carried, pairs = _match_keyframe(video, prop, k, prev, segs, state, cats, is_thing, cfg, cancel)
                if k in fixed:
                    # a confirmed keyframe is an input of the tracker: matched, never relabelled
                    mapping, matches = _fixed_matches(k, prev, segs, carried[0], pairs)
                else:
                    mapping, matches = _assign(video, k, pairs, state, rec, cats, result)
                prev_tracks = set(video.frame_tracks(prev))
                gone = sorted(prev_tracks - set(mapping.values()))
                matches += [Match(k, 0, t, cats[t], "vanished", 0.0, prev) for t in gone]
            new_label = relabel(segs, mapping) if any(s != t for s, t in mapping.items()) else segs
            if new_label is not segs:
                old_prov = video.provenance(k)
                prov: dict[int, FrameState] = {}
                for s, t in mapping.items():
                    p = old_prov.get(s, FrameState.MANUAL)
                    if t not in prov or (p.is_human and not prov[t].is_human):
                        prov[t] = p
                rec.write_label(k, new_label, old=segs, provenance=prov)
                replaced.update(s for s, t in mapping.items() if s != t)
            store_matches(video, k, matches)
            result.matches += matches
            result.keyframes.append(k)
            if k in fixed:
                result.fixed.append(k)
            state.observe(k, mapping.values(), cats, is_thing, new_label)
            if k in fixed:
                # a corrected keyframe may give a track another object's position: the motion
                # measured across it is meaningless, so velocities restart from here
                state.restart_motion(mapping.values())
            prev = k
        for s in sorted(replaced):
            if s in video.tracks and not video.track_frames(s):
                rec.delete_track(s)
                result.deleted_tracks.append(s)
        if progress:
            progress(len(run), len(run), "done")
    except BaseException:
        # cancelled, or bad input found on a later keyframe: leave no partial output behind
        # (a caller's recorder is rolled back by that caller, with its own changes)
        if own:
            rec.rollback()
        raise
    result.flags = review_flags(result.matches, is_thing, cfg.review_threshold, first_labelled)
    unchecked = [k for k in evidence.preannotated if k in run and k not in evidence.flagged_unchecked]
    for k in unchecked:  # once: a later run does not flag the same draft again
        result.flags.append(ReviewFlag("not_checked", k, 0, 0.0, f"the keyframe at frame {k + 1} holds a pre-annotation no person "
                                                                 "has checked; association used it as it is"))
    if unchecked:
        video.log_event(UNCHECKED_EVENT, {"frames": unchecked})
    if own:
        result.undo_id = rec.finish({"keyframes": len(result.keyframes), "new_tracks": len(result.new_tracks),
                                     "flags": len(result.flags)})
    return result


def _match_keyframe(video: Video, prop: Propagator, k: int, prev: int, segs: np.ndarray, state: TrackMemory,
                    cats: dict[int, int], is_thing: Callable[[int], bool], cfg: AssociationConfig,
                    cancel: CancelToken | None) -> tuple[list[CarriedMap], list[SegmentMatch]]:
    """Carry the tracks followed so far to keyframe ``k`` and match its segments (no writes)."""
    prev_label = state.labels.get(prev)
    if prev_label is None:
        prev_label = _read_keyframe(video, prev, cats)
    human = frozenset(t for t, s in video.provenance(prev).items() if s.is_human)
    prev_ids = np.array(video.frame_tracks(prev), np.intp)
    carried = [CarriedMap(_carry(prop, video, Reference(prev, prev_label, human), k, cfg, cancel), prev,
                          ids=prev_ids)]
    # tracks that vanished: their last mask moved at their last velocity. Not through the
    # propagator - over an occlusion it follows the occluder, and it would recompute the
    # whole gap's motion once per group - and a velocity guess is what a hidden object has.
    for k_last, ids in sorted(state.lost_groups().items()):
        ref_label = state.labels.get(k_last)
        if ref_label is None:
            ref_label = _read_keyframe(video, k_last, cats)
        guess = extrapolate(ref_label, {t: state.shift(t, k) for t in ids})
        carried.append(CarriedMap(guess, k_last, lost=True, ids=np.array(ids, np.intp)))
    preds = state.predictions(k, cats, is_thing, carried[0].label) if cfg.proximity > 0 else {}
    pairs = match_segments(carried, segs, cats, is_thing, cfg.threshold, state.stuff, cfg.containment,
                           preds, cfg.proximity, cfg.gate, cfg.review_threshold)
    if _worth_second_stage(pairs, carried, cats, is_thing):
        # the propagator lost someone: add constant-velocity guesses of the last masks
        ids = [t for t in video.frame_tracks(prev) if is_thing(cats[t])]
        guess = extrapolate(prev_label, {t: state.shift(t, k) for t in ids})
        carried.append(CarriedMap(guess, prev, stage=1, ids=np.array(ids, np.intp)))
        pairs = match_segments(carried, segs, cats, is_thing, cfg.threshold, state.stuff,
                               cfg.containment, preds, cfg.proximity, cfg.gate, cfg.review_threshold)
    return carried, pairs


def _fixed_matches(k: int, prev: int, segs: np.ndarray, carried: CarriedMap, pairs: list[SegmentMatch]
                   ) -> tuple[dict[int, int], list[Match]]:
    """A confirmed keyframe keeps every id; what association would have done differently is reported.

    Each segment gets a ``fixed`` row with the IoU of the same track carried from ``prev`` (its
    confidence); each pair where a carried track would have taken another segment gets a
    ``disputed`` row (segment = the confirmed id, track = the carried track), which
    :func:`review_flags` turns into a flag instead of a change.
    """
    ov = overlap(carried.label, segs, rows=carried.ids)
    row = {int(t): i for i, t in enumerate(ov.rows)}
    col = {int(c): j for j, c in enumerate(ov.cols)}
    iou = ov.iou
    mapping = {p.segment: p.segment for p in pairs}
    matches = [Match(k, p.segment, p.segment, p.category, "fixed",
                     float(iou[row[p.segment], col[p.segment]]) if p.segment in row and p.segment in col else 0.0,
                     prev) for p in pairs]
    matches += [Match(k, p.segment, p.track, p.category, "disputed", p.iou, p.source,
                      p.criterion if p.criterion in CRITERIA else "")
                for p in pairs if p.track is not None and p.track != p.segment]
    return mapping, matches


def _worth_second_stage(pairs: list[SegmentMatch], carried: list[CarriedMap], cats: Mapping[int, int],
                        is_thing: Callable[[int], bool]) -> bool:
    """True when a thing segment is unmatched while a carried thing track of its class is too."""
    new_cats = {p.category for p in pairs if p.track is None and not p.stuff}
    if not new_cats:
        return False
    matched = {p.track for p in pairs if p.track is not None}
    for c in carried:
        for t in present_ids(c.label):
            if int(t) not in matched and cats.get(int(t)) in new_cats:
                return True
    return False


def _initial_mapping(segs: np.ndarray, cats: Mapping[int, int], is_thing: Callable[[int], bool],
                     state: TrackMemory, fixed: bool) -> dict[int, int]:
    """First (or fixed) keyframe: ids kept; stuff merged into the video's one track per class."""
    mapping: dict[int, int] = {}
    for s in (int(i) for i in present_ids(segs)):
        c = cats[s]
        if fixed or is_thing(c):
            mapping[s] = s
        else:
            mapping[s] = state.stuff.setdefault(c, s)
    return mapping


def _assign(video: Video, k: int, pairs: list[SegmentMatch], state: TrackMemory, rec: EditRecorder,
            cats: dict[int, int], result: AssociationResult) -> tuple[dict[int, int], list[Match]]:
    """Turn matches into ``segment -> track``: unmatched segments keep their id when it is unused."""
    mapping: dict[int, int] = {}
    matches: list[Match] = []
    targets = {p.track for p in pairs if p.track is not None}
    used = state.seen | targets

    def fresh(s: int, c: int) -> int:
        if s not in used:
            used.add(s)
            return s
        t = rec.new_track(c)
        cats[t] = c
        result.new_tracks.append(t)
        used.add(t)
        return t

    for p in pairs:
        if p.stuff:
            t = p.track if p.track is not None else state.stuff.get(p.category)
            kind = "stuff"
            if t is None:  # first region of this class in the video
                state.stuff[p.category] = t = fresh(p.segment, p.category)
                kind = "new"
            mapping[p.segment] = t
            matches.append(Match(k, p.segment, t, p.category, kind, p.iou, p.source))
    for p in pairs:
        if p.stuff:
            continue
        if p.track is not None:
            mapping[p.segment] = p.track
            matches.append(Match(k, p.segment, p.track, p.category,
                                 "reidentified" if p.reidentified else "matched", p.iou, p.source, p.criterion))
        else:
            t = fresh(p.segment, p.category)
            mapping[p.segment] = t
            matches.append(Match(k, p.segment, t, p.category, "new", p.iou))
    return mapping, matches


def reassociate_from(video: Video, keyframe: int, propagator: Propagator | None = None,
                     config: AssociationConfig | None = None, recorder: EditRecorder | None = None,
                     progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                     confirm: bool = True) -> AssociationResult:
    """After the annotator fixed ``keyframe`` (e.g. with the drawing tools): keep it, re-associate after.

    The paper's loop ("the corrected instances are inputs of the tracker"). A frame that is not a
    keyframe is accepted: the first keyframe at or after it is the fixed one. With ``confirm`` the
    keyframe is recorded as confirmed in the same undo step, so later runs keep it fixed too.
    """
    if recorder is None and not getattr(video, "in_transaction", True):
        with corrections.video_transaction(video, "reassociate", {"keyframe": keyframe}):
            return reassociate_from(video, keyframe, propagator, config, recorder, progress, cancel, confirm)
    later = [k for k in video.keyframes if k >= keyframe]
    if not later:
        raise InputError(f"no keyframe at or after frame {keyframe} in video {video.id!r}")
    own = recorder is None
    rec = recorder or EditRecorder(video, "reassociate", {"start": later[0]}, kind="association")
    try:
        if confirm:
            rec.set_confirmed([later[0]], True)
        result = associate_video(video, propagator, config, start=later[0], fixed={later[0]}, recorder=rec,
                                 progress=progress, cancel=cancel)
    except BaseException:
        if own:
            rec.rollback()
        raise
    if own:
        result.undo_id = rec.finish({"keyframes": len(result.keyframes), "new_tracks": len(result.new_tracks),
                                     "flags": len(result.flags)})
    return result


# ----------------------------------------------------------------- corrections + re-association
#: correction operations: name -> (function, name of its frame parameter or None)
CORRECTIONS: dict[str, tuple[Callable[..., corrections.CorrectionResult], str | None]] = {
    "reassign": (corrections.reassign, "from_frame"),
    "swap": (corrections.swap, "from_frame"),
    "merge": (corrections.merge, None),
    "split": (corrections.split, "at_frame"),
    "set-class": (corrections.set_class, None),
    "delete": (corrections.delete, None),
    "confirm": (corrections.confirm, "frame"),
    "unconfirm": (corrections.unconfirm, None),
}


def apply_correction(video: Video, op: str, reassociate: bool = True, propagator: Propagator | None = None,
                     config: AssociationConfig | None = None, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None, **params: Any
                     ) -> tuple[corrections.CorrectionResult, AssociationResult | None]:
    """Apply one correction and, for the frame-based ones, re-associate the keyframes after it.

    The paper's loop: "the corrected instances are inputs of the tracker" - the first keyframe the
    correction rewrote is recorded as confirmed (a fixed anchor, for this and every later run) and
    association re-runs from there, so the fix propagates to later keyframes. Correction and re-association are one undo step (one
    ``correction`` event in ``video.json``). ``params`` are those of the operation's function in
    :mod:`annotator.stages.corrections` (e.g. ``track_a``, ``track_b``, ``from_frame`` for ``swap``).
    """
    if op not in CORRECTIONS:
        raise InputError(f"unknown correction {op!r}; choose one of {', '.join(CORRECTIONS)}")
    if not getattr(video, "in_transaction", True):
        # the correction, its re-association and its undo record: one all-or-nothing transaction
        with corrections.video_transaction(video, op, {"reassociate": reassociate, **params}):
            return apply_correction(video, op, reassociate, propagator, config, progress, cancel, **params)
    fn, frame_param = CORRECTIONS[op]
    rec = EditRecorder(video, op, {"reassociate": bool(reassociate and frame_param)})
    try:
        inspect.signature(fn).bind(video, recorder=rec, **params)
    except TypeError as exc:
        raise InputError(f"correction {op}: bad parameters {sorted(params)} ({exc})") from None
    assoc = None
    try:
        res = fn(video, recorder=rec, **params)
        if reassociate and frame_param is not None:
            frame = int(params.get(frame_param, 0))
            touched = [i for i in rec.changed_frames() if video.is_keyframe(i)]
            later = [k for k in video.keyframes if k >= frame and video.frame_tracks(k)]
            start = touched[0] if touched else later[0] if later else None
            if start is not None:
                rec.params["reassociated_from"] = start
                assoc = associate_video(video, propagator, config, start=start, recorder=rec,
                                        progress=progress, cancel=cancel)
    except BaseException:
        rec.rollback()  # the correction and a partial re-association: all or nothing
        raise
    frames = rec.changed_frames()
    added, removed = rec.confirmed_changes()
    undo_id = rec.finish({"frames": len(frames)})
    return corrections.CorrectionResult(op, undo_id, frames, res.new_track, added, removed), assoc


# ----------------------------------------------------------------- the stage's face
@dataclass(frozen=True)
class AssociateOptions:
    """What an association run is asked for (the ``associate`` command's flags, the window's job).

    ``propagator``: ``flow`` | ``copy`` | None (flow, copy when flow is unavailable), built by
    :func:`propagation.factory.association_propagator` unless ``engine`` is given;
    :meth:`with_engine` builds it ahead (a bad name fails before the video is opened).
    """

    config: AssociationConfig = field(default_factory=AssociationConfig)
    propagator: str | None = None
    start: int | None = None  # trust keyframes before this frame
    engine: Propagator | None = None

    def with_engine(self) -> AssociateOptions:
        """These options with ``engine`` built (unchanged when it already is)."""
        return self if self.engine is not None else replace(self, engine=association_propagator(self.propagator))


def run_associate(video: Video, options: AssociateOptions, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> AssociationResult:
    """Associate an open, writable video (the stage's face): :func:`associate_video` with the
    options' engine; also tells whether propagated frames now carry stale ids."""
    engine = options.with_engine().engine
    res = associate_video(video, engine, options.config, start=options.start, progress=progress, cancel=cancel)
    res.stale_propagation = bool(res.undo_id) and video.state_counts().get("propagated", 0) > 0
    return res
