"""Review state of one video: accept / reject decisions with comments, cached flags, progress, the
report CSV, and the cleanup of stale machine evidence when a frame becomes a reference (Qt-free).

Where it lives, and why: ``videos/<id>/review.json``, written with ``store.atomic_write_json``.

* Not in the video log (``video.json``): the log is append-only and is loaded and rewritten with
  every open and save of the video, while review state is *current state* (the latest decision
  per track or frame wins, a flags snapshot is replaced on each run and can hold thousands of
  flags): keeping it out of ``video.json`` keeps opening a 3,000-frame video fast. Each decision
  still leaves a one-line ``review`` event in the log (who, what, when) as an audit trail and a
  timestamp for the effort figures of :mod:`annotator.overview`.
* One file per video: two reviewers on different videos never write the same file; on the same
  video the video lock already makes the second one read-only, and decisions need a writable
  video (an accepted frame changes its state through ``Video.set_frame_state``).
* Every change is a read-modify-write of the file, so several ``ReviewStore`` objects of one
  process (the GUI's, :func:`on_new_reference`'s) never overwrite each other.
* Decisions are kept as a history (CSV export, audit); the state is the latest per target.

Rules: accepting a frame sets its state ``reviewed`` (remembering the old state, which a later
reject restores); accepting a track accepts every frame whose tracks are then all accepted; a
frame that becomes ``reviewed`` is a reference, so its stale confidence map and flags are dropped.
"""

from __future__ import annotations

import csv
import getpass
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError, ProjectError, ReadOnlyError
from annotator.project import FrameState, raise_if
from annotator.project.array_names import CONFIDENCE_ARRAY, FLAGS_ARRAY
from annotator.review.flags import PERSISTENT_KINDS, Flag, FlagConfig, shown_frame
from annotator.review.schema import TARGETS, check_review_doc
from annotator.store import atomic_write_bytes, atomic_write_json, read_json

REVIEW_FILE = "review.json"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - containers without a user name
        return "unknown"


@dataclass
class Decision:
    """One review action. ``target`` track / frame use ``id``; a flag uses ``key`` (``Flag.key``)."""

    target: str
    id: int
    decision: str
    comment: str = ""
    user: str = ""
    time: float = 0.0
    key: str = ""
    prev_state: str = ""  # frame accepts: the state to restore on a later reject
    auto: bool = False  # frame accepted because all its tracks were accepted

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Decision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class ReviewProgress:
    """Share of tracks and frames reviewed (accepted) of a video."""

    tracks: int
    tracks_accepted: int
    tracks_rejected: int
    frames: int
    frames_reviewed: int  # frame state ``reviewed``
    frames_rejected: int
    open_flags: int | None = None  # None: flags never computed

    @property
    def track_share(self) -> float:
        return self.tracks_accepted / self.tracks if self.tracks else 0.0

    @property
    def frame_share(self) -> float:
        return self.frames_reviewed / self.frames if self.frames else 0.0

    def summary(self) -> str:
        flags = "flags not computed" if self.open_flags is None else f"{self.open_flags} open flags"
        return (f"tracks {self.tracks_accepted}/{self.tracks} accepted ({self.track_share:.0%}), "
                f"{self.tracks_rejected} rejected; frames {self.frames_reviewed}/{self.frames} reviewed "
                f"({self.frame_share:.0%}), {self.frames_rejected} rejected; {flags}")


@dataclass
class _Doc:
    decisions: list[Decision] = field(default_factory=list)
    flags: list[Flag] | None = None
    flags_time: float = 0.0


def review_path(video: Any) -> Path:
    """Where a video's review state lives (``Video`` has no accessor for it: its folder, ``video.path``)."""
    return Path(video.path) / REVIEW_FILE


