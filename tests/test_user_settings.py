"""Per-user settings: where they live, merge order defaults < user < project, recent projects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.errors import InputError
from annotator.project import Project
from annotator.project import settings as us
from models.weights import resolve_checkpoint


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(us.SETTINGS_FILE_ENV, raising=False)
    monkeypatch.setenv(us.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def test_paths_follow_the_environment(tmp_path, config_dir):
    assert us.settings_path() == config_dir / "settings.json"
    assert us.settings_path({us.SETTINGS_FILE_ENV: str(tmp_path / "x.json")}) == tmp_path / "x.json"
    # without either variable: the file models.weights reads, so the CLI sees GUI-chosen checkpoints
    assert us.settings_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "vps_annotator" / "settings.json"


def test_save_keeps_unknown_keys_and_validates(config_dir):
    assert us.load_user() == {}
    config_dir.mkdir()
    (config_dir / "settings.json").write_text(json.dumps({"other_tool": 1, "brush_size": 3}))
    us.save_user({"brush_size": "40", "checkpoints": {"stcn": "/w/stcn.pth", "sam_vit_b": ""}})
    doc = us.load_user()
    assert doc == {"other_tool": 1, "brush_size": 40, "checkpoints": {"stcn": "/w/stcn.pth"}}
    assert not [p for p in config_dir.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp left
    with pytest.raises(InputError, match="brush_size must be between"):
        us.save_user({"brush_size": 0})
    with pytest.raises(InputError, match="propagation_speed"):
        us.save_user({"propagation_speed": "warp"})
    assert us.load_user()["brush_size"] == 40  # a refused save changes nothing


def test_broken_file_is_a_clear_error_but_effective_still_works(config_dir):
    config_dir.mkdir()
    (config_dir / "settings.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        us.load_user()
    assert us.effective({"brush_size": 7})["brush_size"] == 7


def test_merge_order_defaults_user_project(tmp_path):
    us.save_user({"brush_size": 20, "autosave_s": 60,
                  "checkpoints": {"sam_vit_b": "/u/b.pth", "stcn": "/u/stcn.pth"}})
    project = Project.create(tmp_path / "p.vpsproj")
    eff = us.effective(project.settings)
    assert (eff["brush_size"], eff["autosave_s"], eff["propagation_speed"]) == (20, 60, "fast")
    assert eff["checkpoints"] == {"sam_vit_b": "/u/b.pth", "stcn": "/u/stcn.pth"}

    us.save_project(project, {**eff, "brush_size": 5, "checkpoints": {"sam_vit_b": "/p/b.pth",
                                                                      "stcn": "/u/stcn.pth"}})
    stored = Project.open(project.path).settings
    assert stored["brush_size"] == 5 and "autosave_s" not in stored  # only what differs
    assert stored["checkpoints"] == {"sam_vit_b": "/p/b.pth"}
    eff = us.effective(Project.open(project.path).settings)
    assert eff["brush_size"] == 5 and eff["autosave_s"] == 60
    assert eff["checkpoints"] == {"sam_vit_b": "/p/b.pth", "stcn": "/u/stcn.pth"}
    # the user's later change reaches the project where it did not override
    us.save_user({"autosave_s": 90})
    assert us.effective(Project.open(project.path).settings)["autosave_s"] == 90
    # saving the user's value at project scope drops the override
    us.save_project(project, {**eff, "brush_size": 20})
    assert "brush_size" not in Project.open(project.path).settings


def test_recent_projects(tmp_path):
    paths = [Project.create(tmp_path / f"p{i}.vpsproj").path for i in range(12)]
    for p in paths:
        us.add_recent(p)
    us.add_recent(paths[3])
    recent = us.recent_projects()
    assert recent[0] == str(paths[3]) and len(recent) == us.MAX_RECENT
    assert recent[1] == str(paths[11])
    (paths[11] / "project.json").unlink()  # moved away: left out of the menu
    assert str(paths[11]) not in us.recent_projects()
    us.clear_recent()
    assert us.recent_projects() == []


def test_user_file_and_project_checkpoints_resolve_through_effective(tmp_path):
    """The user's file (formerly read by models.weights) and the per-kind checkpoint merge."""
    env = {us.SETTINGS_FILE_ENV: str(tmp_path / "user.json")}
    assert us.settings_path(env) == tmp_path / "user.json"
    assert us.load_user(env) == {}
    (tmp_path / "user.json").write_text('{"checkpoints": {"stcn": "u_stcn.pth", "sam_vit_b": "u_sam.pth"}}')
    user = us.load_user(env)
    merged = us.effective({"checkpoints": {"stcn": "p_stcn.pth", "sam_vit_h": ""}}, user)
    assert merged["checkpoints"] == {"stcn": "p_stcn.pth", "sam_vit_b": "u_sam.pth"}
    assert resolve_checkpoint("sam_vit_b", settings=merged, env={}).path == Path("u_sam.pth")
    (tmp_path / "user.json").write_text("{broken")
    with pytest.raises(InputError, match="not readable JSON"):
        us.load_user(env)


