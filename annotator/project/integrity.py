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
    check_effort_file(video) -> list[Problem]  # effort.jsonl lines that break their schema (info only)
    check_video_doc(doc) -> list[str]          # schema problems of a video.json document (schema.py)
    require_intact(problems, action) -> None   # IntegrityError naming the problems (export, propagate)
    require_intact_labels(video, action) -> None  # the same before a label-writing operation
    unfinished_reason(project, video_id) / remove_video(...) / replace_unfinished(...)  # killed imports
    clear_project_stub(path)                   # a project whose creation was killed
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import annotator.project.schema as schema
from annotator import panoptic
from annotator.errors import AnnotatorError, InputError, ProjectError
from annotator.project.effort_log import EFFORT_FILE
from annotator.project.media import project_frame_size
from annotator.project.model import PROJECT_FILE, VIDEO_FILE
from annotator.project.project import Project
from annotator.project.video import Video
from annotator.store import VideoLock, read_json
from annotator.taxonomy import Taxonomy


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
        named = self.file and not self.message.startswith(self.file)  # a schema issue names its file first
        return f"{where}: {self.message}" + (f" [{self.file}]" if named else "")

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "frame": self.frame, "frame_name": self.frame_name, "file": self.file,
                "message": self.message}


# ----------------------------------------------------------------------------------- record schemas
def _short(issue: schema.Issue) -> str:
    return f"{issue.where}: found {issue.found}, expected {issue.expected}"


def check_video_doc(doc: Any, taxonomy: Taxonomy | None = None) -> list[str]:
    """Every missing or wrongly typed field of a ``video.json`` document (empty list = well formed).

    Checked before the document is used (:func:`annotator.project.schema.check_video_doc`, the one
    schema), so a hand-edited or damaged file gives one message naming the field instead of a
    ``TypeError`` deep inside the first command that touches it.
    """
    return [_short(i) for i in schema.check_video_doc(doc, VIDEO_FILE, taxonomy)]


def check_project_doc(doc: Any) -> list[str]:
    """Missing or wrongly typed fields of a ``project.json`` document (name, taxonomy, settings)."""
    return [_short(i) for i in schema.check_project_doc(doc, PROJECT_FILE)]


def issue_problems(video_id: str, issues: list[schema.Issue]) -> list[Problem]:
    """One :class:`Problem` per schema issue (``info`` lists each; export and propagate refuse)."""
    return [Problem(video_id, str(i), i.file) for i in issues]


def check_project_json(path: str | Path) -> None:
    """Raise ProjectError if a readable ``project.json`` has missing or wrongly typed fields."""
    path = Path(path)
    errs = check_project_doc(read_json(path, "project"))
    if errs:
        raise ProjectError(f"{path} is damaged: {'; '.join(errs[:5])}. Fix the named fields (or restore the file "
                           "from a backup)")


def read_video_doc(path: Path, taxonomy: Taxonomy | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """(document, problems) of a ``video.json``; the document is None when it cannot be used."""
    try:
        doc = read_json(path, "video")
    except ProjectError as exc:
        return None, [str(exc)]
    errs = check_video_doc(doc, taxonomy)
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
    doc, errs = read_video_doc(vjson, project.taxonomy)
    if errs:
        return [Problem(video_id, f"video.json is damaged: {e}", str(vjson)) for e in errs]
    assert doc is not None
    if not doc.get("complete", False):
        return [Problem(video_id, "the import did not finish: run the same import again (it replaces the "
                                  "unfinished video) or remove it with `delete-video`", str(vjson))]
    try:
        video = project.open_video(video_id, readonly=True)
    except schema.SchemaError as exc:  # a journal record breaks its schema: name each one
        return issue_problems(video_id, exc.issues)
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


def check_effort_file(video: Video) -> list[Problem]:
    """Schema problems of the video's ``effort.jsonl`` (``info`` lists them; nothing refuses on them:
    effort figures skip a bad line). Its last line may be cut by a crash (appends are not fsynced),
    so an unparseable last line is no problem."""
    path = video.path / EFFORT_FILE
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [Problem(video.id, f"effort log is unreadable ({exc.strerror or exc})", str(path))]
    issues: list[schema.Issue] = []
    complete = lines[:-1]  # the part after the last newline is a torn tail (or empty)
    for n, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            issues.append(schema.Issue(str(path), f"line {n}", "a line that is not JSON", "an effort record",
                                       "the line is skipped in effort figures; delete it to silence this"))
            continue
        issues += schema.check_effort_record(record, n, str(path), video.num_frames)
    return issue_problems(video.id, issues)


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


def require_intact_labels(video: Video, action: str, close: bool = False) -> None:
    """Refuse a label- or metadata-writing ``action`` on a damaged open video (IntegrityError).

    The one check every writing command and window action runs first (``correct``, ``associate``,
    ``review`` decisions, ``preannotate``, ``accept-draft`` / ``reject-draft``, the window's track
    corrections and review decisions): a missing label PNG reads as an empty map and would be
    written back as such. A missing frame image is no danger to a label-only operation, so it does
    not stop one (an operation that needs the pixels names it itself). With ``close`` the video is
    closed without saving before the error is raised: a refusal changes nothing, not even the
    journal's folding.
    """
    problems = [p for p in check_open_video(video) if Path(p.file).parent.name != "frames"]
    if problems and close:
        video.close(save=False)
    require_intact(problems, action)


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
