"""Deterministic synthetic videos with exact panoptic ground truth (demo data, tests, benchmarks).

Public API::

    generate_demo_video(seed=0, num_frames=50, height=180, width=320, scenario="mixed",
                        fps=25.0, pan=0.0, noise=2.0) -> DemoVideo
    DemoScene(seed, num_frames, height, width, scenario, fps, pan, noise)   # .render(t) -> (rgb, label)
    DemoVideo: .frames (HxWx3 uint8 RGB), .labels (HxW uint16 track ids), .tracks {track_id: category_id},
               .fps, .scenario, .seed, .dense_indices(dense_fps=5) -> list[int]
    write_demo_source(demo, path, kind="mp4"|"folder") -> Path        # source video to exercise import
    write_demo_project(path, seed=0, scenarios=("mixed",), num_frames=50, height=180, width=320,
                       fps=25.0, dense_fps=5.0, source="folder"|"mp4"|None, state=REVIEWED,
                       pan=0.0, progress=None) -> Path
    SCENARIOS = ("crossing", "occlusion", "enter_leave", "mixed")
    STUFF_TRACKS: stuff track id -> VIPSeg category (1 sky, 2 wall, 3 grass, 4 road)

Why synthetic: every later stage (propagation, association, pre-annotation, scoring) needs a video
whose true segmentation is known exactly, including the hard cases of real footage - instances
that cross, occlude each other completely, enter and leave the frame, grow as they approach.
Regions carry noise textures (static in the world for stuff, attached to the object for things)
so optical flow and appearance matching have something to lock on to. Everything is a pure
function of the seed and parameters; the label map is rendered from the same masks as the image,
so it is exact. Track ids: stuff 1..4, things from 5 in scenario order. Every pixel belongs to a
track (no void) - a test that wants void sets it itself.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from annotator.project import FrameState, Project, SourceInfo, dense_source_indices

SCENARIOS = ("crossing", "occlusion", "enter_leave", "mixed")

# VIPSeg category ids (annotator.taxonomy.vipseg_taxonomy())
SKY, WALL, GRASS, ROAD = 28, 0, 15, 18
PERSON, CAR, DOG, BUS = 60, 48, 62, 49
STUFF_TRACKS: dict[int, int] = {1: SKY, 2: WALL, 3: GRASS, 4: ROAD}

_STUFF_COLOURS = {SKY: (120, 170, 235), WALL: (170, 120, 95), GRASS: (70, 150, 60), ROAD: (95, 95, 100)}


@dataclass(frozen=True)
class _Actor:
    """A thing instance: linear motion/scale between ``t0`` and ``t1`` (fractions of the clip).

    Positions are fractions of the frame (x of width, y of height, outside [0, 1] = off-frame);
    ``size`` is the half-height of the shape as a fraction of the frame height. Higher ``z`` is
    nearer the camera and is drawn over lower ones.
    """

    category: int
    start: tuple[float, float]
    end: tuple[float, float]
    size: tuple[float, float]
    z: int
    t0: float = 0.0
    t1: float = 1.0


def _scenario_actors(scenario: str, rng: np.random.Generator) -> list[_Actor]:
    """The scripted actors of a scenario, jittered a little by the seed."""

    def j(v: float, amount: float = 0.03) -> float:
        return float(v + rng.uniform(-amount, amount))

    if scenario == "crossing":
        return [
            _Actor(PERSON, (j(0.15), 0.68), (j(0.85), 0.70), (0.17, 0.17), z=1),
            _Actor(PERSON, (j(0.85), 0.72), (j(0.15), 0.72), (0.19, 0.20), z=2),
            _Actor(DOG, (j(0.30), 0.86), (j(0.70), 0.86), (0.08, 0.08), z=3),
        ]
    if scenario == "occlusion":
        return [  # a distant person is completely hidden by a bus for several frames
            _Actor(PERSON, (j(0.45), 0.62), (j(0.55), 0.62), (0.09, 0.09), z=1),
            _Actor(BUS, (-0.35, 0.72), (1.35, 0.72), (0.25, 0.25), z=2),
            _Actor(DOG, (j(0.80), 0.88), (j(0.65), 0.88), (0.07, 0.07), z=3),
        ]
    if scenario == "enter_leave":
        return [
            _Actor(DOG, (-0.12, 0.85), (j(0.45), 0.85), (0.08, 0.09), z=3),  # enters left
            _Actor(PERSON, (j(0.60), 0.68), (1.15, 0.68), (0.16, 0.16), z=2),  # leaves right
            _Actor(CAR, (1.35, 0.78), (-0.35, 0.78), (0.12, 0.14), z=1),  # crosses the whole frame
            _Actor(PERSON, (j(0.30), 0.66), (j(0.35), 0.66), (0.14, 0.14), z=1, t0=0.4, t1=1.0),  # appears
        ]
    if scenario == "mixed":
        return [
            _Actor(PERSON, (j(0.20), 0.66), (j(0.75), 0.66), (0.14, 0.14), z=1),  # walks right
            _Actor(PERSON, (j(0.80), 0.60), (j(0.55), 0.78), (0.10, 0.22), z=3),  # approaches, grows
            _Actor(CAR, (1.30, 0.80), (-0.30, 0.80), (0.12, 0.13), z=2),  # crosses, occludes
            _Actor(DOG, (-0.10, 0.90), (j(0.40), 0.88), (0.07, 0.08), z=4),  # enters
        ]
    raise ValueError(f"unknown demo scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")


# ----------------------------------------------------------------- shapes (local coordinates)
# u, v are pixel offsets from the actor centre divided by its size (half-height in pixels).

def _person(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    body = (u / 0.32) ** 2 + ((v - 0.15) / 0.62) ** 2 <= 1.0
    legs = (np.abs(np.abs(u) - 0.13) <= 0.09) & (v >= 0.5) & (v <= 1.0)
    head = u**2 + (v + 0.72) ** 2 <= 0.2**2
    return body | legs | head


def _car(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    body = (np.abs(u) <= 1.7) & (v >= -0.15) & (v <= 0.55)
    cabin = (np.abs(u + 0.1) <= 0.95 - 0.5 * np.clip(-v - 0.15, 0, None)) & (v >= -0.75) & (v < -0.15)
    wheels = ((np.abs(u) - 1.05) ** 2 + (v - 0.6) ** 2) <= 0.3**2
    return body | cabin | wheels


def _bus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    body = (np.abs(u) <= 2.1) & (v >= -0.85) & (v <= 0.55)
    wheels = ((np.abs(u) - 1.4) ** 2 + (v - 0.6) ** 2) <= 0.28**2
    return body | wheels


def _dog(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    body = (u / 0.85) ** 2 + (v / 0.45) ** 2 <= 1.0
    head = (u - 0.95) ** 2 + (v + 0.45) ** 2 <= 0.35**2
    legs = (np.abs(np.abs(u) - 0.5) <= 0.1) & (v >= 0.2) & (v <= 1.0)
    tail = (np.abs(v + 0.2 + 0.5 * (u + 0.85)) <= 0.08) & (u >= -1.3) & (u <= -0.8)
    return body | head | legs | tail


_SHAPES: dict[int, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], float]] = {
    PERSON: (_person, 1.0), CAR: (_car, 1.8), BUS: (_bus, 2.2), DOG: (_dog, 1.4)}  # shape, half-width


def _noise_texture(rng: np.random.Generator, h: int, w: int, base: tuple[int, int, int],
                   contrast: float = 40.0) -> np.ndarray:
    """Multi-octave value noise around a base colour: enough structure for optical flow."""
    out = np.zeros((h, w), np.float32)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        gh, gw = max(2, h * cells // max(h, w)), max(2, w * cells // max(h, w))
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += weight * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.standard_normal((h, w)).astype(np.float32) * 0.25
    out = (out + fine) * contrast
    tint = rng.uniform(0.7, 1.3, 3).astype(np.float32)
    img = np.asarray(base, np.float32)[None, None, :] + out[..., None] * tint[None, None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


class DemoScene:
    """Renders frame ``t`` on demand, so benches can stream long high-resolution clips."""

    def __init__(self, seed: int = 0, num_frames: int = 50, height: int = 180, width: int = 320,
                 scenario: str = "mixed", fps: float = 25.0, pan: float = 0.0, noise: float = 2.0) -> None:
        if num_frames < 1 or height < 16 or width < 16:
            raise ValueError("demo video needs >= 1 frame and >= 16x16 pixels")
        self.seed, self.num_frames, self.height, self.width = seed, num_frames, height, width
        self.scenario, self.fps, self.pan, self.noise = scenario, float(fps), float(pan), float(noise)
        rng = np.random.default_rng(seed)
        self.actors = _scenario_actors(scenario, rng)
        self.tracks: dict[int, int] = dict(STUFF_TRACKS)
        self.actor_ids = list(range(5, 5 + len(self.actors)))
        for tid, actor in zip(self.actor_ids, self.actors, strict=True):
            self.tracks[tid] = actor.category
        self._build_background(rng)
        self._textures = [self._actor_texture(rng, a) for a in self.actors]

    def _build_background(self, rng: np.random.Generator) -> None:
        """A world wider than the frame (for ``pan``) split into sky / wall / grass / road."""
        h = self.height
        world_w = self.width + int(np.ceil(abs(self.pan) * max(self.num_frames - 1, 0))) + 1
        x = np.arange(world_w, dtype=np.float32)
        phase = rng.uniform(0, 2 * np.pi, 3)
        sky_wall = h * (0.28 + 0.06 * np.sin(x / world_w * 5 + phase[0]))
        wall_ground = h * (0.52 + 0.03 * np.sin(x / world_w * 9 + phase[1]))
        grass_road = h * (0.74 + 0.04 * np.sin(x / world_w * 4 + phase[2])) + (x - world_w / 2) * 0.05 * h / world_w
        y = np.arange(h, dtype=np.float32)[:, None]
        label = np.full((h, world_w), 4, np.uint16)  # road
        label[y < grass_road[None, :]] = 3
        label[y < wall_ground[None, :]] = 2
        label[y < sky_wall[None, :]] = 1
        img = np.zeros((h, world_w, 3), np.uint8)
        for tid, cat in STUFF_TRACKS.items():
            tex = _noise_texture(rng, h, world_w, _STUFF_COLOURS[cat], contrast=35.0)
            img[label == tid] = tex[label == tid]
        self._bg_img, self._bg_label = img, label

    def _actor_texture(self, rng: np.random.Generator, actor: _Actor) -> np.ndarray:
        base = tuple(int(c) for c in rng.integers(40, 220, 3))
        return _noise_texture(rng, 96, 96, base, contrast=55.0)  # type: ignore[arg-type]

    def actor_state(self, index: int, t: int) -> tuple[float, float, float] | None:
        """Centre (x, y) in pixels and size in pixels of actor ``index`` at frame ``t`` (None = absent)."""
        a = self.actors[index]
        p = t / max(self.num_frames - 1, 1)
        if p < a.t0 - 1e-9 or p > a.t1 + 1e-9:
            return None
        q = (p - a.t0) / max(a.t1 - a.t0, 1e-9)
        cx = (a.start[0] + q * (a.end[0] - a.start[0])) * self.width
        cy = (a.start[1] + q * (a.end[1] - a.start[1])) * self.height
        s = (a.size[0] + q * (a.size[1] - a.size[0])) * self.height
        return cx, cy, max(s, 2.0)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t`` as (HxWx3 uint8 RGB, HxW uint16 track ids)."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} out of range 0..{self.num_frames - 1}")
        h, w = self.height, self.width
        off = int(round(abs(self.pan) * t)) if self.pan >= 0 else int(round(abs(self.pan) * (self.num_frames - 1 - t)))
        img = self._bg_img[:, off:off + w].copy()
        label = self._bg_label[:, off:off + w].copy()
        for k in sorted(range(len(self.actors)), key=lambda k: self.actors[k].z):
            state = self.actor_state(k, t)
            if state is None:
                continue
            cx, cy, s = state
            shape, half_w = _SHAPES[self.actors[k].category]
            x0, x1 = max(int(cx - half_w * s) - 1, 0), min(int(cx + half_w * s) + 2, w)
            y0, y1 = max(int(cy - 1.1 * s) - 1, 0), min(int(cy + 1.1 * s) + 2, h)
            if x0 >= x1 or y0 >= y1:
                continue
            u = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / s
            v = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / s
            mask = shape(u, v)
            tex = self._textures[k]
            tn = tex.shape[0]
            ti = np.clip(((v + 1.1) / 2.2 * tn).astype(np.int32), 0, tn - 1)
            tj = np.clip(((u + half_w) / (2 * half_w) * tn).astype(np.int32), 0, tn - 1)
            patch = tex[np.broadcast_to(ti, mask.shape), np.broadcast_to(tj, mask.shape)]
            img[y0:y1, x0:x1][mask] = patch[mask]
            label[y0:y1, x0:x1][mask] = self.actor_ids[k]
        if self.noise > 0:
            nrng = np.random.default_rng((self.seed, t))
            img = np.clip(img.astype(np.float32) + nrng.normal(0, self.noise, img.shape), 0, 255).astype(np.uint8)
        return img, label


@dataclass
class DemoVideo:
    """A rendered synthetic clip at its source frame rate, with exact ground truth."""

    frames: list[np.ndarray]
    labels: list[np.ndarray]
    tracks: dict[int, int]
    fps: float
    scenario: str = "mixed"
    seed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    def dense_indices(self, dense_fps: float = 5.0) -> list[int]:
        """Source indices of the dense samples, by the same rule as import (round(k * fps / dense_fps))."""
        return dense_source_indices(self.num_frames, self.fps, dense_fps)


def generate_demo_video(seed: int = 0, num_frames: int = 50, height: int = 180, width: int = 320,
                        scenario: str = "mixed", fps: float = 25.0, pan: float = 0.0,
                        noise: float = 2.0) -> DemoVideo:
    """Render a whole clip; tracks lists only ids that appear on at least one frame."""
    scene = DemoScene(seed, num_frames, height, width, scenario, fps, pan, noise)
    frames, labels = [], []
    seen: set[int] = set()
    for t in range(num_frames):
        img, lab = scene.render(t)
        frames.append(img)
        labels.append(lab)
        seen.update(int(i) for i in np.unique(lab))
    tracks = {tid: cat for tid, cat in scene.tracks.items() if tid in seen}
    return DemoVideo(frames, labels, tracks, float(fps), scenario, seed,
                     meta={"actor_ids": scene.actor_ids, "pan": pan})


def write_demo_source(demo: DemoVideo, path: str | Path, kind: str = "mp4") -> Path:
    """Write the clip as a video file (``kind="mp4"``/``"avi"``) or a folder of PNG frames.

    The PNG folder is lossless (flow tests see exactly the rendered frames); the mp4 is lossy and
    exists to exercise the OpenCV import path.
    """
    path = Path(path)
    if kind == "folder":
        path.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(demo.frames):
            # imencode + a plain write, not cv2.imwrite: imwrite returns False on a full disk and
            # the clip would silently miss frames; a Python write raises OSError (ENOSPC)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError(f"OpenCV cannot encode frame {t} as PNG")
            with open(path / f"frame_{t}.png", "wb") as fh:
                fh.write(buf.tobytes())
        return path
    fourcc = {"mp4": "mp4v", "avi": "MJPG", "mkv": "MJPG", "mov": "mp4v"}.get(kind)
    if fourcc is None:
        raise ValueError(f"unknown source kind {kind!r} (mp4, avi, mkv, mov or folder)")
    if path.suffix.lower() != f".{kind}":
        path = path.with_suffix(f".{kind}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), demo.fps, (demo.width, demo.height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path} with codec {fourcc}")
    try:
        for frame in demo.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    # VideoWriter drops frames silently when the disk fills up: check the file holds every frame
    cap = cv2.VideoCapture(str(path))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    if count != demo.num_frames:

        raise OSError(errno.EIO, f"writing the clip failed ({count} of {demo.num_frames} frames in the file; "
                                 "is the disk full?)", str(path))
    return path


def write_demo_project(path: str | Path, seed: int = 0, scenarios: Iterable[str] = ("mixed",),
                       num_frames: int = 50, height: int = 180, width: int = 320, fps: float = 25.0,
                       dense_fps: float = 5.0, source: str | None = "folder", state=None,
                       pan: float = 0.0, progress=None) -> Path:
    """Create a ground-truth project: one video per scenario, every dense frame labelled.

    Video ids are ``demo_<scenario>``; frames are sampled at ``dense_fps`` like an import, with
    keyframes every ``key_every`` dense frames. With ``source`` set, the full-rate clip is written
    under ``<project>/sources/`` and linked as the video's source so ``read_source_frames`` works.
    Labels are written with ``state`` (default REVIEWED: this is ground truth). ``progress`` is an
    ``annotator.jobs.ProgressFn`` called once per video.
    """

    state = FrameState.REVIEWED if state is None else FrameState(state)
    existed = Path(path).exists()
    try:
        proj = Project.create(path)
    except BaseException:
        if not existed:  # e.g. disk full while writing project.json: no half project left
            shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        _write_demo_videos(proj, seed, list(scenarios), num_frames, height, width, fps, dense_fps, source, state,
                           pan, progress)
    except BaseException:
        # all or nothing: a failure (disk full, cancel) leaves no project with missing frames behind
        shutil.rmtree(proj.path, ignore_errors=True)
        if existed:
            Path(path).mkdir(parents=True, exist_ok=True)
        raise
    return proj.path


def _write_demo_videos(proj, seed: int, scenarios: list[str], num_frames: int, height: int, width: int,
                       fps: float, dense_fps: float, source: str | None, state, pan: float, progress) -> None:

    for n, scenario in enumerate(scenarios):
        if progress:
            progress(n, len(scenarios), scenario)
        demo = generate_demo_video(seed + n, num_frames, height, width, scenario, fps, pan)
        idx = demo.dense_indices(dense_fps)
        src = SourceInfo(kind="none", fps=fps, num_source_frames=num_frames, source_indices=idx,
                         original_size=(height, width))
        if source is not None:
            folder = proj.path / "sources"
            written = write_demo_source(demo, folder / (f"demo_{scenario}" if source == "folder"
                                                        else f"demo_{scenario}.{source}"), source)
            src.kind = "folder" if source == "folder" else "video"
            src.path = str(written.resolve())
            if source == "folder":
                src.files = [f"frame_{t}.png" for t in range(num_frames)]
        video = proj.create_video(f"demo_{scenario}", [f"{i:05d}" for i in range(len(idx))], height, width,
                                  source=src)
        try:
            for tid in sorted(demo.tracks):
                video.add_track(tid, demo.tracks[tid])
            for i, s in enumerate(idx):
                video.write_frame_image(i, demo.frames[s])
                video.write_label(i, demo.labels[s], state=state)
        except BaseException:
            video.discard()  # never close(): closing marks the video complete
            raise
        video.close()
    if progress:
        progress(len(scenarios), len(scenarios), "done")
