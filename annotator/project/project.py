"""Projects (datasets): a folder of videos sharing one taxonomy and one set of settings.

Layout::

    NAME.vpsproj/
      project.json                     schema version, name, taxonomy, settings
      videos/<video_id>/
        video.json                     frames, keyframes, source, tracks, frame states, log
        journal.jsonl                  metadata operations since the last save (crash recovery)
        .lock                          who has the video open for writing
        frames/<frame>.jpg             dense frames (5 fps by default)
        labels/<frame>.png             16-bit track ids, 0 = void (the main label layer)
        layers/<layer>/<frame>.png     other label layers (pre-annotation drafts, ground truth...)
        arrays/<name>/<frame>.npy      per-frame arrays such as propagation confidence
        .txn/<id>/                     backups of the files an unfinished transaction replaced
        effort.jsonl                   human edit actions (``annotator.project.effort_log``)

The list of videos is the set of ``videos/*/video.json`` files, so two annotators adding or
editing different videos of a shared project never write the same file. A video's files are
read and written through :class:`~annotator.project.video.Video`; its metadata through its
journaled document (:mod:`annotator.project.document`), and multi-file operations are
transactions (:mod:`annotator.project.transaction`).
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotator.errors import InputError, ProjectError
from annotator.project.model import (
    PROJECT_FILE,
    VIDEO_FILE,
    FrameState,
    SourceInfo,
    _check_video_id,
    is_valid_name,
)
from annotator.project.schema import check_project_doc, raise_if
from annotator.project.settings import PROJECT_DEFAULTS
from annotator.project.video import Video
from annotator.store import VideoLock, atomic_write_json, read_json
from annotator.taxonomy import Taxonomy, vipseg_taxonomy


class Project:
    """A dataset folder holding many videos and one taxonomy."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path.resolve()  # absolute, so source links and locks do not depend on the cwd
        self.name: str = doc.get("name", path.stem)
        self.taxonomy: Taxonomy = Taxonomy.from_json(doc["taxonomy"])
        self.settings: dict[str, Any] = {**PROJECT_DEFAULTS, **doc.get("settings", {})}

    @classmethod
    def create(cls, path: str | Path, name: str | None = None, taxonomy: Taxonomy | None = None,
               settings: dict[str, Any] | None = None) -> Project:
        path = Path(path)
        if (path / PROJECT_FILE).exists():
            raise ProjectError(f"a project already exists at {path}")
        if path.exists() and any(path.iterdir()):
            raise ProjectError(f"{path} exists and is not empty; choose a new folder")
        (path / "videos").mkdir(parents=True, exist_ok=True)
        taxonomy = taxonomy or vipseg_taxonomy()
        doc = {"name": name or path.name.removesuffix(".vpsproj"), "taxonomy": taxonomy.to_json(),
               "settings": {**PROJECT_DEFAULTS, **(settings or {})}}
        atomic_write_json(path / PROJECT_FILE, doc, "project")
        return cls(path, doc)

    @classmethod
    def open(cls, path: str | Path) -> Project:
        path = Path(path)
        if path.is_file() and path.name == PROJECT_FILE:
            path = path.parent
        if not (path / PROJECT_FILE).exists():
            raise ProjectError(f"{path} is not a VPS Annotator project (no {PROJECT_FILE}); "
                               "create one with `main.py new`")
        doc = read_json(path / PROJECT_FILE, "project")
        if "taxonomy" not in doc:
            raise ProjectError(f"{path / PROJECT_FILE} has no taxonomy")
        raise_if(check_project_doc(doc, str(path / PROJECT_FILE)), f"project {path}: ")
        return cls(path, doc)

    def save(self) -> None:
        doc = {"name": self.name, "taxonomy": self.taxonomy.to_json(), "settings": self.settings}
        atomic_write_json(self.path / PROJECT_FILE, doc, "project")

    @property
    def videos_dir(self) -> Path:
        return self.path / "videos"

    @property
    def video_ids(self) -> list[str]:
        """Videos whose import finished (a video.json marked complete)."""
        return [p.parent.name for p in sorted(self.videos_dir.glob(f"*/{VIDEO_FILE}"))
                if _is_complete(p)]

    def has_video(self, video_id: str) -> bool:
        """Whether ``video_id`` is a finished video, reading only its own ``video.json``: a task on
        one video of a 3,000-video project must not read every other video's metadata."""
        if not is_valid_name(video_id):
            return False
        path = self.videos_dir / video_id / VIDEO_FILE
        return path.is_file() and _is_complete(path)

    @property
    def incomplete_video_ids(self) -> list[str]:
        """Videos whose import was interrupted; they cannot be opened until re-imported."""
        return [p.parent.name for p in sorted(self.videos_dir.glob(f"*/{VIDEO_FILE}")) if not _is_complete(p)]

    def create_video(self, video_id: str, frame_names: list[str], height: int, width: int,
                     source: SourceInfo | None = None, keyframes: list[int] | None = None) -> Video:
        """Start a new video (opened for writing); it is listed once its first ``save``/``close``."""
        _check_video_id(video_id)
        if not frame_names:
            raise InputError(f"video {video_id!r} has no frames")
        if len(set(frame_names)) != len(frame_names):
            raise InputError(f"video {video_id!r}: frame names must be unique")
        bad = [n for n in frame_names if not n or "." in n or "/" in n]
        if bad:
            raise InputError(f"video {video_id!r}: frame names may not contain '.' or '/': {bad[:3]}")
        if height <= 0 or width <= 0:
            raise InputError(f"video {video_id!r}: invalid frame size {width}x{height}")
        folder = self.videos_dir / video_id
        if (folder / VIDEO_FILE).exists():
            raise ProjectError(f"video {video_id!r} already exists in {self.path}")
        folder.mkdir(parents=True, exist_ok=True)
        n = len(frame_names)
        key_every = int(self.settings.get("key_every", 5))
        keys = sorted(set(keyframes)) if keyframes is not None else list(range(0, n, key_every))
        if any(k < 0 or k >= n for k in keys):
            raise InputError(f"video {video_id!r}: keyframe index out of range 0..{n - 1}")
        source = source or SourceInfo()
        if source.path:
            with contextlib.suppress(ValueError):  # keep sources inside the project relocatable
                source = SourceInfo(**{**asdict(source), "path": str(
                    Path(source.path).resolve().relative_to(self.path.resolve()))})
        doc = {"id": video_id, "complete": False, "height": int(height), "width": int(width),
               "frame_names": list(frame_names), "keyframes": keys,
               "dense_fps": float(self.settings.get("dense_fps", 5.0)),
               "source": asdict(source), "next_track_id": 1, "tracks": [],
               "frames": [{"state": FrameState.UNLABELLED.value, "provenance": {}, "tracks": []}
                          for _ in frame_names],
               "log": []}
        atomic_write_json(folder / VIDEO_FILE, doc, "video")
        return Video(self, folder, readonly=False)

    def open_video(self, video_id: str, readonly: bool = False) -> Video:
        """Open a video; if another process holds its lock it opens read-only (see ``lock_message``)."""
        folder = self.videos_dir / _check_video_id(video_id)
        if not (folder / VIDEO_FILE).exists():
            raise ProjectError(f"no video {video_id!r} in {self.path} (videos: {', '.join(self.video_ids) or 'none'})")
        if not _is_complete(folder / VIDEO_FILE):
            raise ProjectError(f"the import of video {video_id!r} did not finish; delete {folder} and import again")
        return Video(self, folder, readonly=readonly)

    def delete_video(self, video_id: str) -> None:
        folder = self.videos_dir / _check_video_id(video_id)
        lock = VideoLock(folder / ".lock")
        holder = lock.acquire()
        if holder is not None:
            raise ProjectError(f"video {video_id!r} is open by {holder.describe()}")
        shutil.rmtree(folder)


def _is_complete(video_json: Path) -> bool:
    try:
        return bool(read_json(video_json, "video").get("complete", False))
    except ProjectError:
        return True  # a corrupt file is reported when the video is opened, not hidden
