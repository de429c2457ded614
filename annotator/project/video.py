"""One video of a project: its frames, label maps, tracks, frame states and per-frame arrays.

Why a class over the files rather than a loaded dataset: a video holds hundreds of full-size
frames and label maps, so :class:`Video` reads them on demand (frames through a byte-bounded
LRU, label PNGs on each read) and keeps in memory only its metadata, the journaled document of
:mod:`annotator.project.document`. Every file it replaces is written atomically, and inside a
:meth:`Video.transaction` backed up first (:mod:`annotator.project.transaction`), so a crash or
a failure never leaves half an operation. A video opened while another process holds its lock
is read-only (:attr:`Video.readonly`, :attr:`Video.lock_message`).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from annotator import panoptic
from annotator.errors import InputError, ProjectError, ReadOnlyError
from annotator.project.document import VideoDocument
from annotator.project.media import FrameCache, SourceReader
from annotator.project.model import MAIN_LAYER, NAME_RE, VIDEO_FILE, FrameState, SourceInfo, Track
from annotator.project.transaction import Transaction, clean_leftovers, os_error, recover
from annotator.store import Journal, VideoLock, atomic_write_bytes
from annotator.taxonomy import Taxonomy


class ProjectLike(Protocol):
    """What a video needs of its project (``annotator.project.project.Project``, which imports this
    module, so it is named by its shape here)."""

    path: Path
    taxonomy: Taxonomy


class Video:
    """One video of a project: frames, label maps, tracks and states, with journaled metadata."""

    FRAME_CACHE_BYTES = 256 * 1024 * 1024

    def __init__(self, project: ProjectLike, folder: Path, readonly: bool = False) -> None:
        self.project = project
        self.path = folder
        self.id = folder.name
        self.taxonomy = project.taxonomy
        self.lock_message = ""
        self._lock = VideoLock(folder / ".lock")
        if not readonly:
            holder = self._lock.acquire()
            if holder is not None:
                readonly = True
                unlock = f"main.py unlock {project.path} --video {self.id} --force"
                self.lock_message = (f"video {self.id!r} is being edited by {holder.describe()}; "
                                     f"opened read-only; {VideoLock.advice(holder, unlock)}")
        self.readonly = readonly
        self._txn: Transaction | None = None
        try:
            self._document = VideoDocument(folder, readonly, on_save=self.heartbeat, taxonomy=self.taxonomy)
            recovery = recover(self._document)
            #: what opening found and repaired (a rolled-back operation, a cut journal tail), one line
            #: each, for the user to see; a writable open also logs them as a ``recovery`` log event
            self.recovery_notes: list[str] = recovery.notes
            if recovery.reconcile_frame is not None:
                self._reconcile_frame(recovery.reconcile_frame)
            if not self.readonly:
                clean_leftovers(folder)
                if self.recovery_notes:  # durable, so `info` and the window can say it later too
                    self._commit({"op": "log", "event": {"kind": "recovery", "time": round(time.time(), 3),
                                                         "notes": list(self.recovery_notes)}})
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            self._lock.release()
            raise ProjectError(f"{folder / VIDEO_FILE} or its journal is malformed ({exc!r})") from None
        except OSError as exc:
            self._lock.release()
            raise ProjectError(f"cannot open video {self.id!r}: {exc.strerror or exc} "
                               f"({exc.filename or folder})") from None
        except BaseException:
            self._lock.release()
            raise
        self._frame_cache = FrameCache(self.FRAME_CACHE_BYTES)
        self._source_reader: SourceReader | None = None
        self._closed = False

    @property
    def _doc(self) -> dict[str, Any]:
        """The metadata of the journaled document (read here; changed only through ``_commit``)."""
        return self._document.data

    @property
    def _tracks(self) -> dict[int, Track]:
        return self._document.tracks

    @property
    def _journal(self) -> Journal:
        return self._document.journal

    # ----------------------------------------------------------------- transactions
    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    @contextlib.contextmanager
    def transaction(self, name: str, params: dict[str, Any] | None = None) -> Iterator[Transaction]:
        """Make every change inside the block one all-or-nothing operation (:mod:`annotator.project.transaction`).

        Nested calls join the outer transaction. On an exception everything the block changed is
        rolled back (files and metadata) and the exception is re-raised; an ``OSError`` (full disk,
        permissions) is re-raised as one ``ProjectError`` line saying nothing was changed.
        """
        if self._txn is not None:
            yield self._txn
            return
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        if self._document.needs_compaction:
            self.save()  # compact before, never inside
        txn = Transaction(self._document, name, dict(params or {}))
        try:
            txn.begin()
        except OSError as exc:
            self._abort(txn)
            raise os_error(exc, name) from None
        self._txn = txn
        try:
            yield txn
        except BaseException as exc:
            self._txn = None
            try:
                self._abort(txn)
            except OSError as exc2:
                # never fold this state into video.json: the journal still says what to roll back
                self._document.broken = True
                raise ProjectError(f"{name} failed ({exc}) and could not be rolled back now "
                                   f"({exc2.strerror or exc2}); it will be rolled back when video "
                                   f"{self.id!r} is next opened") from None
            if isinstance(exc, OSError):
                raise os_error(exc, name) from None
            raise
        self._txn = None
        try:
            txn.commit()
        except OSError as exc:
            self._abort(txn)
            raise os_error(exc, name) from None
        if self._document.save_deferred:
            self._document.save_deferred = False
            self.save()

    def _abort(self, txn: Transaction) -> None:
        """Roll ``txn`` back, then drop the cached decodes of the frame images it put back."""
        txn.abort()
        for path in txn.files:
            if path.parent.name == "frames":
                with contextlib.suppress(ValueError):
                    self._frame_cache.pop(self._doc["frame_names"].index(path.stem))

    def _protect(self, path: Path, copy_file: bool = False) -> None:
        """Inside a transaction: back up ``path`` (or record its absence) before it is replaced."""
        if self._txn is not None:
            self._txn.protect(path, copy_file)

    def write_file(self, path: Path, data: bytes) -> None:
        """Atomically replace a file inside the video folder (part of the current transaction)."""
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        self._protect(path)
        atomic_write_bytes(path, data)

    # ----------------------------------------------------------------- context / lifecycle
    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Video({self.id!r}, frames={self.num_frames}, tracks={len(self._tracks)})"

    def save(self) -> None:
        """Fold the journal into ``video.json`` (atomic) and keep the lock fresh."""
        if self.readonly:
            return
        self._document.save()

    def discard(self) -> None:
        """Delete a video whose import failed, without ever listing it (import clean-up)."""
        self.readonly = True  # close() must not save: saving marks the video complete
        self.close()
        self._lock.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self, save: bool = True) -> None:
        """Fold the journal (unless ``save`` is False: a refused command changes nothing) and
        release the lock; the journal keeps whatever was not folded."""
        if self._closed:
            return
        try:
            if not self.readonly and save:
                self.save()
        finally:  # even when the save fails (full disk): the journal keeps what it did not fold
            self._document.close()
            self._lock.release()
            self._closed = True

    # ----------------------------------------------------------------- journaled mutations
    def _commit(self, record: dict[str, Any]) -> None:
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        self._document.commit(record)

    def _reconcile_frame(self, index: int) -> None:
        """After a crash, make the last journaled frame's metadata match its label PNG.

        Label writes are journaled *before* the PNG is replaced (write-ahead), so only the frame of
        the last journal record can disagree with its file: the PNG may still be the old one.
        """
        f = self._doc["frames"][index]
        path = self._label_path(index, MAIN_LAYER)
        try:
            present = [int(i) for i in panoptic.present_ids(panoptic.read_label_png(path))] if path.exists() else []
        except InputError:
            return
        if present != f["tracks"]:
            f["tracks"] = present
            f["provenance"] = {k: v for k, v in f["provenance"].items() if int(k) in present}

    # ----------------------------------------------------------------- frames
    @property
    def num_frames(self) -> int:
        return len(self._doc["frame_names"])

    @property
    def frame_names(self) -> list[str]:
        return list(self._doc["frame_names"])

    @property
    def height(self) -> int:
        return int(self._doc["height"])

    @property
    def width(self) -> int:
        return int(self._doc["width"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def dense_fps(self) -> float:
        return float(self._doc.get("dense_fps", 5.0))

    @property
    def source(self) -> SourceInfo:
        """Source link; a path stored relative to the project (sources inside it) is resolved here,
        so a project folder can be moved or shared without losing its source frames."""
        src = SourceInfo.from_json(self._doc["source"])
        if src.path and not Path(src.path).is_absolute():
            src.path = str(self.project.path / src.path)
        return src

    @property
    def keyframes(self) -> list[int]:
        return list(self._doc["keyframes"])

    def is_keyframe(self, index: int) -> bool:
        return index in self._doc["keyframes"]

    def set_keyframes(self, keyframes: list[int]) -> None:
        keys = sorted({int(k) for k in keyframes})
        if any(k < 0 or k >= self.num_frames for k in keys):
            raise InputError(f"keyframe index out of range 0..{self.num_frames - 1}")
        self._commit({"op": "keyframes", "keyframes": keys})

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.num_frames:
            raise InputError(f"frame index {index} out of range 0..{self.num_frames - 1} in video {self.id!r}")
        return int(index)

    def frame_path(self, index: int) -> Path:
        return self.path / "frames" / f"{self._doc['frame_names'][self._check_index(index)]}.jpg"

    def write_frame_image(self, index: int, rgb: np.ndarray, quality: int = 95) -> None:
        """Store a dense frame (used by import and the demo generator)."""
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        if rgb.shape[:2] != self.shape or rgb.ndim != 3:
            raise InputError(f"frame {index}: image is {rgb.shape[1]}x{rgb.shape[0]}, video is {self.width}x{self.height}")
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise InputError(f"frame {index}: could not encode JPEG")
        self._protect(self.frame_path(index))
        atomic_write_bytes(self.frame_path(index), buf.tobytes())
        self._frame_cache.pop(index)

    def read_frame(self, index: int) -> np.ndarray:
        """Dense frame as HxWx3 uint8 RGB (read-only), decoded lazily through a byte-bounded LRU."""
        return self._frame_cache.get(index, lambda: self._decode_frame(index))

    def _decode_frame(self, index: int) -> np.ndarray:
        path = self.frame_path(index)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"frame image {path} is missing or corrupt")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        """All source frames from dense ``start`` to dense ``stop`` inclusive, at the dense size.

        Optical flow follows fast motion far better over the source's small steps than over the
        5 fps samples; when the source is gone or has nothing in between, the dense frames are used.
        """
        self._check_index(start)
        self._check_index(stop)
        if stop <= start:
            raise InputError("read_source_frames needs start < stop")
        src = self.source
        dense = [self.read_frame(i) for i in range(start, stop + 1)]
        if src.kind == "none" or len(src.source_indices) != self.num_frames:
            return dense
        a, b = src.source_indices[start], src.source_indices[stop]
        if b - a <= stop - start:
            return dense
        try:
            if self._source_reader is None:
                self._source_reader = SourceReader(src, (self.height, self.width))
            frames = list(self._source_reader.read_range(a, b))
        except (InputError, OSError, ImportError):
            return dense  # source moved or unreadable: fall back to the dense samples
        if len(frames) != b - a + 1:
            return dense
        frames[0], frames[-1] = dense[0], dense[-1]  # endpoints exactly as the annotator sees them
        return frames

    # ----------------------------------------------------------------- tracks
    @property
    def tracks(self) -> dict[int, Track]:
        return dict(self._tracks)

    def track_category(self) -> dict[int, int]:
        """``track id -> category id`` for every track (for semantic maps and metrics)."""
        return {t.id: t.category_id for t in self._tracks.values()}

    def new_track(self, category_id: int, note: str = "") -> Track:
        self.taxonomy.get(category_id)
        tid = int(self._doc["next_track_id"])
        if tid > panoptic.MAX_TRACK_ID:
            raise ProjectError(f"video {self.id!r} ran out of track ids")
        self._commit({"op": "track", "id": tid, "category_id": int(category_id), "note": note})
        return self._tracks[tid]

    def add_track(self, track_id: int, category_id: int, note: str = "") -> Track:
        """Create a track with an explicit id (dataset import); an id ever used before is refused."""
        self.taxonomy.get(category_id)
        track_id = int(track_id)
        if not 1 <= track_id <= panoptic.MAX_TRACK_ID:
            raise InputError(f"track id {track_id} out of range 1..{panoptic.MAX_TRACK_ID}")
        if track_id in self._tracks:
            raise InputError(f"duplicate track id {track_id} in video {self.id!r}")
        if track_id < self._doc["next_track_id"]:
            raise InputError(f"track id {track_id} was used before in video {self.id!r}; ids are never reused")
        self._commit({"op": "track", "id": track_id, "category_id": int(category_id), "note": note})
        return self._tracks[track_id]

    def restore_track(self, track: Track) -> Track:
        """Bring a deleted track back under its old id: for undo of a delete/merge only.

        Ids are never *reused* for a different object; undo restores the same object, so the id
        it had is the right one. Refused for an id that is live or was never issued.
        """
        self.taxonomy.get(track.category_id)
        tid = int(track.id)
        if tid in self._tracks:
            raise ProjectError(f"cannot restore track {tid}: the id is in use in video {self.id!r}")
        if not 1 <= tid < self._doc["next_track_id"]:
            raise ProjectError(f"cannot restore track {tid}: it was never created in video {self.id!r}")
        self._commit({"op": "track", "id": tid, "category_id": int(track.category_id), "note": track.note})
        return self._tracks[tid]

    def _track(self, track_id: int) -> Track:
        try:
            return self._tracks[int(track_id)]
        except KeyError:
            raise InputError(f"no track {track_id} in video {self.id!r}") from None

    def set_track_category(self, track_id: int, category_id: int) -> None:
        t = self._track(track_id)
        self.taxonomy.get(category_id)
        self._commit({"op": "track", "id": t.id, "category_id": int(category_id), "note": t.note})

    def set_track_note(self, track_id: int, note: str) -> None:
        t = self._track(track_id)
        self._commit({"op": "track", "id": t.id, "category_id": t.category_id, "note": note})

    def delete_track(self, track_id: int) -> None:
        """Remove a track and clear its pixels on every frame and layer (its id is never reused)."""
        t = self._track(track_id)
        with self.transaction("delete_track", {"track": t.id}):
            self._delete_track(t)

    def _delete_track(self, t: Track) -> None:
        for i in self.track_frames(t.id):
            label = self.read_label(i)
            label[label == t.id] = panoptic.VOID
            prov = {k: v for k, v in self.provenance(i).items() if k != t.id}
            self.write_label(i, label, provenance=prov)
        for layer in self.layers():
            for i in range(self.num_frames):
                if self.has_label(i, layer):
                    label = self.read_label(i, layer)
                    if (label == t.id).any():
                        label[label == t.id] = panoptic.VOID
                        self.write_label(i, label, layer=layer)
        self._commit({"op": "track_del", "id": t.id})

    def track_frames(self, track_id: int) -> list[int]:
        return [i for i, f in enumerate(self._doc["frames"]) if int(track_id) in f["tracks"]]

    # ----------------------------------------------------------------- labels
    def _label_path(self, index: int, layer: str) -> Path:
        name = self._doc["frame_names"][self._check_index(index)]
        if layer == MAIN_LAYER:
            return self.path / MAIN_LAYER / f"{name}.png"
        if not NAME_RE.match(layer):
            raise InputError(f"invalid layer name {layer!r}")
        return self.path / "layers" / layer / f"{name}.png"

    def layers(self) -> list[str]:
        """Names of the extra label layers (the main layer is ``labels``)."""
        folder = self.path / "layers"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def has_label(self, index: int, layer: str = MAIN_LAYER) -> bool:
        return self._label_path(index, layer).exists()

    def read_label(self, index: int, layer: str = MAIN_LAYER) -> np.ndarray:
        path = self._label_path(index, layer)
        if not path.exists():
            return panoptic.empty_label(self.height, self.width)
        return panoptic.read_label_png(path, self.shape)

    def write_label(self, index: int, label: np.ndarray, state: FrameState | None = None,
                    provenance: dict[int, FrameState] | None = None, layer: str = MAIN_LAYER) -> None:
        """Store a label map atomically after checking its size and that every id is a track.

        Provenance defaults to: tracks already on the frame keep theirs, new ones get ``state``.
        The frame state defaults to the old one, or ``manual`` when an unlabelled frame gets pixels.
        """
        index = self._check_index(index)
        if self.readonly:
            raise ReadOnlyError(self.lock_message or f"video {self.id!r} is open read-only")
        panoptic.check_label_array(label, self.shape)
        label = np.ascontiguousarray(label, dtype=panoptic.LABEL_DTYPE)
        present = [int(i) for i in panoptic.present_ids(label)]
        unknown = [i for i in present if i not in self._tracks]
        if unknown:
            raise InputError(f"frame {index} of video {self.id!r}: ids {unknown[:10]} are not tracks of the video; "
                             "create the tracks first")
        data = panoptic.encode_label_png(label)
        self._protect(self._label_path(index, layer))
        if layer != MAIN_LAYER:
            atomic_write_bytes(self._label_path(index, layer), data)
            return
        old_state = self.frame_state(index)
        if state is None:
            state = FrameState.MANUAL if old_state == FrameState.UNLABELLED and present else old_state
        state = FrameState(state)
        old_prov = self.provenance(index)
        if provenance is None:
            provenance = {t: old_prov.get(t, state) for t in present}
        prov_json = {str(int(t)): FrameState(s).value for t, s in provenance.items() if int(t) in present}
        old_record = {"op": "frame", "i": index, **self._doc["frames"][index]}
        # write-ahead: journal first, then the file (see _reconcile_frame)
        self._commit({"op": "frame", "i": index, "state": state.value, "provenance": prov_json, "tracks": present})
        try:
            atomic_write_bytes(self._label_path(index, layer), data)
        except BaseException:
            if self._txn is None:  # inside a transaction its rollback restores the record
                self._commit({k: v for k, v in old_record.items() if k != "seq"})
            raise

    def frame_state(self, index: int) -> FrameState:
        return FrameState(self._doc["frames"][self._check_index(index)]["state"])

    def set_frame_state(self, index: int, state: FrameState) -> None:
        f = self._doc["frames"][self._check_index(index)]
        self._commit({"op": "frame", "i": index, "state": FrameState(state).value,
                      "provenance": dict(f["provenance"]), "tracks": list(f["tracks"])})

    def provenance(self, index: int) -> dict[int, FrameState]:
        prov = self._doc["frames"][self._check_index(index)]["provenance"]
        return {int(k): FrameState(v) for k, v in prov.items()}

    def frame_tracks(self, index: int) -> list[int]:
        """Track ids with pixels on a frame (from the metadata, no image read)."""
        return list(self._doc["frames"][self._check_index(index)]["tracks"])

    def state_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {s.value: 0 for s in FrameState}
        for f in self._doc["frames"]:
            counts[f["state"]] += 1
        return counts

    # ----------------------------------------------------------------- per-frame arrays and log
    def _array_path(self, name: str, index: int) -> Path:
        if not NAME_RE.match(name):
            raise InputError(f"invalid array name {name!r}")
        return self.path / "arrays" / name / f"{self._doc['frame_names'][self._check_index(index)]}.npy"

    def save_array(self, name: str, index: int, array: np.ndarray) -> None:
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        self._protect(self._array_path(name, index))
        atomic_write_bytes(self._array_path(name, index), buf.getvalue())

    def load_array(self, name: str, index: int) -> np.ndarray | None:
        path = self._array_path(name, index)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def has_array(self, name: str, index: int) -> bool:
        """Whether frame ``index`` has an array ``name`` stored (a file look-up, nothing decoded)."""
        return self._array_path(name, index).exists()

    def delete_array(self, name: str, index: int) -> bool:
        """Remove frame ``index``'s array ``name`` (e.g. a confidence map that a person's review made
        stale); True if there was one. Inside a transaction the file is backed up first."""
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        path = self._array_path(name, index)
        if not path.exists():
            return False
        self._protect(path)
        path.unlink()
        return True

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._commit({"op": "log", "event": {"kind": kind, **payload}})

    @property
    def log(self) -> list[dict[str, Any]]:
        return list(self._doc["log"])

    def heartbeat(self) -> None:
        """Refresh the lock (the GUI calls this with autosave) so others see it is alive."""
        with contextlib.suppress(OSError):
            self._lock.heartbeat()
