"""Integrity check of a project: every missing, unreadable or inconsistent file, named (Qt-free).

Why: the project keeps its truth in two places, the metadata (``video.json`` + journal: frame
states, which tracks are on which frame) and the files (``frames/*.jpg``, ``labels/*.png``). When
they disagree nothing fails loudly by itself: ``read_label`` returns an empty map for a deleted
PNG, so a reviewed frame whose PNG is gone was exported as unlabelled and propagation refilled it
with machine labels; a video whose ``video.json`` was deleted simply vanished from ``info`` and
``export``. This module finds such damage so that ``info`` reports it, ``export`` refuses with
the list, and ``propagate`` stops before overwriting human work.

Two depths:

- quick (default): ``video.json`` readable and well-typed, the import finished, the journal
  replays, every frame JPEG exists, every frame whose metadata lists tracks has its label PNG.
  Costs two ``stat`` calls a frame.
- deep: also decodes every label PNG (size, ids that are not tracks, ids different from the
  metadata) and checks that frame JPEGs are not truncated: one PNG decode a frame, in 2 threads.
  The VIPSeg export does the PNG part itself while it encodes each frame, so it runs the quick
  check only (no second decode).

Public API::

    check_project(project, video_ids=None, deep=False) -> list[Problem]
    check_video(project, video_id, deep=False) -> list[Problem]
    check_open_video(video, deep=False) -> list[Problem]   # files of an opened Video
    check_video_doc(doc) -> list[str]          # type/shape problems of a video.json document
    require_intact(problems, action) -> None   # IntegrityError naming the problems (export, propagate)
    unfinished_reason(project, video_id) / remove_video(...) / replace_unfinished(...)  # killed imports
    clear_project_stub(path)                   # a project whose creation was killed
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from annotator import panoptic
from annotator.errors import AnnotatorError, InputError, ProjectError
from annotator.project.media import project_frame_size
from annotator.project.model import PROJECT_FILE, VIDEO_FILE, FrameState, SourceInfo
from annotator.project.project import Project
from annotator.project.video import Video
from annotator.store import VideoLock, read_json

_SOURCE_KINDS = ("video", "folder", "none")


class IntegrityError(ProjectError, InputError):
    """Damaged project data stops an operation (both a project and an input problem for callers)."""


@dataclass(frozen=True)
class Problem:
    """One integrity problem: which video, which dense frame (if any), which file, what is wrong."""

    video: str
    message: str
    file: str = ""
    frame: int | None = None
    frame_name: str = ""

    def __str__(self) -> str:
        where = f"video {self.video!r}"
        if self.frame is not None:
            where += f" frame {self.frame}" + (f" ({self.frame_name})" if self.frame_name else "")
        return f"{where}: {self.message}" + (f" [{self.file}]" if self.file else "")

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "frame": self.frame, "frame_name": self.frame_name, "file": self.file,
                "message": self.message}


# ----------------------------------------------------------------------------------- video.json types
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) for x in v)


def check_video_doc(doc: Any) -> list[str]:
    """Every missing or wrongly typed field of a ``video.json`` document (empty list = well formed).

    Checked before the document is used, so a hand-edited or damaged file gives one message naming
    the field instead of a ``TypeError`` deep inside the first command that touches it.
    """
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    errs: list[str] = []
    states = {s.value for s in FrameState}

    def need(key: str, ok: bool, what: str) -> None:
        if key not in doc:
            errs.append(f"field {key!r} is missing")
        elif not ok:
            errs.append(f"field {key!r} must be {what}, found {type(doc[key]).__name__} {str(doc[key])[:40]!r}")

    need("height", _is_int(doc.get("height")) and doc.get("height", 0) > 0, "a positive integer")
    need("width", _is_int(doc.get("width")) and doc.get("width", 0) > 0, "a positive integer")
    names = doc.get("frame_names")
    need("frame_names", isinstance(names, list) and bool(names) and all(isinstance(n, str) and n for n in names)
         and len(set(names)) == len(names), "a non-empty list of unique frame names")
    n = len(names) if isinstance(names, list) else -1
    keys = doc.get("keyframes")
    need("keyframes", _int_list(keys) and all(0 <= k < n for k in keys), f"a list of frame indices 0..{n - 1}")
    if "dense_fps" in doc and not (_is_num(doc["dense_fps"]) and doc["dense_fps"] > 0):
        errs.append(f"field 'dense_fps' must be a finite number > 0, found {doc['dense_fps']!r}")
    need("next_track_id", _is_int(doc.get("next_track_id")) and doc.get("next_track_id", 0) >= 1,
         "an integer >= 1")
    if "complete" in doc and not isinstance(doc["complete"], bool):
        errs.append(f"field 'complete' must be true or false, found {doc['complete']!r}")
    tracks = doc.get("tracks")
    need("tracks", isinstance(tracks, list) and all(
        isinstance(t, dict) and _is_int(t.get("id")) and t["id"] >= 1 and _is_int(t.get("category_id"))
        and isinstance(t.get("note", ""), str) for t in tracks), "a list of {id, category_id, note}")
    frames = doc.get("frames")
    need("frames", isinstance(frames, list) and len(frames) == n and all(
        isinstance(f, dict) and f.get("state") in states and _int_list(f.get("tracks"))
        and isinstance(f.get("provenance"), dict) and all(s in states for s in f["provenance"].values())
        for f in frames), f"a list of {max(n, 0)} {{state, provenance, tracks}} records (one per frame)")
    need("log", isinstance(doc.get("log"), list), "a list")
    src = doc.get("source")
    need("source", isinstance(src, dict), "an object")
    if isinstance(src, dict):
        checks = {"kind": src.get("kind", "none") in _SOURCE_KINDS,
                  "path": isinstance(src.get("path", ""), str),
                  "fps": _is_num(src.get("fps", 0.0)) and src.get("fps", 0.0) >= 0,
                  "num_source_frames": _is_int(src.get("num_source_frames", 0)) and src.get("num_source_frames", 0) >= 0,
                  "source_indices": _int_list(src.get("source_indices", [])),
                  "original_size": isinstance(src.get("original_size", [0, 0]), list | tuple)
                  and len(src.get("original_size", [0, 0])) == 2 and all(_is_int(v) for v in src.get("original_size", [0, 0])),
                  "files": isinstance(src.get("files", []), list) and all(isinstance(f, str) for f in src.get("files", []))}
        errs += [f"field 'source.{k}' is missing or has the wrong type ({src.get(k)!r})" for k, ok in checks.items()
                 if not ok]
        unknown = set(src) - {f.name for f in fields(SourceInfo)}  # SourceInfo(**source) would fail on them
        if unknown:
            errs.append(f"field 'source' has unknown keys {sorted(unknown)}")
    return errs


def check_project_doc(doc: Any) -> list[str]:
    """Missing or wrongly typed fields of a ``project.json`` document (the taxonomy is checked on load)."""
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    errs: list[str] = []
    if "name" in doc and not isinstance(doc["name"], str):
        errs.append(f"field 'name' must be a string, found {doc['name']!r}")
    if "taxonomy" not in doc:
        errs.append("field 'taxonomy' is missing")
    settings = doc.get("settings", {})
    if not isinstance(settings, dict):
        return errs + [f"field 'settings' must be an object, found {type(settings).__name__}"]
    rules = {"dense_fps": (lambda v: _is_num(v) and v > 0, "a finite number > 0"),
             "key_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
             "resize_height": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer or null"),
             "checkpoints": (lambda v: isinstance(v, dict), "an object"),
             "propagation_backend": (lambda v: isinstance(v, str), "a string"),
             "propagation_speed": (lambda v: isinstance(v, str), "a string"),
             "flow_speed": (lambda v: isinstance(v, str), "a string")}  # the old name (settings.ALIASES)
    for key, (ok, what) in rules.items():
        if key in settings and not ok(settings[key]):
            errs.append(f"setting {key!r} must be {what}, found {settings[key]!r}")
    return errs


def check_project_json(path: str | Path) -> None:
    """Raise ProjectError if a readable ``project.json`` has missing or wrongly typed fields."""
    path = Path(path)
    errs = check_project_doc(read_json(path, "project"))
    if errs:
        raise ProjectError(f"{path} is damaged: {'; '.join(errs[:5])}. Fix the named fields (or restore the file "
                           "from a backup)")


def read_video_doc(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(document, problems) of a ``video.json``; the document is None when it cannot be used."""
    try:
        doc = read_json(path, "video")
    except ProjectError as exc:
        return None, [str(exc)]
    errs = check_video_doc(doc)
    return (None if errs else doc), errs


