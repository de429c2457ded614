"""SAM 1's decoder through onnxruntime: the export equals segment-anything's SamPredictor, is cached
per checkpoint and reused, damaged files are exported again, and the torch decoder takes over (with
the reason) when onnxruntime or onnx is missing. Random vit_b weights in a temp checkpoint (the way
tests/test_sam.py builds them), synthetic features of the right shape: wiring only, no encoder run.

Tolerances (stated here, measured in docs/sam.md): per candidate the thresholded masks agree with
IoU >= 0.99, the low-resolution logits differ by at most 1e-3 and the IoU predictions by 1e-4
(float32 on both sides; onnxruntime fuses and reorders the same arithmetic).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from annotator.editing.sam_tool import SamPrompt
from annotator.errors import EditError, InputError
from models.sam import Embedding, SamEngine, SamModel, open_sam_engine
from models.sam import onnx_decoder as od
from models.sam.cache import decoder_path
from models.sam.engine import resolve_device

MASK_IOU = 0.99
LOGIT_ATOL = 1e-3
SCORE_ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    net = sam_model_registry["vit_b"](checkpoint=None)
    path = tmp_path_factory.mktemp("sam_onnx") / "sam_vit_b_random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return SamModel(checkpoint, "sam_vit_b", decoder_threads=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, model):
    """One export shared by the tests that only read it (each export costs about a second)."""
    d = tmp_path_factory.mktemp("onnx_cache")
    od.load_or_export(model, d)
    return d


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(0).normal(0, 0.5, (1, 256, 64, 64)).astype(np.float16)


def _emb(features, size=(90, 160)):
    h, w = size
    s = 1024 / max(h, w)
    return Embedding(features, (h, w), (int(h * s + 0.5), int(w * s + 0.5)), "k")


def _predictor(model, emb):
    from segment_anything import SamPredictor

    p = SamPredictor(model.net)
    p.features = torch.as_tensor(emb.features).float()
    p.original_size, p.input_size, p.is_image_set = emb.original_size, emb.input_size, True
    return p


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _same(pred, ref_out):
    masks, scores, logits = ref_out
    assert len(pred) == len(scores)
    assert np.abs(pred.logits - logits).max() <= LOGIT_ATOL
    assert np.abs(pred.scores - scores).max() <= SCORE_ATOL
    for i in range(len(pred)):
        assert pred.mask(i).shape == masks[i].shape and pred.mask(i).dtype == bool
        assert _iou(pred.mask(i), masks[i]) >= MASK_IOU


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("size", [(90, 160), (720, 1280), (500, 333)])
def test_onnx_decoder_equals_sam_predictor(model, cache, features, size, one_thread):
    """One export serves every frame size (the graph ends at the 256x256 logits)."""
    engine = SamEngine(model, cache, decoder="onnx")
    assert engine.onnx is not None and engine.onnx.exports == 0  # the module's export, reused
    assert engine.decoder_text == "SAM decoder: onnxruntime (CPU)" or "CUDA" in engine.decoder_text
    emb = _emb(features, size)
    h, w = size
    ref = _predictor(model, emb)
    pts = np.array([[w * 0.3, h * 0.4]])
    pred = engine.predict(emb, points=pts, labels=[1])
    assert pred.masks.any() and not pred.masks.all()  # a non-trivial comparison
    _same(pred, ref.predict(point_coords=pts, point_labels=np.array([1]), multimask_output=True))
    # a negative click with the best candidate's logits fed back, as the SAM tool does
    pts2 = np.array([[w * 0.3, h * 0.4], [w * 0.7, h * 0.6]])
    fed = pred.logits[pred.best()]
    pred2 = engine.predict(emb, points=pts2, labels=[1, 0], prev_logits=fed)
    _same(pred2, ref.predict(point_coords=pts2, point_labels=np.array([1, 0]), mask_input=fed[None],
                             multimask_output=True))
    assert np.abs(pred2.logits - engine.predict(emb, points=pts2, labels=[1, 0]).logits).max() > 1e-2
    # box + click, and a box alone with one mask
    box = np.round([w * 0.1, h * 0.1, w * 0.8, h * 0.9])  # whole pixels: the tools clip boxes to them
    _same(engine.predict(emb, points=pts, labels=[1], box=box),
          ref.predict(point_coords=pts, point_labels=np.array([1]), box=box, multimask_output=True))
    single = engine.predict(emb, box=box, multimask=False)
    assert len(single) == 1
    _same(single, ref.predict(box=box, multimask_output=False))


def test_export_cached_per_checkpoint_and_reused(model, tmp_path, monkeypatch):
    first = od.load_or_export(model, tmp_path)
    path = decoder_path(tmp_path, model.model_key, od.tag())
    assert first.exports == 1 and first.path == path and path.is_file()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["checkpoint_sha256"] == model.sha256 and meta["opset"] == od.OPSET

    def no_export(net):
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(od, "export_decoder", no_export)
    again = od.load_or_export(model, tmp_path)
    assert again.exports == 0 and again.cache_note == ""
    # other weights (a sidecar naming another checkpoint) never reuse this file
    meta["checkpoint_sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(AssertionError, match="cached export"):
        od.load_or_export(model, tmp_path)


def test_damaged_export_is_exported_again_or_refused(model, tmp_path, features, monkeypatch):
    od.load_or_export(model, tmp_path)
    path = decoder_path(tmp_path, model.model_key, od.tag())
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])  # a torn write
    fresh = od.load_or_export(model, tmp_path)
    assert fresh.exports == 1 and "damaged" in fresh.cache_note
    assert path.read_bytes() != good[: len(good) // 3]
    assert fresh.decode(features, np.array([[100.0, 80.0], [0, 0]]), np.array([1.0, -1.0]))[1].shape == (4, 256, 256)
    # damaged and no way to export again (no onnx package): refused or torch, with the reason
    path.write_bytes(b"not an onnx graph")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(od.DecoderUnavailable, match="sam_decoder = onnx.*onnx package is not installed"):
        SamEngine(model, tmp_path, decoder="onnx")
    engine = SamEngine(model, tmp_path, decoder="auto")
    assert engine.onnx is None and engine.decoder_choice.backend == "torch"
    assert "onnx package is not installed" in engine.decoder_choice.reason
    assert engine.decoder_text == "SAM decoder: torch (cpu)"


def test_torch_fallback_when_onnxruntime_is_missing(model, cache, features, monkeypatch, one_thread):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails, find_spec says None
    engine = SamEngine(model, cache, decoder="auto")
    assert engine.onnx is None and engine.decoder_text == "SAM decoder: torch (cpu)"
    assert "onnxruntime is not installed" in engine.decoder_choice.reason
    emb = _emb(features)
    pred = engine.predict(emb, points=[(40.0, 30.0)], labels=[1])
    assert np.array_equal(pred.logits, model.predict(emb, points=[(40.0, 30.0)], labels=[1]).logits)
    with pytest.raises(od.DecoderUnavailable, match="onnxruntime is not installed"):
        SamEngine(model, cache, decoder="onnx")
    assert od.planned_decoder({}).backend == "torch" and "onnxruntime" in od.planned_decoder({}).reason


def test_cached_export_runs_without_onnx(model, cache, monkeypatch):
    """``onnx`` is needed to export only: a cached decoder still runs with onnxruntime alone."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    engine = SamEngine(model, cache, decoder="auto")
    assert engine.onnx is not None and engine.decoder_choice.backend == "onnxruntime"


