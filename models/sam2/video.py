"""SAM 2's video predictor run on one gap at a time: masks in on one frame, per-object scores out.

Why not the package's ``init_state(video_path)``: it loads a whole video (or folder) onto the
device and its output dict keeps every frame's memory, which is what makes the stock predictor
hold tens of gigabytes for minutes of video (sam2 issue 196). Here an inference state holds only
the frames of one gap (``uint8`` frames, turned into network input one at a time by the package's
own ``SAM2Transforms``), video and state live on the CPU (``offload_video_to_cpu`` /
``offload_state_to_cpu``), and after every frame the non-conditioning memory is cut to the
``max_memory_frames`` most recent frames. With the released configs (``num_maskmem`` 7, at most
16 object pointers, temporal stride 1) a cap of 16 drops nothing the network would read, so the
output equals the uncapped run while memory stays flat.

The state's layout follows ``SAM2VideoPredictor.init_state`` of sam2 1.1.0 (the pinned version);
every network step (mask prompts, memory encoder, propagation, object pointers) is the package's.
The image-encoder output of a gap's frames is kept (LRU, ``max_cached_features`` frames) so the
backward pass over a gap does not encode its frames a second time.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotator.jobs import CancelToken, check_cancel
from models.sam2.build import autocast, default_device, load_network


@dataclass
class VideoConfig:
    """Bounds of one gap's run (defaults keep the released networks' output unchanged)."""

    max_memory_frames: int = 16  # non-conditioning frames kept per object (>= 16: nothing read is dropped)
    max_cached_features: int = 12  # image-encoder outputs kept between the two passes of a gap

    def __post_init__(self) -> None:
        if int(self.max_memory_frames) < 1 or int(self.max_cached_features) < 0:
            raise ValueError("SAM 2 video: max_memory_frames must be >= 1 and max_cached_features >= 0")


class _Frames(Sequence):
    """The gap's frames as the network input, made one at a time (only uint8 frames are held)."""

    def __init__(self, frames: Sequence[np.ndarray], transform: Callable[[np.ndarray], Any]) -> None:
        self.frames = frames
        self.transform = transform

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: Any) -> Any:
        return self.transform(np.ascontiguousarray(self.frames[i]))


def _digest(rgb: np.ndarray) -> bytes:
    a = np.ascontiguousarray(rgb)
    return hashlib.blake2b(a.data, digest_size=16).digest() + repr(a.shape).encode()


