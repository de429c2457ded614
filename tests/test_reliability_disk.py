"""Full disk and read-only project: one ``error:`` line, exit code 2, nothing changed (issue 18 item 6).

Two ways to fill a disk: a small tmpfs mounted for the test (real ENOSPC from the kernel; needs
root and a kernel that allows it, else those tests are skipped with the reason), and injected
failures (``os.fsync`` raising ENOSPC: every durable write of the tool ends in an fsync), which
always run. The read-only project is a read-only bind mount (tests run as root, where chmod does
not stop writes).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from annotator.cli import main as cli_main
from annotator.project import FrameState, Project, check_project
from resources.demo import generate_demo_video, write_demo_project, write_demo_source


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("disk")
    return write_demo_project(root / "demo.vpsproj", scenarios=("mixed",), num_frames=30, height=60, width=80,
                              source=None)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clip")
    return write_demo_source(generate_demo_video(1, 20, 120, 160, "crossing"), root / "clip", "folder")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def _mount(args: list[str], where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", *args, str(where)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount here ({res.stderr.strip() or res.returncode}); the injected variants cover it")


def _umount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MB tmpfs; ``fill(free)`` leaves only ``free`` bytes available on it."""
    where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    _mount(["-t", "tmpfs", "-o", "size=3m", "tmpfs"], where)

    def fill(free: int) -> None:
        st = os.statvfs(where)
        avail = st.f_bavail * st.f_frsize
        with open(where / "filler", "wb") as fh:
            fh.write(b"\0" * max(0, avail - free))

    try:
        yield where, fill
    finally:
        _umount(where)