def test_in_memory_export_without_cache_dir(model, features, monkeypatch):
    calls = []
    real = od.export_decoder
    monkeypatch.setattr(od, "export_decoder", lambda net: calls.append(1) or real(net))
    dec = od.load_or_export(model, None)
    assert dec.path is None and calls == [1]
    scores, logits = dec.decode(features, np.array([[100.0, 80.0], [0, 0]]), np.array([1.0, -1.0]))
    assert scores.shape == (4,) and logits.shape == (4, 256, 256) and logits.dtype == np.float32


def test_bad_prompts_are_refused_as_by_the_torch_decoder(model, cache, features):
    engine = SamEngine(model, cache, decoder="onnx")
    emb = _emb(features)
    w = emb.original_size[1]
    cases = [({}, InputError, "at least one click or a box"),
             ({"points": [(w + 5, 10)], "labels": [1]}, InputError, "outside"),
             ({"box": (w + 10, 0, w + 50, 40)}, EditError, "outside"),
             ({"points": [(5, 5)], "labels": [1, 0]}, InputError, "labels"),
             ({"points": [(5, 5)], "labels": [2]}, InputError, "1 \\(positive\\) or 0"),
             ({"points": [(5, 5)], "labels": [1], "prev_logits": np.zeros((64, 64))}, InputError, "256x256")]
    for prompt, err, match in cases:
        for decode in (engine.predict, model.predict):
            with pytest.raises(err, match=match):
                decode(emb, **prompt)


