"""One undo stack from the user's view over two engines: label edits and track corrections.

Label edits live in ``EditSession``'s history (bounding-box patches), corrections in the video's
log (``annotator.stages.corrections`` undo records). Ctrl+Z must undo *the last action*, whichever it
was, so the window keeps the order here: an entry is either ``"edit"`` (the session's newest step)
or a correction's undo id plus how to redo it (corrections have no redo of their own: redoing one
runs it again, which gives the same result - ids of restored tracks are kept). Edits made before
the window opened (the session history survives restarts) are undone after the listed entries.
:func:`run_entry` carries one entry out on the two engines; the controller turns its outcome (or
its refusal) into selection, frame and message changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from annotator.editing import EditSession
from annotator.project import Video, require_intact_labels
from annotator.stages import corrections

MAX_ENTRIES = 1000


@dataclass
class Entry:
    kind: str  # "edit" | "correction"
    name: str
    undo_id: str | None = None
    redo: Callable[[], Any] | None = None


class UndoStack:
    def __init__(self) -> None:
        self.undo_entries: list[Entry] = []
        self.redo_entries: list[Entry] = []

    def clear(self) -> None:
        self.undo_entries.clear()
        self.redo_entries.clear()

    def push(self, entry: Entry) -> None:
        self.undo_entries.append(entry)
        del self.undo_entries[:-MAX_ENTRIES]
        self.redo_entries.clear()

    def push_edit(self, name: str) -> None:
        self.push(Entry("edit", name))

    def push_correction(self, name: str, undo_id: str, redo: Callable[[], Any]) -> None:
        self.push(Entry("correction", name, undo_id, redo))

    def next_undo(self, session_can_undo: bool, session_name: str = "") -> Entry | None:
        """The entry Ctrl+Z undoes (older session steps count as edits)."""
        if self.undo_entries:
            return self.undo_entries[-1]
        return Entry("edit", session_name) if session_can_undo else None

    def next_redo(self) -> Entry | None:
        return self.redo_entries[-1] if self.redo_entries else None

    def undone(self, entry: Entry) -> None:
        if self.undo_entries and self.undo_entries[-1] is entry:
            self.undo_entries.pop()
        self.redo_entries.append(entry)

    def redone(self, entry: Entry, new_undo_id: str | None = None) -> None:
        if self.redo_entries and self.redo_entries[-1] is entry:
            self.redo_entries.pop()
        if new_undo_id is not None:
            entry.undo_id = new_undo_id
        self.undo_entries.append(entry)


def run_entry(entry: Entry, session: EditSession, video: Video, redo: bool) -> list[int]:
    """Undo (or, with ``redo``, redo) ``entry`` and return the frames it changed.

    An edit goes to the session's history; a correction is undone from its undo record in the video's
    log, or redone by running it again (``entry.undo_id`` then names the new record). Corrections read
    and write label files, so the session is flushed before and invalidated after. Raises
    ``EditError`` / ``AnnotatorError`` when the engine refuses (nothing changed then).
    """
    if entry.kind == "edit":
        return session.redo() if redo else session.undo()
    session.flush()
    require_intact_labels(video, f"{'redo' if redo else 'undo'} of {entry.name}")  # as every correction
    try:
        if redo:
            assert entry.redo is not None
            result = entry.redo()
            entry.undo_id = result.undo_id
            return list(result.frames)
        event = corrections.undo_last(video, entry.undo_id)
        return list(range(video.num_frames)) if event.get("frames") else []
    finally:
        session.invalidate()
