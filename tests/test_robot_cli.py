"""``main.py eval-effort``: runs the robot from the command line and reports clear input errors."""

import json

import pytest

from annotator.cli import main as cli_main


def test_eval_effort_on_a_tiny_demo(tmp_path, capsys):
    out = tmp_path / "effort.json"
    code = cli_main(["eval-effort", "--demo", "occlusion", "--demo-frames", "15", "--modes", "copy,hand",
                     "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "demo_occlusion" in text and "TOTAL" in text
    data = json.loads(out.read_text())
    modes = data["videos"][0]["modes"]
    assert set(modes) == {"copy", "hand"}
    assert data["cost_model"]["vertex"] > 0
    for m in modes.values():
        assert m["minutes"] * 60 == pytest.approx(sum(row["seconds"] for row in m["breakdown"].values()))
    assert "saved_vs_hand" in data["totals"]["copy"]


def test_eval_effort_input_errors(tmp_path, capsys):
    assert cli_main(["eval-effort"]) == 2
    assert "--demo" in capsys.readouterr().err
    assert cli_main(["eval-effort", str(tmp_path / "missing")]) == 2
    assert cli_main(["eval-effort", "--demo", "nosuch"]) == 2
    assert "unknown demo scenario" in capsys.readouterr().err