def check_video_json(path: str | Path) -> None:
    """Raise ProjectError if ``video.json`` at ``path`` is missing, unreadable or malformed."""
    path = Path(path)
    _doc, errs = read_video_doc(path)
    if errs:
        raise ProjectError(f"{path} is damaged: {'; '.join(errs[:5])}. Restore it from a backup, or delete the "
                           f"video with `main.py delete-video {path.parent.parent.parent} {path.parent.name}`")


# ----------------------------------------------------------------------------------- files
def _image_damage(path: Path) -> str:
    """Why an image file the project wrote is damaged (unreadable, cut short), or "" when intact."""
    try:
        project_frame_size(path)
    except AnnotatorError as exc:
        return str(exc)
    return ""


def check_video(project: Project, video_id: str, deep: bool = False) -> list[Problem]:
    """Problems of one video (see the module docstring for quick vs deep)."""
    folder = project.videos_dir / video_id
    vjson = folder / VIDEO_FILE
    if not vjson.exists():
        return [Problem(video_id, "video folder without video.json (metadata deleted, or an import killed "
                                  "before it started): restore video.json from a backup or remove the folder "
                                  "with `delete-video`", str(vjson))]
    doc, errs = read_video_doc(vjson)
    if errs:
        return [Problem(video_id, f"video.json is damaged: {e}", str(vjson)) for e in errs]
    assert doc is not None
    if not doc.get("complete", False):
        return [Problem(video_id, "the import did not finish: run the same import again (it replaces the "
                                  "unfinished video) or remove it with `delete-video`", str(vjson))]
    try:
        video = project.open_video(video_id, readonly=True)
    except AnnotatorError as exc:
        return [Problem(video_id, f"cannot be opened: {exc}", str(vjson))]
    try:
        return check_open_video(video, deep)
    finally:
        video.close()


