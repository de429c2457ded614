"""SAM with random-initialised vit_b weights in a temp checkpoint: loading, predictor round trip,
embedding cache, background worker priorities and cancel. No network.

Only ``test_real_embedding_cached_round_trip`` runs the image encoder to the end (seconds to tens of
seconds on 2 CPU cores, marked slow); decoder tests use synthetic features of the right shape.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

from annotator.editing import EditError, Paint
from annotator.editing.sam_tool import SamPrompt
from annotator.errors import InputError
from annotator.jobs import Cancelled, CancelToken
from models.sam import Embedding as Emb
from models.sam import (
    EmbeddingCache,
    EmbeddingWorker,
    SamEngine,
    SamModel,
    SamPrediction,
    default_cache_dir,
    embedding_order,
    frame_hash,
    open_sam_engine,
    precompute_embeddings,
    sam_availability,
)
from models.weights import CheckpointError, load_state_dict, sha256_file

H, W = 90, 160


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    net = sam_model_registry["vit_b"](checkpoint=None)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return SamModel(checkpoint, "sam_vit_b")


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.5, (1, 256, 64, 64)).astype(np.float16)


def _emb(features, key="k"):
    return Emb(features, (H, W), (576, 1024), key)


def _predictor(model, features):
    """segment-anything's own SamPredictor on the same (cached) features: the reference."""
    from segment_anything import SamPredictor

    p = SamPredictor(model.net)
    p.features = torch.as_tensor(features).float()
    p.original_size, p.input_size, p.is_image_set = (H, W), (576, 1024), True
    return p


