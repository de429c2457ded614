"""Keyframe drafts: an unlabelled keyframe starts from the labels of the nearest labelled one
(issue 24, item 3).

Drawing a keyframe from scratch is most of a person's time; the previous keyframe, carried over
the gap by the propagator, is usually most of the answer. A draft is that carried label map,
written with the ids kept (identity is consistent before association runs) but as *machine* work:

* the frame state and every track's provenance are ``propagated``, so the draft is never human
  evidence: dense propagation does not take it as a reference (``find_references``: a keyframe
  filled by a machine is a target) and association skips it (``keyframe_evidence``: a keyframe
  holding only propagated labels is "not annotated");
* the frame carries a marker, the per-frame array :data:`DRAFT_ARRAY` (the keyframe it was carried
  from, the engine's name): :func:`is_draft` says "draft" while the frame is still machine-only.
  A person's edit makes the frame ``refined`` (``EditSession``'s rule), which ends the draft (the
  edited keyframe is then human evidence); :func:`accept_keyframe_draft` marks it ``reviewed``
  as a whole and drops the marker.

Every write happens inside one ``Transaction``: a crash or a cancel leaves no half draft.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotator.errors import InputError, ProjectError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project import FrameState
from annotator.project.array_names import CONFIDENCE_ARRAY, FLAGS_ARRAY
from annotator.stages.propagate import store_confidence
from propagation.base import Propagator, Reference
from propagation.factory import make_propagator

#: per-frame array marking a draft: int64 ``[source keyframe]``
DRAFT_ARRAY = "keyframe_draft"
#: video-log event kinds
DRAFT_EVENT = "keyframe_draft"
ACCEPT_EVENT = "keyframe_draft_accepted"

#: values of the ``keyframe_drafts`` setting: offer a draft (banner), make it at once, or neither
DRAFT_MODES = ("offer", "auto", "off")


@dataclass(frozen=True)
class DraftResult:
    """What :func:`draft_keyframe` wrote."""

    frame: int  # the drafted keyframe (dense index)
    source: int  # the labelled keyframe it was carried from
    tracks: tuple[int, ...]  # track ids on the draft (the source's ids)
    backend: str  # the propagator's name

    def summary(self) -> str:
        return (f"draft of frame {self.frame + 1} from keyframe {self.source + 1} ({self.backend}): "
                f"{len(self.tracks)} tracks; edit it or accept it (Ctrl+Return)")


def _human_labelled(video: Any, index: int) -> bool:
    """Whether a frame holds human labels: a human frame state or a human track."""
    if not video.has_label(index) or not video.frame_tracks(index):
        return False
    return video.frame_state(index).is_human or any(s.is_human for s in video.provenance(index).values())


def is_draft(video: Any, index: int) -> bool:
    """Whether frame ``index`` holds an unaccepted, unedited keyframe draft."""
    if not video.has_array(DRAFT_ARRAY, index):
        return False
    return video.frame_state(index) == FrameState.PROPAGATED and not _human_labelled(video, index)


def draft_source(video: Any, frame: int) -> int | None:
    """The labelled keyframe a draft of ``frame`` is carried from: the nearest keyframe with human
    labels (ties: the earlier one, the direction a person labels in); None when there is none."""
    cands = [k for k in video.keyframes if k != frame and _human_labelled(video, k)]
    if not cands:
        return None
    return min(cands, key=lambda k: (abs(k - frame), k > frame))


def can_draft(video: Any, frame: int) -> str:
    """Why a draft of ``frame`` cannot be made ("" when it can): the window offers one only then."""
    if not 0 <= frame < video.num_frames:
        return f"frame {frame + 1} is outside the video (1-{video.num_frames})"
    if not video.is_keyframe(frame):
        return f"frame {frame + 1} is not a keyframe"
    if _human_labelled(video, frame):
        return f"frame {frame + 1} already holds human labels"
    if video.frame_state(frame) == FrameState.PREANNOTATED:
        return f"frame {frame + 1} holds a pre-annotation; check that instead"
    if draft_source(video, frame) is None:
        return "no labelled keyframe to carry a draft from: label one keyframe first"
    return ""


def should_offer(video: Any, frame: int) -> bool:
    """Whether opening ``frame`` should offer a draft: an unlabelled keyframe (no labels at all)
    that a labelled keyframe can be carried to."""
    return (0 <= frame < video.num_frames and video.is_keyframe(frame) and not video.frame_tracks(frame)
            and can_draft(video, frame) == "")


def draft_keyframe(video: Any, frame: int, propagator: Propagator | None = None,
                   settings: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> DraftResult:
    """Write a draft of keyframe ``frame``: the nearest labelled keyframe's label map carried over
    the gap by ``propagator`` (default: :func:`propagation.factory.make_propagator` of ``settings``,
    the effective settings), ids kept, as machine work (see the module docstring).

    ``video``: an open, writable ``Video``; ``frame``: dense index of a keyframe without human
    labels. Replaces what the frame held (nothing, or propagated labels). Raises ``InputError``
    when the video is read-only or the frame cannot be drafted (:func:`can_draft` says why), and
    ``Cancelled`` (nothing written) on a cancel.
    """
    if video.readonly:
        raise InputError(video.lock_message or f"video {video.id!r} is open read-only; cannot draft")
    why = can_draft(video, frame)
    if why:
        raise InputError(f"cannot draft frame {frame + 1} of video {video.id!r}: {why}")
    source = draft_source(video, frame)
    assert source is not None
    engine = propagator if propagator is not None else make_propagator(None, settings=settings)
    human = frozenset(t for t, s in video.provenance(source).items() if s.is_human)
    ref = Reference(source, video.read_label(source), human)
    res = engine.propagate(video, [ref], [frame], progress=progress, cancel=cancel)
    check_cancel(cancel)
    label = np.asarray(res.labels[frame])
    present = tuple(int(i) for i in np.unique(label) if i and i in video.tracks)
    label = np.where(np.isin(label, present), label, 0).astype(label.dtype)
    with video.transaction("keyframe draft", {"frame": frame, "source": source}):
        video.write_label(frame, label, state=FrameState.PROPAGATED,
                          provenance={t: FrameState.PROPAGATED for t in present})
        store_confidence(video, frame, res.confidence[frame])
        video.delete_array(FLAGS_ARRAY, frame)  # flags of an older fill describe other labels
        video.save_array(DRAFT_ARRAY, frame, np.array([source], np.int64))
        video.log_event(DRAFT_EVENT, {"frame": frame, "source": source, "backend": engine.name,
                                      "tracks": len(present)})
    video.save()
    return DraftResult(frame, source, present, engine.name)


def accept_keyframe_draft(video: Any, frame: int) -> None:
    """A person accepts the draft of ``frame`` as it is: the frame and every track become
    ``reviewed`` (human evidence for association and propagation), the marker and the machine's
    confidence map go, in one transaction. Raises ``InputError`` when the frame is no draft
    (never drafted, already accepted, or edited: an edited draft is already ``refined``)."""
    if video.readonly:
        raise InputError(video.lock_message or f"video {video.id!r} is open read-only")
    if not is_draft(video, frame):
        raise InputError(f"frame {frame + 1} of video {video.id!r} is not an unaccepted keyframe draft")
    label = video.read_label(frame)
    tracks = [int(t) for t in video.frame_tracks(frame)]
    with video.transaction("accept keyframe draft", {"frame": frame}):
        video.write_label(frame, label, state=FrameState.REVIEWED,
                          provenance={t: FrameState.REVIEWED for t in tracks})
        video.delete_array(DRAFT_ARRAY, frame)
        video.delete_array(CONFIDENCE_ARRAY, frame)
        video.delete_array(FLAGS_ARRAY, frame)
        video.log_event(ACCEPT_EVENT, {"frame": frame, "tracks": len(tracks)})
    video.save()


def clear_stale_marker(video: Any, frame: int) -> bool:
    """Drop the marker of a draft a person has edited (it is ``refined`` now); True if one went.
    Nothing reads a stale marker (:func:`is_draft` checks the state), this only tidies the folder."""
    if video.readonly or not video.has_array(DRAFT_ARRAY, frame) or is_draft(video, frame):
        return False
    return video.delete_array(DRAFT_ARRAY, frame)


def check_mode(value: object) -> str:
    """The ``keyframe_drafts`` setting, validated (``ProjectError`` naming the choices)."""
    if value not in DRAFT_MODES:
        raise ProjectError(f"setting keyframe_drafts is {value!r}; expected one of {', '.join(DRAFT_MODES)}")
    return str(value)
