"""Work on named videos reads only their metadata: per-video batch tasks on a 3,000-video project
must not read every other video.json."""

from __future__ import annotations

import pytest

from annotator.errors import InputError
from annotator.formats.common import export_source
from annotator.metrics.sources import ProjectSource
from annotator.project import Project
from tests import reliability_project


@pytest.fixture
def proj(tmp_path):
    return Project.open(reliability_project.build(tmp_path / "p.vpsproj"))


def test_named_videos_do_not_list_the_project(proj, monkeypatch):
    def no_listing(self):
        raise AssertionError("the whole project was listed")

    monkeypatch.setattr(Project, "video_ids", property(no_listing))
    assert proj.has_video("v") and not proj.has_video("nope") and not proj.has_video("../x")
    assert export_source(proj, ["v", "v"], deep=False)[1] == ["v"]
    assert ProjectSource(proj.path, videos=["v"])._ids == ["v"]


def test_unknown_named_video_still_lists_the_alternatives(proj):
    with pytest.raises(InputError, match=r"no video nope \(videos: v\)"):
        export_source(proj, ["nope"], deep=False)
    with pytest.raises(InputError, match="no video nope"):
        ProjectSource(proj.path, videos=["nope"])
