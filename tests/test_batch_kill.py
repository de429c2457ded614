"""batch: a worker SIGKILLed in the middle of a stage (store test hook) loses only its own video's
in-flight work; no label file is torn, and the rerun finishes exactly the unfinished videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator import panoptic, store
from annotator.batch.driver import run_batch
from annotator.batch.markers import marker_path
from annotator.batch.runners import WORKER_DIED
from annotator.project import Project, check_project
from tests.test_batch_helpers import copy_project, file_stamps, label_state, make_project


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("batchkill") / "base.vpsproj")


def test_killed_worker_mid_propagation_then_rerun_finishes(base, tmp_path):
    # durable writes of one video's task (measured in this process; the driver's token write included)
    ref = copy_project(base, tmp_path / "ref.vpsproj")
    before = store.writes_done()
    assert run_batch(ref, "propagate", videos=["demo_crossing"], runner="inline").ok
    per_video = store.writes_done() - before
    assert run_batch(ref, "propagate", runner="inline").ok  # the undisturbed result

    p = copy_project(base, tmp_path / "p.vpsproj")
    # the worker does the videos in order: it finishes demo_crossing and dies inside demo_mixed
    first = run_batch(p, "propagate", workers=1,
                      worker_env={store.KILL_AFTER_WRITES_ENV: str(per_video + 3)})
    status = {r.video_id: (r.status, r.reason) for r in first.results}
    assert status["demo_crossing"] == ("done", "")
    assert status["demo_mixed"] == ("failed", WORKER_DIED)
    assert status["demo_occlusion"][0] == "failed" and not first.ok
    assert not marker_path(p / "videos" / "demo_mixed", "propagate").exists()
    mixed_labels = p / "videos" / "demo_mixed" / "labels"
    changed = [f for f in mixed_labels.glob("*.png")
               if f.stat().st_mtime_ns != (base / "videos" / "demo_mixed" / "labels" / f.name).stat().st_mtime_ns]
    assert changed, "the kill came before the stage wrote anything: the test would prove nothing"
    proj = Project.open(p)
    for vid in proj.video_ids:  # no torn label file anywhere
        for f in (p / "videos" / vid / "labels").glob("*.png"):
            panoptic.read_label_png(f)
    done_stamps = file_stamps(p / "videos" / "demo_crossing")

    again = run_batch(p, "propagate", workers=1)
    assert {r.video_id: r.status for r in again.results} == {
        "demo_crossing": "skipped", "demo_mixed": "done", "demo_occlusion": "done"}, again.lines()
    assert file_stamps(p / "videos" / "demo_crossing") == done_stamps  # nothing else touched
    assert label_state(p) == label_state(ref)
    assert check_project(Project.open(p), deep=True) == []
