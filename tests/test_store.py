"""Store reliability: atomic writes, journal replay, schema versions, locks, SIGKILL at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from annotator import panoptic, store
from annotator.errors import ProjectError
from annotator.project import FrameState, Project
from tests import kill_writer

REPO = Path(__file__).resolve().parent.parent


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "f.bin"
    store.atomic_write_bytes(target, b"one")
    store.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_read_json_rejects_corrupt_newer_and_wrong_kind(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ProjectError, match="not valid JSON"):
        store.read_json(p, "video")
    store.atomic_write_json(p, {"a": 1}, "video")
    with pytest.raises(ProjectError, match="not a project file"):
        store.read_json(p, "project")
    doc = json.loads(p.read_text())
    doc["schema_version"] = store.SCHEMA_VERSION + 1
    p.write_text(json.dumps(doc))
    with pytest.raises(ProjectError, match="newer"):
        store.read_json(p, "video")


def test_migration_hook_runs(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"kind": "thing", "schema_version": 0, "old": 5}))
    monkeypatch.setitem(store.MIGRATIONS, ("thing", 0), lambda d: {**d, "new": d.pop("old") * 2})
    doc = store.read_json(p, "thing")
    assert doc["new"] == 10 and doc["schema_version"] == store.SCHEMA_VERSION


def test_journal_drops_torn_last_line(tmp_path):
    j = store.Journal(tmp_path / "j.jsonl")
    j.append({"a": 1})
    j.append({"a": 2})
    j.close()
    with open(tmp_path / "j.jsonl", "ab") as fh:
        fh.write(b'{"a": 3')  # killed mid-append
    assert store.Journal(tmp_path / "j.jsonl").replay() == [{"a": 1}, {"a": 2}]


def _make_project(tmp_path: Path, frames: int = kill_writer.FRAMES) -> Project:
    project = Project.create(tmp_path / "p.vpsproj")
    video = project.create_video("v", [f"{i:05d}" for i in range(frames)], kill_writer.H, kill_writer.W)
    for i in range(frames):
        video.write_frame_image(i, np.full((kill_writer.H, kill_writer.W, 3), 10 * i, np.uint8))
    video.close()
    return project


def test_journal_replay_after_crash_without_save(tmp_path):
    project = _make_project(tmp_path)
    video = project.open_video("v")
    t = video.new_track(60)
    video.write_label(2, kill_writer.expected_label(0, t.id))
    video.log_event("note", {"x": 1})
    # simulate a crash: no save/close, release only the lock
    video._journal.close()
    video._lock.release()
    again = project.open_video("v")
    assert t.id in again.tracks
    assert again.frame_state(2) == FrameState.MANUAL
    assert again.log == [{"kind": "note", "x": 1}]
    np.testing.assert_array_equal(again.read_label(2), kill_writer.expected_label(0, t.id))
    again.save()  # folding the journal must not duplicate the log on the next open
    again._journal.close()
    again._lock.release()
    assert project.open_video("v").log == [{"kind": "note", "x": 1}]


def test_lock_second_opener_is_readonly_and_named(tmp_path):
    project = _make_project(tmp_path)
    code = ("import sys,time\nfrom annotator.project import Project\n"
            "v=Project.open(sys.argv[1]).open_video('v')\nprint('open',flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(project.path)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "open"
        video = project.open_video("v")
        assert video.readonly
        assert f"pid {holder.pid}" in video.lock_message
        with pytest.raises(ProjectError, match="read-only"):
            video.new_track(60)
        video.close()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale and is taken over
    video = project.open_video("v")
    assert not video.readonly
    video.close()
    assert not (project.path / "videos" / "v" / ".lock").exists()


def test_stale_lock_of_other_host_by_heartbeat(tmp_path, monkeypatch):
    project = _make_project(tmp_path)
    lock = project.path / "videos" / "v" / ".lock"
    info = {"user": "ann", "host": "elsewhere", "pid": 1, "created": time.time(), "heartbeat": time.time()}
    lock.write_text(json.dumps(info))
    v = project.open_video("v")
    assert v.readonly and "ann on elsewhere" in v.lock_message
    v.close()
    info["heartbeat"] = time.time() - store.STALE_AFTER_S - 5
    lock.write_text(json.dumps(info))
    v = project.open_video("v")
    assert not v.readonly
    v.close()


def _check_recovered(project: Project, last_for_frame: dict[int, tuple[int, int]], acked: set[int],
                     inflight_k: int) -> int | None:
    """Every acknowledged write is on disk, or was replaced by the one in-flight op; metadata agrees.

    Returns the track id of the in-flight operation if its label map landed before the kill.
    """
    landed = None
    video = project.open_video("v")
    try:
        assert not video.readonly
        tracks = video.tracks
        assert acked <= set(tracks), f"acknowledged tracks lost: {sorted(acked - set(tracks))}"
        for f in range(kill_writer.FRAMES):
            label = video.read_label(f)  # raises if the PNG is torn
            present = panoptic.present_ids(label).tolist()
            assert set(present) <= set(tracks)
            assert video.frame_tracks(f) == present, f"frame {f}: metadata disagrees with its label map"
            if f not in last_for_frame:
                continue
            k, tid = last_for_frame[f]
            if np.array_equal(label, kill_writer.expected_label(k, tid)):
                continue
            # only the in-flight operation may have replaced it
            assert f == inflight_k % kill_writer.FRAMES, f"frame {f} lost acknowledged op {k}"
            landed = int(label.max())
            assert landed not in acked
            np.testing.assert_array_equal(label, kill_writer.expected_label(inflight_k, landed))
    finally:
        video.close()
    return landed


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_committed_data(tmp_path):
    project = _make_project(tmp_path)
    rng = random.Random(1234)
    last_for_frame: dict[int, tuple[int, int]] = {}
    acked: set[int] = set()
    next_k = 0
    kills = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def ack(line: str) -> int:
        _, k, tid = line.split()
        last_for_frame[int(k) % kill_writer.FRAMES] = (int(k), int(tid))
        acked.add(int(tid))
        return int(k)

    while kills < 50:
        proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "kill_writer.py"), str(project.path),
                                 str(next_k)], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        wanted = rng.randint(1, 25)
        last_k = next_k - 1
        for got, line in enumerate(proc.stdout, start=1):
            last_k = ack(line)
            if got >= wanted:
                time.sleep(rng.random() * 0.004)  # land anywhere inside the next operation
                break
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in rest.splitlines():  # acks printed before the kill landed
            last_k = ack(line)
        assert proc.returncode == -signal.SIGKILL, "writer died on its own"
        kills += 1
        inflight = last_k + 1
        landed = _check_recovered(project, last_for_frame, acked, inflight)
        if landed is not None:
            last_for_frame[inflight % kill_writer.FRAMES] = (inflight, landed)
            acked.add(landed)
        next_k = inflight + 1
    assert kills == 50 and len(acked) >= 50


def test_journal_append_failure_leaves_no_partial_line(tmp_path, monkeypatch):
    """A full disk during an append: the partial line is cut at once, so the next record (once
    there is space) is not glued onto it."""
    import errno

    j = store.Journal(tmp_path / "j.jsonl")
    j.append({"a": 1})
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(OSError):
        j.append({"a": 2})
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    j.append({"a": 3})
    j.close()
    entries, torn = store.Journal(tmp_path / "j.jsonl").read()
    assert [r for _, r in entries] == [{"a": 1}, {"a": 3}] and torn == ""


def test_journal_read_reports_offsets_and_cuts_torn_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    j = store.Journal(path)
    first = j.append({"op": "x", "n": 1})
    second = j.append({"op": "x", "n": 2})
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"op":"x","n":3}')  # complete JSON but no newline: the append did not finish
    entries, torn = store.Journal(path).read(repair=False)
    assert [o for o, _ in entries] == [first, second] and "torn" in torn
    assert not path.read_bytes().endswith(b"\n")  # a reader never modifies the file
    entries, torn = store.Journal(path).read(repair=True)
    assert len(entries) == 2 and path.read_bytes().endswith(b"\n")
    assert store.Journal(path).read() == (entries, "")
