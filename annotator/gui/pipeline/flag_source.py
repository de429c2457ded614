"""The one source of the flags both review views show (the Flags panel and the Review dock).

Three producers: association (its match tables, stored per keyframe), the automatic review checks
(cached in ``review.json``) and dense propagation (its report). A correction changes the tracks
these flags name, so after one (and after its undo or redo) the flags are brought up to date here:

* association flags are rebuilt from the stored match tables, keeping only matches that still
  hold for the tracks as they are now (a track that was merged away names nothing; a track
  "absent" from a keyframe it is now on is not absent; a "new" track on an earlier keyframe is
  not new). An undo brings the old tracks back, and with them their flags;
* review flags: :func:`annotator.review.refresh_flags` recomputes those of the touched tracks;
* propagation flags of tracks that no longer exist are dropped.

Qt-free, so it is testable without a window; the pipeline calls it and feeds the panels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from annotator.stages.association import review_flags, stored_matches
from annotator.stages.association_records import Match, ReviewFlag

#: association flag kinds no match table holds (made once by a run): kept as long as they hold
RUN_ONLY_KINDS = ("not_checked",)


def _holds(video: Any, m: Match, live: set[int], first_frame: dict[int, int]) -> bool:
    """Whether the match a flag comes from still describes the video's tracks."""
    named = {m.track} | ({m.segment} if m.kind == "disputed" else set())
    if not named <= live:
        return False  # merged away, deleted: the flag names a track that no longer exists
    present = set(video.frame_tracks(m.keyframe))
    if m.kind == "vanished":
        return m.track not in present
    if m.kind == "new" and first_frame.get(m.track, m.keyframe) < m.keyframe:
        return False  # now continues a track of an earlier keyframe: not new any more
    if m.kind == "disputed":
        return m.segment in present
    return m.track in present


def association_flags(video: Any, run_flags: Iterable[ReviewFlag] = (), review_threshold: float = 0.5
                      ) -> list[ReviewFlag]:
    """Association flags of the video as its tracks are now (see the module docstring).

    ``run_flags``: the flags of the last run in this window; those no match table holds (e.g. an
    unchecked pre-annotation) are kept while their frame still has labels.
    """
    live = set(video.tracks)
    first_frame: dict[int, int] = {}  # first keyframe each track is on (propagation fills frames
    for k in video.keyframes:  # before a new track's keyframe: those do not make it less new)
        for t in video.frame_tracks(k):
            first_frame.setdefault(int(t), k)
    matches = [m for k in video.keyframes for m in stored_matches(video, k)]
    first = min((m.keyframe for m in matches), default=None)
    tax = video.taxonomy
    kept = [m for m in matches if _holds(video, m, live, first_frame)]
    flags = review_flags(kept, lambda c: c in tax and tax.get(c).isthing, review_threshold, first)
    flags += [f for f in run_flags if f.kind in RUN_ONLY_KINDS and video.frame_tracks(f.frame)]
    return flags


def association_ran(video: Any) -> bool:
    """Whether association stored match tables for this video (its flags are known, maybe none)."""
    return any(stored_matches(video, k) for k in video.keyframes)


def live_rows(video: Any, rows: Iterable[Any]) -> list[Any]:
    """Flag rows whose track still exists (a whole-frame row, track 0, always does)."""
    live = set(video.tracks)
    return [r for r in rows if not r.track or r.track in live]


def track_table(video: Any) -> dict[int, int]:
    """Track id -> category: compared before and after a step to find the tracks it touched
    without naming them (a split's new part, a class change)."""
    return {int(t): int(tr.category_id) for t, tr in video.tracks.items()}


def changed_tracks(before: dict[int, int], after: dict[int, int]) -> set[int]:
    """Tracks created, deleted or given another class between two :func:`track_table` snapshots."""
    return {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}
