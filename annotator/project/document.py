"""The journaled document of one video: ``video.json`` plus the operations in ``journal.jsonl``.

What it holds: the video's metadata (frame names and size, keyframes, source link, per-frame
state, provenance and track ids, the event log) and its tracks. Every change is one journal
record, appended durably (one fsynced JSON line) and then applied in memory, so a process killed
at any instant loses at most the record being written; :meth:`VideoDocument.save` folds the
journal into ``video.json`` (one atomic write) and empties it. Each record carries a sequence
number; ``video.json`` keeps the last one it holds, so records already folded are never applied
twice on the next open. The journal is compacted every ``COMPACT_EVERY`` records, never inside a
transaction (:mod:`annotator.project.transaction` owns those: it appends its markers and takes
and restores snapshots through this document's API).

Record kinds: ``frame`` (state, provenance, tracks of one frame), ``track`` (create or update),
``track_del``, ``keyframes``, ``log`` (one event of the video log), and the transaction markers
``txn_begin`` / ``txn_file`` / ``txn_commit``, which are appended but never applied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotator.errors import ProjectError, ReadOnlyError
from annotator.project.model import COMPACT_EVERY, JOURNAL_FILE, VIDEO_FILE, Track
from annotator.project.schema import (
    check_journal_record,
    check_journal_seq,
    check_journal_txns,
    check_video_doc,
    raise_if,
)
from annotator.store import Journal, atomic_write_json, read_json
from annotator.taxonomy import Taxonomy

#: what :meth:`VideoDocument.snapshot` returns: (metadata, tracks, journal record count)
Snapshot = tuple[dict[str, Any], dict[int, Track], int]


class VideoDocument:
    """``video.json`` + journal of the video folder ``folder``: read on construction, not replayed.

    ``data`` is the metadata dict (read it freely; change it only through :meth:`commit`) and
    ``tracks`` maps track id -> :class:`Track`. The journal is replayed by
    :func:`annotator.project.transaction.recover`, which knows what an unfinished transaction is.
    ``on_save`` runs after every save that folded the journal or found nothing to fold (the video
    refreshes its lock there). Raises ``ProjectError`` when ``video.json`` is unreadable, and
    :class:`~annotator.project.SchemaError` (a ``ProjectError`` listing every issue) when it,
    or a record of the journal when it is read, breaks its schema (:mod:`annotator.project.schema`;
    ``taxonomy``: the project's, so a track's category must be one of its classes).
    """

    def __init__(self, folder: Path, readonly: bool, on_save: Callable[[], None] | None = None,
                 taxonomy: Taxonomy | None = None) -> None:
        self.path = folder
        self.readonly = readonly
        self.taxonomy = taxonomy
        self.journal = Journal(folder / JOURNAL_FILE, check=self._check_records)
        self._on_save = on_save
        self.data: dict[str, Any] = read_json(folder / VIDEO_FILE, "video")
        raise_if(check_video_doc(self.data, str(folder / VIDEO_FILE), taxonomy))
        self.complete_on_disk = bool(self.data.get("complete", False))
        self.tracks: dict[int, Track] = {
            int(t["id"]): Track(int(t["id"]), int(t["category_id"]), t.get("note", ""))
            for t in self.data["tracks"]}
        #: set by the running transaction: no compaction, and saves are deferred to its end
        self.in_transaction = False
        self.save_deferred = False
        #: a rollback failed in this process: only a reopen may repair the video (its journal
        #: still says what to roll back), so nothing more is written or folded
        self.broken = False

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def seq(self) -> int:
        """Sequence number of the last record the document holds."""
        return int(self.data.get("seq", 0))

    def _check_records(self, numbered: list[tuple[int, dict[str, Any]]]) -> None:
        """Schema of every journal record (called by the journal's read, before any repair)."""
        file = str(self.journal.path)
        n = len(self.data["frame_names"])
        issues = [i for line, r in numbered for i in check_journal_record(r, line, file, n, self.taxonomy)]
        issues += check_journal_seq(numbered, file, self.data.get("seq"), str(self.path / VIDEO_FILE))
        issues += check_journal_txns(numbered, file)
        raise_if(issues)  # the file path in each issue names the video

    @property
    def needs_compaction(self) -> bool:
        return self.journal.count >= COMPACT_EVERY

    # ----------------------------------------------------------------- records
    def apply(self, r: dict[str, Any]) -> None:
        """Apply one journal record to the in-memory document (used live and on crash replay)."""
        op = r["op"]
        self.data["seq"] = int(r.get("seq", self.data.get("seq", 0)))
        if op == "frame":
            self.data["frames"][r["i"]] = {"state": r["state"], "provenance": r["provenance"],
                                           "tracks": r["tracks"]}
        elif op == "track":
            self.tracks[r["id"]] = Track(r["id"], r["category_id"], r.get("note", ""))
            self.data["next_track_id"] = max(self.data["next_track_id"], r["id"] + 1)
        elif op == "track_del":
            self.tracks.pop(r["id"], None)
        elif op == "keyframes":
            self.data["keyframes"] = r["keyframes"]
        elif op == "log":
            self.data["log"].append(r["event"])
        else:
            raise ProjectError(f"{self.path / JOURNAL_FILE}: unknown operation {op!r}")

    def commit(self, record: dict[str, Any]) -> None:
        """Journal ``record`` durably, then apply it (write-ahead: on return it survives a crash)."""
        if self.readonly:
            raise ReadOnlyError(f"video {self.id!r} is open read-only")
        if self.broken:
            raise ProjectError(f"video {self.id!r} must be reopened: an operation could not be rolled back "
                               "in this session (it is rolled back when the video is opened again)")
        if self.needs_compaction and not self.in_transaction:
            self.save()  # compact first, so the record below is always in the journal when we return
        record["seq"] = self.seq + 1
        self.journal.append(record)
        self.apply(record)

    def append_marker(self, record: dict[str, Any]) -> int:
        """Journal a record that is not applied (a transaction marker); returns its byte offset."""
        record["seq"] = self.seq + 1
        offset = self.journal.append(record)
        self.data["seq"] = record["seq"]
        return offset

    # ----------------------------------------------------------------- snapshots (transactions)
    def snapshot(self) -> Snapshot:
        return copy.deepcopy(self.data), dict(self.tracks), self.journal.count

    def restore(self, snapshot: Snapshot) -> None:
        self.data, self.tracks, self.journal.count = snapshot

    @property
    def journal_size(self) -> int:
        """Bytes of complete records in the journal: where a record appended now would start."""
        return self.journal.size

    def truncate_journal(self, offset: int) -> None:
        self.journal.truncate(offset)

    # ----------------------------------------------------------------- lifecycle
    def save(self) -> None:
        """Fold the journal into ``video.json`` (atomic); deferred inside a transaction."""
        if self.readonly:
            return
        if self.in_transaction:
            self.save_deferred = True  # never compact the journal inside a transaction
            return
        if self.broken:
            return
        if self.journal.size or not self.complete_on_disk:  # else video.json already says it all
            self.data["complete"] = True
            self.data["tracks"] = [asdict(t) for t in sorted(self.tracks.values(), key=lambda t: t.id)]
            atomic_write_json(self.path / VIDEO_FILE, self.data, "video")
            self.complete_on_disk = True
            self.journal.clear()
        if self._on_save is not None:
            self._on_save()

    def close(self) -> None:
        self.journal.close()
