"""The schema of ``review.json`` (decisions and cached flags), in the one shape of
:mod:`annotator.project.schema`.

Why beside the store and not in the data model: the targets, decisions and flag kinds belong to
the review layer, which sits above ``annotator.project``; :func:`annotator.review.store.load_doc`
calls :func:`check_review_doc` before a decision is used, so a damaged file gives one named
error instead of a traceback or a decision about a frame the video does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator.errors import ProjectError
from annotator.project import FrameState, Issue, int_list, is_int, is_num, show_value
from annotator.review.flags import KINDS
from annotator.store import read_json

TARGETS = ("track", "frame", "flag")
DECISIONS = ("accept", "reject", "comment")


_TODO = "restore review.json from a backup, or delete it (the decisions in it are lost)"


def check_review_doc(raw: Any, file: str, num_frames: int | None = None) -> list[Issue]:
    """Every schema issue of a ``review.json`` document (``annotator.project.schema``'s shape).

    Decisions: ``target`` one of :data:`TARGETS`, ``decision`` one of :data:`DECISIONS`, a track
    id 1..65535 or a frame index of the video (``num_frames``), a flag decision's ``key``; flags:
    a known kind (``flags.KINDS``), frames of the video, track ids >= 0, a score 0..1.
    """
    issues: list[Issue] = []

    def bad(key: str, found: Any, expected: str) -> None:
        parent, _, leaf = key.rpartition(".")
        where = f"key {leaf!r}" + (f" of {parent!r}" if parent else "")
        issues.append(Issue(file, where, show_value(found), expected, _TODO))

    def frame_ok(v: Any) -> bool:
        return is_int(v) and 0 <= v < (num_frames if num_frames is not None else 1 << 31)

    frames_what = f"a frame index 0..{num_frames - 1}" if num_frames else "a frame index >= 0"
    if not isinstance(raw, dict):
        return [Issue(file, "top level", show_value(raw), "a JSON object", _TODO)]
    decisions = raw.get("decisions", [])
    if not isinstance(decisions, list):
        bad("decisions", decisions, "a list of decisions")
        decisions = []
    for k, d in enumerate(decisions):
        at = f"decisions[{k}]"
        if not isinstance(d, dict):
            bad(at, d, "an object {target, id, decision, ...}")
            continue
        target = d.get("target")
        if target not in TARGETS:
            bad(f"{at}.target", target, f"one of {'|'.join(TARGETS)}")
        if d.get("decision") not in DECISIONS:
            bad(f"{at}.decision", d.get("decision"), f"one of {'|'.join(DECISIONS)}")
        tid = d.get("id")
        if target == "track" and not (is_int(tid) and 1 <= tid <= 65535):
            bad(f"{at}.id", tid, "a track id 1..65535")
        elif target == "frame" and not frame_ok(tid):
            bad(f"{at}.id", tid, frames_what)
        elif target == "flag" and not (isinstance(d.get("key"), str) and d["key"]):
            bad(f"{at}.key", d.get("key"), "the flag's key (kind:frame:track:other)")
        elif not is_int(tid):
            bad(f"{at}.id", tid, "an integer")
        for key, ok, what in (("comment", lambda v: isinstance(v, str), "a string"),
                              ("user", lambda v: isinstance(v, str), "a string"),
                              ("time", lambda v: is_num(v) and v >= 0, "a time (number >= 0)"),
                              ("prev_state", lambda v: v == "" or v in tuple(s.value for s in FrameState),
                               "a frame state or \"\""),
                              ("auto", lambda v: isinstance(v, bool), "true or false")):
            if key in d and not ok(d[key]):
                bad(f"{at}.{key}", d[key], what)
    flags = raw.get("flags")
    if flags is not None and not isinstance(flags, list):
        bad("flags", flags, "a list of flags or null")
        flags = []
    for k, f in enumerate(flags or []):
        at = f"flags[{k}]"
        if not isinstance(f, dict):
            bad(at, f, "an object {kind, frame, track, score, ...}")
            continue
        for key, ok, what in (("kind", lambda v: v in KINDS, f"a flag kind ({'|'.join(KINDS)})"),
                              ("frame", frame_ok, frames_what),
                              ("track", lambda v: is_int(v) and 0 <= v <= 65535, "a track id 0..65535"),
                              ("score", lambda v: is_num(v) and 0 <= v <= 1, "a number 0..1")):
            if not ok(f.get(key)):
                bad(f"{at}.{key}", f.get(key), what)
        if "frames" in f and not (int_list(f["frames"]) and all(frame_ok(x) for x in f["frames"])):
            bad(f"{at}.frames", f["frames"], f"a list of {frames_what.replace('a frame index', 'frame indices')}")
        if "other" in f and not (is_int(f["other"]) and 0 <= f["other"] <= 65535):
            bad(f"{at}.other", f["other"], "a track id 0..65535")
        if "reason" in f and not isinstance(f["reason"], str):
            bad(f"{at}.reason", f["reason"], "a string")
    if "flags_time" in raw and not (is_num(raw["flags_time"]) and raw["flags_time"] >= 0):
        bad("flags_time", raw["flags_time"], "a time (number >= 0)")
    return issues


def check_review_file(path: Path, num_frames: int | None = None) -> list[Issue]:
    """Issues of the ``review.json`` at ``path`` (none when it is absent: an empty review)."""
    if not path.exists():
        return []
    try:
        raw = read_json(path, "review")
    except ProjectError as exc:
        return [Issue(str(path), "top level", f"an unreadable file ({exc})", "a review document", _TODO)]
    return check_review_doc(raw, str(path), num_frames)
