"""Segment Anything as an annotation tool: clicks/box -> 3 candidate masks, with cached embeddings.

Why the split into encoder and decoder halves: SAM's image encoder costs seconds per frame on a
CPU while the prompt decoder costs ~0.1 s, so the tool is only interactive if the embedding is
ready before the user clicks. Embeddings are therefore computed by a background
:class:`EmbeddingWorker` in priority order (current frame, then keyframes, then the rest), kept
as float16 in a memory LRU and on disk keyed by (model kind, checkpoint sha256, frame hash) -
a changed frame or other weights can never reuse a stale embedding - and a cached one loads in
milliseconds.

Predictions follow SAM's own demo: positive/negative clicks and/or a box, three candidate masks
with predicted IoU scores to cycle through, and the chosen candidate's low-resolution logits fed
back as ``mask_input`` for the next click.

Interactivity on 2 cores: the decoder runs with one torch thread (two OpenMP threads on busy
cores measured ~4x slower), full-size masks are upsampled only for the candidate shown, and the
worker thread runs at a lower OS priority so that a click is not starved by the encoder.

No network access: the checkpoint comes from ``models.weights``; without one the tool reports
why it is unavailable (:func:`sam_availability`, :func:`open_sam_engine`) and the weight-free
tools still work.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import InputError
from annotator.jobs import Cancelled, CancelToken, ProgressFn, check_cancel
from models.weights import (
    CheckpointError,
    availability,
    compare_state_dict,
    load_state_dict,
    load_state_dict_of,
    resolve_checkpoint,
    sha256_file,
)

SAM_KINDS = ("sam_vit_b", "sam_vit_l", "sam_vit_h")
EMBED_VERSION = 1  # bump when the cached file layout changes
FEATURE_SHAPE = (1, 256, 64, 64)  # SAM image embedding (every size: vit_b/l/h share the neck)


def sam_availability(cli_path: str | os.PathLike[str] | None = None, settings: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None, kinds: Sequence[str] = SAM_KINDS) -> tuple[bool, str, str]:
    """``(available, kind, reason)``: the first SAM kind with a configured, existing checkpoint.

    The GUI greys out the SAM tool and shows ``reason`` when nothing is configured.
    """
    reasons = []
    for kind in kinds:
        ok, reason = availability(kind, cli_path, settings, env)
        if ok:
            return True, kind, reason
        reasons.append(reason)
    return False, "", ("SAM tool unavailable: " + reasons[0]) if reasons else "SAM tool unavailable"


def frame_hash(image: np.ndarray) -> str:
    """Content hash of an RGB frame (shape included), the embedding cache key part for the image."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Embedding:
    """SAM image features of one frame and the sizes needed to map prompts onto them."""

    features: np.ndarray  # float16 (1, 256, 64, 64)
    original_size: tuple[int, int]  # (H, W) of the frame
    input_size: tuple[int, int]  # (h, w) after resizing the long side to 1024
    key: str = ""

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


class SamPrediction:
    """Candidate masks for one prompt (best-scored first is *not* implied: use :meth:`best`).

    Why lazy full-size masks: upsampling a 256x256 logit map to 720p costs tens of milliseconds,
    and the canvas shows one candidate at a time; :meth:`mask` upsamples only the one asked for.
    """

    def __init__(self, scores: np.ndarray, logits: np.ndarray,
                 upsample: Callable[[np.ndarray], np.ndarray] | None = None,
                 masks: np.ndarray | None = None) -> None:
        self.scores = np.asarray(scores, np.float32)  # (N,) predicted IoU; N = 3 with multimask, else 1
        self.logits = np.asarray(logits, np.float32)  # (N, 256, 256): feed one back as prev_logits
        if upsample is None and masks is None:
            raise ValueError("SamPrediction needs masks or an upsample function")
        self._upsample = upsample
        self._masks: dict[int, np.ndarray] = {} if masks is None else {i: m for i, m in enumerate(masks)}

    def best(self) -> int:
        return int(np.argmax(self.scores))

    def __len__(self) -> int:
        return len(self.scores)

    def mask(self, i: int) -> np.ndarray:
        """Candidate ``i`` as a bool mask of the frame's size (computed on first use)."""
        i = range(len(self))[i]
        if i not in self._masks:
            assert self._upsample is not None
            self._masks[i] = self._upsample(self.logits[i])
        return self._masks[i]

    @property
    def masks(self) -> np.ndarray:
        """All candidates, bool (N, H, W)."""
        return np.stack([self.mask(i) for i in range(len(self))])


