"""Odd arguments get one ``error:`` line, exit code 2, and change nothing (issue 18 item 6).

``--fps nan`` used to end in a traceback, ``--fps inf`` wrote ``Infinity`` into video.json, ``--fps 0``
was silently replaced by the default, ``--workers -1`` crashed the pool, ``--split-ratio nan,1,1``
gave a traceback. Every subcommand's numbers go through ``annotator.commands.argtypes``, and
the CLI gives every remaining plain float argument the finite check.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from annotator.cli import build_parser
from annotator.cli import main as cli_main
from annotator.commands import argtypes
from resources.demo import generate_demo_video, write_demo_project, write_demo_source


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("args")
    proj = write_demo_project(root / "p.vpsproj", scenarios=("mixed",), num_frames=10, height=32, width=48,
                              source=None)
    clip = write_demo_source(generate_demo_video(0, 6, 32, 48, "mixed"), root / "clip", "folder")
    return root, proj, clip


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


BAD = [
    ("import {P} {C} --fps nan", "--fps"), ("import {P} {C} --fps inf", "--fps"), ("import {P} {C} --fps 0", "--fps"),
    ("import {P} {C} --fps -5", "--fps"), ("import {P} {C} --source-fps nan", "--source-fps"),
    ("import {P} {C} --key-every 0", "--key-every"), ("import {P} {C} --key-every -1", "--key-every"),
    ("demo --out {R}/d.vpsproj --frames 0", "--frames"), ("demo --out {R}/d.vpsproj --seed -1", "--seed"),
    ("demo --out {R}/d.vpsproj --size 0x0", "--size"), ("demo --out {R}/d.vpsproj --size big", "--size"),
    ("export {P} --format vipseg --out {R}/o --split-ratio nan,1,1", "--split-ratio"),
    ("export {P} --format vipseg --out {R}/o --split-ratio 1,1", "--split-ratio"),
    ("export {P} --format vipseg --out {R}/o --split-ratio -1,1,1", "--split-ratio"),
    ("export {P} --format vipseg --out {R}/o --split-ratio 0,0,0", "--split-ratio"),
    ("export {P} --format vipseg --out {R}/o --split-ratio inf,1,1", "--split-ratio"),
    ("export {P} --format vipseg --out {R}/o --workers -1", "--workers"),
    ("export {P} --format vipseg --out {R}/o --workers 0", "--workers"),
    ("export {P} --format vipseg --out {R}/o --seed -3", "--seed"),
    ("score --gt {P} --pred {P} --workers -1", "--workers"), ("score --gt {P} --pred {P} --workers 0", "--workers"),
    ("score --gt {P} --pred {P} --windows nan", "--windows"), ("score --gt {P} --pred {P} --windows 0", "--windows"),
    ("propagate {P} --video demo_mixed --frames 5-2", "--frames"),
    ("propagate {P} --video demo_mixed --frames abc", "--frames"),
    ("eval-propagation {P} --key-every 0", "--key-every"),
    ("associate {P} --video demo_mixed --threshold nan", "--threshold"),
    ("associate {P} --video demo_mixed --review-threshold inf", "--review-threshold"),
    ("preannotate {P} --video demo_mixed --workers -1", "--workers"),  # the CLI's safety net
]


@pytest.mark.parametrize("template,arg", BAD, ids=[b[0].split()[0] + ":" + b[0].split()[-1] for b in BAD])
def test_odd_argument_is_one_error_line_exit_2_nothing_changed(setup, capsys, template, arg):
    root, proj, clip = setup
    before = _tree(root)
    argv = template.format(P=proj, C=clip, R=root).split()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert arg in lines[0] or "windows" in lines[0]
    assert _tree(root) == before  # nothing written, no Infinity in any video.json


def test_empty_out_arguments_are_refused(setup, capsys):
    root, proj, _ = setup
    for argv in (["export", str(proj), "--format", "ytvis", "--out", ""],
                 ["score", "--gt", str(proj), "--pred", str(proj), "--out", " "]):
        assert cli_main(argv) == 2
        assert "unset shell variable" in capsys.readouterr().err


def test_no_float_argument_accepts_nan_anywhere():
    """Every float-typed argument of every subcommand refuses nan (the CLI swaps plain float)."""
    found = 0

    def walk(parser: argparse.ArgumentParser) -> None:
        nonlocal found
        for action in parser._actions:
            assert action.type is not float, (parser.prog, action.dest)
            if action.type is not None and action.type is not str and isinstance(action.type, type(walk)):
                try:
                    action.type("nan")
                except argparse.ArgumentTypeError:
                    found += 1
                except Exception:  # noqa: BLE001 - non-numeric types reject nan in their own way
                    pass
            if isinstance(action, argparse._SubParsersAction):
                for child in set(action.choices.values()):
                    walk(child)

    walk(build_parser())
    assert found >= 10


def test_argtypes_accept_good_values():
    assert argtypes.positive_float("2.5") == 2.5 and argtypes.positive_int("3") == 3
    assert argtypes.ratio_triple("0.8, 0.1,0.1") == (0.8, 0.1, 0.1)
    assert argtypes.frame_range("10-30") == (10, 30) and argtypes.size_wxh("640x360") == (640, 360)
    assert argtypes.unit_float("0.3") == 0.3 and argtypes.nonneg_int("0") == 0
    for fn, text in ((argtypes.positive_float, "1e999"), (argtypes.unit_float, "1.5"),
                     (argtypes.positive_int, "1.5"), (argtypes.finite_float, "-inf")):
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


def test_good_fps_is_kept_exactly(setup, tmp_path, capsys):
    _, _, clip = setup
    proj = tmp_path / "p.vpsproj"
    assert cli_main(["import", str(proj), str(clip), "--source-fps", "10", "--fps", "2.5"]) == 0
    text = (proj / "videos" / "clip" / "video.json").read_text()
    assert '"dense_fps": 2.5' in text and "Infinity" not in text and "NaN" not in text