class Sam2VideoEngine:
    """Tracks masks through a short run of frames with the package's ``SAM2VideoPredictor``."""

    def __init__(self, network: Any, config: VideoConfig | None = None, name: str = "sam2", sha256: str = "") -> None:
        """``network``: a ``SAM2VideoPredictor`` (:func:`models.sam2.build.load_network` with
        ``video=True``; tests build random ones with :func:`models.sam2.build.build_network`)."""
        from sam2.utils.transforms import SAM2Transforms

        self.net = network.eval()
        self.config = config or VideoConfig()
        self.name = name
        self.sha256 = sha256
        self.device = next(network.parameters()).device
        self._transform = SAM2Transforms(resolution=int(network.image_size), mask_threshold=0.0)
        self._features: OrderedDict[bytes, tuple[Any, Any]] = OrderedDict()
        #: largest number of non-conditioning memory frames any object held during the last run
        self.peak_memory_frames = 0

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | None = None,
                        config: VideoConfig | None = None, image_size: int | None = None) -> Sam2VideoEngine:
        net, name, sha = load_network(path, video=True, device=device or default_device(), image_size=image_size)
        return cls(net, config, name, sha)

    @property
    def device_name(self) -> str:
        return str(self.device)

    # ------------------------------------------------------------------ state
    def _state(self, frames: Sequence[np.ndarray]) -> dict[str, Any]:
        """An inference state over ``frames`` laid out as ``SAM2VideoPredictor.init_state`` (1.1.0)."""
        import torch

        h, w = frames[0].shape[:2]
        cpu = torch.device("cpu")
        return {"images": _Frames(frames, self._transform), "num_frames": len(frames),
                "offload_video_to_cpu": True, "offload_state_to_cpu": True,
                "video_height": int(h), "video_width": int(w), "device": self.device, "storage_device": cpu,
                "point_inputs_per_obj": {}, "mask_inputs_per_obj": {}, "cached_features": {}, "constants": {},
                "obj_id_to_idx": OrderedDict(), "obj_idx_to_id": OrderedDict(), "obj_ids": [],
                "output_dict_per_obj": {}, "temp_output_dict_per_obj": {}, "frames_tracked_per_obj": {}}

    def _offer_features(self, state: dict[str, Any], keys: list[bytes], i: int) -> None:
        """Put frame ``i``'s kept encoder output where the package looks first."""
        if 0 <= i < len(keys) and keys[i] in self._features:
            self._features.move_to_end(keys[i])
            state["cached_features"] = {i: self._features[keys[i]]}

    def _keep_features(self, state: dict[str, Any], keys: list[bytes]) -> None:
        if self.config.max_cached_features <= 0:
            return
        for i, value in state["cached_features"].items():
            self._features[keys[i]] = value
            self._features.move_to_end(keys[i])
        while len(self._features) > self.config.max_cached_features:
            self._features.popitem(last=False)

    def clear_cache(self) -> None:
        """Forget kept encoder outputs (also evicted automatically, LRU)."""
        self._features.clear()

    def _cap_memory(self, state: dict[str, Any], frame: int, reverse: bool) -> None:
        """Drop non-conditioning memory beyond the ``max_memory_frames`` most recent frames."""
        cap = self.config.max_memory_frames
        for out in state["output_dict_per_obj"].values():
            mem = out["non_cond_frame_outputs"]
            if len(mem) > cap:
                order = sorted(mem, key=lambda f: abs(f - frame))
                for f in order[cap:]:
                    del mem[f]
            self.peak_memory_frames = max(self.peak_memory_frames, len(mem))

    # ------------------------------------------------------------------ tracking
    def track(self, frames: Sequence[np.ndarray], masks: Mapping[int, np.ndarray], reverse: bool = False,
              cancel: CancelToken | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Carry ``masks`` from the first frame (the last with ``reverse``) through ``frames``.

        Args:
            frames: HxWx3 uint8 RGB frames of one gap in time order, all of one size (held, not copied).
            masks: object id -> HxW bool mask on the prompt frame (frame 0, or the last with ``reverse``).
            reverse: track backward in time.
            cancel: checked before every frame; a cancel raises ``annotator.jobs.Cancelled`` and the
                state (memory, features of this run) is dropped.

        Yields:
            ``(position in frames, probs)`` for every frame except the prompt frame, in processing
            order: ``probs`` is float32 (K, H, W), the sigmoid of SAM 2's mask logits for the
            objects in the order of ``masks`` (an object SAM 2 calls absent scores 0).
        """
        import torch

        if not frames:
            return
        ids = list(masks)
        if not ids:
            raise ValueError("SAM 2 video: no object masks to track")
        start = len(frames) - 1 if reverse else 0
        keys = [_digest(f) for f in frames]
        state = self._state(frames)
        self.peak_memory_frames = 0
        try:
            with torch.inference_mode(), autocast(self.device):
                check_cancel(cancel)
                self._offer_features(state, keys, start)
                for oid in ids:
                    self.net.add_new_mask(state, start, oid, np.asarray(masks[oid], bool))
                self._keep_features(state, keys)
                run = self.net.propagate_in_video(state, start_frame_idx=start,
                                                  max_frame_num_to_track=len(frames), reverse=reverse)
                step = -1 if reverse else 1
                try:
                    while True:
                        nxt = None
                        check_cancel(cancel)
                        try:
                            f, _obj_ids, logits = next(run)
                        except StopIteration:
                            break
                        self._keep_features(state, keys)
                        self._cap_memory(state, f, reverse)
                        nxt = f + step
                        self._offer_features(state, keys, nxt)
                        if f == start:
                            continue
                        yield f, torch.sigmoid(logits[:, 0].float()).cpu().numpy().astype(np.float32)
                finally:
                    run.close()
        finally:
            state.clear()
