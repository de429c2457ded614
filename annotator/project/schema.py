"""The schema of every record the data model reads from disk, checked in one place.

Why one module: checks written case by case let damage through wherever nobody thought of it (a
journal frame record with an unknown state ended in a ``KeyError`` deep inside ``info``; a track
record naming a category the taxonomy does not have was exported as if it were a class). Here
each file kind has one function returning every :class:`Issue` it finds; the readers
(``VideoDocument`` for ``video.json`` and ``journal.jsonl``, ``Project.open`` for ``project.json``,
``annotator.project.integrity`` for ``info``/``export``/``propagate``) call them before the data
is used, so a damaged record gives one named error, never a traceback or a silent export.

Every issue has one shape (:meth:`Issue.__str__`)::

    <file>, <line N | key K>: found <what>, expected <what>; <what to do>

Checked: types, enums (frame states, journal operations, source kinds), id ranges (frame indices,
track ids 1..65535, category ids against the project's taxonomy), uniqueness (track ids,
category ids, frame names) and cross-references inside one document (a keyframe or a frame
record's index is a frame of the video, a track id is below ``next_track_id``). The cross
references between files (label PNGs against the metadata, a frame's tracks against the tracks)
stay in ``annotator.project.integrity``, which reads the files. The review store's schema sits
in ``annotator.review.store`` (review is a layer above) and uses :class:`Issue` from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from annotator import panoptic
from annotator.errors import ProjectError
from annotator.project.model import FrameState, SourceInfo
from annotator.taxonomy import Taxonomy

STATES = tuple(s.value for s in FrameState)
SOURCE_KINDS = ("video", "folder", "none")
#: journal operations: applied ones, then the transaction markers (appended, never applied)
APPLIED_OPS = ("frame", "track", "track_del", "keyframes", "log")
MARKER_OPS = ("txn_begin", "txn_file", "txn_commit")
OPS = APPLIED_OPS + MARKER_OPS
EFFORT_OPS = ("edit", "undo", "redo")

#: what to do about a damaged file of each kind (the last part of every message)
TODO_JOURNAL = ("restore journal.jsonl from a backup, or move it aside to drop the changes made since the "
                "video was last saved")
TODO_VIDEO = "restore video.json from a backup, or remove the video with `main.py delete-video`"
TODO_PROJECT = "fix the named key in project.json, or restore it from a backup"


@dataclass(frozen=True)
class Issue:
    """One schema problem: which file, which line or key, what was found, what was expected, what to do."""

    file: str
    where: str
    found: str
    expected: str
    todo: str = ""

    def __str__(self) -> str:
        return f"{self.file}, {self.where}: found {self.found}, expected {self.expected}" + \
            (f"; {self.todo}" if self.todo else "")


class SchemaError(ProjectError):
    """Records read from disk break their schema; ``issues`` lists every one found."""

    def __init__(self, issues: list[Issue], prefix: str = "") -> None:
        self.issues = list(issues)
        shown = " | ".join(str(i) for i in issues[:3])
        more = f" (and {len(issues) - 3} more; `main.py info PROJECT` lists all)" if len(issues) > 3 else ""
        super().__init__(f"{prefix}{len(issues)} damaged record(s): {shown}{more}")


def raise_if(issues: list[Issue], prefix: str = "") -> None:
    if issues:
        raise SchemaError(issues, prefix)


# ----------------------------------------------------------------------------------- value tests
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def int_list(v: Any) -> bool:
    return isinstance(v, list) and all(is_int(x) for x in v)


def show_value(v: Any, limit: int = 40) -> str:
    """A found value for a message: its JSON type and a short repr."""
    kind = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "integer" if is_int(v) else "number" if isinstance(v, float) else type(v).__name__)
    text = repr(v)
    return f"{kind} {text[:limit] + ('...' if len(text) > limit else '')}"


class _Checker:
    """Collects issues of one file; ``line`` (journal-like files) and a key path give the place."""

    def __init__(self, file: str, todo: str, line: int | None = None) -> None:
        self.file, self.todo, self.line = file, todo, line
        self.issues: list[Issue] = []

    def add(self, key: str, found: str, expected: str) -> None:
        """``key``: a path such as ``tracks[3].id``, shown as ``key 'id' of 'tracks[3]'``."""
        parent, _, leaf = key.rpartition(".")
        named = f"key {leaf!r}" + (f" of {parent!r}" if parent else "") if key else ""
        where = ", ".join(x for x in (f"line {self.line}" if self.line is not None else "", named) if x) \
            or "top level"
        self.issues.append(Issue(self.file, where, found, expected, self.todo))

    def need(self, obj: dict[str, Any], key: str, ok: Any, expected: str, path: str = "",
             optional: bool = False, found: Any = None) -> bool:
        """Check ``obj[key]`` with the predicate ``ok``; a missing key is an issue unless optional.
        ``found(value)`` words what was found (default: its type and value)."""
        if key not in obj:
            if not optional:
                self.add(path + key, "nothing (the key is missing)", expected)
            return False
        if not ok(obj[key]):
            self.add(path + key, (found or show_value)(obj[key]), expected)
            return False
        return True


def _track_id(v: Any) -> bool:
    return is_int(v) and 1 <= v <= panoptic.MAX_TRACK_ID


def _need_category(c: _Checker, obj: dict[str, Any], path: str, taxonomy: Taxonomy | None) -> None:
    """``obj["category_id"]``: an integer, and with ``taxonomy`` one of its classes."""
    if taxonomy is None:
        c.need(obj, "category_id", is_int, "an integer category id", path)
        return
    ids = set(taxonomy.ids)
    lo, hi = (min(ids), max(ids)) if ids else (0, -1)
    c.need(obj, "category_id", lambda v: is_int(v) and v in ids,
           f"a category id of the project's taxonomy ({lo}..{hi})", path,
           found=lambda v: f"unknown class id {v}" if is_int(v) else show_value(v))


# ----------------------------------------------------------------------------------- video.json
def check_video_doc(doc: Any, file: str = "video.json", taxonomy: Taxonomy | None = None) -> list[Issue]:
    """Every issue of a ``video.json`` document (empty list = well formed).

    With ``taxonomy``, every track's category must be one of its ids.
    """
    c = _Checker(file, TODO_VIDEO)
    if not isinstance(doc, dict):
        c.add("", show_value(doc), "a JSON object")
        return c.issues
    def pos(v: Any) -> bool:
        return is_int(v) and 0 < v <= 65535

    c.need(doc, "height", pos, "a frame height 1..65535", "")
    c.need(doc, "width", pos, "a frame width 1..65535", "")
    names_ok = c.need(doc, "frame_names", lambda v: isinstance(v, list) and bool(v) and all(
        isinstance(n, str) and n and "/" not in n for n in v) and len(set(v)) == len(v),
        "a non-empty list of unique frame names", "")
    n = len(doc["frame_names"]) if names_ok else -1
    rng = f"frame indices 0..{n - 1}" if n > 0 else "frame indices"
    c.need(doc, "keyframes", lambda v: int_list(v) and (n < 0 or all(0 <= k < n for k in v))
           and len(set(v)) == len(v), f"a list of unique {rng}", "")
    c.need(doc, "id", lambda v: isinstance(v, str) and bool(v), "the video id (a string)", "", optional=True)
    c.need(doc, "dense_fps", lambda v: is_num(v) and v > 0, "a finite number > 0", "", optional=True)
    next_ok = c.need(doc, "next_track_id", lambda v: is_int(v) and 1 <= v <= panoptic.MAX_TRACK_ID + 1,
                     f"an integer 1..{panoptic.MAX_TRACK_ID + 1}", "")
    c.need(doc, "complete", lambda v: isinstance(v, bool), "true or false", "", optional=True)
    c.need(doc, "seq", lambda v: is_int(v) and v >= 0, "an integer >= 0", "", optional=True)
    if c.need(doc, "tracks", lambda v: isinstance(v, list), "a list of {id, category_id, note}", ""):
        seen: set[int] = set()
        for k, t in enumerate(doc["tracks"]):
            where = f"tracks[{k}]."
            if not isinstance(t, dict):
                c.add(f"tracks[{k}]", show_value(t), "an object {id, category_id, note}")
                continue
            if c.need(t, "id", _track_id, f"a track id 1..{panoptic.MAX_TRACK_ID}", where):
                if t["id"] in seen:
                    c.add(f"tracks[{k}].id", f"track id {t['id']} a second time", "unique track ids")
                elif next_ok and t["id"] >= doc["next_track_id"]:
                    c.add(f"tracks[{k}].id", f"track id {t['id']}",
                          f"an id below next_track_id ({doc['next_track_id']})")
                seen.add(t["id"])
            _need_category(c, t, where, taxonomy)
            c.need(t, "note", lambda v: isinstance(v, str), "a string", where, optional=True)
    if c.need(doc, "frames", lambda v: isinstance(v, list) and (n < 0 or len(v) == n),
              f"a list of {max(n, 0)} {{state, provenance, tracks}} records (one per frame)", ""):
        for k, f in enumerate(doc["frames"]):
            _check_frame_fields(c, f, f"frames[{k}]")
    c.need(doc, "log", lambda v: isinstance(v, list), "a list", "")
    if c.need(doc, "source", lambda v: isinstance(v, dict), "an object", ""):
        _check_source(c, doc["source"])
    return c.issues


def _check_frame_fields(c: _Checker, f: Any, where: str) -> None:
    """The ``{state, provenance, tracks}`` of one frame (a ``video.json`` entry at key path
    ``where``, or a journal record: ``where`` empty)."""
    if not isinstance(f, dict):
        c.add(where, show_value(f), "an object {state, provenance, tracks}")
        return
    sub = f"{where}." if where else ""
    c.need(f, "state", lambda v: v in STATES, f"a frame state ({'|'.join(STATES)})", sub)
    c.need(f, "tracks", lambda v: int_list(v) and all(_track_id(t) for t in v) and len(set(v)) == len(v),
           f"a list of unique track ids 1..{panoptic.MAX_TRACK_ID}", sub)
    if c.need(f, "provenance", lambda v: isinstance(v, dict), "an object {track id: frame state}", sub):
        for tid, state in f["provenance"].items():
            if not (isinstance(tid, str) and tid.isdigit() and _track_id(int(tid))):
                c.add(f"{sub}provenance", f"key {tid!r}", "track ids as keys")
            elif state not in STATES:
                c.add(f"{sub}provenance.{tid}", show_value(state), f"a frame state ({'|'.join(STATES)})")


def _check_source(c: _Checker, src: dict[str, Any]) -> None:
    w = "source."
    c.need(src, "kind", lambda v: v in SOURCE_KINDS, f"one of {'|'.join(SOURCE_KINDS)}", w, optional=True)
    c.need(src, "path", lambda v: isinstance(v, str), "a string", w, optional=True)
    c.need(src, "fps", lambda v: is_num(v) and v >= 0, "a finite number >= 0", w, optional=True)
    c.need(src, "num_source_frames", lambda v: is_int(v) and v >= 0, "an integer >= 0", w, optional=True)
    # the source index of each dense frame, growing: flow reads the source frames between two of
    # them (a list of another length than the frames is allowed: reading falls back to the frames)
    c.need(src, "source_indices", lambda v: int_list(v) and all(x >= 0 for x in v)
           and all(a < b for a, b in zip(v, v[1:], strict=False)),
           "a growing list of source frame indices >= 0", w, optional=True)
    c.need(src, "original_size", lambda v: isinstance(v, list) and len(v) == 2
           and all(is_int(x) and x >= 0 for x in v), "[height, width] integers >= 0", w, optional=True)
    c.need(src, "files", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
           "a list of file names", w, optional=True)
    unknown = sorted(set(src) - {f.name for f in fields(SourceInfo)})
    if unknown:
        c.add("source", f"unknown keys {unknown}", f"only {[f.name for f in fields(SourceInfo)]}")


# ----------------------------------------------------------------------------------- journal.jsonl
def check_journal_record(record: Any, line: int, file: str, num_frames: int,
                         taxonomy: Taxonomy | None = None) -> list[Issue]:
    """Issues of one journal record (line ``line`` of ``file``) of a video of ``num_frames`` frames."""
    c = _Checker(file, TODO_JOURNAL, line)
    where = ""
    if not isinstance(record, dict):
        c.add("", show_value(record), "a journal record (a JSON object)")
        return c.issues
    if not c.need(record, "op", lambda v: v in OPS, f"an operation ({'|'.join(OPS)})", where):
        return c.issues
    # every record carries its sequence number: without one it would count as folded and be skipped
    c.need(record, "seq", lambda v: is_int(v) and v >= 1, "a sequence number (integer >= 1)", where)
    op = record["op"]
    rng = f"a frame index 0..{num_frames - 1}"
    if op == "frame":
        c.need(record, "i", lambda v: is_int(v) and 0 <= v < num_frames, rng, where)
        _check_frame_fields(c, record, "")
    elif op == "track":
        c.need(record, "id", _track_id, f"a track id 1..{panoptic.MAX_TRACK_ID}", where)
        _need_category(c, record, where, taxonomy)
        c.need(record, "note", lambda v: isinstance(v, str), "a string", where, optional=True)
    elif op == "track_del":
        c.need(record, "id", _track_id, f"a track id 1..{panoptic.MAX_TRACK_ID}", where)
    elif op == "keyframes":
        c.need(record, "keyframes", lambda v: int_list(v) and all(0 <= k < num_frames for k in v)
               and len(set(v)) == len(v), f"a list of unique {rng[2:].replace('index', 'indices')}", where)
    elif op == "log":
        c.need(record, "event", lambda v: isinstance(v, dict) and isinstance(v.get("kind"), str),
               "an object with a string 'kind'", where)
    else:  # transaction markers
        c.need(record, "txn", lambda v: isinstance(v, str) and bool(v), "a transaction id (string)", where)
        if op == "txn_begin":
            c.need(record, "name", lambda v: isinstance(v, str), "a string", where)
            c.need(record, "params", lambda v: isinstance(v, dict), "an object", where, optional=True)
        elif op == "txn_file":
            c.need(record, "path", lambda v: isinstance(v, str) and bool(v) and not v.startswith("/")
                   and ".." not in v.split("/"), "a path inside the video folder", where)
            c.need(record, "backup", lambda v: v is None or isinstance(v, str), "a backup name or null", where,
                   optional=True)
    return c.issues


def check_journal_seq(records: Iterable[tuple[int, dict[str, Any]]], file: str,
                      folded: Any = None, video_file: str = "video.json") -> list[Issue]:
    """Sequence numbers must grow: a duplicated or reordered record would be applied twice or lost.

    ``folded``: the ``seq`` of ``video.json``. It never exceeds the journal's last one (records are
    folded, then the journal is emptied), so a larger one would make every record count as
    folded and be skipped silently.
    """
    c = _Checker(file, TODO_JOURNAL)
    last = -1
    for line, r in records:
        seq = r.get("seq") if isinstance(r, dict) else None
        if is_int(seq):
            if seq <= last:
                c.line = line
                c.add("seq", f"{seq} after {last}", "sequence numbers that grow line by line")
            last = max(last, seq)
    if last >= 0 and is_int(folded) and folded > last:
        c.issues.append(Issue(video_file, "key 'seq'", f"{folded}, beyond the journal's last record ({last})",
                              "at most the journal's last sequence number (else its records are skipped)",
                              TODO_VIDEO))
    return c.issues


def check_journal_txns(records: Iterable[tuple[int, dict[str, Any]]], file: str) -> list[Issue]:
    """A ``txn_file`` or ``txn_commit`` names the transaction its ``txn_begin`` opened: one naming
    another would leave that transaction's records silently unapplied (no crash writes such a line)."""
    c = _Checker(file, TODO_JOURNAL)
    open_txn: Any = None
    for line, r in records:
        op = r.get("op") if isinstance(r, dict) else None
        if op == "txn_begin":
            open_txn = r.get("txn")
        elif op in ("txn_file", "txn_commit"):
            if r.get("txn") != open_txn:
                c.line = line
                c.add("txn", show_value(r.get("txn")), f"the open transaction's id ({open_txn!r})"
                      if open_txn is not None else "no transaction marker outside a transaction")
            if op == "txn_commit":
                open_txn = None
    return c.issues


