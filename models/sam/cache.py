"""SAM image embeddings and their cache: memory LRU (float16) over files keyed by content.

Why keyed by (model kind, checkpoint sha256, frame hash): a changed frame or other weights can
never reuse a stale embedding, and a cached one loads in milliseconds instead of the seconds the
image encoder costs on a CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBED_VERSION = 1  # bump when the cached file layout changes
FEATURE_SHAPE = (1, 256, 64, 64)  # SAM image embedding (every size: vit_b/l/h share the neck)


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
    #: SAM 2 only: the decoder's finer feature maps (float16 1x32xS/4xS/4, 1x64xS/8xS/8); () for SAM 1
    high_res: tuple[np.ndarray, ...] = ()

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes + sum(f.nbytes for f in self.high_res))



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
                                    (int(z["input_size"][0]), int(z["input_size"][1])), key,
                                    tuple(z[n].astype(np.float16, copy=False) for n in ("high_res_0", "high_res_1")
                                          if n in z.files))
                if emb.features.ndim != 4 or emb.features.shape[:2] != FEATURE_SHAPE[:2]:  # SAM 2 tests: 16x16
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
        emb = Embedding(emb.features.astype(np.float16, copy=False), emb.original_size, emb.input_size, key,
                        tuple(f.astype(np.float16, copy=False) for f in emb.high_res))
        path = self._path(key)
        if path is not None:
            tmp = path.with_name(path.stem + f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(tmp, version=EMBED_VERSION, features=emb.features,
                         original_size=np.array(emb.original_size), input_size=np.array(emb.input_size),
                         **{f"high_res_{i}": f for i, f in enumerate(emb.high_res)})
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


def decoder_path(cache_dir: str | os.PathLike[str], model_key: str, tag: str) -> Path:
    """Where the ONNX decoder exported from one checkpoint lives: beside that checkpoint's embeddings
    (``cache_dir/<model key>/decoder-<tag>.onnx``; :meth:`EmbeddingCache.prune` counts only ``.npz``).
    See :mod:`models.sam.onnx_decoder`."""
    return Path(cache_dir) / model_key / f"decoder-{tag}.onnx"