# --------------------------------------------------------------------------------- real full disk
def test_export_on_a_full_disk(demo, small_fs, capsys):
    fs, fill = small_fs
    out = fs / "out"
    assert cli_main(["export", str(demo), "--format", "vipseg", "--out", str(out), "--no-resize"]) == 0
    before = _tree(out)
    fill(16 * 1024)
    capsys.readouterr()
    assert cli_main(["export", str(demo), "--format", "vipseg", "--out", str(out), "--no-resize",
                     "--overwrite"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "disk is full" in line
    assert _tree(out) == before  # the previous export is untouched
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "out"]  # no staging folder left


def test_import_on_a_full_disk(clip, small_fs, capsys):
    fs, fill = small_fs
    proj = fs / "p.vpsproj"
    Project.create(proj)
    before = _tree(proj)
    fill(24 * 1024)
    assert cli_main(["import", str(proj), str(clip), "--source-fps", "5"]) == 2
    assert "No space left on device" in _error_line(capsys.readouterr().err)
    assert _tree(proj) == before and not any((proj / "videos").iterdir())
    os.unlink(fs / "filler")  # space back: the same command now works
    assert cli_main(["import", str(proj), str(clip), "--source-fps", "5"]) == 0
    assert Project.open(proj).video_ids == ["clip"]


def test_import_dataset_and_demo_on_a_full_disk(demo, small_fs, tmp_path, capsys):
    fs, fill = small_fs
    export = tmp_path / "export"
    assert cli_main(["export", str(demo), "--format", "vipseg", "--out", str(export), "--no-resize"]) == 0
    fill(24 * 1024)
    capsys.readouterr()
    assert cli_main(["import-dataset", str(export), "--format", "vipseg", "--project", str(fs / "p.vpsproj")]) == 2
    assert "No space left on device" in _error_line(capsys.readouterr().err)
    assert not (fs / "p.vpsproj").exists()  # the project this import created is gone again
    assert cli_main(["demo", "--out", str(fs / "d.vpsproj"), "--frames", "20", "--size", "160x120",
                     "--scenarios", "mixed", "--source", "folder"]) == 2
    assert "No space left on device" in _error_line(capsys.readouterr().err)
    assert not (fs / "d.vpsproj").exists()  # never a demo video marked complete with frames missing
    assert sorted(p.name for p in fs.iterdir()) == ["filler"]


def test_propagate_on_a_full_disk(demo, small_fs, capsys):
    fs, fill = small_fs
    proj = fs / "p.vpsproj"
    shutil.copytree(demo, proj)
    with Project.open(proj).open_video("demo_mixed") as v:  # keep only the keyframes labelled
        for i in range(v.num_frames):
            if not v.is_keyframe(i):
                v.write_label(i, v.read_label(i) * 0, state=FrameState.UNLABELLED)
    fill(8 * 1024)
    assert cli_main(["propagate", str(proj), "--video", "demo_mixed"]) == 2
    assert "No space left on device" in _error_line(capsys.readouterr().err)
    os.unlink(fs / "filler")
    assert check_project(Project.open(proj), deep=True) == []  # metadata still matches the files


# --------------------------------------------------------------------------------- injected ENOSPC
@pytest.fixture
def enospc(monkeypatch):
    """Every fsync fails with ENOSPC while active (each durable write of the tool fsyncs)."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def start() -> None:
        monkeypatch.setattr(os, "fsync", full)

    return start


def test_injected_enospc_export_import_demo(demo, clip, tmp_path, enospc, capsys):
    out = tmp_path / "out"
    assert cli_main(["export", str(demo), "--format", "ytvis", "--out", str(out)]) == 0
    before_out = _tree(out)
    proj = tmp_path / "p.vpsproj"
    Project.create(proj)
    before_proj = _tree(proj)
    capsys.readouterr()
    enospc()
    runs = [["export", str(demo), "--format", "ytvis", "--out", str(out), "--overwrite"],
            ["export", str(demo), "--format", "vipseg", "--out", str(tmp_path / "new")],
            ["import", str(proj), str(clip), "--source-fps", "5"],
            ["import", str(tmp_path / "fresh.vpsproj"), str(clip)],
            ["import-dataset", str(out), "--format", "ytvis", "--project", str(proj)],
            ["demo", "--out", str(tmp_path / "d.vpsproj"), "--frames", "10", "--size", "64x48"]]
    for argv in runs:
        assert cli_main(argv) == 2, argv
        assert "disk is full" in _error_line(capsys.readouterr().err), argv
    assert _tree(out) == before_out and _tree(proj) == before_proj
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "p.vpsproj"]


# --------------------------------------------------------------------------------- read-only project
def test_read_only_project(demo, clip, tmp_path, capsys):
    src = tmp_path / "rw.vpsproj"
    shutil.copytree(demo, src)
    ro = tmp_path / "ro.vpsproj"
    _mount(["--bind", str(src)], ro)
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount the bind mount read-only here")
        before = _tree(src)
        for argv in (["propagate", str(ro), "--video", "demo_mixed"],
                     ["correct", str(ro), "--video", "demo_mixed", "delete", "5"],
                     ["import", str(ro), str(clip)],
                     ["delete-video", str(ro), "demo_mixed", "--yes"]):
            assert cli_main(argv) == 2, argv
            line = _error_line(capsys.readouterr().err)
            assert "Read-only file system" in line or "read-only" in line, line
        assert cli_main(["info", str(ro), "--check"]) == 0  # reading works
        assert cli_main(["export", str(ro), "--format", "ytvis", "--out", str(tmp_path / "out")]) == 0
        assert _tree(src) == before
    finally:
        _umount(ro)


def test_disk_full_at_the_final_save_leaves_no_video(demo, clip, tmp_path, monkeypatch, capsys):
    """The last write of an import marks the video complete; when it fails the import is undone."""
    import annotator.project.document as project_mod  # writes video.json

    export = tmp_path / "export"
    assert cli_main(["export", str(demo), "--format", "vipseg", "--out", str(export), "--no-resize"]) == 0
    proj = tmp_path / "p.vpsproj"
    Project.create(proj)
    real = project_mod.atomic_write_json

    def full_when_complete(path, doc, kind):
        if kind == "video" and doc.get("complete"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, doc, kind)

    monkeypatch.setattr(project_mod, "atomic_write_json", full_when_complete)
    capsys.readouterr()
    for argv in (["import", str(proj), str(clip), "--source-fps", "5"],
                 ["import-dataset", str(export), "--format", "vipseg", "--project", str(proj)]):
        assert cli_main(argv) == 2, argv
        assert "video.json" in _error_line(capsys.readouterr().err)
        p = Project.open(proj)
        assert p.video_ids == [] and not any(p.videos_dir.iterdir()), argv