# ----------------------------------------------------------------------------------- project.json
def check_taxonomy_doc(tax: Any, file: str, key: str = "taxonomy") -> list[Issue]:
    """The categories ``{id, name, isthing, color}`` of a taxonomy (ids and names unique)."""
    c = _Checker(file, TODO_PROJECT)
    if isinstance(tax, dict):
        c.need(tax, "name", lambda v: isinstance(v, str), "a string", f"{key}.", optional=True)
    cats = tax.get("categories") if isinstance(tax, dict) else tax
    if not isinstance(cats, list) or not cats:
        c.add(key, show_value(tax), "a non-empty list of categories (or {categories: [...]})")
        return c.issues
    ids: set[int] = set()
    at = f"{key}.categories" if isinstance(tax, dict) else key
    for k, cat in enumerate(cats):
        where = f"{at}[{k}]."
        if not isinstance(cat, dict):
            c.add(f"{at}[{k}]", show_value(cat), "an object {id, name, isthing, color}")
            continue
        if c.need(cat, "id", lambda v: is_int(v) and 0 <= v <= 65535, "a category id 0..65535", where):
            if cat["id"] in ids:
                c.add(f"{at}[{k}].id", f"category id {cat['id']} a second time", "unique category ids")
            ids.add(cat["id"])
        c.need(cat, "name", lambda v: isinstance(v, str) and bool(v), "a non-empty string", where)
        c.need(cat, "isthing", lambda v: isinstance(v, bool) or v in (0, 1), "true or false", where,
               optional=True)
        c.need(cat, "color", lambda v: isinstance(v, list) and len(v) == 3 and all(
            is_int(x) and 0 <= x <= 255 for x in v), "[r, g, b] integers 0..255", where, optional=True)
    return c.issues