def check_open_video(video: Video, deep: bool = False) -> list[Problem]:
    """File problems of a video already open (e.g. for writing, after its crash recovery ran)."""
    problems: list[Problem] = []
    names = video.frame_names
    labels_dir = video.path / "labels"
    frames_dir = video.path / "frames"
    known = set(video.tracks)
    to_decode: list[int] = []
    for i, name in enumerate(names):
        jpg = frames_dir / f"{name}.jpg"
        if not jpg.exists():
            problems.append(Problem(video.id, "frame image is missing", str(jpg), i, name))
        elif deep and (damage := _image_damage(jpg)):
            problems.append(Problem(video.id, damage, str(jpg), i, name))
        png = labels_dir / f"{name}.png"
        meta_tracks = video.frame_tracks(i)
        unknown_meta = sorted(t for t in meta_tracks if t not in known)
        if unknown_meta:
            problems.append(Problem(video.id, f"metadata lists track ids {unknown_meta[:10]} that are not tracks "
                                              "of the video", str(video.path / 'video.json'), i, name))
        if not png.exists():
            if meta_tracks:
                state = video.frame_state(i).value
                problems.append(Problem(video.id, f"label PNG is missing but the frame is {state} with tracks "
                                                  f"{meta_tracks[:10]}", str(png), i, name))
        elif deep:
            to_decode.append(i)

    def decode(i: int) -> Problem | None:
        name = names[i]
        png = labels_dir / f"{name}.png"
        try:
            label = panoptic.read_label_png(png, video.shape)
        except AnnotatorError as exc:
            return Problem(video.id, f"label PNG is unreadable ({exc})", str(png), i, name)
        present = {int(t) for t in panoptic.present_ids(label)}
        not_tracks = sorted(present - known)
        if not_tracks:
            return Problem(video.id, f"label PNG holds ids {not_tracks[:10]} that are not tracks of the video",
                           str(png), i, name)
        meta = set(video.frame_tracks(i))
        if present != meta:
            return Problem(video.id, f"label PNG holds tracks {sorted(present)[:10]} but the metadata says "
                                     f"{sorted(meta)[:10]}", str(png), i, name)
        return None

    if to_decode:
        with ThreadPoolExecutor(max_workers=2) as pool:  # PNG decoding releases the GIL
            problems += [p for p in pool.map(decode, to_decode) if p is not None]
    problems.sort(key=lambda p: (p.frame if p.frame is not None else -1, p.file))
    return problems


