"""What the dataset formats share on the input side: dataset files, video and frame selection,
split assignment, the summary of a run, and the import target.

Why an import target: an import creates videos (and maybe the project); if any video fails
validation every video created by this import is discarded, so a failed import leaves the project
exactly as it was. Where an export writes (staging folder, marker, deterministic JSON) is
:mod:`annotator.formats.output`; option values are parsed in :mod:`annotator.formats.options`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError, ProjectError
from annotator.formats.options import DEFAULT_SPLIT_RATIOS, SPLITS
from annotator.project import (
    MAIN_LAYER,
    PROJECT_FILE,
    FrameState,
    Project,
    SourceInfo,
    check_project,
    clear_project_stub,
    image_truncation,
    replace_unfinished,
    require_intact,
    unfinished_reason,
)


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path} is not valid JSON ({exc})") from None


def read_dataset_image(path: Path) -> np.ndarray:
    """BGR image of a dataset frame, refusing a file that is unreadable or cut short.

    Why: OpenCV decodes a truncated JPEG without an error (the missing rows come out grey), so a
    damaged dataset frame used to be imported as a plausible image.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read frame image {path}: {exc.strerror}") from None
    why = image_truncation(data)
    if why:
        raise InputError(f"frame image {path} is damaged: {why}; restore the file")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise InputError(f"frame image {path} is not a readable image (corrupt or truncated)")
    return bgr


def resized_shape(height: int, width: int, resize_height: int | None) -> tuple[int, int]:
    """VIPSeg protocol: height ``resize_height``, width ``int(resize_height * w / h)``; None keeps the size."""
    if resize_height is None or resize_height == height:
        return height, width
    return int(resize_height), int(resize_height * width / height)


