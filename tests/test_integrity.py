"""Missing data is never silent: integrity report (info), refusals (export, propagate), delete-video,
reruns of interrupted imports, and damaged video.json files (issue 18 item 5, part of 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from annotator.cli import main as cli_main
from annotator.errors import AnnotatorError
from annotator.project import FrameState, Project, check_project, check_video, check_video_doc
from resources.demo import generate_demo_video, write_demo_project, write_demo_source

VIDEO = "demo_mixed"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integ")
    return write_demo_project(root / "demo.vpsproj", scenarios=("mixed", "crossing"), num_frames=30,
                              height=48, width=64, source=None)


@pytest.fixture
def proj(base, tmp_path) -> Path:
    dst = tmp_path / "p.vpsproj"
    shutil.copytree(base, dst)
    return dst


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_intact_project_has_no_problem(proj):
    p = Project.open(proj)
    assert check_project(p) == [] and check_project(p, deep=True) == []


def test_deleted_label_png_of_reviewed_frame_is_named_everywhere(proj, tmp_path, capsys):
    png = proj / "videos" / VIDEO / "labels" / "00003.png"
    png.unlink()
    problems = check_project(Project.open(proj))
    assert len(problems) == 1
    pr = problems[0]
    assert (pr.video, pr.frame, pr.frame_name, pr.file) == (VIDEO, 3, "00003", str(png))
    assert "label PNG is missing" in pr.message and "reviewed" in pr.message

    assert cli_main(["info", str(proj)]) == 1  # quick check, always on; exit 1 on a problem
    out = capsys.readouterr().out
    assert "1 integrity problem" in out and "frame 3 (00003)" in out and str(png) in out
    assert cli_main(["info", str(proj), "--check"]) == 1  # deep check: exit 1 on a problem
    assert "(deep check)" in capsys.readouterr().out
    assert cli_main(["info", str(proj), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["problems"][0]["frame"] == 3 and doc["problems"][0]["file"] == str(png)

    out_dir = tmp_path / "export"
    assert cli_main(["export", str(proj), "--format", "vipseg", "--out", str(out_dir)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "export" in line and "refused" in line and str(png) in line
    assert not out_dir.exists()

    before = Project.open(proj).open_video(VIDEO, readonly=True)
    state_before = before.frame_state(3)
    before.close()
    assert cli_main(["propagate", str(proj), "--video", VIDEO, "--backend", "flow"]) == 2
    assert "propagation" in _one_error_line(capsys.readouterr().err)
    assert not png.exists()  # never silently refilled with machine labels
    with Project.open(proj).open_video(VIDEO, readonly=True) as v:
        assert v.frame_state(3) == state_before == FrameState.REVIEWED


def test_video_without_video_json_is_reported_not_hidden(proj, tmp_path, capsys):
    (proj / "videos" / VIDEO / "video.json").unlink()
    p = Project.open(proj)
    assert VIDEO not in p.video_ids
    problems = check_project(p)
    assert [(x.video, x.frame) for x in problems] == [(VIDEO, None)]
    assert "without video.json" in problems[0].message
    assert cli_main(["info", str(proj)]) == 1
    assert "without video.json" in capsys.readouterr().out
    out_dir = tmp_path / "export"
    assert cli_main(["export", str(proj), "--format", "vipseg", "--out", str(out_dir)]) == 2
    assert "without video.json" in _one_error_line(capsys.readouterr().err)
    # naming the video explicitly names the damage too, instead of "no video"
    assert cli_main(["export", str(proj), "--format", "ytvis", "--out", str(out_dir), "--videos", VIDEO]) == 2
    assert "without video.json" in _one_error_line(capsys.readouterr().err)
    # exporting the intact video alone works
    assert cli_main(["export", str(proj), "--format", "ytvis", "--out", str(out_dir), "--videos",
                     "demo_crossing"]) == 0


def test_deep_check_finds_unreadable_png_wrong_ids_and_truncated_frames(proj):
    vdir = proj / "videos" / VIDEO
    (vdir / "labels" / "00001.png").write_bytes(b"not a png at all")
    label = cv2.imread(str(vdir / "labels" / "00002.png"), cv2.IMREAD_UNCHANGED)
    label[label == 5] = 1  # track 5 vanishes from the PNG but the metadata still lists it
    cv2.imwrite(str(vdir / "labels" / "00002.png"), label)
    label[0, 0] = 999  # not a track at all
    cv2.imwrite(str(vdir / "labels" / "00004.png"), label)
    jpg = vdir / "frames" / "00005.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    (vdir / "frames" / "00000.jpg").unlink()
    p = Project.open(proj)
    quick = check_video(p, VIDEO)
    assert [(x.frame, x.message) for x in quick] == [(0, "frame image is missing")]
    deep = {x.frame: x.message for x in check_video(p, VIDEO, deep=True)}
    assert set(deep) == {0, 1, 2, 4, 5}
    assert "unreadable" in deep[1]
    assert "metadata says" in deep[2] and "5" in deep[2]
    assert "999" in deep[4] and "not tracks" in deep[4]
    assert "truncated" in deep[5]


@pytest.mark.parametrize("fmt", ["vipseg", "ytvis", "labelme"])
def test_export_refuses_a_label_png_that_disagrees_with_the_metadata(proj, tmp_path, capsys, fmt):
    png = proj / "videos" / VIDEO / "labels" / "00002.png"
    label = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    with Project.open(proj).open_video(VIDEO, readonly=True) as v:
        gone = max(v.frame_tracks(2))
    label[label == gone] = 1  # a track vanishes from the PNG while video.json still lists it
    cv2.imwrite(str(png), label)
    out = tmp_path / "out"
    assert cli_main(["export", str(proj), "--format", fmt, "--out", str(out), "--no-resize"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "00002" in line and "metadata says" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_video_json_type_errors_are_one_line_for_every_command(proj, capsys):
    vjson = proj / "videos" / VIDEO / "video.json"
    doc = json.loads(vjson.read_text())
    assert check_video_doc(doc) == []
    cases = [("height", "abc"), ("frames", None), ("frame_names", 7), ("keyframes", [0, 999]),
             ("tracks", [{"id": "x", "category_id": 1}]), ("source", {"kind": "video", "fps": "fast"})]
    for key, value in cases:
        bad = dict(doc)
        if value is None:
            bad.pop(key)
        else:
            bad[key] = value
        errs = check_video_doc(bad)
        assert errs and any(key in e for e in errs), (key, errs)
    bad = dict(doc, height="abc")
    bad.pop("frames")
    vjson.write_text(json.dumps(bad))
    for argv in (["propagate", str(proj), "--video", VIDEO], ["correct", str(proj), "--video", VIDEO, "history"],
                 ["associate", str(proj), "--video", VIDEO]):
        assert cli_main(argv) == 2, argv
        line = _one_error_line(capsys.readouterr().err)
        assert "'height'" in line and "'frames'" in line and "video.json" in line
    assert cli_main(["info", str(proj)]) == 1  # info reports instead of refusing, and exits non-zero
    out = capsys.readouterr().out
    assert "video.json is damaged" in out and "demo_crossing:" in out
    assert json.loads(vjson.read_text())["height"] == "abc"  # nothing rewritten


def test_delete_video_command(proj, capsys):
    p = Project.open(proj)
    half = p.create_video("half", ["a", "b"], 8, 8)  # never closed: an interrupted import
    half._lock.release()  # as if the importing process had been killed
    (p.videos_dir / "orphan").mkdir()  # folder without video.json
    assert {x.video for x in check_project(p)} == {"half", "orphan"}
    assert cli_main(["delete-video", str(proj), "half"]) == 0  # unfinished: no confirmation needed
    assert cli_main(["delete-video", str(proj), "orphan"]) == 0
    assert "unfinished video" in capsys.readouterr().out
    assert not (p.videos_dir / "half").exists() and not (p.videos_dir / "orphan").exists()
    assert cli_main(["delete-video", str(proj), VIDEO]) == 2  # finished video: needs --yes off a terminal
    assert "--yes" in _one_error_line(capsys.readouterr().err)
    with p.open_video(VIDEO):  # held by this process: refused, named
        assert cli_main(["delete-video", str(proj), VIDEO, "--yes"]) == 2
        assert "is open by" in _one_error_line(capsys.readouterr().err)
    assert cli_main(["delete-video", str(proj), VIDEO, "--yes"]) == 0
    assert Project.open(proj).video_ids == ["demo_crossing"] and check_project(Project.open(proj)) == []
    assert not list(proj.glob(".deleted-*"))
    assert cli_main(["delete-video", str(proj), "nope", "--yes"]) == 2
    assert "no video 'nope'" in _one_error_line(capsys.readouterr().err)


def test_rerun_of_interrupted_import_replaces_it_under_the_same_id(tmp_path, capsys):
    demo = generate_demo_video(0, 15, 36, 48, "mixed")
    src = write_demo_source(demo, tmp_path / "clip", "folder")
    proj = tmp_path / "p.vpsproj"
    p = Project.create(proj)
    half = p.create_video("clip", ["000000"], 36, 48)  # what a killed `import P clip` leaves
    half._lock.release()
    assert cli_main(["import", str(proj), str(src)]) == 0
    captured = capsys.readouterr()
    assert "replaced the unfinished import of video 'clip'" in captured.err
    p = Project.open(proj)
    assert p.video_ids == ["clip"] and p.incomplete_video_ids == [] and check_project(p, deep=True) == []
    # a finished video of that name is kept: the next import gets a new id
    assert cli_main(["import", str(proj), str(src)]) == 0
    assert Project.open(proj).video_ids == ["clip", "clip_2"]
    # a project whose creation was killed before project.json (only an empty videos/) is created again
    stub = tmp_path / "stub.vpsproj"
    (stub / "videos").mkdir(parents=True)
    assert cli_main(["import", str(stub), str(src)]) == 0
    assert Project.open(stub).video_ids == ["clip"]


def test_rerun_of_interrupted_import_dataset_replaces_it(proj, tmp_path, capsys):
    export = tmp_path / "export"
    assert cli_main(["export", str(proj), "--format", "vipseg", "--out", str(export), "--no-resize"]) == 0
    target = tmp_path / "t.vpsproj"
    t = Project.create(target)
    half = t.create_video(VIDEO, ["00000"], 48, 64)  # a killed import-dataset left this
    half._lock.release()
    assert cli_main(["import-dataset", str(export), "--format", "vipseg", "--project", str(target)]) == 0
    assert f"replaced the unfinished import of video '{VIDEO}'" in capsys.readouterr().err
    t = Project.open(target)
    assert sorted(t.video_ids) == ["demo_crossing", VIDEO] and check_project(t, deep=True) == []
    with t.open_video(VIDEO, readonly=True) as v:
        assert v.num_frames == 6
    # a finished video of the same id is still refused, naming delete-video
    assert cli_main(["import-dataset", str(export), "--format", "vipseg", "--project", str(target)]) == 2
    assert "delete-video" in _one_error_line(capsys.readouterr().err)


def test_integrity_errors_are_annotator_errors(proj):
    from annotator.project import require_intact

    (proj / "videos" / VIDEO / "labels" / "00000.png").unlink()
    with pytest.raises(AnnotatorError, match="00000.png"):
        require_intact(check_project(Project.open(proj)), "test")


def test_project_json_type_errors_are_one_line(proj, tmp_path, capsys):
    pj = proj / "project.json"
    doc = json.loads(pj.read_text())
    for settings, word in (([1], "'settings'"), ({**doc["settings"], "dense_fps": "fast"}, "'dense_fps'"),
                           ({**doc["settings"], "key_every": 0}, "'key_every'")):
        pj.write_text(json.dumps({**doc, "settings": settings}))
        for argv in (["info", str(proj)], ["export", str(proj), "--format", "ytvis", "--out", str(tmp_path / "o")],
                     ["propagate", str(proj), "--video", VIDEO]):
            assert cli_main(argv) == 2, argv
            line = _one_error_line(capsys.readouterr().err)
            assert "project.json is damaged" in line and word in line, line
    assert not (tmp_path / "o").exists()
