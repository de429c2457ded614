"""Kill harness: multi-frame operations are all-or-nothing, with their undo step (issue #18 item 1).

``correct`` swap / merge / delete, ``associate`` and ``correct ... undo`` run through the CLI
(``annotator.cli.main`` in a forked child of ``tests/reliability_kill.py``) on a small synthetic
project and are SIGKILLed right after their N-th durable write, for N over every phase of the
operation. After each kill the video is reopened for writing (which rolls back an unfinished
transaction) and must be exactly the state before the operation or exactly the state after an
unkilled run, with a working undo step, no orphan tracks, metadata equal to the label PNGs, and
no leftovers (transaction backups, temp files, undo files no log event names). Plus in-process
failures: a full disk (injected ENOSPC) at every write rolls back and raises one clear line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from annotator import panoptic, store
from annotator.errors import ProjectError
from annotator.project import Project
from annotator.stages import corrections
from annotator.stages.association import apply_correction, associate_video
from propagation.factory import association_propagator
from tests import reliability_project as rp

REPO = Path(__file__).resolve().parent.parent
KILLER = REPO / "tests" / "reliability_kill.py"

OPS: dict[str, list[str]] = {
    "swap": ["correct", "{P}", "--video", "v", "--propagator", "copy", "swap", "1", "2", "--from", "0"],
    "merge": ["correct", "{P}", "--video", "v", "merge", "1", "3"],
    "delete": ["correct", "{P}", "--video", "v", "delete", "2"],
    "associate": ["associate", "{P}", "--video", "v", "--propagator", "copy", "--quiet"],
    "undo": ["correct", "{P}", "--video", "v", "undo"],
}
#: the other corrections take the same path (apply_correction); killed at every write in the slow run
MORE_OPS: dict[str, list[str]] = {
    "split": ["correct", "{P}", "--video", "v", "--propagator", "copy", "split", "1", "--at", "3"],
    "set-class": ["correct", "{P}", "--video", "v", "set-class", "3", "2"],
    "reassign": ["correct", "{P}", "--video", "v", "--propagator", "copy", "reassign", "3", "--new", "--from", "1"],
}
OPS.update(MORE_OPS)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return rp.build(tmp_path_factory.mktemp("rel") / "base.vpsproj")


@pytest.fixture(scope="module")
def swapped(tmp_path_factory, base) -> Path:
    """The base project with a swap applied (the state `undo` starts from)."""
    dest = tmp_path_factory.mktemp("rel_swapped") / "p.vpsproj"
    shutil.copytree(base, dest)
    with Project.open(dest).open_video("v") as video:
        apply_correction(video, "swap", propagator=association_propagator("copy"), track_a=1, track_b=2, from_frame=0)
    return dest


# ----------------------------------------------------------------- state snapshots and invariants
def snapshot(path: Path) -> dict[str, Any]:
    """Everything an operation may change, read without repairing anything."""
    video = Project.open(path).open_video("v", readonly=True)
    try:
        folder = video.path
        return {
            "labels": [video.read_label(i).tobytes() for i in range(video.num_frames)],
            "frames": [(video.frame_state(i).value, sorted((k, s.value) for k, s in video.provenance(i).items()),
                        video.frame_tracks(i)) for i in range(video.num_frames)],
            "tracks": sorted((t.id, t.category_id, t.note) for t in video.tracks.values()),
            "log": [json.dumps(e, sort_keys=True) for e in video.log if e.get("kind") != "recovery"],
            "keyframes": video.keyframes,
            "arrays": {str(p.relative_to(folder)): p.read_bytes() for p in sorted((folder / "arrays").rglob("*.npy"))},
            "undo_files": sorted(p.name for p in (folder / "undo").glob("*")) if (folder / "undo").exists() else [],
            "stack": [e["undo"] for e in corrections.undo_stack(video)],
        }
    finally:
        video.close()


def check_invariants(path: Path) -> list[str]:
    """Reopen for writing (recovery), then: metadata equals PNGs, no leftovers. Returns the notes."""
    with Project.open(path).open_video("v") as video:
        assert not video.readonly, video.lock_message
        notes = list(video.recovery_notes)
        for i in range(video.num_frames):
            present = panoptic.present_ids(video.read_label(i)).tolist()
            assert video.frame_tracks(i) == present, f"frame {i}: metadata {video.frame_tracks(i)} != PNG {present}"
            assert set(present) <= set(video.tracks), f"frame {i}: ids {present} not all tracks"
        used = {t for i in range(video.num_frames) for t in video.frame_tracks(i)}
        assert set(video.tracks) <= used, f"orphan tracks (no pixels anywhere): {sorted(set(video.tracks) - used)}"
        folder = video.path
        assert not (folder / ".txn").exists(), "transaction backups left behind"
        tmps = [p for p in folder.rglob("*.tmp")]
        assert not tmps, f"temp files left behind: {tmps}"
        named = {f"{e['undo']}.npz" for e in video.log if e.get("undo") and e.get("kind") != "undo"}
        files = {p.name for p in (folder / "undo").glob("*")} if (folder / "undo").exists() else set()
        assert files == named, f"undo files {sorted(files)} but the log names {sorted(named)}"
    with Project.open(path).open_video("v") as again:  # recovery is complete and idempotent
        assert again.recovery_notes == [], again.recovery_notes
    return notes


def run_kill_harness(jobs: list[tuple[Path, Path, str, str]]) -> list[dict[str, Any]]:
    """Run (base, out, op, spec) jobs in one driver process (its imports are paid once)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(store.KILL_AFTER_WRITES_ENV, None)
    spec_file = jobs[0][1].parent / f"jobs-{jobs[0][1].name}.json"
    spec_file.write_text(json.dumps([{"base": str(b), "out": str(o), "spec": s, "argv": OPS[op]}
                                     for b, o, op, s in jobs]))
    proc = subprocess.run([sys.executable, str(KILLER), "--jobs", str(spec_file)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sampled(base, swapped, tmp_path_factory) -> dict[str, tuple[Path, Path, dict[str, Any]]]:
    """Every operation killed at a sample of its writes (every 4th, plus the begin and commit phases)."""
    out = tmp_path_factory.mktemp("kills")
    jobs = [(swapped if op == "undo" else base, out / op, op, "stride:4") for op in OPS if op not in MORE_OPS]
    return {op: (b, o, r) for (b, o, op, _), r in zip(jobs, run_kill_harness(jobs), strict=True)}


def verify_op(base: Path, out: Path, op: str, report: dict[str, Any]) -> dict[str, int]:
    assert report["ref_rc"] == 0 and report["writes"] > 5, report
    before, after = snapshot(base), snapshot(out / "ref")
    assert before != after, "the operation changed nothing"
    check_invariants(out / "ref")
    counts = {"before": 0, "after": 0, "points": 0}
    for run in report["runs"]:
        path = Path(run["dir"])
        where = f"{op} killed after write {run['n']} of {report['writes']}"
        assert run["killed"] or run["n"] > report["writes"] - 2, f"{where}: not killed (rc {run['rc']})"
        check_invariants(path)
        state = snapshot(path)
        if state == before:
            counts["before"] += 1
            pending_undo_works = op == "undo"
        else:
            assert state == after, f"{where}: neither the state before nor after the operation " \
                f"({[k for k in state if state[k] != after[k]]} differ from after, " \
                f"{[k for k in state if state[k] != before[k]]} from before)"
            counts["after"] += 1
            pending_undo_works = op != "undo"
        if state == before and run["n"] % 8 == 1:  # rerun after a rollback: the unkilled result
            from annotator import cli

            assert cli.main([a.replace("{P}", str(path)) for a in OPS[op]]) == 0, where
            assert snapshot(path) == after, f"{where}: the rerun differs from an unkilled run"
            counts["rerun"] = counts.get("rerun", 0) + 1
        elif pending_undo_works and run["n"] % 3 == 0:  # the undo step works (sampled: it is costly)
            with Project.open(path).open_video("v") as video:
                corrections.undo_last(video)
        counts["points"] += 1
    assert counts["before"] and counts["after"], counts  # the kill points reached both outcomes
    return counts


@pytest.mark.parametrize("op", [op for op in OPS if op not in MORE_OPS])
def test_killed_operation_is_all_or_nothing(sampled, op):
    base, out, report = sampled[op]
    counts = verify_op(base, out, op, report)
    print(f"{op}: {report['writes']} writes, {counts}")


@pytest.mark.slow
def test_killed_operations_at_every_write(base, swapped, tmp_path):
    jobs = [(swapped if op == "undo" else base, tmp_path / op, op, "all") for op in OPS]
    for (b, o, op, _), report in zip(jobs, run_kill_harness(jobs), strict=True):
        counts = verify_op(b, o, op, report)
        print(f"{op}: {report['writes']} writes, {counts}")


def test_kill_hook_env_var_through_main_py(base, tmp_path):
    """The real entry point: ``python main.py correct ... swap`` with VPS_TEST_KILL_AFTER_WRITES."""
    dest = tmp_path / "p.vpsproj"
    shutil.copytree(base, dest)
    env = {**os.environ, "PYTHONPATH": str(REPO), store.KILL_AFTER_WRITES_ENV: "12"}
    args = [a.replace("{P}", str(dest)) for a in OPS["swap"]]
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-2000:])
    notes = check_invariants(dest)
    assert any("rolled back" in n and "swap" in n for n in notes), notes
    with Project.open(dest).open_video("v", readonly=True) as video:  # and it stays in the log
        assert [e["notes"] for e in video.log if e.get("kind") == "recovery"] == [notes]
    assert snapshot(dest) == snapshot(base)


