"""`info` tells the user what crash recovery did: a killed swap is rolled back at the next
writable open, and `info` (read-only) names the rollback afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from annotator.cli import main as cli_main
from annotator.project import Project
from tests import reliability_project

ROOT = Path(__file__).resolve().parents[1]


def test_info_reports_the_rolled_back_operation(tmp_path, capsys):
    proj = reliability_project.build(tmp_path / "p.vpsproj")
    env = {**os.environ, "VPS_TEST_KILL_AFTER_WRITES": "6"}
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "correct", str(proj), "--video", "v",
                          "swap", "1", "2"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == -9, run.stderr  # killed mid-operation
    with Project.open(proj).open_video("v") as video:  # writable open: rolls back
        assert any("unfinished" in n or "rolled back" in n or "dropped" in n for n in video.recovery_notes), \
            video.recovery_notes
    capsys.readouterr()
    assert cli_main(["info", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "recovery:" in out and "swap" in out, out