# --------------------------------------------------------------------------- model


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads; torch keeps this setting per calling thread."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class SamModel:
    """A SAM network built from a validated checkpoint (CPU by default), encoder and decoder halves."""

    #: torch threads for the prompt decoder (set per calling thread, restored after). ``"auto"``: all
    #: cores while no embedding is being computed (2 threads: 75 ms vs 124 ms per click on 2 idle
    #: cores), one thread while the background encoder holds the cores (2 OpenMP threads on 2 busy
    #: cores measured ~4x slower than one).
    DECODER_THREADS: int | str | None = "auto"

    def __init__(self, checkpoint: str | os.PathLike[str], kind: str | None = "sam_vit_b", device: str = "cpu",
                 decoder_threads: int | str | None = DECODER_THREADS) -> None:
        """``kind=None`` takes the SAM size from the checkpoint itself (e.g. ``VPS_SAM_CHECKPOINT``)."""
        import torch
        from segment_anything import sam_model_registry

        self.checkpoint = Path(checkpoint)
        if kind is None:
            kind, state = load_state_dict_of(self.checkpoint, SAM_KINDS)
        elif kind not in SAM_KINDS:
            raise CheckpointError(f"unknown SAM kind {kind!r}; use one of {', '.join(SAM_KINDS)}")
        else:
            state = load_state_dict(self.checkpoint, kind)
        self.kind = kind
        self.sha256 = sha256_file(self.checkpoint)
        net = sam_model_registry[kind[len("sam_"):]](checkpoint=None)
        problem = compare_state_dict(net.state_dict(), state)
        if problem:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not fit a {kind} network: {problem}")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not fit a {kind} network: "
                                  f"{str(e).splitlines()[0]}") from e
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        from segment_anything.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(net.image_encoder.img_size)
        self._decoder_lock = threading.Lock()
        self.decoder_threads = decoder_threads  # None: leave torch's setting alone; "auto": see above
        self._encoding = 0  # embeddings in progress (any thread); read by _decoder_thread_count
        self._encoding_lock = threading.Lock()
        self._pe: Any = None

    def _decoder_thread_count(self) -> int | None:
        if self.decoder_threads != "auto":
            return self.decoder_threads  # type: ignore[return-value]
        return 1 if self._encoding else (os.cpu_count() or 1)

    def _dense_pe(self) -> Any:
        """The prompt encoder's positional encoding of the 64x64 grid: constant, so computed once."""
        if self._pe is None:
            self._pe = self.net.prompt_encoder.get_dense_pe()
        return self._pe

    @property
    def model_key(self) -> str:
        return f"{self.kind}-{self.sha256[:16]}"

    def embed(self, image: np.ndarray, cancel: CancelToken | None = None) -> Embedding:
        """Run the image encoder on an RGB uint8 frame; ``cancel`` is checked between encoder blocks."""
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"SAM needs an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        hooks = []
        if cancel is not None:
            me = threading.get_ident()

            def pre_hook(module: Any, args: Any) -> None:
                if threading.get_ident() == me:  # another thread's embed has its own token
                    check_cancel(cancel)

            hooks = [b.register_forward_pre_hook(pre_hook) for b in self.net.image_encoder.blocks]
        with self._encoding_lock:
            self._encoding += 1
        try:
            check_cancel(cancel)
            with torch.inference_mode():
                feats = self.net.image_encoder(self.net.preprocess(x))
        finally:
            with self._encoding_lock:
                self._encoding -= 1
            for h in hooks:
                h.remove()
        return Embedding(feats.cpu().numpy().astype(np.float16), (image.shape[0], image.shape[1]),
                         (int(resized.shape[0]), int(resized.shape[1])))

    def predict(self, emb: Embedding, points: Sequence[tuple[float, float]] | np.ndarray | None = None,
                labels: Sequence[int] | np.ndarray | None = None, box: Sequence[float] | None = None,
                prev_logits: np.ndarray | None = None, multimask: bool = True) -> SamPrediction:
        """Decode masks for clicks (``labels`` 1 = positive, 0 = negative) and/or a box (x0, y0, x1, y1).

        ``prev_logits`` (256x256, one candidate of the previous :class:`SamPrediction`) refines the
        previous result as in SAM's demo. Clicks outside the frame and boxes outside it are errors.
        """
        import torch

        from annotator.editing.tools import check_box

        h, w = emb.original_size
        has_points = points is not None and len(points) > 0
        if not has_points and box is None:
            raise InputError("SAM needs at least one click or a box")
        coords_t = labels_t = box_t = mask_t = None
        if has_points:
            pts = np.asarray(points, np.float64).reshape(-1, 2)
            lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise InputError(f"SAM: {len(pts)} clicks but {len(lab)} labels")
            if not np.isin(lab, (0, 1)).all():
                raise InputError("SAM click labels must be 1 (positive) or 0 (negative)")
            if not np.isfinite(pts).all() or (pts[:, 0] < -0.5).any() or (pts[:, 1] < -0.5).any() \
                    or (pts[:, 0] > w - 0.5).any() or (pts[:, 1] > h - 0.5).any():
                raise InputError(f"SAM: a click lies outside the {w}x{h} frame")
            c = self.transform.apply_coords(pts, (h, w))
            coords_t = torch.as_tensor(c, dtype=torch.float32, device=self.device)[None]
            labels_t = torch.as_tensor(lab, dtype=torch.int64, device=self.device)[None]
        if box is not None:
            x0, y0, x1, y1 = check_box(box, (h, w), "SAM box")
            b = self.transform.apply_boxes(np.array([[x0, y0, x1, y1]], np.float64), (h, w))
            box_t = torch.as_tensor(b, dtype=torch.float32, device=self.device)
        if prev_logits is not None:
            pl = np.asarray(prev_logits, np.float32)
            if pl.shape[-2:] != (256, 256) or pl.size != 256 * 256:
                raise InputError(f"SAM: previous logits must be 256x256, got {pl.shape}")
            mask_t = torch.as_tensor(pl.reshape(1, 1, 256, 256), device=self.device)
        feats = torch.as_tensor(emb.features, device=self.device).float()
        net = self.net
        with self._decoder_lock, torch.inference_mode(), _torch_threads(self._decoder_thread_count()):
            sparse, dense = net.prompt_encoder(points=(coords_t, labels_t) if coords_t is not None else None,
                                               boxes=box_t, masks=mask_t)
            low, iou = net.mask_decoder(image_embeddings=feats, image_pe=self._dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=multimask)
        return SamPrediction(iou[0].cpu().numpy(), low[0].cpu().numpy(),
                             upsample=lambda logit: self.upsample(logit, emb))

    def upsample(self, logit: np.ndarray, emb: Embedding) -> np.ndarray:
        """One 256x256 low-res logit map -> bool mask at the frame's size (SAM's own postprocessing)."""
        import torch

        t = torch.as_tensor(np.ascontiguousarray(logit, np.float32), device=self.device)[None, None]
        with torch.inference_mode(), _torch_threads(self._decoder_thread_count()):
            full = self.net.postprocess_masks(t, emb.input_size, emb.original_size)
        return (full[0, 0] > self.net.mask_threshold).cpu().numpy()