def check_project(project: Project, video_ids: Iterable[str] | None = None, deep: bool = False) -> list[Problem]:
    """Problems of the given videos (default: every folder under ``videos/``, listed or not).

    Without ``video_ids`` the check also covers what ``Project.video_ids`` hides: folders without a
    ``video.json``, damaged ``video.json`` files and unfinished imports.
    """
    if video_ids is None:
        folder = project.videos_dir
        ids = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
    else:
        ids = list(video_ids)
    problems: list[Problem] = []
    for vid in ids:
        problems += check_video(project, vid, deep=deep)
    return problems


def describe(problems: list[Problem], limit: int = 20) -> str:
    """The problems as one line (for an error message), at most ``limit`` of them."""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f" (and {len(problems) - limit} more; `main.py info PROJECT --check` lists all)" \
        if len(problems) > limit else ""
    return shown + more


def require_intact(problems: list[Problem], action: str, hint: str = "") -> None:
    """Raise IntegrityError naming the problems: ``action`` (e.g. "export") does not run on damaged data."""
    if problems:
        raise IntegrityError(f"{action} refused: {len(problems)} integrity problem(s): {describe(problems)}. "
                             "Restore the named files, re-label the frames, or remove broken videos with "
                             f"`delete-video`{hint}")


# ----------------------------------------------------------------------------------- removing videos
def unfinished_reason(project: Project, video_id: str) -> str:
    """Why the folder ``videos/<video_id>`` is an unfinished video ("" when it is complete or absent).

    Unfinished: an import killed before ``video.json`` was written (folder without it) or before
    it was marked complete. Such a folder is never listed, so a rerun of the same import replaces
    it instead of picking a new id.
    """
    folder = project.videos_dir / video_id
    if not folder.is_dir():
        return ""
    vjson = folder / VIDEO_FILE
    if not vjson.exists():
        return "its folder has no video.json (import killed before it started)"
    doc, errs = read_video_doc(vjson)
    if doc is not None and not doc.get("complete", False):
        return "its import did not finish"
    return ""


def remove_video(project: Project, video_id: str) -> None:
    """Delete ``videos/<video_id>`` for good, refusing while another process holds its lock.

    The folder is first renamed out of ``videos/`` (one atomic step: the video is gone from every
    listing at once), then deleted; a kill during the deletion leaves only a hidden
    ``.deleted-*`` folder, which the next removal cleans up.
    """
    if not video_id or "/" in video_id or video_id in (".", "..") or video_id.startswith("."):
        raise InputError(f"invalid video id {video_id!r}")
    folder = project.videos_dir / video_id
    if not folder.is_dir():
        raise InputError(f"project {project.path} has no video folder {video_id!r}")
    lock = VideoLock(folder / ".lock")
    holder = lock.acquire()
    if holder is not None:
        raise ProjectError(f"video {video_id!r} is open by {holder.describe()}; close it there first")
    trash = project.path / f".deleted-{video_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.replace(folder, trash)
    except BaseException:
        lock.release()
        raise
    shutil.rmtree(trash, ignore_errors=True)
    for old in project.path.glob(".deleted-*"):  # left by a removal killed half way
        parts = old.name.rsplit("-", 2)
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        return pid > 0 and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - vanished (a race with its exit): not alive
        return False


def replace_unfinished(project: Project, video_id: str, notes: list[str] | None = None) -> bool:
    """Remove an unfinished video of that id so an import can create it again; True if one was removed."""
    reason = unfinished_reason(project, video_id)
    if not reason:
        return False
    remove_video(project, video_id)
    if notes is not None:
        notes.append(f"replaced the unfinished import of video {video_id!r} ({reason}); importing it again "
                     "from the start")
    return True


def clear_project_stub(path: str | Path) -> bool:
    """Remove what a ``Project.create`` killed before writing ``project.json`` left (an empty ``videos/``).

    Such a folder is neither a project nor empty, so every rerun of the import that was creating
    the project refused it. Returns True when a stub was removed (the folder is empty again).
    """
    path = Path(path)
    if not path.is_dir() or (path / PROJECT_FILE).exists():
        return False
    entries = list(path.iterdir())
    tmp_files = [p for p in entries if p.name.startswith(f".{PROJECT_FILE}.") and p.name.endswith(".tmp")]
    rest = [p for p in entries if p not in tmp_files]
    if [p.name for p in rest] != ["videos"] or not rest[0].is_dir() or any(rest[0].iterdir()):
        return False
    for p in tmp_files:
        p.unlink()
    rest[0].rmdir()
    return True
