"""Per-frame arrays through the Video API only: save, load, delete (callers never build the path)."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import ReadOnlyError
from annotator.project import Project


def test_delete_array_removes_one_frame_and_says_if_there_was_one(tmp_path):
    proj = Project.create(tmp_path / "p.vpsproj")
    video = proj.create_video("v", ["a", "b"], 4, 6)
    video.save_array("confidence", 0, np.ones((4, 6), np.float32))
    video.save_array("confidence", 1, np.zeros((4, 6), np.float32))
    assert video.has_array("confidence", 0) and not video.has_array("flags", 0)
    assert video.delete_array("confidence", 0) is True
    assert not video.has_array("confidence", 0)
    assert video.load_array("confidence", 0) is None and video.load_array("confidence", 1) is not None
    assert video.delete_array("confidence", 0) is False
    video.close()
    with proj.open_video("v", readonly=True) as ro, pytest.raises(ReadOnlyError):
        ro.delete_array("confidence", 1)


def test_delete_array_inside_a_failed_transaction_is_undone(tmp_path):
    proj = Project.create(tmp_path / "p.vpsproj")
    video = proj.create_video("v", ["a"], 4, 6)
    video.save_array("flags", 0, np.arange(3))
    with pytest.raises(RuntimeError), video.transaction("clear"):
        video.delete_array("flags", 0)
        raise RuntimeError("fails after the delete")
    np.testing.assert_array_equal(video.load_array("flags", 0), np.arange(3))
    video.close()
