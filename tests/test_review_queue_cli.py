"""``review --queue``: the ranked queue, the sample, suggestions and sure gaps, frames numbered from 1."""

from __future__ import annotations

import re

from annotator.cli import main as cli_main
from tests.demo_gaps import VID, demo_with_gaps


def test_review_queue_lists_masks_worst_first(tmp_path, capsys):
    path = demo_with_gaps(tmp_path)
    assert cli_main(["propagate", str(path), "--video", VID, "--speed", "fast"]) == 0
    capsys.readouterr()
    assert cli_main(["review", str(path), "--video", VID, "--queue", "--limit", "1000"]) == 0
    out = capsys.readouterr().out
    head = re.search(r"review queue: (\d+) of (\d+) machine masks", out)
    assert head and int(head.group(2)) > 0
    scores = [float(x) for x in re.findall(r"gain\s+([0-9.]+)", out)]
    assert len(scores) == int(head.group(1))
    assert scores == sorted(scores, reverse=True)
    frames = [int(x) for x in re.findall(r"frame\s+(\d+)\s+track", out)]
    assert all(1 <= f <= 31 for f in frames)
    assert "sample before accepting the rest:" in out and "suggested keyframes:" in out and "sure gaps" in out
