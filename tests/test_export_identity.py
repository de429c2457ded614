"""The VIPSeg export of the demo project is byte-identical to the one the code wrote before the
architecture change (issue 22): every file's sha256 against tests/data/vipseg_demo_export.sha256.

The manifest was written by the pre-change code with
``main.py demo --out D --frames 25 --size 320x180 --source none`` then
``main.py export D --format vipseg --out OUT`` and ``cd OUT && find . -type f | sort | xargs sha256sum``.
A change that is meant to alter the export (a format fix) regenerates it the same way and says so
in its commit; a change that is not meant to, and alters it, fails here. The demo's frames go
through OpenCV's JPEG encoder, so a different OpenCV build may also change the images: the test
then names the files, and the label PNGs and JSON files still have to match.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from annotator.cli import main as cli_main

MANIFEST = Path(__file__).parent / "data" / "vipseg_demo_export.sha256"


def _manifest(folder: Path) -> dict[str, str]:
    return {"./" + p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _expected() -> dict[str, str]:
    rows = [line.split(maxsplit=1) for line in MANIFEST.read_text().splitlines() if line.strip()]
    return {name.strip(): digest for digest, name in rows}


def test_vipseg_export_of_the_demo_is_byte_identical(tmp_path: Path) -> None:
    project, out = tmp_path / "demo.vpsproj", tmp_path / "vipseg"
    assert cli_main(["demo", "--out", str(project), "--frames", "25", "--size", "320x180",
                     "--source", "none"]) == 0
    assert cli_main(["export", str(project), "--format", "vipseg", "--out", str(out)]) == 0
    got, want = _manifest(out), _expected()
    assert sorted(got) == sorted(want), "the export writes other files than before"
    differ = sorted(name for name in want if got[name] != want[name])
    assert not differ, f"{len(differ)} of {len(want)} exported files differ from before: {differ[:8]}"


def test_manifest_check_sees_a_changed_byte(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG")
    before = _manifest(folder)
    (folder / "a.png").write_bytes(b"\x89PNh")
    assert _manifest(folder) != before
