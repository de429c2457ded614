"""One rule picks the dense backend: the window's propagate job, ``main.py propagate`` and the
status bar read ``propagation_backend`` from the effective settings (propagation.factory.dense_backend).

Before, the window ran the memory network whenever an STCN checkpoint was set, the CLI ran flow
unless told otherwise, and the status bar said memory only for a ``"propagator"`` key: three
answers for one project.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from annotator.backends import backend_status
from annotator.cli import build_parser
from annotator.project import Project
from annotator.project.settings import effective
from annotator.stages.propagate import PropagateOptions
from propagation.factory import dense_backend

torch = pytest.importorskip("torch")


@pytest.fixture()
def stcn_checkpoint(tmp_path: Path) -> Path:
    from models.stcn import build_stcn

    path = tmp_path / "stcn.pth"
    torch.save(build_stcn(seed=0).state_dict(), path)
    return path


def _window_engine(settings: dict) -> str:
    from annotator.gui.pipeline.actions import build_propagator

    return build_propagator(settings).name


def _cli_engine(project: Path) -> str:
    """What ``main.py propagate PROJECT --video V`` (no --backend) builds, through its own parser."""
    args = build_parser().parse_args(["propagate", str(project), "--video", "v"])
    assert isinstance(args, argparse.Namespace) and args.backend is None
    proj = Project.open(project)
    options = PropagateOptions(args.backend, args.checkpoint, args.preset, args.speed,
                               effective(proj.settings, strict=True)).with_engine()
    assert options.engine is not None
    return options.engine.name


def test_rule_reads_one_key_and_the_old_name() -> None:
    assert dense_backend({}) == dense_backend(None) == "flow"
    assert dense_backend({"propagation_backend": "memory"}) == "memory"
    assert dense_backend(effective({"propagator": "memory"}, user={})) == "memory"  # older key
    assert dense_backend({"propagation_backend": "copy"}) == "flow"  # association-only value


def test_window_cli_and_status_bar_agree(tmp_path: Path, stcn_checkpoint: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPS_STCN_CHECKPOINT", raising=False)
    proj = Project.create(tmp_path / "p.vpsproj")
    proj.settings["checkpoints"] = {"stcn": str(stcn_checkpoint)}
    proj.save()
    settings = effective(Project.open(proj.path).settings, user={})
    # a checkpoint alone does not switch the backend: all three say flow
    assert _window_engine(settings).startswith("flow") and _cli_engine(proj.path).startswith("flow")
    status = backend_status(settings, env={})
    assert status.propagator == "flow" and "STCN available" in status.propagator_text

    proj.settings["propagation_backend"] = "memory"  # Preferences > Propagation backend, for this project
    proj.save()
    settings = effective(Project.open(proj.path).settings, user={})
    assert _window_engine(settings) == _cli_engine(proj.path) == "memory"
    assert backend_status(settings, env={}).propagator == "memory"


def test_memory_without_a_checkpoint_is_refused_not_replaced(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from annotator.errors import InputError

    monkeypatch.delenv("VPS_STCN_CHECKPOINT", raising=False)
    with pytest.raises(InputError, match="(?i)stcn"):
        _window_engine({"propagation_backend": "memory", "checkpoints": {}})
