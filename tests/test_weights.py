"""Checkpoint registry: path resolution, validation messages, sha256, weights_only loading, CLI."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

import pytest
import torch

from annotator.cli import main as cli_main
from models.weights import (
    REGISTRY,
    CheckpointError,
    availability,
    detect_checkpoint_kind,
    get_kind,
    load_state_dict,
    load_state_dict_of,
    missing_message,
    require_checkpoint,
    resolve_checkpoint,
    sha256_file,
    validate_checkpoint,
    weight_damage,
)


def fake_sam_sd(dim: int = 768, depth: int = 12) -> dict[str, torch.Tensor]:
    """Key layout of a SAM checkpoint with tiny tensors (the checks read names and one shape)."""
    sd = {"image_encoder.patch_embed.proj.weight": torch.zeros(dim, 1, 1, 1),
          "prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 4),
          "mask_decoder.iou_token.weight": torch.zeros(1, 4)}
    for i in range(depth):
        sd[f"image_encoder.blocks.{i}.norm1.weight"] = torch.zeros(2)
    return sd


def fake_stcn_sd() -> dict[str, torch.Tensor]:
    return {"key_encoder.conv1.weight": torch.zeros(2), "value_encoder.conv1.weight": torch.zeros(2),
            "decoder.pred.weight": torch.zeros(2)}


def _varying(name: str, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A tensor that varies along its longest dimension, stored as a broadcast view (tiny file) and
    plausible for the damage checks (no NaN, small, not constant, no exact zeros, variances > 0)."""
    if not dtype.is_floating_point:
        return torch.zeros((), dtype=dtype).expand(shape)
    if len(shape) == 0:
        return torch.tensor(0.5, dtype=dtype)
    d = max(range(len(shape)), key=lambda i: shape[i])
    n = shape[d]
    lo, hi = (0.5, 1.5) if name.endswith("running_var") else (-0.05, 0.05)
    base = torch.linspace(lo, hi, n, dtype=dtype) + 0.001 if n > 1 else torch.tensor([0.01], dtype=dtype)
    view = [1] * len(shape)
    view[d] = n
    return base.view(view).expand(shape)


def full_sd(kind: str) -> dict[str, torch.Tensor]:
    """Every key of the real network with the right shape and plausible values, as tiny broadcast views
    (a fresh dict each call: callers replace entries)."""
    return dict(_full_sd(kind))


@functools.cache
def _full_sd(kind: str) -> dict[str, torch.Tensor]:
    if kind == "stcn":
        from models.stcn import STCN

        with torch.device("meta"):
            net = STCN()
    elif kind == "clip_panofcn":
        from models.clip_panofcn.network import ClipPanoFCN

        with torch.device("meta"):
            net = ClipPanoFCN()
    else:
        from segment_anything import sam_model_registry

        with torch.device("meta"):
            net = sam_model_registry[kind[len("sam_"):]](checkpoint=None)
    return {k: _varying(k, v.shape, v.dtype) for k, v in net.state_dict().items()}


