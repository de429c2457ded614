"""Helpers shared by the dataset formats: staged output, split assignment, frame selection, import target.

Why a staging folder: a dataset export is hundreds of files; a crash, a cancel or a bad frame half
way must never leave a half-written dataset that training code would silently read. Everything is
written into ``.<name>.staging-<pid>-<random>/`` next to the destination (same file system, so the
final rename is atomic) and only moved into place when every file was written. Every export
carries a marker file (``.vps_annotator_export``) at its root: ``--overwrite`` replaces only a
folder holding it, or an empty one, and never the cwd, ``/``, home or the project. Leftovers of
killed exports (staging folders, a previous export moved aside) are cleaned up or put back by
the next export to the same destination (:func:`recover_output`).

Why an import target: an import creates videos (and maybe the project); if any video fails
validation every video created by this import is discarded, so a failed import leaves the project
exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
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
#: file written at the root of every export; ``--overwrite`` replaces only folders holding it (or empty ones)
EXPORT_MARKER = ".vps_annotator_export"
_MARKER_BYTES = b'{"tool": "vps-annotator", "kind": "dataset export"}\n'
_STAGING_RE = re.compile(r"^\.(?P<name>.+)\.(?P<what>staging|old)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
#: staging folders of exports running in this process (a stale folder may carry our pid from a past boot)
_ACTIVE: set[str] = set()


def _refuse_dangerous(raw: str | Path, protect: Path | None) -> Path:
    """The absolute destination, or InputError for one whose replacement would destroy user data.

    Why: ``export --out "$OUT" --overwrite`` with an unset variable passed ``""``, which is the
    current folder, and replaced it with the dataset. The current folder (or a folder containing
    it), ``/``, the home folder (or a parent of it) and the project (itself, a parent or a
    subfolder) are never an output.
    """
    if isinstance(raw, str) and not raw.strip():
        raise InputError("the output folder is empty (an unset shell variable?); give --out a folder path")
    out = Path(raw).absolute()
    dest = out.resolve()
    cwd = Path.cwd().resolve()
    if dest == cwd or dest in cwd.parents:
        raise InputError(f"output {raw} is the current folder or contains it; choose a new folder for --out")
    home = Path.home().resolve()
    if dest == Path(dest.anchor) or dest == home or dest in home.parents:
        raise InputError(f"output {raw} is the root or the home folder (or contains it); choose a new folder "
                         "for --out")
    if protect is not None:
        prot = Path(protect).resolve()
        if dest == prot or dest in prot.parents:
            raise InputError(f"output {raw} would replace the project {protect} or a folder holding it; "
                             "choose another --out")
        if prot in dest.parents:
            raise InputError(f"output {raw} is inside the project {protect}; choose an --out outside the project")
    return out


def is_previous_export(folder: Path) -> bool:
    """True when ``folder`` holds the marker file this tool writes at the root of every export."""
    return (Path(folder) / EXPORT_MARKER).is_file()


def check_output_dir(out: str | Path, overwrite: bool, protect: Path | None = None) -> None:
    """Refuse a destination that must not be written or replaced (checked before any work).

    - never the current folder, ``/``, home, or the project ``protect`` (see ``_refuse_dangerous``);
    - an existing folder must be empty, or with ``overwrite`` hold a previous export of this tool
      (the :data:`EXPORT_MARKER` file): ``--overwrite`` never deletes a folder of other files.
    """
    out = _refuse_dangerous(out, protect)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {out} is not empty; choose an empty or new folder, "
                             "or pass --overwrite to replace a previous export")
        if not is_previous_export(out):
            raise InputError(f"output folder {out} is not empty and holds no export of this tool (no "
                             f"{EXPORT_MARKER} file); --overwrite only replaces a previous export or an empty "
                             "folder: delete its contents yourself or choose another --out")


def _owner_alive(pid: int | None, path: Path) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return str(path) in _ACTIVE
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process vanished: not alive
        return False


def recover_output(out: str | Path) -> list[str]:
    """Clean up after exports to ``out`` that were killed; returns what was done, for the user.

    - ``.<name>.staging-<pid>-<id>`` folders of dead processes (a killed export, or the previous
      export being deleted after a swap) are removed;
    - a kill between the two renames of the fallback replacement (file systems without an atomic
      exchange) left ``out`` missing and the previous export in ``.<name>.old-<pid>-<id>``: it is
      moved back, so the old or the new export is always in place, never neither.
    """
    out = Path(out).absolute()
    parent = out.parent
    notes: list[str] = []
    if not parent.is_dir():
        return notes
    stale: dict[str, list[Path]] = {"staging": [], "old": []}
    for p in parent.iterdir():
        m = _STAGING_RE.match(p.name)
        if not m or m.group("name") != out.name or not p.is_dir():
            continue
        pid = int(m.group("pid")) if m.group("pid") else None
        if not _owner_alive(pid, p):
            stale[m.group("what")].append(p)
    olds = sorted(stale["old"], key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not out.exists():
        os.replace(olds.pop(0), out)
        notes.append(f"restored the previous export {out}: the export replacing it was killed between its renames")
    for p in stale["staging"] + olds:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        shutil.rmtree(p, ignore_errors=True)
        notes.append(f"removed {p.name} ({size / 1e6:.1f} MB) left behind by a killed export")
    return notes


def prepare_output(out: str | Path, overwrite: bool, protect: Path | None = None,
                   notes: list[str] | None = None) -> list[str]:
    """Recover killed exports to ``out``, then check it (the CLI calls this before any work).

    What the recovery did goes into ``notes`` (also returned) even when the check then refuses.
    """
    notes = notes if notes is not None else []
    _refuse_dangerous(out, protect)
    notes.extend(recover_output(out))
    check_output_dir(out, overwrite, protect)
    return notes


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    res = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE))
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool = False, protect: Path | None = None,
                  notes: list[str] | None = None) -> Iterator[Path]:
    """Yield a staging folder that replaces ``out`` only if the ``with`` body finishes.

    On any exception (including cancel and KeyboardInterrupt) the staging folder is deleted and
    ``out`` is left untouched. With ``overwrite`` an existing export at ``out`` is replaced as a
    whole, by one atomic exchange of the two folders where the file system supports it (then the
    old export, now under the staging name, is deleted; a kill meanwhile leaves it for the next
    run to delete). ``notes`` receives what the recovery of earlier killed exports did.
    """
    prepare_output(out, overwrite, protect, notes)
    out = Path(out).absolute()
    staging = out.parent / f".{out.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:  # e.g. a parent of --out is a file, or no permission
        raise InputError(f"cannot create the output folder {out}: {exc.strerror}; choose another --out") from None
    _ACTIVE.add(str(staging))
    try:
        write_bytes(staging / EXPORT_MARKER, _MARKER_BYTES)
        yield staging
        check_output_dir(out, overwrite)  # someone may have written there meanwhile
        if out.exists() and _exchange(staging, out):
            pass  # out is the new export; staging now holds the old one, deleted below
        elif out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            _ACTIVE.add(str(old))
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(old, out)
                raise
            finally:
                _ACTIVE.discard(str(old))
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _ACTIVE.discard(str(staging))


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


def read_dataset_image(path: Path) -> np.ndarray:
    """BGR image of a dataset frame, refusing a file that is unreadable or cut short.

    Why: OpenCV decodes a truncated JPEG without an error (the missing rows come out grey), so a
    damaged dataset frame used to be imported as a plausible image.
    """
    import cv2

    from annotator.project.media import image_truncation

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


def export_source(project: Any, videos: list[str] | None, deep: bool = True) -> tuple[Any, list[str]]:
    """The project an export reads (a path or an open ``Project``) and the selected video ids.

    The selected videos pass the integrity check first (``annotator.project.integrity``; deep unless the
    format checks every label map against the metadata itself while writing, as VIPSeg does);
    any problem stops the export with the list of files.
    """
    from annotator.project import Project
    from annotator.project.integrity import check_project, require_intact

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
    if len(vals) != 3 or any(not math.isfinite(v) or v < 0 for v in vals) or sum(vals) <= 0:
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
        from annotator.project.integrity import clear_project_stub

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
        from annotator.project.integrity import replace_unfinished, unfinished_reason

        unfinished = [v for v in video_ids if unfinished_reason(self.project, v)]
        clash = [v for v in video_ids if v not in unfinished and (v in self.project.video_ids
                                                                   or (self.project.videos_dir / v).exists())]
        if clash:
            raise ProjectError(f"project {self.path} already has video(s) {', '.join(clash)}; import into "
                               "another project or delete them first (`main.py delete-video`)")
        for v in unfinished:
            replace_unfinished(self.project, v, notes)

    def create_video(self, video_id: str, frame_names: list[str], height: int, width: int) -> Any:
        from annotator.project import SourceInfo

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
