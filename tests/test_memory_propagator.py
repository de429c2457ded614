"""Memory propagator (propagation/memory.py): gaps, memory bank, object batching, checkpoint
handling and an end-to-end run on a demo project. Random weights: the checks are about
plumbing (shapes, ids, probabilities, memory), not segmentation quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.jobs import Cancelled, CancelToken
from models.stcn import STCN, build_stcn
from models.weights import CheckpointError
from propagation.base import Reference
from propagation.memory import (
    MemoryBank,
    MemoryConfig,
    MemoryPropagator,
    _gaps,
    _object_chunks,
    memory_availability,
)
from resources.demo import generate_demo_video


class DemoSource:
    """FrameSource over an in-memory demo clip."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def read_frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def read_source_frames(self, start: int, stop: int) -> list[np.ndarray]:
        return self.frames[start:stop + 1]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the tiny frames here gain nothing from more, and the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net() -> STCN:
    return build_stcn(seed=0)


@pytest.fixture(scope="module")
def demo():
    return generate_demo_video(seed=3, num_frames=8, height=64, width=96, scenario="crossing")


def _prop(net: STCN, **cfg) -> MemoryPropagator:
    return MemoryPropagator(net, device="cpu", config=MemoryConfig(**{"short_side": None, **cfg}))


# ----------------------------------------------------------------------------- pure helpers


def test_gaps_group_and_order_targets() -> None:
    gaps = list(_gaps([5, 10], [1, 2, 6, 7, 9, 12, 11]))
    assert gaps == [([5], [2, 1]), ([5, 10], [6, 7, 9]), ([10], [11, 12])]


def test_object_chunks_cover_all_objects() -> None:
    assert _object_chunks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert _object_chunks(3, 8) == [slice(0, 3)]
    assert _object_chunks(2, 0) == [slice(0, 1), slice(1, 2)]


def test_working_size_and_padding(net: STCN) -> None:
    prop = MemoryPropagator(net, device="cpu")
    assert prop.working_size(720, 1280) == (480, 853)
    assert prop.working_size(1080, 1920) == (480, 853)
    assert prop.working_size(480, 854) == (480, 854)
    left, right, top, bottom = prop._padding(480, 853)
    assert (left + right + 853) % 16 == 0 and (top, bottom) == (0, 0) and abs(left - right) <= 1
    assert _prop(net).working_size(64, 96) == (64, 96)


def test_memory_bank_growth_and_eviction() -> None:
    chunks = _object_chunks(3, 2)
    bank = MemoryBank(chunks, max_frames=3)
    h, w = 2, 3

    def add(frame: int, ref: bool) -> None:
        bank.add(frame, torch.full((1, 64, h, w), float(frame)), torch.full((3, 512, h, w), float(frame)), ref)

    add(0, True)
    add(10, True)
    add(2, False)
    assert bank.frames == [0, 10, 2] and bank.keys.shape == (64, 3 * h * w)
    assert [v.shape for v in bank.values] == [(3 * h * w, 2 * 512), (3 * h * w, 512)]
    add(4, False)  # over capacity: the oldest propagated frame goes, references stay
    assert bank.frames == [0, 10, 4]
    assert sorted(bank.keys[0].unique().tolist()) == [0.0, 4.0, 10.0]
    assert sorted(bank.values[1][:, 0].unique().tolist()) == [0.0, 4.0, 10.0]
    add(20, True)
    add(21, True)  # only references left: nothing can be dropped, the bank may exceed capacity
    assert bank.frames == [0, 10, 20, 21]


def test_bank_readout_splits_objects_consistently() -> None:
    """Reading chunk by chunk gives each object's own values (no mixing across chunks)."""
    g = torch.Generator().manual_seed(0)
    values = torch.randn(5, 512, 2, 3, generator=g)
    key = torch.randn(64, 2, 3, generator=g)
    one, split = MemoryBank(_object_chunks(5, 8)), MemoryBank(_object_chunks(5, 2))
    for bank in (one, split):
        bank.add(0, key, values, reference=True)
    aff = one.affinity(key, top_k=4)
    whole = one.read(aff, 0, (2, 3))
    parts = torch.cat([split.read(aff, i, (2, 3)) for i in range(3)])
    assert whole.shape == (5, 512, 2, 3)
    assert torch.allclose(whole, parts, atol=1e-5)


# ----------------------------------------------------------------------------- checkpoints


