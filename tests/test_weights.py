"""Checkpoint registry: path resolution, validation messages, sha256, weights_only loading, CLI."""

from __future__ import annotations

import hashlib
import os
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
    load_user_settings,
    merge_settings,
    missing_message,
    require_checkpoint,
    resolve_checkpoint,
    sha256_file,
    user_settings_path,
    validate_checkpoint,
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


def full_sd(kind: str) -> dict[str, torch.Tensor]:
    """Every key of the real network with the right shape, stored as a broadcast zero (tiny file)."""
    if kind == "stcn":
        from models.stcn import STCN

        with torch.device("meta"):
            net = STCN()
    else:
        from segment_anything import sam_model_registry

        with torch.device("meta"):
            net = sam_model_registry[kind[len("sam_"):]](checkpoint=None)
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in net.state_dict().items()}


class NotWeights:
    """A pickled Python object: must be refused by weights_only loading."""

    def __init__(self) -> None:
        self.x = 1


@pytest.fixture
def ckpts(tmp_path):
    paths = {}
    paths["sam_b"] = tmp_path / "sam_b.pth"
    torch.save(fake_sam_sd(), paths["sam_b"])
    paths["sam_l_wrapped"] = tmp_path / "sam_l.pth"
    torch.save({"model": {f"module.{k}": v for k, v in fake_sam_sd(1024, 24).items()}}, paths["sam_l_wrapped"])
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
    sd = load_state_dict(ckpts["sam_b"], "sam_vit_b")
    assert "image_encoder.patch_embed.proj.weight" in sd
    sd = load_state_dict(ckpts["sam_l_wrapped"], "sam_vit_l")  # {"model": ...} and module. prefixes
    assert all(not k.startswith("module.") for k in sd)
    assert load_state_dict(ckpts["stcn"], "stcn").keys() == fake_stcn_sd().keys()
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


def test_user_and_project_settings(tmp_path):
    env = {"VPS_ANNOTATOR_SETTINGS": str(tmp_path / "user.json")}
    assert user_settings_path(env) == tmp_path / "user.json"
    assert user_settings_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "vps_annotator" / "settings.json"
    assert load_user_settings(env=env) == {}
    (tmp_path / "user.json").write_text('{"checkpoints": {"stcn": "u_stcn.pth", "sam_vit_b": "u_sam.pth"}}')
    user = load_user_settings(env=env)
    merged = merge_settings({"checkpoints": {"stcn": "p_stcn.pth", "sam_vit_h": ""}}, user)
    assert merged["checkpoints"] == {"stcn": "p_stcn.pth", "sam_vit_b": "u_sam.pth"}
    assert resolve_checkpoint("sam_vit_b", settings=merged, env={}).path == Path("u_sam.pth")
    (tmp_path / "user.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_user_settings(env=env)


def test_load_state_dict_of_several_kinds(ckpts):
    kind, sd = load_state_dict_of(ckpts["sam_l_wrapped"], ["sam_vit_b", "sam_vit_l", "sam_vit_h"])
    assert kind == "sam_vit_l" and "image_encoder.patch_embed.proj.weight" in sd
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
