"""Helpers shared by the dataset formats: staged output, split assignment, frame selection, import target.

Why a staging folder: a dataset export is hundreds of files; a crash, a cancel or a bad frame half
way must never leave a half-written dataset that training code would silently read. Everything is
written into ``.<name>.staging-<random>/`` next to the destination (same file system, so the final
rename is atomic) and only moved into place when every file was written.

Why an import target: an import creates videos (and maybe the project); if any video fails
validation every video created by this import is discarded, so a failed import leaves the project
exactly as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from annotator.errors import InputError, ProjectError
from annotator.store import atomic_write_bytes

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)


# ------------------------------------------------------------------------------------------ output
def check_output_dir(out: Path, overwrite: bool, protect: Path | None = None) -> None:
    """Refuse an existing non-empty destination unless ``overwrite`` (checked before any work).

    ``protect`` (the project being exported) may never be the destination, inside it or contain
    it, so ``--overwrite`` cannot delete the project or a part of it (``--out P.vpsproj/videos``
    used to replace the project's videos with the dataset).
    """
    if protect is not None:
        prot = Path(protect).resolve()
        dest = Path(out).resolve()
        if dest == prot or dest in prot.parents:
            raise InputError(f"output {out} would replace the project {protect}; choose another --out")
        if prot in dest.parents:
            raise InputError(f"output {out} is inside the project {protect}; choose an --out outside the project")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder {out} is not empty; choose an empty or new folder, "
                         "or pass --overwrite to replace it")


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool = False, protect: Path | None = None) -> Iterator[Path]:
    """Yield a staging folder that replaces ``out`` only if the ``with`` body finishes.

    On any exception (including cancel and KeyboardInterrupt) the staging folder is deleted and
    ``out`` is left untouched. With ``overwrite`` an existing ``out`` is replaced as a whole.
    """
    out = Path(out).absolute()
    check_output_dir(out, overwrite, protect)
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:  # e.g. a parent of --out is a file, or no permission
        raise InputError(f"cannot create the output folder {out}: {exc.strerror}; choose another --out") from None
    try:
        yield staging
        check_output_dir(out, overwrite)  # someone may have written there meanwhile
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def dumps_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (key order as built, no timestamps) so exports are byte-identical."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj))


def write_lines(path: Path, lines: list[str]) -> None:
    """One item a line, every line (the last too) ending in a newline."""
    atomic_write_bytes(path, "".join(f"{ln}\n" for ln in lines).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Plain write for files inside a staging folder (the folder rename is the atomic step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path} is not valid JSON ({exc})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file from its header only (cheap), or InputError."""
    if not path.exists():
        raise InputError(f"frame image {path} is missing; restore the file (or re-import the video)")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - any decoder failure is one clear message
        raise InputError(f"frame image {path} is not a readable image (corrupt or truncated)") from None
    return int(h), int(w)


def project_frame_size(path: Path) -> tuple[int, int]:
    """(height, width) of a frame file the project wrote itself, refusing a truncated file.

    Why: a header read alone accepts a JPEG cut short (disk full, interrupted copy of a project),
    and decoders then fill the missing rows with grey without an error, so the export would copy
    or re-encode a damaged frame silently. The project writes its frames with OpenCV, which
    never appends data after the end marker, so checking the last bytes is exact and costs one
    small read (a full decode would halve the export speed).
    """
    hw = image_size(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 12))
            tail = fh.read()
            fh.seek(0)
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read frame image {path}: {exc.strerror}") from None
    ok = True
    if head[:2] == b"\xff\xd8":
        ok = tail.endswith(b"\xff\xd9")
    elif head == b"\x89PNG\r\n\x1a\n":
        ok = tail[:8] == b"\x00\x00\x00\x00IEND"
    if not ok:
        raise InputError(f"frame image {path} is truncated (no end marker); re-import the video or restore the file")
    return hw


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


def parse_name_list(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (CLI lists may be space- or comma-separated)."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


def select_videos(available: list[str], wanted: list[str] | None, where: str) -> list[str]:
    if not wanted:
        return sorted(available)
    missing = [v for v in wanted if v not in available]
    if missing:
        raise InputError(f"{where} has no video {', '.join(missing)} (videos: {', '.join(sorted(available)) or 'none'})")
    return list(dict.fromkeys(wanted))


def export_source(project: Any, videos: list[str] | None) -> tuple[Any, list[str]]:
    """The project an export reads (a path or an open ``Project``) and the selected video ids."""
    from annotator.project import Project

    proj = project if isinstance(project, Project) else Project.open(project)
    return proj, select_videos(proj.video_ids, videos, f"project {proj.path}")


def labelled_frames(video: Any, layer: str = "labels") -> list[int]:
    """Dense frames that carry labels: a label file exists and the frame state is not unlabelled."""
    from annotator.project import MAIN_LAYER, FrameState

    out = []
    for i in range(video.num_frames):
        if not video.has_label(i, layer):
            continue
        if layer == MAIN_LAYER and video.frame_state(i) == FrameState.UNLABELLED:
            continue
        out.append(i)
    return out


def parse_split_specs(specs: list[str] | None) -> dict[str, list[str]] | None:
    """``["train=a,b", "val=c"]`` -> ``{"train": ["a", "b"], "val": ["c"]}``."""
    if not specs:
        return None
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, ids = spec.partition("=")
        name = name.strip()
        if not sep or name not in SPLITS:
            raise InputError(f"--split {spec!r}: use SPLIT=VIDEO,VIDEO with SPLIT one of {', '.join(SPLITS)}")
        out.setdefault(name, []).extend(v.strip() for v in ids.split(",") if v.strip())
    return out


def parse_ratios(text: str | None) -> tuple[float, float, float]:
    if not text:
        return DEFAULT_SPLIT_RATIOS
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--split-ratio must be three numbers like 0.8,0.1,0.1, not {text!r}") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or sum(vals) <= 0:
        raise InputError(f"--split-ratio must be three non-negative numbers (train,val,test), not {text!r}")
    return vals[0], vals[1], vals[2]


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
        from annotator.project import PROJECT_FILE, Project

        self.path = Path(project_path)
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

    def check_new_ids(self, video_ids: list[str]) -> None:
        existing = set(self.project.video_ids) | set(self.project.incomplete_video_ids)
        clash = [v for v in video_ids if v in existing]
        if clash:
            raise ProjectError(f"project {self.path} already has video(s) {', '.join(clash)}; import into "
                               "another project or delete them first")

    def create_video(self, video_id: str, frame_names: list[str], height: int, width: int) -> Any:
        from annotator.project import SourceInfo

        n = len(frame_names)
        src = SourceInfo(kind="none", num_source_frames=n, source_indices=list(range(n)),
                         original_size=(int(height), int(width)))
        video = self.project.create_video(video_id, frame_names, height, width, source=src)
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
            self.finish()
        else:
            self.abort()
