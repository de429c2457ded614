"""Where the tasks run: in this process, a spawn process pool, or a Ray cluster.

Every runner calls :func:`annotator.batch.stages.run_task` per video and reports each result to
``on_result`` as it arrives, and frame progress to ``on_frames(video_id, done, total)`` where
the runner can carry it (pool: a queue from the workers; Ray: per finished video only).

Why spawn: forked workers would inherit the driver's threads and open files (tqdm, torch);
spawned ones start clean, exactly like Ray workers, so both runners exercise the same code path.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from annotator.batch.stages import Task, run_task
from annotator.batch.summary import FAILED, TaskResult
from annotator.errors import InputError

OnResult = Callable[[TaskResult], None]
OnFrames = Callable[[str, int, int], None]

WORKER_DIED = ("the worker process died (killed or out of memory) while this video was running or queued; "
               "rerun the same command to finish it")


def default_workers() -> int:
    """Worker processes sized to the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_inline(tasks: Sequence[Task], on_result: OnResult, on_frames: OnFrames) -> None:
    """In this process, one after another (tests, debugging)."""
    for task in tasks:
        on_result(run_task(task, lambda d, t, _m, v=task.video_id: on_frames(v, d, t)))


def _pool_task(task: Task) -> TaskResult:
    from annotator.batch.workerenv import progress_queue

    q = progress_queue()

    def progress(done: int, total: int, _msg: str) -> None:
        if q is not None:
            q.put((task.video_id, done, total))

    return run_task(task, progress)


def run_pool(tasks: Sequence[Task], workers: int, on_result: OnResult, on_frames: OnFrames,
             worker_env: dict[str, str] | None = None) -> None:
    """Local spawn pool; a worker killed mid-task fails its video and the ones still queued."""
    from annotator.batch.workerenv import init_worker

    ctx = mp.get_context("spawn")
    q = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                vid, done, total = q.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                return
            on_frames(vid, done, total)

    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(tasks))), mp_context=ctx,
                               initializer=init_worker, initargs=(worker_env, q))
    try:
        pending = {pool.submit(_pool_task, t): t for t in tasks}
        while pending:
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for fut in finished:
                task = pending.pop(fut)
                try:
                    on_result(fut.result())
                except BrokenProcessPool:
                    on_result(TaskResult(task.video_id, FAILED, WORKER_DIED))
                except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be unpickled
                    on_result(TaskResult(task.video_id, FAILED, f"{type(exc).__name__}: {exc}"))
        drain()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        q.close()


# ------------------------------------------------------------------------------------------ Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'vps-annotator[cluster]' (or pip install 'ray>=2.9')") from None
    return ray


def connect_ray(address: str) -> Any:
    """Join the cluster (``auto``: the one ``ray start`` set up on this machine; ``local``: start a
    one-machine instance for this run), or reuse a ``ray.init`` the caller already made."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError by version
        raise InputError(f"cannot connect to the Ray cluster at {address!r} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         "start one with `ray start --head` (then --ray auto) or pass its address") from None
    return ray


def _probe(project: str, token_file: str, token: str) -> str:
    from annotator.batch.stages import StorageError, check_token

    try:
        check_token(project, token_file, token)
    except StorageError as exc:
        return str(exc)
    return ""


def check_cluster_storage(ray: Any, project: str, token_file: str, token: str) -> None:
    """One probe task pinned to every alive node: each must see the driver's token file."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_probe)
    refs = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        refs.append(probe.options(scheduling_strategy=strategy, runtime_env=_runtime_env()).remote(
            project, token_file, token))
    problems = [p for p in ray.get(refs) if p]
    if problems:
        raise InputError(f"the project is not on storage shared by every Ray node: {problems[0]}"
                         + (f" (and {len(problems) - 1} more nodes)" if len(problems) > 1 else ""))


def _runtime_env() -> dict[str, Any]:
    """Let workers import this checkout when it is not installed as a package on the nodes."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {"env_vars": {"PYTHONPATH": root + (os.pathsep + path if path else "")}}


def gpus_per_task(ray: Any, stage: str, options: dict[str, Any]) -> float:
    """One GPU per task for model stages when the cluster has GPUs (CPU-only clusters get none)."""
    from annotator.batch.stages import MODEL_STAGES

    uses_model = stage in MODEL_STAGES or (stage == "propagate" and options.get("backend") == "memory")
    return 1.0 if uses_model and ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def run_ray(tasks: Sequence[Task], address: str, on_result: OnResult, on_frames: OnFrames,
            num_gpus: float | None = None) -> None:
    """The same task function as Ray tasks; results are reported as they finish."""
    ray = connect_ray(address)
    if not tasks:
        return
    first = tasks[0]
    check_cluster_storage(ray, first.project, first.token_file, first.token)
    gpus = gpus_per_task(ray, first.stage, first.options) if num_gpus is None else num_gpus
    if gpus:
        tasks = [Task(t.project, t.video_id, t.stage, {**t.options, "device": "cuda"}, t.force, t.token_file,
                      t.token) for t in tasks]
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_task)
    env = _runtime_env()
    refs = {remote.options(runtime_env=env).remote(t): t for t in tasks}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
        for ref in ready:
            task = refs.pop(ref)
            try:
                res = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a node died, the worker crashed
                res = TaskResult(task.video_id, FAILED, f"Ray task failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            on_frames(task.video_id, 1, 1)
            on_result(res)


def host() -> str:
    return socket.gethostname()