def test_no_checkpoint_is_refused(net: STCN, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPS_STCN_CHECKPOINT", raising=False)
    with pytest.raises(CheckpointError, match="VPS_STCN_CHECKPOINT"):
        MemoryPropagator.from_checkpoint(None)
    with pytest.raises(CheckpointError, match="no STCN-style"):
        MemoryPropagator(None)
    ok, why = memory_availability(None)
    assert not ok and "unavailable" in why and "--checkpoint" in why


def test_checkpoint_paths(net: STCN, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPS_STCN_CHECKPOINT", raising=False)
    ok, why = memory_availability(tmp_path / "missing.pth")
    assert not ok and "not found" in why
    path = tmp_path / "stcn.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    assert memory_availability(path)[0]
    ok, why = memory_availability(path, deep=True)
    assert ok and "ready" in why
    assert memory_availability(None, settings={"checkpoints": {"stcn": str(path)}})[0]
    monkeypatch.setenv("VPS_STCN_CHECKPOINT", str(path))
    prop = MemoryPropagator.from_checkpoint(None, device="cpu")
    assert prop.checkpoint == path and prop.name == "memory"
    assert torch.equal(prop.net.decoder.pred.weight, net.decoder.pred.weight)
    (tmp_path / "bad.pth").write_bytes(path.read_bytes()[:1000])
    ok, why = memory_availability(tmp_path / "bad.pth", deep=True)
    assert not ok and "truncated" in why
    with pytest.raises(CheckpointError, match="truncated"):
        MemoryPropagator(str(tmp_path / "bad.pth"), device="cpu")


# ----------------------------------------------------------------------------- propagation


def test_propagate_shapes_ids_confidence(net: STCN, demo) -> None:
    src = DemoSource(demo.frames)
    refs = [Reference(0, demo.labels[0]), Reference(4, demo.labels[4])]
    calls: list[tuple[int, int, str]] = []
    res = _prop(net, short_side=48).propagate(src, refs, [2, 5], progress=lambda *a: calls.append(a))
    assert sorted(res.labels) == sorted(res.confidence) == [2, 5]
    allowed = set(np.unique(demo.labels[0])) | set(np.unique(demo.labels[4])) | {0}
    for t in (2, 5):
        lab, conf = res.labels[t], res.confidence[t]
        assert lab.shape == (64, 96) and lab.dtype == np.uint16  # back at full size
        assert conf.shape == (64, 96) and conf.dtype == np.float32
        assert set(np.unique(lab)) <= allowed
        assert (conf > 0).all() and (conf <= 1 + 1e-6).all()
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]


def test_object_batching_matches_single_pass(net: STCN, demo) -> None:
    """Batches of objects only split the network calls: aggregation sees every object at once."""
    src = DemoSource(demo.frames)
    refs = [Reference(0, demo.labels[0])]
    assert len(np.unique(demo.labels[0])) >= 5
    whole = _prop(net, short_side=32, max_objects=16, mem_every=1)
    split = _prop(net, short_side=32, max_objects=3, mem_every=1)
    a = whole.propagate(src, refs, [1])
    b = split.propagate(src, refs, [1])
    for t in (1,):
        assert np.allclose(a.confidence[t], b.confidence[t], atol=1e-4)
        # random weights make near-uniform probabilities: argmax may flip only on exact near-ties
        assert (a.labels[t] != b.labels[t]).mean() < 0.01
    # the full probability maps agree, background included, and sum to 1
    with torch.inference_mode():
        probs = []
        for prop in (whole, split):
            objects = np.unique(demo.labels[0]).astype(np.int64)
            chunks = _object_chunks(len(objects), prop.config.max_objects)
            bank = MemoryBank(chunks)
            enc = prop._encode(demo.frames[0], (32, 48))
            bank.add(0, enc.key, prop._values(enc, prop._masks(demo.labels[0], objects, (32, 48)), chunks), True)
            probs.append(prop.segment(prop._encode(demo.frames[1], (32, 48)), bank))
    assert probs[0].shape == (len(objects) + 1, 32, 48)
    assert torch.allclose(probs[0], probs[1], atol=1e-5)
    assert torch.allclose(probs[0].sum(0), torch.ones(32, 48), atol=1e-5)


def test_memory_holds_references_plus_every_nth_frame(net: STCN, demo) -> None:
    src = DemoSource([f[:32, :48] for f in demo.frames])
    ref = Reference(0, demo.labels[0][:32, :48])
    prop = _prop(net, mem_every=1, max_memory_frames=3)
    prop.propagate(src, [ref], [1, 2, 3, 4])
    # processed 1..4: 1, 2, 3 join (never the last one); capacity 3 drops 1 (oldest non-reference)
    assert prop.last_memory == [[0, 2, 3]]
    prop = _prop(net, mem_every=2)
    right = Reference(7, demo.labels[7][:32, :48])
    prop.propagate(src, [ref, right], [6, 5, 4, 3])  # processed in time order from the left
    assert prop.last_memory == [[0, 7, 4]]  # the 2nd processed frame; the 4th is the last


def test_edge_cases(net: STCN, demo) -> None:
    src = DemoSource([f[:32, :48] for f in demo.frames])
    prop = _prop(net)
    with pytest.raises(ValueError):
        prop.propagate(src, [], [1])
    empty = Reference(0, np.zeros((32, 48), np.uint16))
    res = prop.propagate(src, [empty], [1, 2])
    assert not res.labels[2].any() and (res.confidence[2] == 1).all()
    ref = Reference(3, demo.labels[3][:32, :48])
    res = prop.propagate(src, [ref], [3])  # a target that is a reference keeps its labels
    assert np.array_equal(res.labels[3], ref.label)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        prop.propagate(src, [ref], [1, 2], cancel=token)


def test_end_to_end_on_demo_project(net: STCN, tmp_path: Path) -> None:
    """Keyframes of a demo project propagated to the frames between them and written back."""
    from annotator.project import FrameState, Project
    from resources.demo import write_demo_project

    path = write_demo_project(tmp_path / "demo", seed=1, scenarios=("mixed",), num_frames=16, height=64,
                              width=96, source=None)
    with Project.open(path).open_video("demo_mixed") as video:
        assert video.num_frames == 4
        refs = [Reference(i, video.read_label(i)) for i in (0, 3)]
        targets = [1, 2]
        res = _prop(net, short_side=64).propagate(video, refs, targets)
        for t in targets:
            video.write_label(t, res.labels[t], state=FrameState.PROPAGATED)  # validates track ids
            assert set(np.unique(video.read_label(t))) <= set(video.tracks) | {0}
            assert video.frame_state(t) == FrameState.PROPAGATED


def test_shared_reference_is_encoded_once(net: STCN, demo, monkeypatch: pytest.MonkeyPatch) -> None:
    src = DemoSource([f[:32, :48] for f in demo.frames])
    refs = [Reference(i, demo.labels[i][:32, :48]) for i in (0, 2, 4)]
    prop = _prop(net)
    encoded: list[int] = []
    real = prop._encode
    monkeypatch.setattr(prop, "_encode", lambda rgb, size: encoded.append(1) or real(rgb, size))
    res = prop.propagate(src, refs, [1, 3])
    assert len(encoded) == 3 + 2  # reference 2 serves both gaps
    assert prop.last_memory == [[0, 2], [2, 4]]
    alone = _prop(net).propagate(src, refs[1:], [3])
    assert np.array_equal(res.labels[3], alone.labels[3])
    assert np.allclose(res.confidence[3], alone.confidence[3], atol=1e-6)
    # dense propagation calls once per gap: the shared keyframe is still encoded once
    encoded.clear()
    prop.clear_cache()
    first = prop.propagate(src, refs[:2], [1])
    second = prop.propagate(src, refs[1:], [3])
    assert len(encoded) == 2 + 1 + 1 + 1
    assert np.array_equal(first.labels[1], res.labels[1]) and np.array_equal(second.labels[3], res.labels[3])
    # a changed label map on the same frame is not served from the cache
    edited = Reference(2, np.where(refs[1].label == refs[1].label[0, 0], 0, refs[1].label).astype(np.uint16))
    third = prop.propagate(src, [refs[0], edited], [1])
    assert not np.array_equal(third.confidence[1], first.confidence[1])


# ----------------------------------------------------------------------------- QA regressions


def test_working_size_of_thin_frames_is_bounded(net):
    """Scaling the short side of a thin frame up to 480 made a 2x100 frame 480x24000 (minutes per
    frame, gigabytes): the long side is capped."""
    prop = MemoryPropagator(net, device="cpu")
    h, w = prop.working_size(2, 100)
    assert max(h, w) <= 4 * 480 and h >= 1
    assert prop.working_size(720, 1280) == (480, 853)  # ordinary frames unchanged
    assert prop.working_size(1280, 720) == (853, 480)


@pytest.mark.parametrize("bad", [{"mem_every": 0}, {"top_k": 0}])
def test_config_values_are_validated(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        MemoryConfig(**bad)
