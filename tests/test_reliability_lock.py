"""One writer per video, always (issue #18 item 3): atomic stale-lock takeover, odd lock files,
and the ``unlock`` command for locks that would never expire."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotator import cli, store
from annotator.errors import ProjectError
from annotator.project import Project
from tests import reliability_project as rp

REPO = Path(__file__).resolve().parent.parent
WORKER = REPO / "tests" / "reliability_lock_worker.py"


@pytest.fixture
def proj(tmp_path) -> Path:
    return rp.build(tmp_path / "p.vpsproj")


def _lock_path(proj: Path) -> Path:
    return proj / "videos" / "v" / ".lock"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(proj: Path, **fields: object) -> None:
    now = time.time()
    info = {"user": "ann", "host": socket.gethostname(), "pid": _dead_pid(), "created": now - 100,
            "heartbeat": now - 100, "token": "t0"}
    info.update(fields)
    _lock_path(proj).write_text(json.dumps(info))


def test_takeover_race_exactly_one_writer(proj):
    """Two openers find the same stale lock; the first is delayed between its check and its
    takeover (as a slow process would be). The old check-then-delete let it delete the second's
    fresh lock, and both wrote. Now exactly one is the writer, and no log entry is lost."""
    _write_lock(proj)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    slow = subprocess.Popen([sys.executable, str(WORKER), str(proj), "3.0", "0"], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    time.sleep(0.3)  # let the slow one inspect the stale lock first (it re-checks after its pause)
    fast = subprocess.Popen([sys.executable, str(WORKER), str(proj), "0", "6.0"], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    out_slow, _ = slow.communicate(timeout=120)
    out_fast, _ = fast.communicate(timeout=120)
    roles = sorted([out_slow.split()[0], out_fast.split()[0]])
    assert roles == ["readonly", "writer"], (out_slow, out_fast)
    with Project.open(proj).open_video("v", readonly=True) as video:
        assert len([e for e in video.log if e.get("kind") == "race"]) == 1


def test_in_process_race_with_pause(proj, monkeypatch):
    """The same race in one process, deterministic: the delayed opener sees the lock change
    under it and backs off instead of removing it."""
    _write_lock(proj)
    lock_a, lock_b = store.VideoLock(_lock_path(proj)), store.VideoLock(_lock_path(proj))
    stale_raw = _lock_path(proj).read_bytes()

    def pause(_: float) -> None:  # while B pauses after its check, A takes the lock over
        monkeypatch.setattr(store.VideoLock, "takeover_pause", 0.0)
        assert lock_a.acquire() is None
        monkeypatch.setattr(store.VideoLock, "takeover_pause", 0.01)

    monkeypatch.setattr(store.VideoLock, "takeover_pause", 0.01)
    monkeypatch.setattr(store.time, "sleep", pause)
    holder = lock_b.acquire()
    assert holder is not None and holder.pid == os.getpid()  # B names A and does not proceed
    assert lock_a.held and not lock_b.held
    assert _lock_path(proj).read_bytes() != stale_raw
    assert store.VideoLock(_lock_path(proj)).holder().token == lock_a._mine.token
    lock_a.release()


def test_lock_that_is_a_folder_is_a_clear_error(proj, capsys):
    _lock_path(proj).mkdir()
    with pytest.raises(ProjectError, match="is a folder, not a lock file"):
        Project.open(proj).open_video("v")
    assert cli.main(["correct", str(proj), "--video", "v", "delete", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "folder" in err
    assert cli.main(["unlock", str(proj), "--video", "v"]) == 1
    assert cli.main(["unlock", str(proj), "--video", "v", "--force"]) == 0
    with Project.open(proj).open_video("v") as video:
        assert not video.readonly


def test_garbage_lock_is_taken_over_once_old(proj):
    _lock_path(proj).write_bytes(b"\x00garbage{")
    old = time.time() - 60
    os.utime(_lock_path(proj), (old, old))
    with Project.open(proj).open_video("v") as video:
        assert not video.readonly
    _lock_path(proj).write_bytes(b"{not json")  # just written: may be a writer mid-way, so not stale
    with Project.open(proj).open_video("v") as video:
        assert video.readonly and "unreadable lock" in video.lock_message


def test_reused_pid_started_after_the_lock_is_stale(proj):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(proj, pid=sleeper.pid, created=time.time() - 3600)
        with Project.open(proj).open_video("v") as video:
            assert not video.readonly, video.lock_message
    finally:
        sleeper.kill()
        sleeper.wait()


def test_unlock_shows_holder_and_needs_force(proj, capsys):
    assert cli.main(["unlock", str(proj), "--video", "v"]) == 0
    assert "not locked" in capsys.readouterr().out
    # pid 1 runs since boot, before this lock: a live-looking holder that would never go away
    _write_lock(proj, pid=1, created=time.time())
    with Project.open(proj).open_video("v") as video:
        assert video.readonly and "ann on" in video.lock_message
    assert cli.main(["unlock", str(proj), "--video", "v"]) == 1
    out = capsys.readouterr().out
    assert "locked by ann on" in out and "pid 1" in out and "--force" in out
    assert _lock_path(proj).exists()
    assert cli.main(["unlock", str(proj), "--video", "v", "--force"]) == 0
    assert "removed the lock" in capsys.readouterr().out
    with Project.open(proj).open_video("v") as video:
        assert not video.readonly


def test_unlock_future_heartbeat_of_other_host(proj, capsys):
    _write_lock(proj, host="elsewhere", pid=4242, heartbeat=time.time() + 10 * 86400)
    with Project.open(proj).open_video("v") as video:
        assert video.readonly
    assert cli.main(["unlock", str(proj), "--video", "v"]) == 1
    assert "future" in capsys.readouterr().out
    assert cli.main(["unlock", str(proj), "--video", "v", "--force"]) == 0
    with Project.open(proj).open_video("v") as video:
        assert not video.readonly


def test_broken_lock_is_not_overwritten_by_its_old_holder(proj):
    """After `unlock --force`, the old holder's heartbeat and close must not touch the new lock."""
    video = Project.open(proj).open_video("v")
    assert not video.readonly
    assert cli.main(["unlock", str(proj), "--video", "v", "--force"]) == 0
    other = store.VideoLock(_lock_path(proj))
    assert other.acquire() is None
    video.heartbeat()
    video.close()
    assert store.VideoLock(_lock_path(proj)).holder().token == other._mine.token
    other.release()
    assert not _lock_path(proj).exists()


def test_holder_of_a_folder_lock_is_reported_not_raised(proj):
    """Listings (overview, info) ask ``holder()``; a ``.lock`` folder must not break them."""
    _lock_path(proj).mkdir()
    info = store.VideoLock(_lock_path(proj)).holder()
    assert info is not None and "folder" in info.describe()
    assert not store.VideoLock.is_stale(info)
