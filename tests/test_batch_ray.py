"""batch on a local Ray cluster started inside the test (2 CPUs, loopback): the same task function
gives the same files as the local pool; a node that does not see the project folder is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.batch.driver import run_batch
from annotator.errors import InputError
from tests.test_batch_helpers import PRED_LAYER, copy_project, label_state, make_project, same_tree

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vps-annotator[cluster]')")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("batchray") / "base.vpsproj")


def test_stages_on_ray_equal_the_local_runs(cluster, base, tmp_path):
    a = copy_project(base, tmp_path / "a.vpsproj")
    b = copy_project(base, tmp_path / "b.vpsproj")
    s = run_batch(a, "propagate", ray="auto")
    assert s.ok and [r.status for r in s.results] == ["done"] * 3, s.lines()
    assert s.runner == "ray auto"
    assert run_batch(b, "propagate", runner="inline").ok
    assert label_state(a) == label_state(b)
    again = run_batch(a, "propagate", ray="auto")
    assert all(r.reason.startswith("already done") for r in again.results)

    opts = {"format": "vipseg", "resize_height": 720}
    assert run_batch(a, "export", options={**opts, "out": str(tmp_path / "ray_vip")}, ray="auto").ok
    assert run_batch(b, "export", options={**opts, "out": str(tmp_path / "loc_vip")}, runner="inline").ok
    assert same_tree(tmp_path / "ray_vip", tmp_path / "loc_vip") == []

    sr = run_batch(a, "score", options={"pred_layer": PRED_LAYER, "windows": [1, 2]}, ray="auto")
    sl = run_batch(b, "score", options={"pred_layer": PRED_LAYER, "windows": [1, 2]}, runner="inline")
    def numbers(summary):  # the source names hold the project folder name (a vs b)
        return [{k: v for k, v in r.details["scores"].items() if k not in ("ground_truth", "prediction")}
                for r in summary.results]

    assert sr.ok and numbers(sr) == numbers(sl) and len(numbers(sr)) == 3
    v = run_batch(a, "validate", ray="auto")
    assert v.ok and [r.status for r in v.results] == ["done"] * 3


def test_project_not_on_shared_storage_is_refused(cluster, base, tmp_path):
    from annotator.batch.runners import check_cluster_storage
    from annotator.batch.stages import Task, run_task

    p = copy_project(base, tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match="not on storage shared by every Ray node"):
        check_cluster_storage(cluster, str(p), str(p / ".batch-token-missing"), "abc")
    res = run_task(Task(str(tmp_path / "elsewhere.vpsproj"), "demo_mixed", "validate", {},
                        token_file=str(p / ".batch-token-x"), token="abc"))
    assert res.status == "failed" and "does not exist here" in res.reason
