"""Video import: video files and frame folders -> dense project frames, checked before listing.

Public API::

    probe_source(path, source_fps=None) -> SourceInfo      # what a file/folder holds, nothing written
    import_source(proj, path, video_id=None, dense_fps=None, key_every=None, resize_height=720,
                  source_fps=None, progress=None, cancel=None) -> str   # the new video id
    dense_source_indices(num_source_frames, src_fps, dense_fps) -> list[int]
    plan_dense(num_source_frames, src_fps, dense_fps, key_every) -> (source indices, keyframes)
    dense_size(height, width, resize_height) -> (h, w)
    check_declared(...) -> (error, note)                   # declared vs decoded frames and fps

Why dense sampling: annotators label 5 fps frames (VIPSeg protocol: 1 keyframe per second, 5
dense frames per second) while the flow propagator wants every source frame in between, so the
import keeps the link (path, fps, source index of each dense frame) and
:class:`~annotator.project.media.SourceReader` re-reads any source range on demand. Dense frame
``k`` is source frame ``round(k * src_fps / dense_fps)``, which gives exact 5-frame steps at
25 fps, 6 at 30 fps and 4.8 (4/5 alternating) at 24 fps without drift.

An import either completes or leaves nothing: on an error, a corrupt input or a cancel, the
partial video folder is removed. A killed import leaves an unfinished video (never listed); the
next import under the same id *replaces* it (and says so in ``notes``), so a rerun of the same
command gets the same video id.

Damaged sources that still decode are not trusted silently: the frame count a video declares is
compared with the frames that actually decode (a truncated file decodes fewer), its declared fps
with the frame timestamps, every frame's size with the declared size, and frame-folder images
must end with their end marker (a cut-off JPEG decodes as a grey-bottomed image without error).
A large frame-count shortfall or an fps disagreement is an error unless ``allow_damaged`` /
``source_fps`` say otherwise; small differences are reported in ``notes``.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator.errors import InputError, ProjectError
from annotator.jobs import CancelToken, ProgressFn, check_cancel
from annotator.project.integrity import replace_unfinished, unfinished_reason
from annotator.project.media import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    header_size,
    list_images,
    open_capture,
    read_source_image,
    resize_to,
)
from annotator.project.model import VIDEO_FILE, SourceInfo
from annotator.project.project import Project
from annotator.project.video import Video

_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def dense_source_indices(num_source_frames: int, src_fps: float, dense_fps: float = 5.0) -> list[int]:
    """Source index of every dense frame: ``round(k * src_fps / dense_fps)`` while in range.

    A source slower than ``dense_fps`` keeps every frame (no upsampling). Rounding is half-up, so
    the result does not depend on Python's banker's rounding.
    """
    if src_fps <= 0 or dense_fps <= 0:
        raise InputError(f"frame rates must be positive (source {src_fps}, dense {dense_fps})")
    step = max(float(src_fps) / float(dense_fps), 1.0)
    count = int(np.floor((num_source_frames - 1) / step + 1e-9)) + 1 if num_source_frames > 0 else 0
    idx = np.floor(np.arange(count) * step + 0.5).astype(np.int64)
    return [int(i) for i in idx if i < num_source_frames]


def plan_dense(num_source_frames: int, src_fps: float, dense_fps: float = 5.0,
               key_every: int = 5) -> tuple[list[int], list[int]]:
    """What an import samples: the source index of every dense frame and the keyframes (dense
    indices, every ``key_every``-th from 0).

    The one rule :func:`import_source` applies and the new-project dialog previews, so the preview
    cannot promise other counts than the import gives.
    """
    if key_every < 1:
        raise InputError("--key-every must be >= 1")
    indices = dense_source_indices(num_source_frames, src_fps, dense_fps)
    return indices, list(range(0, len(indices), int(key_every)))


def dense_size(height: int, width: int, resize_height: int | None) -> tuple[int, int]:
    """Dense frame size: scaled down to ``resize_height`` keeping the aspect ratio, never up."""
    if not resize_height or height <= resize_height:
        return int(height), int(width)
    return int(resize_height), max(1, int(round(width * resize_height / height)))


def probe_source(path: str | Path, source_fps: float | None = None) -> SourceInfo:
    """Describe a video file or frame folder (kind, fps, frame count, size) without importing it.

    ``source_fps`` overrides the file's fps; for a frame folder it is its frame rate (default:
    the project's dense rate, i.e. every image becomes a dense frame).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a video file ({', '.join(VIDEO_EXTS)}) or a frame folder")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise InputError(f"frame folder {path} holds no images ({', '.join(IMAGE_EXTS)})")
        h, w = header_size(path / files[0])
        return SourceInfo(kind="folder", path=str(path.resolve()), fps=float(source_fps or 0.0),
                          num_source_frames=len(files), original_size=(h, w), files=files)
    if path.suffix.lower() not in VIDEO_EXTS:
        raise InputError(f"{path} is not a supported video ({', '.join(VIDEO_EXTS)}) nor a frame folder")
    cap = open_capture(path)
    try:
        fps = float(source_fps or cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        if count <= 0 or h <= 0 or w <= 0:
            count = 0
            while cap.grab():  # container without a frame count: count by decoding
                count += 1
            if count and (h <= 0 or w <= 0):
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = cap.read()
                if ok:
                    h, w = img.shape[:2]
    finally:
        cap.release()
    if count <= 0:
        raise InputError(f"video {path} has no readable frames (empty or corrupt file)")
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        raise InputError(f"video {path} reports no valid frame rate ({fps}); pass it with --source-fps")
    return SourceInfo(kind="video", path=str(path.resolve()), fps=fps, num_source_frames=count,
                      original_size=(h, w))


def _frame_names(src: SourceInfo, indices: list[int]) -> list[str]:
    """Dense frame names: the folder's file stems when they are usable, else the source index."""
    if src.kind == "folder":
        stems = [Path(src.files[i]).stem for i in indices]
        if all(_NAME_RE.match(s) for s in stems) and len(set(stems)) == len(stems):
            return stems
    width = max(6, len(str(max(indices, default=0))))
    return [f"{i:0{width}d}" for i in indices]


def _unique_video_id(proj: Project, stem: str) -> str:
    """The first of ``stem``, ``stem_2``, ... that is free or an unfinished import (to be replaced)."""
    base = re.sub(r"[^A-Za-z0-9_\-.]", "_", stem).strip(".") or "video"
    vid, n = base, 2
    while (proj.videos_dir / vid).exists() and not unfinished_reason(proj, vid):
        vid, n = f"{base}_{n}", n + 1
    return vid


def _iter_video_frames(path: Path, wanted: list[int], stats: dict[str, Any] | None = None):
    """Yield (source index, BGR image) of ``wanted`` (sorted) by one sequential decode.

    With ``stats``, decoding goes on to the end of the file (grab only) and records
    ``stats["decoded"]`` (frames that decode) and ``stats["timestamps"]`` (ms), which the import
    compares with what the container declares.
    """
    cap = open_capture(path)
    stamps: list[float] = []
    try:
        want = iter(wanted)
        target = next(want, None)
        i = 0
        while target is not None or stats is not None:
            if not cap.grab():
                break
            if stats is not None:
                stamps.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
            if i == target:
                ok, img = cap.retrieve()
                if not ok or img is None:
                    break
                yield i, img
                target = next(want, None)
            i += 1
        if stats is not None:
            stats["decoded"] = i
            stats["timestamps"] = stamps
    finally:
        cap.release()


def _timestamp_fps(stamps: list[float]) -> float | None:
    """Frame rate implied by the decoded frames' timestamps, or None when they carry no information."""
    if len(stamps) < 3 or not all(math.isfinite(t) for t in stamps):
        return None
    span = stamps[-1] - stamps[0]
    if span <= 0:
        return None
    return (len(stamps) - 1) * 1000.0 / span


#: a declared frame count may exceed what decodes by this much without being called damaged
COUNT_SLACK = 2
#: declared fps and timestamp fps may differ by this fraction (rounding of 29.97 etc.)
FPS_TOLERANCE = 0.10


def check_declared(path: Path, declared_frames: int, decoded_frames: int, declared_fps: float,
                   stamps_fps: float | None, fps_given: bool, allow_damaged: bool) -> tuple[str, str]:
    """Compare what a video declares with what it yields: ``(error, note)``, each "" when none.

    An error stops the import; a note is printed with its summary, never dropped.
    """
    short = declared_frames - decoded_frames
    if decoded_frames and short > max(COUNT_SLACK, declared_frames // 100):
        msg = (f"video {path} declares {declared_frames} frames but only {decoded_frames} decode: the file is "
               "truncated or damaged")
        if not allow_damaged:
            return msg + f"; repair or re-encode it, or pass --allow-damaged to import the {decoded_frames} frames " \
                         "that decode", ""
        return "", msg + f"; importing the {decoded_frames} frames that decode (--allow-damaged)"
    note = ""
    if decoded_frames and decoded_frames != declared_frames:
        note = (f"video {path} declares {declared_frames} frames and {decoded_frames} decode; using "
                f"{decoded_frames}")
    if not fps_given and stamps_fps is not None and abs(stamps_fps - declared_fps) > FPS_TOLERANCE * declared_fps:
        return (f"video {path} declares {declared_fps:g} fps but its frame timestamps advance at "
                f"{stamps_fps:.3g} frames/s (variable frame rate or a damaged header); pass --source-fps with "
                "the true rate"), note
    return "", note


def _remove_stub(proj: Project, video_id: str) -> None:
    """Remove the folder a failed ``create_video`` left without a ``video.json`` (e.g. disk full)."""
    folder = proj.videos_dir / video_id
    if folder.is_dir() and not (folder / VIDEO_FILE).exists():
        shutil.rmtree(folder, ignore_errors=True)


def _discard_video(video: Video) -> None:
    """Remove a partially imported video without ever marking it complete."""
    video.discard()


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number > 0, not {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite number > 0, not {value!r}")
    return v


def import_source(proj: Project, path: str | Path, video_id: str | None = None, dense_fps: float | None = None,
                  key_every: int | None = None, resize_height: int | None = 720, source_fps: float | None = None,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                  notes: list[str] | None = None, allow_damaged: bool = False) -> str:
    """Import a video file or frame folder into ``proj`` as a new video; returns its id.

    Dense frames are sampled at ``dense_fps`` (project setting, default 5) with a keyframe every
    ``key_every`` dense frames (default 5 = 1 fps), scaled down to ``resize_height`` (None keeps the
    original size). Every frame is decoded and checked before the video is listed; on any error or
    cancel the partial video is removed. An unfinished import under the same id (a killed run) is
    replaced; ``notes`` receives that and any difference between what the source declares and
    what it yields (see the module docstring; ``allow_damaged`` imports a truncated video's
    decodable frames instead of refusing).
    """
    path = Path(path)
    notes = notes if notes is not None else []
    dense_fps = _positive("the dense frame rate (--fps)",
                          dense_fps if dense_fps is not None else proj.settings.get("dense_fps", 5.0))
    key_every = int(key_every if key_every is not None else proj.settings.get("key_every", 5))
    if key_every < 1:
        raise InputError("--key-every must be >= 1")
    if source_fps is not None:
        source_fps = _positive("--source-fps", source_fps)
    src = probe_source(path, source_fps)
    if src.kind == "folder" and not src.fps:
        src.fps = dense_fps  # a plain folder of frames: every image is a dense frame
    if video_id is None:
        video_id = _unique_video_id(proj, path.stem if path.is_file() else path.name)
    replace_unfinished(proj, video_id, notes)
    if (proj.videos_dir / video_id).exists():
        raise ProjectError(f"video {video_id!r} already exists in {proj.path}; choose another --video-id")

    declared = src.num_source_frames
    for attempt in range(2):
        indices, keys = plan_dense(src.num_source_frames, src.fps, dense_fps, key_every)
        src.source_indices = indices
        h0, w0 = src.original_size
        h, w = dense_size(h0, w0, resize_height)
        saved = proj.settings.get("dense_fps")
        proj.settings["dense_fps"] = dense_fps  # create_video records the project's dense rate
        try:
            video = proj.create_video(video_id, _frame_names(src, indices), h, w, source=src, keyframes=keys)
        except BaseException:
            _remove_stub(proj, video_id)
            raise
        finally:
            proj.settings["dense_fps"] = saved
        stats: dict[str, Any] = {}
        try:
            written = _write_frames(video, src, indices, (h, w), progress, cancel, stats)
            decoded = int(stats.get("decoded", written))
            error, note = ("", "") if src.kind != "video" else check_declared(
                path, declared, decoded, src.fps, _timestamp_fps(stats.get("timestamps", [])),
                source_fps is not None, allow_damaged)
            if error:
                raise InputError(error)
        except BaseException:
            _discard_video(video)
            raise
        if written == len(indices) and (src.kind != "video" or decoded == src.num_source_frames):
            if note:
                notes.append(note)
            try:
                video.close()  # marks the video complete
            except BaseException:  # e.g. the disk filled up while saving video.json: leave nothing
                _discard_video(video)
                raise
            return video_id
        _discard_video(video)
        if attempt == 0 and src.kind == "video" and decoded > 0:
            # the container declared another frame count than decodes: redo with the real count
            src.num_source_frames = decoded
            continue
        break
    raise InputError(f"video {path} has no readable frames (empty or corrupt file)")


def _write_frames(video: Video, src: SourceInfo, indices: list[int], size: tuple[int, int],
                  progress: ProgressFn | None, cancel: CancelToken | None,
                  stats: dict[str, Any] | None = None) -> int:
    """Decode, check and store the dense frames; returns how many were written.

    For a video file ``stats`` receives the number of frames that decode and their timestamps.
    """
    total = len(indices)
    if progress:
        progress(0, total, "importing")
    done = 0
    if src.kind == "folder":
        folder = Path(src.path)
        for k, i in enumerate(indices):
            check_cancel(cancel)
            rgb = read_source_image(folder / src.files[i])
            if rgb.shape[:2] != tuple(src.original_size):
                raise InputError(f"image {folder / src.files[i]} is {rgb.shape[1]}x{rgb.shape[0]}, but the "
                                 f"folder's first image is {src.original_size[1]}x{src.original_size[0]}; "
                                 "all frames must have one size")
            video.write_frame_image(k, resize_to(rgb, size))
            done = k + 1
            if progress:
                progress(done, total, "")
        return done
    for k, (_i, bgr) in enumerate(_iter_video_frames(Path(src.path), indices, stats)):
        check_cancel(cancel)
        if bgr.shape[:2] != tuple(src.original_size):
            raise InputError(f"video {src.path}: frame {_i} is {bgr.shape[1]}x{bgr.shape[0]}, expected "
                             f"{src.original_size[1]}x{src.original_size[0]}")
        video.write_frame_image(k, resize_to(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size))
        done = k + 1
        if progress:
            progress(done, total, "")
    check_cancel(cancel)
    return done