def test_one_speed_default_shared_with_the_propagator_factory():
    from propagation import factory
    from propagation.flow import PROFILES

    assert us.DEFAULTS["propagation_speed"] == us.DEFAULT_SPEED == factory.DEFAULT_SPEED == "fast"
    assert us.PROPAGATION_SPEEDS == factory.SPEEDS == tuple(PROFILES)
    assert us.effective({})["propagation_speed"] == "fast"


def test_old_flow_speed_key_is_read_as_propagation_speed(tmp_path, config_dir):
    from propagation.factory import make_propagator
    from propagation.flow import FlowConfig

    # a project.json written before the rename
    project = Project.create(tmp_path / "old.vpsproj")
    project.settings["flow_speed"] = "quality"
    project.save()
    eff = us.effective(Project.open(project.path).settings)
    assert eff["propagation_speed"] == "quality" and "flow_speed" not in eff
    assert make_propagator("flow", settings=eff).config == FlowConfig.profile("quality")
    # an old user file, and a layer holding both keys (the new one wins)
    config_dir.mkdir()
    (config_dir / "settings.json").write_text(json.dumps({"flow_speed": "balanced"}))
    assert us.effective(None)["propagation_speed"] == "balanced"
    assert us.effective({"flow_speed": "fast", "propagation_speed": "quality"})["propagation_speed"] == "quality"
    # the project wins over the user even when it still uses the old name
    assert us.effective(Project.open(project.path).settings)["propagation_speed"] == "quality"
    with pytest.raises(InputError, match="propagation_speed"):
        us.validate({"flow_speed": "warp"})
    # saving from the settings dialog rewrites the old key under the new name
    us.save_project(project, {**eff, "propagation_speed": "quality"}, user={})
    stored = Project.open(project.path).settings
    assert "flow_speed" not in stored and stored["propagation_speed"] == "quality"


def test_wrong_typed_knob_in_the_user_file_is_named(config_dir, capsys):
    """The user's file goes through the settings schema on read: a wrong type names file and key,
    and the CLI stops with one error line instead of failing later inside a stage."""
    from annotator.cli import main as cli_main

    path = us.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"brush_size": "big", "checkpoints": {"stcn": 3}}))
    with pytest.raises(InputError, match=r"brush_size.*found.*expected an integer"):
        us.load_user()
    assert us.effective({})["brush_size"] == us.DEFAULTS["brush_size"]  # the window still opens
    with pytest.raises(InputError, match="checkpoints"):
        us.effective({}, strict=True)
    project = Project.create(config_dir.parent / "p.vpsproj")
    assert cli_main(["info", str(project.path)]) == 1  # info reports it and exits non-zero
    assert "problem: user settings:" in capsys.readouterr().out
    video = project.create_video("v", ["a"], 4, 6)
    video.close()
    assert cli_main(["propagate", str(project.path), "--video", "v"]) == 2  # a writing command refuses
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "brush_size" in err[-1]