#: project settings with a fixed type: key -> (test, what is expected)
SETTING_RULES: dict[str, tuple[Any, str]] = {
    "dense_fps": (lambda v: is_num(v) and v > 0, "a finite number > 0"),
    "key_every": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "resize_height": (lambda v: v is None or (is_int(v) and v > 0), "a positive integer or null"),
    "checkpoints": (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                    "an object {model kind: file path}"),
    "propagation_backend": (lambda v: isinstance(v, str), "a string"),
    "propagation_speed": (lambda v: isinstance(v, str), "a string"),
    "flow_speed": (lambda v: isinstance(v, str), "a string"),  # the old name (settings.ALIASES)
    "propagator": (lambda v: isinstance(v, str), "a string"),  # the old name (settings.ALIASES)
    "brush_size": (lambda v: is_int(v), "an integer"),
    "autosave_s": (lambda v: is_num(v), "a number of seconds"),
    "sam_decoder": (lambda v: isinstance(v, str), "a string"),
    "sam_device": (lambda v: isinstance(v, str), "a string"),
}


def check_settings(settings: Any, file: str, key: str = "settings", todo: str = TODO_PROJECT) -> list[Issue]:
    """The typed knobs of a settings object (``project.json``'s ``settings`` or the user's file)."""
    c = _Checker(file, todo)
    if not isinstance(settings, dict):
        c.add(key, show_value(settings), "an object")
        return c.issues
    prefix = f"{key}." if key else ""
    for name, (ok, what) in SETTING_RULES.items():
        c.need(settings, name, ok, what, prefix, optional=True)
    return c.issues


