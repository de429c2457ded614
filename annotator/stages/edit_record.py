"""The edit recorder and undo of the correction stage: every change kept bit-exactly, undone LIFO.

Why an :class:`EditRecorder`: every change goes through it, and it keeps exactly what changed -
for each written label map the bounding box of the changed pixels with the values before and
after, the frame's old state and per-track provenance, and the tracks created, deleted or
re-classed. The record is saved next to the video (``undo/<id>.npz``) and named in the
``video.json`` log event, so ``undo`` works from another process (the CLI) and after a reopen.
Association runs use the same recorder, so "correct, then re-associate" is undoable too.

Undo is last-in first-out over the video's log and refuses (``ProjectError``) when a touched
region changed since the operation, instead of silently clobbering later work. Confirmed keyframes
are replayed from the log (:func:`confirmed_keyframes`), so they are undone with their step.

The operations themselves are in ``annotator.stages.corrections``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from annotator import panoptic
from annotator.errors import InputError, ProjectError
from annotator.project import MAIN_LAYER, FrameState, Track, Video

UNDO_DIR = "undo"
#: log event kinds that carry an undo record
UNDOABLE_KINDS = ("correction", "association")
#: keys of a log event listing the keyframes the step confirmed / unconfirmed
CONFIRMED_KEY, UNCONFIRMED_KEY = "confirmed", "unconfirmed"

_F = TypeVar("_F", bound=Callable[..., Any])


def video_transaction(video: Video, name: str, params: dict[str, Any] | None = None
                      ) -> contextlib.AbstractContextManager[Any]:
    """The video's all-or-nothing transaction (joins an open one); a no-op for stand-in videos."""
    txn = getattr(video, "transaction", None)
    return txn(name, params) if txn is not None else contextlib.nullcontext()


