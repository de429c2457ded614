"""Kill-harness driver: run CLI commands on fresh copies of a project, SIGKILLed at write N.

    python tests/reliability_kill.py BASE_PROJECT OUT_DIR NS -- CLI ARGS ({P} = the copy's path)
    python tests/reliability_kill.py --jobs JOBS.json     (a list of {base, out, spec, argv})

``NS`` is ``all`` (every write), ``stride:K`` (every K-th write plus the first three and last four) or a
comma list. Why one driver process that forks: the CLI's imports cost seconds on a busy machine,
a fork costs milliseconds, so every write point of an operation can be tested within the suite's
budget. Each child sets the test-only kill hook of :mod:`annotator.store` (the same counter that
``VPS_TEST_KILL_AFTER_WRITES`` sets) and runs ``annotator.cli.main`` exactly as ``main.py`` does.
First an unkilled reference run counts the writes (its copy is ``OUT_DIR/ref``). Prints one JSON
document: ``{"writes": W, "ref_rc": rc, "runs": [{"n": N, "dir": ..., "killed": bool, "rc": int}]}``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import annotator.stages.association  # noqa: E402,F401 - imported once here, not in every child
import annotator.stages.corrections  # noqa: E402,F401
from annotator import cli, store  # noqa: E402


def _run(base: Path, dest: Path, argv: list[str], kill_at: int | None) -> tuple[int, bool, int]:
    """Copy ``base`` to ``dest`` and run the CLI on it in a forked child; (rc, killed, writes)."""
    shutil.copytree(base, dest)
    args = [a.replace("{P}", str(dest)) for a in argv]
    count_file = dest.parent / f".{dest.name}.writes"
    pid = os.fork()
    if pid == 0:  # child
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            store._kill_after = kill_at
            store._writes_done = 0
            # A SIGKILL leaves the page cache intact, so fsync plays no part in what these runs
            # test (the order of writes); skipping it makes each run 3x faster on a busy disk.
            os.fsync = lambda fd: None
            code = cli.main(args)
            count_file.write_text(str(store.writes_done()))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    writes = int(count_file.read_text()) if count_file.exists() else -1
    return rc, killed, writes


def _points(spec: str, total: int) -> list[int]:
    if spec == "all":
        return list(range(1, total + 1))
    if spec.startswith("stride:"):
        k = max(1, int(spec.split(":", 1)[1]))
        ends = {1, 2, 3, total - 3, total - 2, total - 1, total}  # the begin and the commit phases
        return sorted((ends | set(range(1, total + 1, k))) & set(range(1, total + 1)))
    return [int(x) for x in spec.split(",") if x]


def run_job(base: Path, out: Path, spec: str, argv: list[str]) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    ref_rc, _, total = _run(base, out / "ref", argv, None)
    runs = []
    for n in _points(spec, total):
        rc, killed, _ = _run(base, out / f"k{n:04d}", argv, n)
        runs.append({"n": n, "dir": str(out / f"k{n:04d}"), "killed": killed, "rc": rc})
    return {"writes": total, "ref_rc": ref_rc, "runs": runs}


def main() -> int:
    if sys.argv[1] == "--jobs":
        jobs = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps([run_job(Path(j["base"]), Path(j["out"]), j["spec"], j["argv"]) for j in jobs]))
        return 0
    sep = sys.argv.index("--")
    print(json.dumps(run_job(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[sep + 1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