def check_project_doc(doc: Any, file: str = "project.json") -> list[Issue]:
    """Every issue of a ``project.json`` document: name, taxonomy, settings."""
    c = _Checker(file, TODO_PROJECT)
    if not isinstance(doc, dict):
        c.add("", show_value(doc), "a JSON object")
        return c.issues
    c.need(doc, "name", lambda v: isinstance(v, str), "a string", "", optional=True)
    if "taxonomy" not in doc:
        c.add("taxonomy", "nothing (the key is missing)", "the project's categories")
    else:
        c.issues += check_taxonomy_doc(doc["taxonomy"], file)
    if "settings" in doc:
        c.issues += check_settings(doc["settings"], file)
    return c.issues


# ----------------------------------------------------------------------------------- effort.jsonl
def check_effort_record(record: Any, line: int, file: str, num_frames: int | None = None) -> list[Issue]:
    """One line of ``effort.jsonl`` (``{t, op, name, frames, pixels}``)."""
    c = _Checker(file, "the line is skipped in effort figures; delete it to silence this", line)
    where = ""
    if not isinstance(record, dict):
        c.add("", show_value(record), "an effort record (a JSON object)")
        return c.issues
    c.need(record, "t", lambda v: is_num(v) and v >= 0, "a time (number >= 0)", where)
    c.need(record, "op", lambda v: v in EFFORT_OPS, f"one of {'|'.join(EFFORT_OPS)}", where)
    c.need(record, "name", lambda v: isinstance(v, str), "a string", where, optional=True)
    c.need(record, "frames", lambda v: int_list(v) and all(
        0 <= i < (num_frames if num_frames is not None else 1 << 31) for i in v),
        "a list of frame indices", where, optional=True)
    c.need(record, "pixels", lambda v: is_int(v) and v >= 0, "an integer >= 0", where, optional=True)
    return c.issues


# ----------------------------------------------------------------------------------- export marker
def check_export_marker(doc: Any, file: str) -> list[Issue]:
    """The marker every export of this tool carries at its root (``formats.output``): only a folder
    with a valid one is replaced by ``--overwrite``, so a stray or damaged file never lets it delete."""
    c = _Checker(file, "delete the folder's contents yourself, or choose another --out")
    if not isinstance(doc, dict):
        c.add("", show_value(doc), "a JSON object")
        return c.issues
    c.need(doc, "tool", lambda v: v == "vps-annotator", "\"vps-annotator\"")
    c.need(doc, "kind", lambda v: v == "dataset export", "\"dataset export\"")
    return c.issues