class NotWeights:
    """A pickled Python object: must be refused by weights_only loading."""

    def __init__(self) -> None:
        self.x = 1


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Files shared by the module (read-only for the tests): built once, the SAM-L one is large."""
    tmp_path = tmp_path_factory.mktemp("ckpts")
    paths = {}
    paths["sam_b"] = tmp_path / "sam_b.pth"
    torch.save(fake_sam_sd(), paths["sam_b"])
    paths["sam_b_wrapped"] = tmp_path / "sam_b_wrapped.pth"
    torch.save({"model": {f"module.{k}": v for k, v in full_sd("sam_vit_b").items()}}, paths["sam_b_wrapped"])
    paths["stcn"] = tmp_path / "stcn.pth"
    torch.save(fake_stcn_sd(), paths["stcn"])
    paths["stcn_full"] = tmp_path / "stcn_full.pth"
    torch.save(full_sd("stcn"), paths["stcn_full"])
    paths["sam_b_full"] = tmp_path / "sam_b_full.pth"
    torch.save(full_sd("sam_vit_b"), paths["sam_b_full"])
    data = paths["sam_b"].read_bytes()
    paths["truncated"] = tmp_path / "trunc.pth"
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["empty"] = tmp_path / "empty.pth"
    paths["empty"].write_bytes(b"")
    paths["text"] = tmp_path / "readme.pth"
    paths["text"].write_text("this is not a checkpoint\n")
    paths["object"] = tmp_path / "object.pth"
    torch.save({"net": NotWeights()}, paths["object"])
    paths["list"] = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], paths["list"])
    return paths


def test_registry_has_every_kind_and_env_vars():
    assert {"sam_vit_b", "sam_vit_l", "sam_vit_h", "stcn", "clip_panofcn"} <= set(REGISTRY)
    assert get_kind("stcn").env_vars == ("VPS_STCN_CHECKPOINT",)
    assert get_kind("sam_vit_b").env_vars == ("VPS_SAM_VIT_B_CHECKPOINT", "VPS_SAM_CHECKPOINT")
    with pytest.raises(CheckpointError, match="unknown model kind"):
        get_kind("yolo")


def test_resolution_order(tmp_path):
    settings = {"checkpoints": {"stcn": str(tmp_path / "from_settings.pth")}}
    env = {"VPS_STCN_CHECKPOINT": str(tmp_path / "from_env.pth")}
    src = resolve_checkpoint("stcn", tmp_path / "flag.pth", settings, env)
    assert src.path == tmp_path / "flag.pth" and src.origin == "--checkpoint flag"
    src = resolve_checkpoint("stcn", None, settings, env)
    assert src.path == tmp_path / "from_env.pth" and "VPS_STCN_CHECKPOINT" in src.origin
    src = resolve_checkpoint("stcn", None, settings, {})
    assert src.path == tmp_path / "from_settings.pth" and "checkpoints.stcn" in src.origin
    src = resolve_checkpoint("stcn", None, {"stcn_checkpoint": "x.pth"}, {})
    assert src.path == Path("x.pth")
    assert resolve_checkpoint("stcn", None, {"checkpoints": {}}, {}) is None
    # the generic SAM variable serves every SAM size, the specific one wins
    env = {"VPS_SAM_CHECKPOINT": "generic.pth", "VPS_SAM_VIT_H_CHECKPOINT": "h.pth"}
    assert resolve_checkpoint("sam_vit_b", env=env).path == Path("generic.pth")
    assert resolve_checkpoint("sam_vit_h", env=env).path == Path("h.pth")
    with pytest.raises(CheckpointError, match="VPS_STCN_CHECKPOINT"):
        require_checkpoint("stcn", env={})
    assert "--checkpoint" in missing_message("sam_vit_b")


def test_load_valid_checkpoints(ckpts):
    sd = load_state_dict(ckpts["sam_b_full"], "sam_vit_b")
    assert "image_encoder.patch_embed.proj.weight" in sd
    sd = load_state_dict(ckpts["sam_b_wrapped"], "sam_vit_b")  # {"model": ...} and module. prefixes
    assert all(not k.startswith("module.") for k in sd)
    assert load_state_dict(ckpts["stcn_full"], "stcn").keys() == full_sd("stcn").keys()
    with pytest.raises(CheckpointError, match="missing keys"):  # right prefixes, 3 tensors: not loadable
        load_state_dict(ckpts["stcn"], "stcn")
    assert detect_checkpoint_kind(ckpts["sam_b"]) == "sam_vit_b"
    assert detect_checkpoint_kind(ckpts["stcn"]) == "stcn"
    info = validate_checkpoint(ckpts["stcn_full"], "stcn", "test")
    assert info.sha256 == hashlib.sha256(ckpts["stcn_full"].read_bytes()).hexdigest()
    assert info.num_tensors > 300 and info.sha256[:12] in info.describe()


@pytest.mark.parametrize("name,kind,pattern", [
    ("sam_b", "sam_vit_h", r"not a sam_vit_h checkpoint: image encoder is vit_b.*looks like a 'sam_vit_b'"),
    ("sam_b", "stcn", r"not a stcn checkpoint.*looks like a 'sam_vit_b'"),
    ("stcn", "sam_vit_b", r"not a sam_vit_b checkpoint.*looks like a 'stcn'"),
    ("truncated", "sam_vit_b", r"truncated"),
    ("empty", "sam_vit_b", r"empty \(0 bytes\)"),
    ("text", "stcn", r"not a PyTorch checkpoint"),
    ("object", "stcn", r"refused for safety"),
    ("list", "stcn", r"holds no state dict"),
])
def test_bad_checkpoints_give_clear_errors(ckpts, name, kind, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        load_state_dict(ckpts[name], kind)


def test_missing_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "nope.pth", "stcn")
    with pytest.raises(CheckpointError, match="folder"):
        load_state_dict(tmp_path, "stcn")
    with pytest.raises(CheckpointError, match="matches no known model kind"):
        detect_checkpoint_kind(_write(tmp_path / "other.pth", {"fc.weight": torch.zeros(1)}))


def _write(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def test_sha256_memoised_and_follows_content(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert sha256_file(p) == hashlib.sha256(b"abc").hexdigest()
    p.write_bytes(b"abcd")
    os.utime(p, ns=(1, 10**18))  # a different mtime: the memo must not return the old digest
    assert sha256_file(p) == hashlib.sha256(b"abcd").hexdigest()


def test_availability(ckpts, tmp_path):
    ok, reason = availability("stcn", env={})
    assert not ok and "VPS_STCN_CHECKPOINT" in reason
    ok, reason = availability("stcn", cli_path=tmp_path / "gone.pth")
    assert not ok and "not found" in reason
    ok, reason = availability("stcn", cli_path=ckpts["stcn_full"], deep=True)
    assert ok and "sha256" in reason
    ok, reason = availability("stcn", cli_path=ckpts["sam_b"], deep=True)
    assert not ok and "not a stcn checkpoint" in reason


def test_cli_weights_check(ckpts, capsys):
    assert cli_main(["weights", "check", str(ckpts["sam_b_full"]), "--kind", "sam_vit_b"]) == 0
    out = capsys.readouterr().out
    assert "kind: sam_vit_b" in out and f"sha256: {sha256_file(ckpts['sam_b_full'])}" in out
    assert "validation: ok" in out
    assert cli_main(["weights", "check", str(ckpts["stcn_full"])]) == 0
    assert "kind: stcn (detected)" in capsys.readouterr().out
    assert cli_main(["weights", "check", str(ckpts["truncated"]), "--kind", "sam_vit_b"]) == 2
    assert "truncated" in capsys.readouterr().err
    assert cli_main(["weights", "check", str(ckpts["sam_b"]), "--kind", "sam_vit_l"]) == 2
    assert "not a sam_vit_l checkpoint" in capsys.readouterr().err
    assert cli_main(["weights", "list"]) == 0
    assert "stcn" in capsys.readouterr().out


def test_load_state_dict_of_several_kinds(ckpts):
    kind, sd = load_state_dict_of(ckpts["sam_b_wrapped"], ["sam_vit_l", "sam_vit_b", "sam_vit_h"])
    assert kind == "sam_vit_b" and "image_encoder.patch_embed.proj.weight" in sd
    with pytest.raises(CheckpointError, match="none of sam_vit_b, sam_vit_h.*looks like a 'stcn'"):
        load_state_dict_of(ckpts["stcn"], ["sam_vit_b", "sam_vit_h"])


# --------------------------------------------------------------------------- QA regressions


def test_validation_checks_every_key_and_shape(ckpts, tmp_path, capsys):
    """``weights check`` / deep availability must not say "ok" for a file the model cannot load."""
    with pytest.raises(CheckpointError, match="missing keys"):
        validate_checkpoint(ckpts["stcn"], "stcn")  # right prefixes, but 3 tensors only
    ok, reason = availability("stcn", cli_path=ckpts["stcn"], deep=True)
    assert not ok and "missing keys" in reason
    assert cli_main(["weights", "check", str(ckpts["sam_b"]), "--kind", "sam_vit_b"]) == 2
    assert "missing keys" in capsys.readouterr().err
    sd = full_sd("sam_vit_b")
    sd["mask_decoder.iou_token.weight"] = torch.zeros(2, 256)
    sd["extra.weight"] = torch.zeros(1)
    bad = _write(tmp_path / "bad_shape.pth", sd)
    with pytest.raises(CheckpointError, match=r"'mask_decoder.iou_token.weight' \(2x256, expected 1x256\).*'extra"):
        validate_checkpoint(bad, "sam_vit_b")
    sd = full_sd("stcn")
    sd["key_proj.key_proj.weight"] = torch.zeros(32, 1024, 3, 3)
    with pytest.raises(CheckpointError, match="key_proj.key_proj.weight"):
        validate_checkpoint(_write(tmp_path / "stcn_bad.pth", sd), "stcn")


# --------------------------------------------------------------------------- damaged weights (issue 18 item 7)

#: one float tensor per kind to damage: a multi-dimensional weight and a batch-norm variance if any
DAMAGE_TARGETS = {
    "sam_vit_b": ("image_encoder.blocks.3.mlp.lin1.weight", None),
    "stcn": ("key_encoder.layer2.0.conv1.weight", "key_encoder.bn1.running_var"),
    "clip_panofcn": ("kernel_head.out_conv.weight", "backbone.bottom_up.res3.1.conv2.norm.running_var"),
}


def _damaged(kind: str, how: str) -> dict[str, torch.Tensor]:
    sd = full_sd(kind)
    weight, var = DAMAGE_TARGETS[kind]
    if how == "negative variance":
        t = sd[var].clone()
        t[3] = -0.5
        sd[var] = t
        return sd
    t = sd[weight].clone()
    flat = t.view(-1)
    if how == "nan":
        flat[7] = float("nan")
    elif how == "inf":
        flat[-1] = float("inf")
    elif how == "huge":
        flat[100] = 3.4e38  # an exponent bit flip
    elif how == "constant":
        t = torch.full_like(t, 0.0125)
    elif how == "zero block":
        flat[1000:1000 + 512] = 0.0  # a zeroed disk block inside the tensor
    elif how == "mostly zero":
        flat[: flat.numel() * 3 // 4] = 0.0
    sd[weight] = t
    return sd


@pytest.mark.parametrize("kind", sorted(DAMAGE_TARGETS))
def test_plausible_full_checkpoints_pass(kind, tmp_path):
    path = _write(tmp_path / f"{kind}.pth", full_sd(kind))
    assert validate_checkpoint(path, kind).num_tensors == len(full_sd(kind))


DAMAGES = (("nan", r"1 NaN/Inf value\b"), ("inf", r"1 NaN/Inf value\b"), ("huge", r"magnitude 3\.4e\+38"),
           ("constant", r"the same value 0\.0125 in all"),
           ("zero block", r"a block of 512 consecutive exact zeros"),
           ("mostly zero", r"\d+ of \d+ entries exactly zero"), ("negative variance", r"a negative variance"))


@pytest.mark.parametrize("kind", sorted(DAMAGE_TARGETS))
def test_every_kind_of_damage_is_named(kind):
    for how, pattern in DAMAGES:
        weight, var = DAMAGE_TARGETS[kind]
        if how == "negative variance" and var is None:
            continue
        problems = weight_damage(_damaged(kind, how), kind)
        target = var if how == "negative variance" else weight
        assert len(problems) == 1 and re.match(rf"'{re.escape(target)}' \({pattern}", problems[0]), (how, problems)


@pytest.mark.parametrize("kind,how", [("sam_vit_b", "huge"), ("stcn", "zero block"), ("clip_panofcn", "nan")])
def test_damaged_files_are_refused_by_loaders_and_weights_check(kind, how, tmp_path, capsys):
    path = _write(tmp_path / f"{kind}.pth", _damaged(kind, how))
    with pytest.raises(CheckpointError, match=rf"is damaged: .*'{re.escape(DAMAGE_TARGETS[kind][0])}'"):
        load_state_dict(path, kind)  # the loaders of every model go through here
    assert cli_main(["weights", "check", str(path), "--kind", kind]) == 2
    captured = capsys.readouterr()
    assert "validation: ok" not in captured.out and "is damaged" in captured.err


def test_a_zeroed_block_on_disk_loads_silently_but_is_caught(tmp_path):
    """torch.load does not check the zip CRCs: zero 4 KB inside real random weights on disk."""
    torch.manual_seed(0)
    sd = {"a.weight": torch.randn(64, 64, 3, 3), "b.weight": torch.randn(128, 64)}
    path = _write(tmp_path / "w.pth", sd)
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    data[mid: mid + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    loaded = torch.load(path, weights_only=True)  # no error from torch
    assert weight_damage(sd) == [] and not torch.equal(loaded["a.weight"], sd["a.weight"])
    assert "consecutive exact zeros" in weight_damage(loaded)[0]


def test_weight_damage_allows_zero_initialised_sam_tensors_and_constant_1d():
    sd = full_sd("sam_vit_b")
    sd["image_encoder.pos_embed"] = torch.zeros(()).expand(sd["image_encoder.pos_embed"].shape)
    sd["image_encoder.blocks.0.norm1.bias"] = torch.zeros(768)
    assert weight_damage(sd, "sam_vit_b") == []
    assert weight_damage(sd, "stcn")  # only SAM zero-initialises pos_embed


@pytest.mark.parametrize("content,pattern", [
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "looks like a PNG image"),
    (b"<!DOCTYPE html><html><head>Google Drive</head>", "looks like an HTML page"),
    (b"\xff\xd8\xff\xe0" + bytes(64), "looks like a JPEG image"),
    (b"\x1f\x8b\x08" + bytes(64), "gzip archive"),
])
def test_other_files_renamed_to_pth_are_not_checkpoints(tmp_path, content, pattern, capsys):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"not a PyTorch checkpoint: .*{pattern}"):
        load_state_dict(path, "clip_panofcn")
    assert cli_main(["weights", "check", str(path), "--kind", "clip_panofcn"]) == 2
    err = capsys.readouterr().err
    assert "refused for safety" not in err and "not a PyTorch checkpoint" in err


def test_hints_name_only_real_sources():
    for kind in ("stcn", "clip_panofcn"):
        msg = missing_message(kind)
        assert "preannotate train" not in msg and "trained by this tool" not in msg
    assert "model_final.pth" in missing_message("clip_panofcn")


def test_clip_panofcn_structure_errors_name_the_key(tmp_path, capsys):
    sd = full_sd("clip_panofcn")
    renamed = dict(sd)
    renamed["thing_generator.embed_extractor.weigth"] = renamed.pop("thing_generator.embed_extractor.weight")
    reshaped = dict(sd)
    reshaped["position_head.out_inst.weight"] = torch.zeros(()).expand(80, 256, 3, 3)  # COCO's 80 things
    backbone_only = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    for obj, pattern in ((renamed, "unexpected keys 'thing_generator.embed_extractor.weigth'"),
                         ({"model": reshaped}, "'position_head.out_inst.weight' (80x256x3x3, expected 58x256x3x3)"),
                         (backbone_only, "missing weights 'position_head.*'")):
        path = _write(tmp_path / "c.pth", obj)
        assert cli_main(["weights", "check", str(path), "--kind", "clip_panofcn"]) == 2
        captured = capsys.readouterr()
        assert pattern in captured.err and "validation: ok" not in captured.out


def test_kinds_register_themselves_and_the_registry_imports_no_model():
    """models.weights imports no model module (that was an import circle); importing any part of
    models declares every built-in kind, with its structure check, and does not load torch."""
    import ast
    import subprocess
    import sys

    import models.weights

    tree = ast.parse(Path(models.weights.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in imported if m.startswith("models.")} <= {"models.checkpoint_file", "models.damage"}
    code = ("import sys, models.weights as w; "
            "print(sorted(k for k, v in w.REGISTRY.items() if v.check_structure), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert out == "['clip_panofcn', 'sam2', 'sam_vit_b', 'sam_vit_h', 'sam_vit_l', 'stcn'] False"