def test_sam_tool_prompt_through_the_onnx_engine(model, cache, features):
    engine = SamEngine(model, cache, decoder="onnx")
    emb = _emb(features)
    prompt = SamPrompt()
    prompt.add_click(40.0, 30.0, True)
    first = prompt.run(engine, emb)
    assert len(first) == 3
    prompt.add_click(120.0, 60.0, False)
    second = prompt.run(engine, emb)
    assert not np.array_equal(first.logits, second.logits)


def test_settings_choose_decoder_and_device(checkpoint, tmp_path, monkeypatch):
    env = {"VPS_SAM_CHECKPOINT": str(checkpoint)}
    with pytest.raises(InputError, match="sam_decoder must be one of"):
        open_sam_engine(tmp_path, env=env, settings={"sam_decoder": "tensorrt"})
    with pytest.raises(InputError, match="sam_device must be one of"):
        open_sam_engine(tmp_path, env=env, settings={"sam_device": "tpu"})
    engine = open_sam_engine(tmp_path, env=env, settings={"sam_decoder": "torch", "sam_device": "cpu"})
    assert engine.onnx is None and engine.decoder_text == "SAM decoder: torch (cpu)"
    assert od.planned_decoder({"sam_decoder": "torch"}).backend == "torch"
    assert od.planned_decoder({}).backend == "onnxruntime"
    if torch.cuda.is_available():
        assert resolve_device("auto") == resolve_device("cuda") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu") == "cpu"


def test_settings_knobs_agree_with_the_engine_and_are_validated():
    from annotator.project import settings as us
    from models.sam.engine import SAM_DEVICES

    assert us.SAM_DECODERS == od.DECODER_MODES and us.SAM_DEVICES == SAM_DEVICES
    assert us.effective({}, user={})["sam_decoder"] == "auto" and us.effective({}, user={})["sam_device"] == "auto"
    assert us.validate({"sam_decoder": "torch"})["sam_decoder"] == "torch"
    with pytest.raises(InputError, match="sam_decoder must be one of"):
        us.validate({"sam_decoder": "gpu"})
    with pytest.raises(InputError, match="sam_device must be one of"):
        us.validate({"sam_device": "mps"})


def test_backend_status_names_the_decoder(checkpoint, monkeypatch):
    from annotator.backends import backend_status

    env = {"VPS_SAM_CHECKPOINT": str(checkpoint)}
    st = backend_status({}, env=env)
    assert st.sam_decoder_text.startswith("SAM decoder: onnxruntime (") and "SAM decoder: onnxruntime" in st.details
    st = backend_status({"sam_decoder": "torch"}, env=env)
    assert st.sam_decoder_text.startswith("SAM decoder: torch")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    st = backend_status({}, env=env)
    assert st.sam_decoder_text.startswith("SAM decoder: torch") and "onnxruntime is not installed" in st.details
    assert backend_status({}, env={}).sam_decoder_text == ""  # no SAM, no decoder to name
