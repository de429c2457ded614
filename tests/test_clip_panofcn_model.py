"""The full R50 Clip-PanoFCN (random weights, built once per module): released names and shapes,
strict loading through models.weights and ``weights check``, refusals naming the key, one clip of
inference on tiny frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.cli import main as cli_main
from models.clip_panofcn.checkpoint import check_clip_panofcn, load_clip_panofcn, save_checkpoint
from models.clip_panofcn.inference import InferenceConfig, infer_clip
from models.clip_panofcn.network import build_model
from models.weights import CheckpointError, validate_checkpoint

# names and shapes read off the released code: panopticfcn/head.py, backbone_utils.py,
# deform_conv_with_off.py and detectron2's ResNet/FPN for configs/video_vpsw_PanopticFCN-R50-3x.yaml
RELEASED = {
    "backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7),
    "backbone.bottom_up.stem.conv1.norm.running_var": (64,),
    "backbone.bottom_up.res2.0.shortcut.weight": (256, 64, 1, 1),
    "backbone.bottom_up.res3.0.conv1.weight": (128, 256, 1, 1),  # stride on the 1x1 (no shape change)
    "backbone.bottom_up.res4.5.conv2.weight": (256, 256, 3, 3),
    "backbone.bottom_up.res5.2.conv3.weight": (2048, 512, 1, 1),
    "backbone.fpn_lateral5.weight": (256, 2048, 1, 1),
    "backbone.fpn_output2.bias": (256,),
    "backbone.top_block.p6.weight": (256, 256, 3, 3),
    "backbone.top_block.p7.bias": (256,),
    "semantic_fpn.p5.4.weight": (256, 256, 3, 3),
    "semantic_fpn.p5.4.norm.weight": (256,),
    "position_head.position_head.position_head_head_1.offset_mask_conv.weight": (27, 256, 3, 3),
    "position_head.position_head.position_head_head_3.dcnv2.weight": (256, 256, 3, 3),
    "position_head.position_head.position_head_head_3.dcnv2.norm.bias": (256,),
    "position_head.out_inst.weight": (58, 256, 3, 3),
    "position_head.out_sem.bias": (67,),
    "kernel_head.kernel_head.kernel_head_head_1.weight": (256, 258, 3, 3),
    "kernel_head.out_conv.weight": (256, 256, 3, 3),
    "feature_encoder.encode_head.encode_head_head_1.weight": (64, 258, 3, 3),
    "feature_encoder.encode_head.encode_head_head_3.bias": (64,),
    "thing_generator.embed_extractor.weight": (64, 256, 1, 1),
    "stuff_generator.embed_extractor.bias": (64,),
}
ABSENT = ("position_head.position_head.position_head_head_1.dcnv2.bias",  # GN: no conv bias
          "kernel_head.kernel_head.kernel_head_head_1.bias", "clip_fuse_head.projects.0.weight",
          "backbone.bottom_up.stem.conv1.norm.num_batches_tracked")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return build_model(seed=0)


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory) -> Path:
    return save_checkpoint(model, tmp_path_factory.mktemp("cpf") / "clip_panofcn_random.pth")


def _tiny(sd: dict, **changes) -> dict:
    """Same keys, tensors as broadcast views (a tiny file): for structure errors only."""
    out = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in sd.items()}
    out.update(changes)
    return out


def test_parameter_names_and_shapes_are_the_released_ones(model):
    sd = model.state_dict()
    assert len(sd) == 346
    for k, shape in RELEASED.items():
        assert tuple(sd[k].shape) == shape, k
    for k in ABSENT:
        assert k not in sd
    # frozen BN everywhere in the backbone: 4 buffers per norm and no trainable norm parameters
    params = {n for n, _ in model.named_parameters()}
    assert not any(".norm." in n for n in params if n.startswith("backbone.bottom_up."))


def test_checkpoint_loads_strictly_and_identically(model, ckpt, tmp_path):
    loaded = load_clip_panofcn(ckpt)
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    # a bare state dict (no {"model": ...} wrapper) is the released layout as well
    bare = tmp_path / "bare.pth"
    torch.save(a, bare)
    info = validate_checkpoint(bare, "clip_panofcn")
    assert info.num_tensors == 346


def test_weights_check_cli_accepts_it(ckpt, capsys):
    assert cli_main(["weights", "check", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "kind: clip_panofcn (detected)" in out and "validation: ok" in out


def test_renamed_reshaped_and_backbone_only_files_are_refused(model, tmp_path, capsys):
    sd = model.state_dict()
    renamed = _tiny(sd)
    renamed["position_head.out_sem.weights"] = renamed.pop("position_head.out_sem.weight")
    reshaped = _tiny(sd, **{"kernel_head.out_conv.weight": torch.zeros(()).expand(128, 256, 3, 3)})
    backbone = {k: v for k, v in _tiny(sd).items() if k.startswith("backbone.")}
    cases = [(renamed, r"unexpected keys 'position_head\.out_sem\.weights'.*missing keys 'position_head\.out_sem\.weight'"),
             (reshaped, r"wrong shape for 'kernel_head\.out_conv\.weight' \(128x256x3x3, expected 256x256x3x3\)"),
             (backbone, r"not a clip_panofcn checkpoint: missing weights 'position_head\.\*'")]
    for n, (bad, pattern) in enumerate(cases):
        path = tmp_path / f"bad{n}.pth"
        torch.save({"model": bad}, path)
        with pytest.raises(CheckpointError, match=pattern):
            load_clip_panofcn(path)
        assert cli_main(["weights", "check", str(path), "--kind", "clip_panofcn"]) == 2
        err = capsys.readouterr()
        assert "validation: ok" not in err.out and "error:" in err.err
    with pytest.raises(CheckpointError, match="does not fit the Clip-PanoFCN R50 network"):
        check_clip_panofcn(reshaped)


def test_one_clip_of_inference_gives_a_valid_panoptic_map(model):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    res = infer_clip(model, frames, InferenceConfig(stuff_area_limit=64), [10, 11, 12])
    assert res.frames == [10, 11, 12] and res.panoptic.shape == (3, 64, 96)
    present = set(np.unique(res.panoptic).tolist()) - {0}
    assert present == {s.index for s in res.segments}  # every segment painted, nothing else
    for s in res.segments:
        assert (0 <= s.channel < 58) if s.isthing else (1 <= s.channel < 67)
        if s.isthing:
            assert s.embedding.shape == (64,) and np.isclose(np.linalg.norm(s.embedding), 1.0, atol=1e-5)
    # padding to a multiple of 32 must not change the output size of odd frames
    odd = infer_clip(model, [f[:50, :70] for f in frames[:2]], InferenceConfig(stuff_area_limit=64))
    assert odd.panoptic.shape == (2, 50, 70)