# --------------------------------------------------------------------------- cache


class EmbeddingCache:
    """Embeddings in a memory LRU (float16) backed by ``cache_dir/<model key>/<frame hash>.npz``.

    A 720p frame's embedding is 2 MB, so the disk part is bounded too (``max_disk_bytes``, least
    recently used files go first; a hit refreshes the file's mtime). A cache that cannot be written
    (disk full, read-only project) degrades to memory only instead of failing the embedding.
    """

    PRUNE_EVERY = 16  # puts between disk-budget checks

    def __init__(self, cache_dir: str | os.PathLike[str] | None, memory_items: int = 16,
                 max_disk_bytes: int = 4 << 30) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory_items = memory_items
        self.max_disk_bytes = max_disk_bytes
        self._puts = 0
        self.write_error = ""  # last disk write failure (shown by the GUI), empty if none
        self._mem: OrderedDict[str, Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        model_key, img = key.split("/", 1)
        return self.cache_dir / model_key / f"{img}.npz"

    def _remember(self, key: str, emb: Embedding) -> None:
        self._mem[key] = emb
        self._mem.move_to_end(key)
        while len(self._mem) > self.memory_items:
            self._mem.popitem(last=False)

    def get(self, key: str) -> Embedding | None:
        with self._lock:
            emb = self._mem.get(key)
            if emb is not None:
                self._mem.move_to_end(key)
                self.hits += 1
                return emb
        path = self._path(key)
        if path is not None and path.exists():
            try:
                with np.load(path) as z:
                    if int(z["version"]) != EMBED_VERSION:
                        raise ValueError("old layout")
                    emb = Embedding(z["features"].astype(np.float16, copy=False),
                                    (int(z["original_size"][0]), int(z["original_size"][1])),
                                    (int(z["input_size"][0]), int(z["input_size"][1])), key)
                if emb.features.shape != FEATURE_SHAPE:
                    raise ValueError(f"features of shape {emb.features.shape}")
            except (OSError, ValueError, KeyError, EOFError, IndexError, TypeError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)  # damaged cache entry: recompute
                emb = None
            if emb is not None:
                with contextlib.suppress(OSError):
                    os.utime(path)  # LRU order of the disk budget
                with self._lock:
                    self._remember(key, emb)
                    self.hits += 1
                return emb
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: str, emb: Embedding) -> Embedding:
        emb = Embedding(emb.features.astype(np.float16, copy=False), emb.original_size, emb.input_size, key)
        path = self._path(key)
        if path is not None:
            tmp = path.with_name(path.stem + f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(tmp, version=EMBED_VERSION, features=emb.features,
                         original_size=np.array(emb.original_size), input_size=np.array(emb.input_size))
                os.replace(tmp, path)
            except OSError as e:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                self.write_error = f"SAM embedding cache {self.cache_dir} not writable ({e.strerror or e})"
            self._puts += 1
            if self._puts % self.PRUNE_EVERY == 1:
                self.prune()
        with self._lock:
            self._remember(key, emb)
        return emb

    def disk_files(self) -> list[Path]:
        if self.cache_dir is None or not self.cache_dir.exists():
            return []
        return [p for p in self.cache_dir.glob("*/*.npz") if not p.name.endswith(".tmp.npz")]

    def prune(self) -> int:
        """Delete least recently used files until the disk part fits ``max_disk_bytes``; returns bytes freed."""
        entries = []
        for p in self.disk_files():
            with contextlib.suppress(OSError):
                st = p.stat()
                entries.append((st.st_mtime_ns, st.st_size, p))
        total = sum(e[1] for e in entries)
        freed = 0
        for _, size, p in sorted(entries, key=lambda e: e[0]):
            if total - freed <= self.max_disk_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                freed += size
        return freed

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()


class SamEngine:
    """Model + cache: ``embedding(image)`` returns a cached embedding or computes it; ``predict`` decodes."""

    def __init__(self, model: SamModel, cache_dir: str | os.PathLike[str] | None, memory_items: int = 16) -> None:
        self.model = model
        self.cache = EmbeddingCache(cache_dir, memory_items)

    def key(self, image: np.ndarray) -> str:
        return f"{self.model.model_key}/{frame_hash(image)}"

    def cached(self, image: np.ndarray) -> Embedding | None:
        return self.cache.get(self.key(image))

    def embedding(self, image: np.ndarray, cancel: CancelToken | None = None) -> Embedding:
        key = self.key(image)
        emb = self.cache.get(key)
        if emb is None:
            emb = self.cache.put(key, self.model.embed(image, cancel))
        return emb

    def predict(self, emb: Embedding, **prompt: Any) -> SamPrediction:
        return self.model.predict(emb, **prompt)


def embedding_order(num_frames: int, current: int | None = None, keyframes: Iterable[int] = ()) -> list[int]:
    """Frames in the order embeddings are wanted: current, keyframes in order, then the rest."""
    order: list[int] = []
    seen: set[int] = set()
    for f in ([current] if current is not None else []) + list(keyframes) + list(range(num_frames)):
        if f is not None and 0 <= int(f) < num_frames and int(f) not in seen:
            seen.add(int(f))
            order.append(int(f))
    return order


def precompute_embeddings(engine: SamEngine, load_image: Callable[[int], np.ndarray], frames: Sequence[int],
                          progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> int:
    """Embed ``frames`` into the engine's cache (e.g. a video's keyframes overnight); returns how many
    were computed (cache hits cost nothing). Raises :class:`Cancelled` when ``cancel`` is set."""
    computed = 0
    for n, f in enumerate(frames):
        check_cancel(cancel)
        if progress is not None:
            progress(n, len(frames), f"frame {f}")
        image = load_image(f)
        if engine.cached(image) is None:
            engine.embedding(image, cancel)
            computed += 1
    if progress is not None:
        progress(len(frames), len(frames), "done")
    return computed


def default_cache_dir(project_path: str | os.PathLike[str]) -> Path:
    """Where a project keeps SAM embeddings (shared by its videos: entries are keyed by frame content)."""
    return Path(project_path) / "cache" / "sam_embeddings"


def open_sam_engine(cache_dir: str | os.PathLike[str] | None, cli_path: str | os.PathLike[str] | None = None,
                    settings: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                    device: str = "cpu", memory_items: int = 16) -> SamEngine:
    """Build the SAM engine from the configured checkpoint (flag > env > settings), validated.

    Raises :class:`CheckpointError` saying why SAM is unavailable and how to configure it; the
    caller (GUI) disables the SAM tool with that message. Never downloads anything.
    """
    ok, kind, reason = sam_availability(cli_path, settings, env)
    if not ok:
        raise CheckpointError(reason)
    src = resolve_checkpoint(kind, cli_path, settings, env)
    assert src is not None
    # a generic source (flag, VPS_SAM_CHECKPOINT) may hold any size: let the file say which
    specific = src.origin.startswith("settings") or src.origin.endswith(f"VPS_{kind.upper()}_CHECKPOINT")
    return SamEngine(SamModel(src.path, kind if specific else None, device), cache_dir, memory_items)


# --------------------------------------------------------------------------- background worker


class EmbeddingWorker:
    """Background thread computing embeddings in priority order; the GUI never waits on the encoder.

    :meth:`schedule` replaces the queue (current frame first, then keyframes in order, then the
    rest); :meth:`cancel` stops the running computation at the next encoder block and empties the
    queue. ``on_ready(frame)`` is called from the worker thread (the GUI re-emits it as a signal).
    """

    def __init__(self, engine: SamEngine, load_image: Callable[[int], np.ndarray],
                 on_ready: Callable[[int], None] | None = None,
                 on_error: Callable[[int, Exception], None] | None = None, nice: int = 10) -> None:
        """``nice`` lowers the OS priority of the worker thread (and of the torch threads it starts)
        so that SAM clicks decoded on the GUI thread are not starved by the encoder on 2 cores."""
        self.engine = engine
        self.nice = nice
        self.thread_nice: int | None = None  # the worker thread's niceness once it runs (Linux)
        self.load_image = load_image
        self.on_ready = on_ready
        self.on_error = on_error
        self._heap: list[tuple[int, int, int]] = []  # (priority, seq, frame)
        self._queued: dict[int, int] = {}  # frame -> seq of its live heap entry
        self._seq = 0
        self._keys: dict[int, str] = {}  # frame -> cache key of the embedding computed for it
        self._cond = threading.Condition()
        self._token = CancelToken()
        self._running: int | None = None
        self._stop = False
        self.computed = 0
        self._thread = threading.Thread(target=self._run, name="sam-embeddings", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- queue control

    def schedule(self, current: int | None, keyframes: Iterable[int] = (), others: Iterable[int] = ()) -> None:
        """Replace the queue: ``current`` first, then ``keyframes`` in order, then ``others``."""
        order: list[int] = []
        seen: set[int] = set()
        for f in ([current] if current is not None else []) + list(keyframes) + list(others):
            if f not in seen:
                seen.add(f)
                order.append(int(f))
        with self._cond:
            self._heap.clear()
            self._queued.clear()
            for prio, f in enumerate(order):
                if f in self._keys or f == self._running:
                    continue
                self._push(prio, f)
            self._cond.notify_all()

    def request(self, frame: int) -> None:
        """Put ``frame`` at the front of the queue (the user just moved to it)."""
        with self._cond:
            if frame in self._keys or frame == self._running:
                return
            self._push(-1 - self._seq, frame)
            self._cond.notify_all()

    def _push(self, prio: int, frame: int) -> None:
        self._seq += 1
        self._queued[frame] = self._seq
        heapq.heappush(self._heap, (prio, self._seq, frame))

    def cancel(self) -> None:
        """Stop the running embedding (at its next encoder block) and drop everything queued."""
        with self._cond:
            self._heap.clear()
            self._queued.clear()
            self._token.cancel()
            self._cond.notify_all()

    def stop(self, timeout: float | None = 10.0) -> None:
        with self._cond:
            self._stop = True
        self.cancel()
        self._thread.join(timeout)

    @property
    def pending(self) -> list[int]:
        with self._cond:
            return [f for _, s, f in sorted(self._heap) if self._queued.get(f) == s]

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._running is None and not self._queued

    # ----------------------------------------------------------------- results

    def get(self, frame: int) -> Embedding | None:
        """The embedding of ``frame`` if it is ready (memory or disk), else ``None``; never computes."""
        key = self._keys.get(frame)
        if key is not None:
            emb = self.engine.cache.get(key)
            if emb is not None:
                return emb
            with self._cond:  # evicted from memory and not on disk: compute it again when asked
                self._keys.pop(frame, None)
        emb = self.engine.cached(self.load_image(frame))
        if emb is not None:
            with self._cond:
                self._keys[frame] = emb.key
        return emb

    def wait(self, frame: int, timeout: float | None = None) -> Embedding | None:
        """Block until ``frame`` is embedded (requesting it first); ``None`` on timeout or cancel."""
        emb = self.get(frame)
        if emb is not None:
            return emb
        self.request(frame)
        with self._cond:
            ok = self._cond.wait_for(lambda: frame in self._keys or (frame not in self._queued
                                                                     and self._running != frame), timeout)
        return self.get(frame) if ok else None

    # ----------------------------------------------------------------- thread

    def _next(self) -> int | None:
        while self._heap:
            _, seq, f = heapq.heappop(self._heap)
            if self._queued.get(f) == seq:
                del self._queued[f]
                return f
        return None

    def _lower_priority(self) -> None:
        """Per-thread niceness (Linux); set before the first torch call so its OpenMP pool inherits it."""
        if not self.nice or not hasattr(os, "setpriority"):
            return
        with contextlib.suppress(OSError, AttributeError, ValueError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
            self.thread_nice = os.getpriority(os.PRIO_PROCESS, tid)

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                frame = None
                while not self._stop:
                    frame = self._next()
                    if frame is not None:
                        break
                    self._cond.wait()
                if self._stop:
                    return
                self._running = frame
                if self._token.cancelled:
                    self._token = CancelToken()
                token = self._token
            assert frame is not None
            try:
                emb = self.engine.embedding(self.load_image(frame), cancel=token)
            except Cancelled:
                emb = None
            except Exception as e:  # noqa: BLE001 - report and carry on with the next frame
                emb = None
                if self.on_error is not None:
                    self.on_error(frame, e)
            with self._cond:
                self._running = None
                if emb is not None:
                    self._keys[frame] = emb.key
                    self.computed += 1
                self._cond.notify_all()
            if emb is not None and self.on_ready is not None:
                self.on_ready(frame)