# ------------------------------------------------------------------------------------------ selection
_NUM_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``frame_2`` before ``frame_10``."""
    return [int(p) if p.isdigit() else p.lower() for p in _NUM_RE.split(name)]


def select_videos(available: list[str], wanted: list[str] | None, where: str) -> list[str]:
    if not wanted:
        return sorted(available)
    missing = [v for v in wanted if v not in available]
    if missing:
        raise InputError(f"{where} has no video {', '.join(missing)} (videos: {', '.join(sorted(available)) or 'none'})")
    return list(dict.fromkeys(wanted))


def export_source(project: Any, videos: list[str] | None, deep: bool = True) -> tuple[Any, list[str]]:
    """The project an export reads (a path or an open ``Project``) and the selected video ids.

    The selected videos pass the integrity check first (``annotator.project.integrity``; deep unless the
    format checks every label map against the metadata itself while writing, as VIPSeg does);
    any problem stops the export with the list of files.
    """
    proj = project if isinstance(project, Project) else Project.open(project)
    if videos:  # a video whose video.json is damaged or missing is named, not "no video X"
        ids = list(dict.fromkeys(videos))
        hidden = [v for v in ids if not proj.has_video(v) and (proj.videos_dir / v).is_dir()]
        require_intact(check_project(proj, hidden), f"export of {proj.path}")
    # named videos are looked up one by one (a per-video batch task must not read the whole
    # project); the full listing is read only to name the alternatives of an unknown video
    if not (videos and all(proj.has_video(v) for v in videos)):
        ids = select_videos(proj.video_ids, videos, f"project {proj.path}")
    # missing label PNGs, unreadable files and metadata that disagrees with the PNGs are never
    # exported as if nothing happened; without --videos, broken or unfinished videos block too
    require_intact(check_project(proj, ids if videos else None, deep=deep), f"export of {proj.path}",
                   "; or export only the intact videos with --videos")
    return proj, ids


def labelled_frames(video: Any, layer: str = "labels") -> list[int]:
    """Dense frames that carry labels: a label file exists and the frame state is not unlabelled."""
    out = []
    for i in range(video.num_frames):
        if not video.has_label(i, layer):
            continue
        if layer == MAIN_LAYER and video.frame_state(i) == FrameState.UNLABELLED:
            continue
        out.append(i)
    return out


def assign_splits(video_ids: list[str], splits: dict[str, list[str]] | None = None,
                  ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS, seed: int = 0) -> dict[str, list[str]]:
    """Videos per split: from a user list (every video exactly once) or a seeded shuffle by ratio."""
    ids = sorted(video_ids)
    if splits:
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise InputError(f"unknown split(s) {bad}; use {', '.join(SPLITS)}")
        seen: dict[str, str] = {}
        for name, vids in splits.items():
            for v in vids:
                if v in seen and seen[v] != name:
                    raise InputError(f"video {v!r} is in both split {seen[v]!r} and {name!r}")
                seen[v] = name
        unknown = [v for v in seen if v not in ids]
        if unknown:
            raise InputError(f"--split names videos that are not exported: {', '.join(unknown)} (not selected, "
                             "or without labelled frames: label them, pass --include-unlabelled, or drop them "
                             "from --split)")
        missing = [v for v in ids if v not in seen]
        if missing:
            raise InputError(f"videos {', '.join(missing)} are in no split; list every exported video "
                             "in a --split, or use --split-ratio")
        return {s: sorted(v for v in ids if seen[v] == s) for s in SPLITS}
    if len(ratios) != 3 or any(not math.isfinite(v) or v < 0 for v in ratios) or sum(ratios) <= 0:
        raise InputError(f"split ratios must be three finite numbers >= 0 with a positive sum, not {ratios}")
    total = float(sum(ratios))
    order = list(ids)
    np.random.default_rng(seed).shuffle(order)
    n = len(order)
    n_train = int(round(n * ratios[0] / total))
    n_val = min(int(round(n * ratios[1] / total)), n - n_train)
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {s: sorted(v) for s, v in parts.items()}


# ------------------------------------------------------------------------------------------ reports
@dataclass
class ValueProblem:
    """Pixels of one file that could not be decoded (never silently mislabelled)."""

    file: str
    value: int | str
    pixels: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: value {self.value} on {self.pixels} pixels ({self.reason})"


@dataclass
class Summary:
    """What an export or import did, for the CLI and tests."""

    videos: list[str] = field(default_factory=list)
    frames: int = 0
    tracks: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[ValueProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    path: str = ""
    #: per-video detail lines the CLI prints on stderr before the summary (not part of :meth:`lines`)
    details: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{len(self.videos)} videos, {self.frames} frames, {self.tracks} tracks -> {self.path}"]
        out += [f"skipped: {s}" for s in self.skipped]
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"set to void: {p}" for p in self.problems]
        return out


def check_something_to_export(count: int, summary: Summary, layer: str, project: Any) -> None:
    """An export with no video is an error, not an empty dataset.

    A typo in ``--layer`` (or a project not labelled yet) used to write an empty dataset with exit
    code 0, and with ``--overwrite`` replace a good dataset by it.
    """
    if count:
        return
    why = "; ".join(summary.skipped[:5]) or "the project has no video"
    raise InputError(f"nothing to export from {project}: no video has labelled frames in layer {layer!r} ({why}). "
                     "Check --layer/--videos, or pass --include-unlabelled (VIPSeg, labelme) for images only")


def problems_error(problems: list[ValueProblem], what: str, limit: int = 20) -> InputError:
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return InputError(f"{what}: {len(problems)} undecodable value(s): {shown}{more}. Fix the masks, or pass "
                      "--on-invalid void to import those pixels as void")


# ------------------------------------------------------------------------------------------ import target
class ImportTarget:
    """The project an import writes into; on failure everything this import created is removed."""

    def __init__(self, project_path: str | Path, taxonomy_factory: Any = None) -> None:
        self.path = Path(project_path)
        clear_project_stub(self.path)  # a project whose creation was killed: create it again
        self.created = not (self.path / PROJECT_FILE).exists()
        if self.created:
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise ProjectError(f"{self.path} exists, is not empty and is not a project; choose another --project")
            self._existed_dir = self.path.exists()
            taxonomy = taxonomy_factory() if taxonomy_factory else None
            try:
                self.project = Project.create(self.path, taxonomy=taxonomy)
            except OSError as exc:  # e.g. a parent of --project is a file, or no permission
                if not self._existed_dir:
                    shutil.rmtree(self.path, ignore_errors=True)
                raise ProjectError(f"cannot create the project {self.path}: {exc.strerror}; "
                                   "choose another --project") from None
        else:
            self.project = Project.open(self.path)
        self.videos: list[Any] = []

    def check_new_ids(self, video_ids: list[str], notes: list[str] | None = None) -> None:
        """Refuse ids of finished videos; an unfinished import of the same id is replaced (said in ``notes``).

        Why replace: a killed ``import-dataset`` left unfinished videos that blocked every rerun,
        and nothing in the CLI could remove them.
        """
        unfinished = [v for v in video_ids if unfinished_reason(self.project, v)]
        clash = [v for v in video_ids if v not in unfinished and (v in self.project.video_ids
                                                                   or (self.project.videos_dir / v).exists())]
        if clash:
            raise ProjectError(f"project {self.path} already has video(s) {', '.join(clash)}; import into "
                               "another project or delete them first (`main.py delete-video`)")
        for v in unfinished:
            replace_unfinished(self.project, v, notes)

    def create_video(self, video_id: str, frame_names: list[str], height: int, width: int) -> Any:
        n = len(frame_names)
        src = SourceInfo(kind="none", num_source_frames=n, source_indices=list(range(n)),
                         original_size=(int(height), int(width)))
        try:
            video = self.project.create_video(video_id, frame_names, height, width, source=src)
        except BaseException:  # e.g. disk full while writing video.json: no stub folder left behind
            folder = self.project.videos_dir / video_id
            if folder.is_dir() and not (folder / "video.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
            raise
        self.videos.append(video)
        return video

    def finish(self) -> None:
        for v in self.videos:
            v.close()
        self.videos = []

    def abort(self) -> None:
        for v in self.videos:
            with contextlib.suppress(Exception):
                v.discard()
        self.videos = []
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            if self._existed_dir:
                self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> ImportTarget:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self.finish()
            except BaseException:  # closing (saving) a video failed, e.g. disk full: undo it all
                self.abort()
                raise
        else:
            self.abort()