def transactional(name: str) -> Callable[[_F], _F]:
    """Run an operation ``fn(video, ..., recorder=None)`` in one transaction when it owns its
    recorder (a caller passing ``recorder`` owns the transaction around the whole step)."""
    def deco(fn: _F) -> _F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(video: Video, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("recorder") is not None:
                return fn(video, *args, **kwargs)
            try:
                bound = sig.bind(video, *args, **kwargs).arguments
            except TypeError:
                return fn(video, *args, **kwargs)  # let the function raise its own error
            params = {k: v for k, v in bound.items() if k not in ("video", "recorder")}
            with video_transaction(video, name, params):
                return fn(video, *args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return deco


@dataclass
class _FrameEdit:
    """One label-map write: the changed box with its pixels before and after."""

    layer: str
    index: int
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 (empty when only metadata changed)
    before: np.ndarray
    after: np.ndarray
    old_state: str | None  # main layer only
    old_provenance: dict[str, str] | None


@dataclass
class CorrectionResult:
    """What an operation did: for messages, tests and the GUI's status bar."""

    op: str
    undo_id: str | None
    frames: list[int] = field(default_factory=list)  # main-layer frames whose pixels changed
    new_track: int | None = None
    confirmed: list[int] = field(default_factory=list)  # keyframes this step confirmed
    unconfirmed: list[int] = field(default_factory=list)  # keyframes whose confirmation it dropped


class EditRecorder:
    """Applies label and track changes to a video while remembering exactly how to revert them."""

    def __init__(self, video: Video, op: str, params: dict[str, Any] | None = None,
                 kind: str = "correction") -> None:
        self.video = video
        self.op = op
        self.kind = kind
        self.params = dict(params or {})
        self.edits: list[_FrameEdit] = []
        self.created: list[int] = []
        self.deleted: list[dict[str, Any]] = []
        self.recategorised: list[tuple[int, int, int]] = []  # (track, old category, new category)
        #: keyframe -> confirmed (True) / unconfirmed (False), only where that changes the log's set
        self.confirm_delta: dict[int, bool] = {}
        self.finished = False

    # ----------------------------------------------------------------- recorded operations
    @property
    def empty(self) -> bool:
        return not (self.edits or self.created or self.deleted or self.recategorised or self.confirm_delta)

    def set_confirmed(self, frames: list[int] | set[int], value: bool = True) -> None:
        """Mark keyframes confirmed (fixed anchors of association) or not; logged by :meth:`finish`."""
        base = confirmed_keyframes(self.video)
        for f in frames:
            f = int(f)
            if (f in base) == value:
                self.confirm_delta.pop(f, None)
            else:
                self.confirm_delta[f] = value

    def confirmed_changes(self) -> tuple[list[int], list[int]]:
        """(newly confirmed, newly unconfirmed) keyframes of this step."""
        return (sorted(f for f, v in self.confirm_delta.items() if v),
                sorted(f for f, v in self.confirm_delta.items() if not v))

    def changed_frames(self, layer: str = MAIN_LAYER) -> list[int]:
        return sorted({e.index for e in self.edits if e.layer == layer and e.before.size})

    def write_label(self, index: int, label: np.ndarray, old: np.ndarray | None = None,
                    state: FrameState | None = None, provenance: dict[int, FrameState] | None = None,
                    layer: str = MAIN_LAYER) -> bool:
        """Write ``label`` on frame ``index`` (``old`` = its current map if the caller has it).

        Returns False (and writes nothing) when neither pixels nor metadata would change.
        """
        v = self.video
        if old is None:
            old = v.read_label(index, layer)
        label = np.ascontiguousarray(label, dtype=panoptic.LABEL_DTYPE)
        diff = old != label
        rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
        main = layer == MAIN_LAYER
        old_state = v.frame_state(index) if main else None
        old_prov = v.provenance(index) if main else None
        if not rows.size:
            # same pixels, so the same tracks: provenance keys outside old_prov would be dropped
            meta_same = not main or (
                (state is None or FrameState(state) == old_state)
                and (provenance is None or {int(k): FrameState(s) for k, s in provenance.items()
                                            if int(k) in old_prov} == old_prov))
            if meta_same:
                return False
            box = (0, 0, 0, 0)
        else:
            box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        y0, y1, x0, x1 = box
        v.write_label(index, label, state=state, provenance=provenance, layer=layer)
        self.edits.append(_FrameEdit(
            layer, int(index), box, old[y0:y1, x0:x1].copy(), label[y0:y1, x0:x1].copy(),
            old_state.value if old_state is not None else None,
            {str(k): s.value for k, s in old_prov.items()} if old_prov is not None else None))
        return True

    def new_track(self, category_id: int, note: str = "") -> int:
        tid = self.video.new_track(category_id, note).id
        self.created.append(tid)
        return tid

    def set_category(self, track_id: int, category_id: int) -> None:
        t = self.video.tracks.get(int(track_id))
        if t is None:
            raise InputError(f"no track {track_id} in video {self.video.id!r}")
        if t.category_id == int(category_id):
            return
        self.video.set_track_category(t.id, category_id)
        self.recategorised.append((t.id, t.category_id, int(category_id)))

    def delete_track(self, track_id: int) -> None:
        """Clear the track's pixels on every frame and layer (recorded), then delete it."""
        v = self.video
        t = v.tracks.get(int(track_id))
        if t is None:
            raise InputError(f"no track {track_id} in video {v.id!r}")
        for i in v.track_frames(t.id):
            old = v.read_label(i)
            new = np.where(old == t.id, panoptic.VOID, old).astype(panoptic.LABEL_DTYPE)
            prov = {k: s for k, s in v.provenance(i).items() if k != t.id}
            self.write_label(i, new, old=old, provenance=prov)
        for layer in v.layers():
            for i in range(v.num_frames):
                if v.has_label(i, layer):
                    old = v.read_label(i, layer)
                    if (old == t.id).any():
                        self.write_label(i, np.where(old == t.id, panoptic.VOID, old), old=old, layer=layer)
        v.delete_track(t.id)
        self.deleted.append({"id": t.id, "category_id": t.category_id, "note": t.note})

    # ----------------------------------------------------------------- persistence
    def finish(self, summary: dict[str, Any] | None = None) -> str | None:
        """Save the undo record and log the event; returns the undo id (None if nothing changed)."""
        if self.finished:
            raise RuntimeError("recorder already finished")
        self.finished = True
        payload = {"op": self.op, **self.params, **(summary or {})}
        added, removed = self.confirmed_changes()
        if added:
            payload[CONFIRMED_KEY] = added
        if removed:
            payload[UNCONFIRMED_KEY] = removed
        if self.empty:
            self.video.log_event(self.kind, {**payload, "undo": None})
            return None
        folder = self.video.path / UNDO_DIR
        folder.mkdir(exist_ok=True)
        n = max((int(p.stem) for p in folder.glob("*.npz") if p.stem.isdigit()), default=0) + 1
        undo_id = f"{n:06d}"
        meta, arrays = self._record()
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        self.video.write_file(folder / f"{undo_id}.npz", buf.getvalue())  # part of the transaction
        self.video.log_event(self.kind, {**payload, "undo": undo_id})
        return undo_id

    def rollback(self) -> None:
        """Revert everything recorded so far, leaving no trace: a failed or cancelled operation."""
        if self.finished:
            raise RuntimeError("recorder already finished")
        self.finished = True
        if not self.empty:
            meta, arrays = self._record()
            _revert(self.video, meta, arrays)

    def _record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        added, removed = self.confirmed_changes()
        meta = {"op": self.op, "kind": self.kind, "params": self.params, "created": self.created,
                "deleted": self.deleted, "recategorised": self.recategorised,
                CONFIRMED_KEY: added, UNCONFIRMED_KEY: removed,
                "edits": [{"layer": e.layer, "index": e.index, "box": list(e.box), "old_state": e.old_state,
                           "old_provenance": e.old_provenance} for e in self.edits]}
        arrays: dict[str, np.ndarray] = {}
        for n_e, e in enumerate(self.edits):
            arrays[f"b{n_e}"], arrays[f"a{n_e}"] = e.before, e.after
        return meta, arrays


# ----------------------------------------------------------------- undo
def undo_stack(video: Video) -> list[dict[str, Any]]:
    """Log events that can still be undone, oldest first."""
    undone = {e.get("undo") for e in video.log if e.get("kind") == "undo"}
    return [e for e in video.log
            if e.get("kind") in UNDOABLE_KINDS and e.get("undo") and e["undo"] not in undone]


def confirmed_keyframes(video: Video, recorder: EditRecorder | None = None) -> set[int]:
    """Keyframes a human confirmed: replay of the confirm / unconfirm lists of the steps not undone.

    Undo is last-in first-out, so replaying the surviving steps in order gives exactly the set as
    it was before the undone ones. ``recorder``'s pending (not yet logged) changes are applied on
    top, so an association run inside a correction sees the keyframe that correction confirmed.
    """
    undone = {e.get("undo") for e in video.log if e.get("kind") == "undo"}
    out: set[int] = set()
    for e in video.log:
        if e.get("kind") not in UNDOABLE_KINDS or not e.get("undo") or e["undo"] in undone:
            continue
        out.difference_update(int(f) for f in e.get(UNCONFIRMED_KEY, ()))
        out.update(int(f) for f in e.get(CONFIRMED_KEY, ()))
    if recorder is not None and not recorder.finished:
        for f, v in recorder.confirm_delta.items():
            (out.add if v else out.discard)(f)
    return out


def propagated_since(video: Video, undo_id: str) -> bool:
    """Whether a dense propagation ran after the logged step ``undo_id`` (its frames keep the ids
    that step gave, even once the step is undone)."""
    log = video.log
    at = max(n for n, e in enumerate(log) if e.get("undo") == undo_id and e.get("kind") in UNDOABLE_KINDS)
    return any(e.get("kind") == "propagation" for e in log[at + 1:])


def _load_record(video: Video, undo_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = video.path / UNDO_DIR / f"{undo_id}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise ProjectError(f"undo record {path} is missing or corrupt ({exc}); this step cannot be undone") from None
    return meta, arrays


def undo_last(video: Video, undo_id: str | None = None) -> dict[str, Any]:
    """Undo the latest undoable operation (``undo_id`` must name it, if given); returns its log event.

    Label maps, frame states, per-track provenance and the track table come back exactly as they
    were before the operation. Raises ``ProjectError`` when there is nothing to undo, when
    ``undo_id`` is not the latest step, or when a region it touched was edited since.
    """
    with video_transaction(video, "undo", {"undo_id": undo_id}):
        return _undo_last(video, undo_id)


def _undo_last(video: Video, undo_id: str | None) -> dict[str, Any]:
    stack = undo_stack(video)
    if not stack:
        raise ProjectError(f"nothing to undo in video {video.id!r}")
    event = stack[-1]
    if undo_id is not None and undo_id not in {e["undo"] for e in stack}:
        raise ProjectError(f"no step {undo_id} to undo in video {video.id!r} (it never existed or was undone "
                           f"already; latest: {event['undo']} {event.get('op')}; see `correct ... history`)")
    if undo_id is not None and undo_id != event["undo"]:
        raise ProjectError(f"undo {undo_id} is not the latest step of video {video.id!r} "
                           f"(latest: {event['undo']} {event.get('op')}); undo the later steps first")
    meta, arrays = _load_record(video, event["undo"])
    propagated = propagated_since(video, event["undo"])
    _revert(video, meta, arrays, f"{event.get('op')} ({event['undo']})", propagated)
    video.log_event("undo", {"undo": event["undo"], "op": event.get("op")})
    return event


def _revert(video: Video, meta: dict[str, Any], arrays: dict[str, np.ndarray], what: str = "",
            propagated_since: bool = False) -> None:
    """Put back what an undo record changed; refuses if a region it wrote was edited since
    (``propagated_since``: a dense propagation ran after the step, which the refusal then names)."""
    edits = meta["edits"]
    # 1. check every touched region still holds what the operation wrote (latest write per frame)
    current: dict[tuple[str, int], np.ndarray] = {}
    checked: set[tuple[str, int]] = set()
    for n in reversed(range(len(edits))):
        e = edits[n]
        key = (e["layer"], int(e["index"]))
        if key not in current:
            current[key] = video.read_label(key[1], key[0]).copy()
        if key in checked:
            continue
        checked.add(key)
        y0, y1, x0, x1 = e["box"]
        if not np.array_equal(current[key][y0:y1, x0:x1], arrays[f"a{n}"]):
            if propagated_since and key[0] == MAIN_LAYER and video.frame_state(key[1]) == FrameState.PROPAGATED:
                # dense propagation is not an undo step: "undo those edits first" cannot be done
                raise ProjectError(f"cannot undo {what}: frame {key[1]} was rewritten by dense propagation "
                                   "since, and propagation cannot be undone; apply the opposite correction "
                                   "instead (e.g. swap the tracks back, or reassign from the same frame)")
            raise ProjectError(f"cannot undo {what}: frame {key[1]} "
                               f"(layer {key[0]}) was edited since; undo those edits first")
    # 2. bring back deleted tracks, so their pixels can be written again
    live = video.tracks
    for d in meta["deleted"]:
        if int(d["id"]) not in live:
            video.restore_track(Track(int(d["id"]), int(d["category_id"]), d.get("note", "")))
    # 3. restore the label maps (newest write first) and each frame's original metadata
    first_meta: dict[tuple[str, int], dict[str, Any]] = {}
    for n in reversed(range(len(edits))):
        e = edits[n]
        key = (e["layer"], int(e["index"]))
        y0, y1, x0, x1 = e["box"]
        current[key][y0:y1, x0:x1] = arrays[f"b{n}"]
        first_meta[key] = e  # ends as the earliest edit of the frame
    for (layer, i), e in first_meta.items():
        if layer == MAIN_LAYER:
            prov = {int(k): FrameState(s) for k, s in (e["old_provenance"] or {}).items()}
            video.write_label(i, current[(layer, i)], state=FrameState(e["old_state"]), provenance=prov)
        else:
            video.write_label(i, current[(layer, i)], layer=layer)
    # 4. classes back, then remove the tracks the operation created (they have no pixels now)
    for tid, old_cat, _new_cat in reversed(meta["recategorised"]):
        if int(tid) in video.tracks:
            video.set_track_category(int(tid), int(old_cat))
    live = video.tracks
    for tid in reversed(meta["created"]):
        if int(tid) in live:
            video.delete_track(int(tid))