def load_doc(path: Path, num_frames: int | None = None) -> _Doc:
    """Read a review file (an absent file is an empty review); raises ``SchemaError`` naming every
    record that breaks the schema (:func:`check_review_doc`; ``num_frames``: the video's)."""
    if not path.exists():
        return _Doc()
    raw = read_json(path, "review")
    raise_if(check_review_doc(raw, str(path), num_frames))
    try:
        flags = None if raw.get("flags") is None else [Flag.from_json(f) for f in raw["flags"]]
        return _Doc([Decision.from_json(d) for d in raw.get("decisions", [])], flags,
                    float(raw.get("flags_time", 0.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProjectError(f"{path} is malformed ({exc!r}); restore it from a backup or delete it "
                           "(the decisions in it are lost)") from None


class ReviewStore:
    """Review decisions and cached flags of one open video (see the module docstring)."""

    def __init__(self, video: Any) -> None:
        self.video = video
        self.path = review_path(video)
        self._doc = load_doc(self.path, getattr(video, "num_frames", None))
        self._latest: dict[tuple[str, int | str], Decision] | None = None

    # ----------------------------------------------------------------- persistence
    def reload(self) -> None:
        self._doc = load_doc(self.path, getattr(self.video, "num_frames", None))
        self._latest = None

    def _write(self) -> None:
        doc = {"video": self.video.id, "decisions": [asdict(d) for d in self._doc.decisions],
               "flags": None if self._doc.flags is None else [f.to_json() for f in self._doc.flags],
               "flags_time": self._doc.flags_time}
        atomic_write_json(self.path, doc, "review")
        self._latest = None

    def _check_writable(self) -> None:
        if self.video.readonly:
            raise ReadOnlyError(self.video.lock_message or f"video {self.video.id!r} is open read-only; "
                                "review decisions need it open for writing")

    # ----------------------------------------------------------------- queries
    @property
    def decisions(self) -> list[Decision]:
        """Every decision, oldest first."""
        return list(self._doc.decisions)

    def latest(self, target: str, ident: int | str) -> Decision | None:
        """The decision in force for a track / frame id or a flag key (comments do not count)."""
        if self._latest is None:  # one pass, so progress over thousands of frames stays linear
            self._latest = {}
            for d in self._doc.decisions:
                if d.decision != "comment":
                    self._latest[(d.target, d.key if d.target == "flag" else d.id)] = d
        return self._latest.get((target, str(ident) if target == "flag" else int(ident)))

    def accepted_tracks(self) -> set[int]:
        return {t for t in self.video.tracks if (d := self.latest("track", t)) is not None and d.decision == "accept"}

    def rejected_tracks(self) -> set[int]:
        return {t for t in self.video.tracks if (d := self.latest("track", t)) is not None and d.decision == "reject"}

    def comments(self, target: str, ident: int | str) -> list[Decision]:
        return [d for d in self._doc.decisions if d.target == target and d.comment
                and (d.key == ident if target == "flag" else d.id == ident)]

    @property
    def flags(self) -> list[Flag] | None:
        """The cached flags of the last run (None: never computed)."""
        return None if self._doc.flags is None else list(self._doc.flags)

    def is_resolved(self, flag: Flag) -> bool:
        """A flag is resolved when it was dismissed, its frame accepted, or all its tracks accepted."""
        d = self.latest("flag", flag.key)
        if d is not None:
            return d.decision == "accept"
        d = self.latest("frame", flag.frame)
        if d is not None and d.decision == "accept":
            return True
        if flag.tracks:
            return all((d := self.latest("track", t)) is not None and d.decision == "accept" for t in flag.tracks)
        return False

    def open_flags(self, min_score: float | None = None) -> list[Flag] | None:
        """Cached flags at or over ``min_score`` not resolved yet (None: flags never computed)."""
        if self._doc.flags is None:
            return None
        thr = FlagConfig().min_score if min_score is None else min_score
        return [f for f in self._doc.flags if f.score >= thr and not self.is_resolved(f)]

    def progress(self) -> ReviewProgress:
        tracks = self.video.tracks
        n = self.video.num_frames
        reviewed = sum(1 for i in range(n) if self.video.frame_state(i) == FrameState.REVIEWED)
        rejected = sum(1 for i in range(n) if (d := self.latest("frame", i)) is not None and d.decision == "reject")
        open_flags = self.open_flags()
        return ReviewProgress(len(tracks), len(self.accepted_tracks()), len(self.rejected_tracks()), n, reviewed,
                              rejected, None if open_flags is None else len(open_flags))

    # ----------------------------------------------------------------- flags
    def set_flags(self, flags: list[Flag]) -> None:
        """Replace the cached flags with a fresh run's (for the panel and the overview's open count).

        Flags an import step made once (e.g. VSPW's "split into instances") are kept: no flag run
        could make them again, and they stay until a reviewer resolves them.
        """
        self.reload()
        kept = [f for f in (self._doc.flags or []) if f.kind in PERSISTENT_KINDS and f.kind not in {g.kind for g in flags}]
        self._doc.flags = kept + list(flags)
        self._doc.flags_time = time.time()
        self._write()

    def replace_flags(self, flags: list[Flag]) -> None:
        """Replace the cached flags as they are (a refresh after a correction decided what stays)."""
        self.reload()
        self._doc.flags = list(flags)
        self._write()

    def drop_flags_on(self, frames: int | list[int]) -> int:
        """Forget cached flags that concern ``frames`` (they became references); returns how many."""
        self.reload()
        if not self._doc.flags:
            return 0
        gone = {frames} if isinstance(frames, int) else set(frames)
        keep = [f for f in self._doc.flags if not (gone & {f.frame, *f.frames})]
        n = len(self._doc.flags) - len(keep)
        if n:
            self._doc.flags = keep
            self._write()
        return n

    # ----------------------------------------------------------------- decisions
    def _record(self, d: Decision) -> Decision:
        d.user = d.user or _user()
        d.time = d.time or time.time()
        self._doc.decisions.append(d)
        self._write()
        payload = {"target": d.target, "id": d.id, "decision": d.decision, "time": d.time, "user": d.user}
        if d.key:
            payload["key"] = d.key
        self.video.log_event("review", payload)
        return d

    def _check_track(self, track: int) -> int:
        track = int(track)
        if track not in self.video.tracks:
            raise InputError(f"no track {track} in video {self.video.id!r} (tracks: "
                             f"{', '.join(map(str, sorted(self.video.tracks))) or 'none'})")
        return track

    def _check_frame(self, frame: int) -> int:
        frame = int(frame)
        if not 0 <= frame < self.video.num_frames:
            raise InputError(f"frame {frame} out of range 0..{self.video.num_frames - 1} in video {self.video.id!r}")
        return frame

    def accept_frame(self, frame: int, comment: str = "") -> Decision:
        """Accept a whole frame: state ``reviewed``; it is a reference now, so stale evidence goes."""
        return self.accept_frames([frame], comment)[0]

    def accept_frames(self, frames: list[int], comment: str = "", auto: bool = False) -> list[Decision]:
        """Accept several frames with one file write and one log event (a track's frames, a range)."""
        self._check_writable()
        frames = sorted({self._check_frame(f) for f in frames})
        self.reload()
        out = []
        now = time.time()
        for frame in frames:
            prev = self.video.frame_state(frame)
            latest = self.latest("frame", frame)
            if prev == FrameState.REVIEWED and latest is not None and latest.decision == "accept":
                prev_value = latest.prev_state  # accepted twice: keep the state from before the first
            else:
                prev_value = prev.value
            if prev != FrameState.REVIEWED:
                self.video.set_frame_state(frame, FrameState.REVIEWED)
            d = Decision("frame", frame, "accept", comment, _user(), now, prev_state=prev_value, auto=auto)
            self._doc.decisions.append(d)
            out.append(d)
        if out:
            self._write()
            self.video.log_event("review", {"target": "frame", "ids": frames, "decision": "accept",
                                            "time": now, "user": out[0].user})
            on_new_reference(self.video, frames)
            self.reload()
        return out

    def reject_frame(self, frame: int, comment: str = "") -> Decision:
        """Reject a frame (it needs work); a frame accepted here before gets its old state back."""
        self._check_writable()
        frame = self._check_frame(frame)
        self.reload()
        latest = self.latest("frame", frame)
        if latest is not None and latest.decision == "accept" and latest.prev_state \
                and self.video.frame_state(frame) == FrameState.REVIEWED:
            self.video.set_frame_state(frame, FrameState(latest.prev_state))
        return self._record(Decision("frame", frame, "reject", comment))

    def accept_track(self, track: int, comment: str = "") -> Decision:
        """Accept a track over the whole video; frames whose tracks are now all accepted are accepted."""
        self._check_writable()
        track = self._check_track(track)
        self.reload()
        d = self._record(Decision("track", track, "accept", comment))
        accepted = self.accepted_tracks()
        todo = []
        for i in self.video.track_frames(track):
            present = set(self.video.frame_tracks(i))
            fd = self.latest("frame", i)
            if present and present <= accepted and (fd is None or fd.decision != "accept"):
                todo.append(i)
        self.accept_frames(todo, f"all tracks accepted (last: track {track})", auto=True)
        return d

    def reject_track(self, track: int, comment: str = "") -> Decision:
        """Reject a track; frames accepted only because all their tracks were accepted are reopened."""
        self._check_writable()
        track = self._check_track(track)
        self.reload()
        d = self._record(Decision("track", track, "reject", comment))
        for i in self.video.track_frames(track):
            fd = self.latest("frame", i)
            if fd is not None and fd.decision == "accept" and fd.auto:
                self.reject_frame(i, f"track {track} rejected")
        return d

    def comment(self, target: str, ident: int | str, text: str) -> Decision:
        """A comment without a decision (a question to the annotator, a note)."""
        self._check_writable()
        if target not in TARGETS:
            raise InputError(f"unknown review target {target!r}; use one of {', '.join(TARGETS)}")
        if not text.strip():
            raise InputError("empty comment")
        self.reload()
        if target == "flag":
            return self._record(Decision("flag", 0, "comment", text, key=str(ident)))
        ident = self._check_track(int(ident)) if target == "track" else self._check_frame(int(ident))
        return self._record(Decision(target, ident, "comment", text))

    def dismiss_flag(self, flag: Flag | str, comment: str = "") -> Decision:
        """Mark a flag as not an error (accept); it no longer counts as open."""
        self._check_writable()
        self.reload()
        key = flag.key if isinstance(flag, Flag) else str(flag)
        return self._record(Decision("flag", 0, "accept", comment, key=key))

    # ----------------------------------------------------------------- export
    def flag_state(self, flag: Flag) -> str:
        """``dismissed`` (not an error), ``resolved`` (its frame or tracks accepted) or ``open``."""
        d = self.latest("flag", flag.key)
        if d is not None and d.decision == "accept":
            return "dismissed"
        return "resolved" if self.is_resolved(flag) else "open"

    def rows(self, flags: bool = True) -> list[dict[str, Any]]:
        """The reviewer's report of this video: every decision (oldest first), then, with ``flags``,
        every cached flag at or over the score bar with its state (open, dismissed, resolved).

        Frame numbers (``frame``) are the window's (:func:`annotator.review.shown_frame`), with the
        frame's file name; ``id`` keeps the stored value (a track id, a 0-based frame index)."""
        names = self.video.frame_names
        out = []
        for d in self._doc.decisions:
            row = _row(self.video, target=d.target, id=d.id if d.target != "flag" else "", flag=d.key,
                       state=d.decision, decision=d.decision, comment=d.comment, user=d.user,
                       time=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.time)), auto=int(d.auto))
            if d.target == "frame" and 0 <= d.id < len(names):
                row.update(_frame_cells(self.video, d.id))
            if d.target == "track":
                row.update(_track_cells(self.video, d.id))
            if d.target == "flag":
                row.update(_key_cells(self.video, d.key))
            out.append(row)
        if flags:
            thr = FlagConfig().min_score
            out.extend(flag_report_row(self.video, f.kind, f.frame, f.track, f.reason, self.flag_state(f), f.key)
                       for f in self._doc.flags or [] if f.score >= thr)
        return out


REPORT_FIELDS = ["video", "target", "source", "kind", "frame", "frame_name", "track", "category", "reason",
                 "state", "id", "flag", "decision", "comment", "user", "time", "auto"]


def _row(video: Any, **cells: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(REPORT_FIELDS, "")
    row["video"] = video.id
    row.update(cells)
    return row


def _frame_cells(video: Any, frame: int) -> dict[str, Any]:
    names = video.frame_names
    if not 0 <= frame < len(names):
        return {}
    return {"frame": shown_frame(frame), "frame_name": names[frame]}


def _track_cells(video: Any, track: int) -> dict[str, Any]:
    cats = video.track_category()
    if not track:
        return {}
    if track not in cats:
        return {"track": track}
    c, tax = cats[track], video.taxonomy
    return {"track": track, "category": tax.get(c).name if c in tax else str(c)}


def _key_cells(video: Any, key: str) -> dict[str, Any]:
    """Kind, frame and track of a ``Flag.key`` (``kind:frame:track:other``) a decision names."""
    parts = key.split(":")
    if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts[1:]):
        return {}
    return {"kind": parts[0], **_frame_cells(video, int(parts[1])), **_track_cells(video, int(parts[2]))}


def flag_report_row(video: Any, kind: str, frame: int, track: int, reason: str, state: str = "open",
                    key: str = "", source: str = "review") -> dict[str, Any]:
    """One flag as a report row (``source``: review, association, propagation; ``state``: open,
    dismissed, resolved); the window adds the flags of its panel that the store does not keep."""
    return _row(video, target="flag", source=source, kind=kind, reason=reason, state=state, flag=key,
                **_frame_cells(video, frame), **_track_cells(video, track))


def write_report_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write review rows (of one or many videos) as CSV, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


def project_review_rows(project: Any) -> list[dict[str, Any]]:
    """Review rows of every video of a project (videos opened read-only), for one project report."""
    rows: list[dict[str, Any]] = []
    for vid in project.video_ids:
        with project.open_video(vid, readonly=True) as video:
            if review_path(video).exists():
                rows.extend(ReviewStore(video).rows())
    return rows


# ----------------------------------------------------------------- references
def on_new_reference(video: Any, frames: int | Sequence[int]) -> list[str]:
    """Frames became references (refined, accepted, re-annotated): drop their stale machine evidence.

    Deletes each frame's stored confidence map and dense low-confidence flags (the arrays named in
    ``annotator.project.array_names``, written by dense propagation) and the cached review flags
    that concern it, so the heat-map and the flags panel never show doubts about work a person now
    vouches for. Returns what was removed (for a status line). Needs the video open for writing
    (it holds the lock, so nobody else writes these files meanwhile).
    """
    if video.readonly:
        raise ReadOnlyError(video.lock_message or f"video {video.id!r} is open read-only")
    frames = [int(frames)] if isinstance(frames, (int, np.integer)) else [int(f) for f in frames]
    removed: list[str] = []
    for array in (CONFIDENCE_ARRAY, FLAGS_ARRAY):
        n = sum(video.delete_array(array, f) for f in frames)
        if n:
            removed.append(f"{n} {array} map(s)")
    dropped = ReviewStore(video).drop_flags_on(frames) if review_path(video).exists() else 0
    if dropped:
        removed.append(f"{dropped} review flag(s)")
    return removed