def test_checkpoint_loads_weights_only(checkpoint, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    sd = load_state_dict(checkpoint, "sam_vit_b")
    assert calls == [True]
    assert sd["image_encoder.patch_embed.proj.weight"].shape[0] == 768


def test_model_identity_and_wrong_kind(model, checkpoint):
    assert model.sha256 == sha256_file(checkpoint)
    assert model.model_key == f"sam_vit_b-{model.sha256[:16]}"
    with pytest.raises(CheckpointError, match="unknown SAM kind"):
        SamModel(checkpoint, "vit_b")
    with pytest.raises(CheckpointError, match="not a sam_vit_l checkpoint.*looks like a 'sam_vit_b'"):
        SamModel(checkpoint, "sam_vit_l")


@pytest.fixture
def one_thread():
    """The reference SamPredictor decodes with torch's threads; one is much faster on busy cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_predict_matches_sam_predictor_with_logits_fed_back(model, features, one_thread):
    emb = _emb(features)
    ref = _predictor(model, features)
    pts = np.array([[40.0, 30.0]])
    pred = model.predict(emb, points=pts, labels=[1])
    assert isinstance(pred, SamPrediction) and len(pred) == 3
    assert pred.masks.shape == (3, H, W) and pred.masks.dtype == bool
    assert pred.scores.shape == (3,) and pred.logits.shape == (3, 256, 256)
    m, s, lo = ref.predict(point_coords=pts, point_labels=np.array([1]), multimask_output=True)
    assert np.array_equal(pred.masks, m)
    np.testing.assert_allclose(pred.scores, s, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.logits, lo, rtol=1e-4, atol=1e-4)
    # second click (negative) with the best candidate's logits fed back, as in SAM's demo
    best = pred.best()
    pts2 = np.array([[40.0, 30.0], [100.0, 60.0]])
    pred2 = model.predict(emb, points=pts2, labels=[1, 0], prev_logits=pred.logits[best])
    m2, s2, lo2 = ref.predict(point_coords=pts2, point_labels=np.array([1, 0]),
                              mask_input=pred.logits[best][None], multimask_output=True)
    assert np.array_equal(pred2.masks, m2)
    np.testing.assert_allclose(pred2.logits, lo2, rtol=1e-4, atol=1e-4)
    assert not np.allclose(pred2.logits, model.predict(emb, points=pts2, labels=[1, 0]).logits)
    # box + click, and box alone, single-mask output
    box = np.array([20.0, 10.0, 120.0, 80.0])
    pred3 = model.predict(emb, points=pts, labels=[1], box=box)
    m3, _, _ = ref.predict(point_coords=pts, point_labels=np.array([1]), box=box, multimask_output=True)
    assert np.array_equal(pred3.masks, m3)
    pred4 = model.predict(emb, box=box, multimask=False)
    m4, _, _ = ref.predict(box=box, multimask_output=False)
    assert len(pred4) == 1 and np.array_equal(pred4.masks, m4)


def test_bad_prompts(model, features):
    emb = _emb(features)
    with pytest.raises(InputError, match="at least one click or a box"):
        model.predict(emb)
    with pytest.raises(InputError, match="outside"):
        model.predict(emb, points=[(W + 5, 10)], labels=[1])
    with pytest.raises(EditError, match="outside"):  # box outside the image
        model.predict(emb, box=(W + 10, 0, W + 50, 40))
    with pytest.raises(InputError, match="labels"):
        model.predict(emb, points=[(5, 5)], labels=[1, 0])
    with pytest.raises(InputError, match="1 \\(positive\\) or 0"):
        model.predict(emb, points=[(5, 5)], labels=[2])
    with pytest.raises(InputError, match="256x256"):
        model.predict(emb, points=[(5, 5)], labels=[1], prev_logits=np.zeros((64, 64)))
    with pytest.raises(InputError, match="uint8"):
        model.embed(np.zeros((10, 10), np.uint8))


def test_sam_prompt_tool(model, features):
    emb = _emb(features)
    engine = SamEngine(model, None)
    tool = SamPrompt()
    with pytest.raises(EditError, match="click"):
        tool.run(engine, emb)
    tool.add_click(40, 30)
    first = tool.run(engine, emb)
    assert tool.choice == first.best()
    seen = {tool.cycle() for _ in range(3)}
    assert seen == {0, 1, 2} and tool.choice == first.best()
    tool.cycle()
    chosen = tool.choice
    tool.add_click(100, 60, positive=False)
    second = tool.run(engine, emb)  # the shown candidate's logits are fed back
    direct = model.predict(emb, points=[(40, 30), (100, 60)], labels=[1, 0], prev_logits=first.logits[chosen])
    assert np.array_equal(second.masks, direct.masks)
    assert np.array_equal(tool.mask(), second.masks[tool.choice])
    region = tool.region()
    assert np.array_equal(region.to_mask((H, W)), tool.mask())
    # paint the chosen candidate into a demo label map with a locked track
    from annotator.editing import EditContext
    from annotator.editing.operations import apply_change
    from resources.demo import generate_demo_video

    demo = generate_demo_video(seed=2, num_frames=1, height=H, width=W)
    label = demo.labels[0]
    new = apply_change(label.copy(), Paint(region, 5).apply(label, EditContext(locked={1}, tracks=demo.tracks)))
    m = tool.mask()
    assert np.array_equal(new, np.where(m & (label != 1), 5, label))
    tool.remove_last_click()
    tool.remove_last_click()
    assert tool.empty and tool.prediction is None


def test_real_encoder_cancel_between_blocks(model):
    token = CancelToken()
    hook = model.net.image_encoder.blocks[0].register_forward_hook(lambda *a: token.cancel())
    try:
        with pytest.raises(Cancelled):
            model.embed(np.zeros((32, 48, 3), np.uint8), cancel=token)
    finally:
        hook.remove()
    with pytest.raises(Cancelled):  # cancelled before it starts
        model.embed(np.zeros((32, 48, 3), np.uint8), cancel=token)


@pytest.mark.slow
def test_real_embedding_cached_round_trip(model, tmp_path):
    img = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    engine = SamEngine(model, tmp_path)
    emb = engine.embedding(img)
    assert emb.features.dtype == np.float16 and emb.features.shape == (1, 256, 64, 64)
    assert emb.original_size == (48, 64) and emb.input_size == (768, 1024)
    assert engine.cache.misses == 1
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and files[0].parent.name == model.model_key
    fresh = SamEngine(model, tmp_path)  # a new session: served from disk, no encoder run
    again = fresh.cached(img)
    assert again is not None and fresh.cache.hits == 1
    assert np.array_equal(again.features, emb.features)
    a = engine.predict(emb, points=[(10, 10)], labels=[1])
    b = fresh.predict(again, points=[(10, 10)], labels=[1])
    assert np.array_equal(a.masks, b.masks)


# --------------------------------------------------------------------------- cache (no encoder)


def test_embedding_cache_hit_miss_and_keys(tmp_path, features):
    img = np.zeros((H, W, 3), np.uint8)
    img2 = img.copy()
    img2[0, 0, 0] = 1
    assert frame_hash(img) != frame_hash(img2)
    assert frame_hash(img) != frame_hash(np.zeros((W, H, 3), np.uint8))  # shape is part of the key
    cache = EmbeddingCache(tmp_path, memory_items=2)
    key = f"sam_vit_b-0123/{frame_hash(img)}"
    assert cache.get(key) is None and cache.misses == 1
    stored = cache.put(key, Emb(features.astype(np.float32), (H, W), (576, 1024)))
    assert stored.features.dtype == np.float16 and stored.key == key
    assert cache.get(key) is stored and cache.hits == 1  # memory hit
    disk = EmbeddingCache(tmp_path)
    got = disk.get(key)
    assert got is not None and got.features.dtype == np.float16 and disk.hits == 1
    assert np.array_equal(got.features, features) and got.original_size == (H, W) and got.input_size == (576, 1024)
    assert disk.get(f"sam_vit_b-4567/{frame_hash(img)}") is None  # other weights: miss
    assert disk.get(f"sam_vit_b-0123/{frame_hash(img2)}") is None  # other frame: miss
    # memory LRU bound
    for k in range(3):
        cache.put(f"m/{k}", _emb(features))
    assert len(cache._mem) == 2
    # a damaged cache file is a miss and is removed
    path = tmp_path / "sam_vit_b-0123" / f"{frame_hash(img)}.npz"
    path.write_bytes(b"broken")
    fresh = EmbeddingCache(tmp_path)
    assert fresh.get(key) is None and not path.exists()


def test_embedding_cache_disk_budget_and_unwritable(tmp_path, features):
    cache = EmbeddingCache(tmp_path / "c", memory_items=1, max_disk_bytes=int(3.5 * features.nbytes))
    for k in range(5):
        cache.put(f"m/{k}", _emb(features))
        os.utime(tmp_path / "c" / "m" / f"{k}.npz", ns=(k * 10**9, k * 10**9))
    cache.get("m/1")  # a hit refreshes the file: it outlives 2
    assert cache.prune() > 0
    assert sorted(p.stem for p in cache.disk_files()) == ["1", "3", "4"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = EmbeddingCache(blocker)  # cannot create folders under a file
    emb = bad.put("m/0", _emb(features))
    assert emb.features.dtype == np.float16 and "not writable" in bad.write_error
    assert bad.get("m/0") is emb  # still served from memory


class FakeModel:
    """Stands in for SamModel in worker tests: records order, can block, honours cancel."""

    model_key = "fake-0"

    def __init__(self) -> None:
        self.order: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def embed(self, image, cancel=None):
        self.order.append(int(image[0, 0, 0]))
        self.started.set()
        while not self.gate.wait(0.005):
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled")
        if cancel is not None:
            cancel.raise_if_cancelled()
        return Emb(np.zeros((1, 256, 64, 64), np.float16), image.shape[:2], (1024, 1024))


def _image(i: int) -> np.ndarray:
    img = np.zeros((8, 8, 3), np.uint8)
    img[0, 0, 0] = i
    return img


def _wait_idle(worker, timeout=10.0):
    end = time.monotonic() + timeout
    while not worker.idle and time.monotonic() < end:
        time.sleep(0.005)
    assert worker.idle


def test_worker_priority_order_and_request(tmp_path):
    fake = FakeModel()
    fake.gate.clear()
    ready = []
    worker = EmbeddingWorker(SamEngine(fake, tmp_path), _image, on_ready=ready.append)
    try:
        worker.schedule(current=7, keyframes=[0, 5, 10], others=[1, 2, 3, 5])
        assert fake.started.wait(5)
        assert worker.pending == [0, 5, 10, 1, 2, 3]  # current first (running), keyframes, rest
        worker.request(3)  # the user jumped to frame 3
        assert worker.pending[0] == 3
        fake.gate.set()
        _wait_idle(worker)
        assert fake.order == [7, 3, 0, 5, 10, 1, 2]
        assert sorted(ready) == [0, 1, 2, 3, 5, 7, 10]
        assert worker.get(5) is not None and worker.get(4) is None
        if hasattr(os, "setpriority"):  # the encoder thread runs below the GUI thread's priority
            assert worker.thread_nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        # already embedded frames are not queued again; a new session reads them from disk
        worker.schedule(current=7, keyframes=[0])
        assert worker.pending == []
        fake2 = FakeModel()
        w2 = EmbeddingWorker(SamEngine(fake2, tmp_path), _image)
        try:
            assert w2.wait(10, timeout=5) is not None
            assert fake2.order == []  # disk cache hit, encoder never ran
        finally:
            w2.stop()
    finally:
        worker.stop()


def test_worker_cancel_and_errors(tmp_path):
    fake = FakeModel()
    fake.gate.clear()
    errors = []

    def load(i):
        if i == 99:
            raise OSError("frame file missing")
        return _image(i)

    worker = EmbeddingWorker(SamEngine(fake, None), load, on_error=lambda f, e: errors.append((f, str(e))))
    try:
        worker.schedule(current=1, keyframes=[2, 3])
        assert fake.started.wait(5)
        worker.cancel()  # stops frame 1 mid-way and drops 2, 3
        _wait_idle(worker)
        assert worker.pending == [] and worker.get(1) is None and worker.computed == 0
        assert fake.order == [1]
        fake.gate.set()
        assert worker.wait(4, timeout=5) is not None  # works again after a cancel
        worker.schedule(current=99, keyframes=[5])
        _wait_idle(worker)
        assert errors and errors[0][0] == 99 and "missing" in errors[0][1]
        assert worker.get(5) is not None  # an error on one frame does not stop the queue
    finally:
        worker.stop()
    assert not worker._thread.is_alive()


def test_worker_recomputes_evicted_embedding_without_disk():
    fake = FakeModel()
    worker = EmbeddingWorker(SamEngine(fake, None, memory_items=1), _image)
    try:
        assert worker.wait(1, timeout=5) is not None
        assert worker.wait(2, timeout=5) is not None  # evicts frame 1 from memory
        assert worker.get(1) is None
        assert worker.wait(1, timeout=5) is not None
        assert fake.order == [1, 2, 1]
    finally:
        worker.stop()
    assert not worker._thread.is_alive()


def test_sam_availability(checkpoint, tmp_path):
    ok, kind, reason = sam_availability(env={}, settings={})
    assert not ok and kind == "" and reason.startswith("SAM tool unavailable") and "VPS_SAM_CHECKPOINT" in reason
    ok, kind, reason = sam_availability(env={"VPS_SAM_CHECKPOINT": str(tmp_path / "missing.pth")})
    assert not ok and "not found" in reason
    ok, kind, reason = sam_availability(env={}, settings={"checkpoints": {"sam_vit_b": str(checkpoint)}})
    assert ok and kind == "sam_vit_b"
    with pytest.raises(CheckpointError, match="SAM tool unavailable"):
        open_sam_engine(tmp_path / "cache", env={}, settings={})
    engine = open_sam_engine(default_cache_dir(tmp_path), env={"VPS_SAM_CHECKPOINT": str(checkpoint)})
    assert engine.model.kind == "sam_vit_b" and engine.cache.cache_dir == tmp_path / "cache" / "sam_embeddings"


def test_precompute_embeddings_order_progress_cancel(tmp_path):
    assert embedding_order(8, current=6, keyframes=[0, 5, 5, 9]) == [6, 0, 5, 1, 2, 3, 4, 7]
    fake = FakeModel()
    engine = SamEngine(fake, tmp_path)
    calls = []
    n = precompute_embeddings(engine, _image, [3, 1, 3], progress=lambda d, t, m: calls.append((d, t)))
    assert n == 2 and fake.order == [3, 1] and calls[-1] == (3, 3)
    assert precompute_embeddings(SamEngine(fake, tmp_path), _image, [1, 3]) == 0  # all on disk
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        precompute_embeddings(engine, _image, [7], cancel=token)
    assert fake.order == [3, 1]


def test_decoder_uses_all_cores_unless_the_encoder_is_running():
    import os

    from models.sam import SamModel

    m = SamModel.__new__(SamModel)  # thread policy only: no network needed
    m.decoder_threads, m._encoding = "auto", 0
    assert m._decoder_thread_count() == (os.cpu_count() or 1)
    m._encoding = 1
    assert m._decoder_thread_count() == 1
    m.decoder_threads = 3
    assert m._decoder_thread_count() == 3


# --------------------------------------------------------------------------- QA regressions


def test_damaged_cache_entries_are_misses_not_crashes(tmp_path, features):
    """A torn npz (zip cut short) or one holding features of the wrong shape is recomputed, never
    raised to the GUI nor handed to the decoder."""
    img = np.zeros((H, W, 3), np.uint8)
    key = f"sam_vit_b-0123/{frame_hash(img)}"
    EmbeddingCache(tmp_path).put(key, _emb(features))
    path = tmp_path / "sam_vit_b-0123" / f"{frame_hash(img)}.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert EmbeddingCache(tmp_path).get(key) is None and not path.exists()
    np.savez(path, version=1, features=np.zeros((1, 3, 3), np.float16), original_size=np.array([H, W]),
             input_size=np.array([576, 1024]))
    assert EmbeddingCache(tmp_path).get(key) is None and not path.exists()


def test_bad_prev_logits_and_misfit_checkpoint_are_clear_errors(model, features, tmp_path):
    with pytest.raises(InputError, match="previous logits"):
        model.predict(_emb(features), points=[(5, 5)], prev_logits=np.zeros((3, 256, 256), np.float32))
    sd = {k: v for k, v in model.net.state_dict().items() if not k.startswith("mask_decoder.iou_prediction_head")}
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="missing keys 'mask_decoder.iou_prediction_head"):
        SamModel(path, "sam_vit_b")
