"""Refreshing the cached review flags after a correction: the flags of the tracks it touched are
computed again, flags that name a track that no longer exists are dropped.

Why not a whole new flag run: a correction (merge, swap, split, class change, delete, and their
undo) changes a few tracks; the other flags stay true, and recomputing only the frames the touched
tracks are on keeps a fix on a long video quick. Flags of untouched tracks and the flags an import
step made once (``PERSISTENT_KINDS``) are kept as they are (unless their track is gone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from annotator.jobs import CancelToken, ProgressFn
from annotator.review.flags import Flag, FlagConfig, visible
from annotator.review.source import compute_flags
from annotator.review.store import ReviewStore

#: frames either side of the touched span the checks also read (they compare a frame with its
#: neighbours: a flag on the first touched frame needs the two frames before it)
MARGIN = 3


def refresh_flags(video: Any, tracks: Iterable[int], config: FlagConfig | None = None,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> list[Flag] | None:
    """Recompute the cached flags of ``tracks`` (after a correction) on an open, writable video.

    Kept: flags whose tracks all exist and that concern none of ``tracks`` (whole-frame flags are
    kept unless they lie on a frame a touched track is on). Dropped: flags of gone tracks. Added:
    the flags a run over the frames of the touched tracks (plus :data:`MARGIN`) finds for those
    tracks and frames. Returns the open flags, or ``None`` when flags were never computed (then
    there is nothing to refresh).
    """
    store = ReviewStore(video)
    cached = store.flags
    if cached is None:
        return None
    live = set(video.tracks)
    touched = {int(t) for t in tracks}
    frames = {f for t in touched if t in live for f in video.track_frames(t)}
    frames |= {f for fl in cached if set(fl.tracks) & touched for f in (fl.frame, *fl.frames)}

    def concerns(fl: Flag) -> bool:
        if fl.tracks:
            return bool(set(fl.tracks) & touched)
        return bool({fl.frame, *fl.frames} & frames)

    kept = [fl for fl in cached if set(fl.tracks) <= live and not concerns(fl)]
    fresh: list[Flag] = []
    if frames:
        lo, hi = min(frames), max(frames)
        found = compute_flags(video, config, (max(0, lo - MARGIN), min(video.num_frames - 1, hi + MARGIN)),
                              progress, cancel)
        thr = (config or FlagConfig()).min_score
        fresh = [fl for fl in visible(found, thr) if concerns(fl) and lo <= fl.frame <= hi]
    known = {fl.key for fl in kept}
    store.replace_flags(kept + [fl for fl in fresh if fl.key not in known])
    return store.open_flags()