# ----------------------------------------------------------------- full disk, in the process
class _DiskFull:
    """Make the N-th durable write (and every later one) fail with ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
        self.n = 0
        self.fail_at = fail_at
        real_atomic, real_append = store.atomic_write_bytes, store.Journal.append

        def atomic(path, data):
            self.tick(path)
            return real_atomic(path, data)

        def append(journal, record):
            self.tick(journal.path)
            return real_append(journal, record)

        import annotator.project.video as project_mod

        monkeypatch.setattr(store, "atomic_write_bytes", atomic)
        monkeypatch.setattr(project_mod, "atomic_write_bytes", atomic)
        monkeypatch.setattr(store.Journal, "append", append)

    def tick(self, path: Any) -> None:
        self.n += 1
        if self.n >= self.fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("op", ["swap", "merge", "delete"])
def test_full_disk_rolls_back_with_one_line(base, tmp_path, monkeypatch, op):
    before = snapshot(base)
    params = {"swap": {"track_a": 1, "track_b": 2, "from_frame": 0}, "merge": {"keep": 1, "absorb": 3},
              "delete": {"track": 2}}[op]
    failures = 0
    for fail_at in range(1, 60, 4):
        dest = tmp_path / f"{op}{fail_at}.vpsproj"
        shutil.copytree(base, dest)
        with monkeypatch.context() as m:
            video = Project.open(dest).open_video("v")
            disk = _DiskFull(m, fail_at)
            try:
                apply_correction(video, op, propagator=association_propagator("copy"), **params)
            except ProjectError as exc:
                failures += 1
                msg = str(exc)
                assert "\n" not in msg and "no space left" in msg and "rolled back" in msg, msg
                assert disk.n >= fail_at
            finally:
                disk.fail_at = 10**9
                video.close()
        state = snapshot(dest)
        if state != before:  # the disk filled after the commit: the operation is complete
            assert state["stack"] == before["stack"] + [state["stack"][-1]]
        check_invariants(dest)
    assert failures >= 3


def test_associate_cancelled_leaves_nothing(base, tmp_path):
    from annotator.jobs import Cancelled, CancelToken

    dest = tmp_path / "p.vpsproj"
    shutil.copytree(base, dest)
    token = CancelToken()
    calls = []

    def progress(done: int, total: int, text: str = "") -> None:
        calls.append(done)
        if done >= 1:
            token.cancel()

    with Project.open(dest).open_video("v") as video, pytest.raises(Cancelled):
        associate_video(video, association_propagator("copy"), progress=progress, cancel=token)
    check_invariants(dest)
    assert snapshot(dest) == snapshot(base)


def test_full_disk_through_the_cli_is_one_line_and_changes_nothing(base, tmp_path, monkeypatch, capsys):
    from annotator import cli

    dest = tmp_path / "p.vpsproj"
    shutil.copytree(base, dest)
    before = snapshot(dest)
    _DiskFull(monkeypatch, 9)  # a few frames into the swap
    rc = cli.main([a.replace("{P}", str(dest)) for a in OPS["swap"]])
    err = capsys.readouterr().err
    monkeypatch.undo()
    assert rc == 2, err
    assert err.startswith("error: swap failed: no space left on the device") and err.count("\n") == 1, err
    assert "rolled back" in err
    check_invariants(dest)
    assert snapshot(dest) == before


def test_video_delete_track_is_all_or_nothing(base, tmp_path, monkeypatch):
    """``Video.delete_track`` (the window's delete) clears pixels on many frames: one transaction."""
    dest = tmp_path / "p.vpsproj"
    shutil.copytree(base, dest)
    before = snapshot(dest)
    with Project.open(dest).open_video("v") as video:
        with monkeypatch.context() as m:
            _DiskFull(m, 7)
            with pytest.raises(ProjectError, match="delete_track failed: no space left"):
                video.delete_track(2)
        assert 2 in video.tracks
        video.delete_track(2)  # and with space it works
        assert 2 not in video.tracks and not video.track_frames(2)
    check_invariants(dest)
    after = snapshot(dest)
    assert after["tracks"] == [t for t in before["tracks"] if t[0] != 2]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 600 KB tmpfs, where this process may mount one (root); the injected failures above cover
    the other machines."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)


def test_real_full_disk_on_tmpfs(base, small_tmpfs, capsys):
    """A real ENOSPC: the swap on a nearly full tmpfs rolls back and prints one line, at several
    amounts of free space; with enough space it completes."""
    from annotator import cli

    before = snapshot(base)
    outcomes = []
    for free_kb in (4, 24, 96, 400):
        dest = small_tmpfs / f"p{free_kb}.vpsproj"
        shutil.copytree(base, dest)
        filler = small_tmpfs / "fill"
        st = os.statvfs(small_tmpfs)
        avail = st.f_bavail * st.f_frsize
        if avail > free_kb * 1024:
            filler.write_bytes(b"\0" * (avail - free_kb * 1024))
        rc = cli.main([a.replace("{P}", str(dest)) for a in OPS["swap"]])
        err = capsys.readouterr().err
        filler.unlink(missing_ok=True)
        if rc != 0:
            assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
            assert "no space left" in err or "disk is full" in err, err
        check_invariants(dest)
        state = snapshot(dest)
        assert state == before or (rc == 0 and len(state["stack"]) == 1), (free_kb, rc, err)
        outcomes.append(rc)
        shutil.rmtree(dest)
    print(f"tmpfs swap exit codes at 4, 24, 96, 400 KB free: {outcomes}")
    assert 2 in outcomes, outcomes
