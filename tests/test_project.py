"""Project/video data model: round trips, invariants and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator import panoptic
from annotator.cli import main as cli_main
from annotator.errors import InputError, ProjectError
from annotator.project import FrameState, Project
from annotator.taxonomy import Taxonomy, load_taxonomy, vipseg_taxonomy


@pytest.fixture()
def video(tmp_path):
    project = Project.create(tmp_path / "p.vpsproj")
    v = project.create_video("clip", [f"{i:05d}" for i in range(12)], 30, 40)
    for i in range(12):
        v.write_frame_image(i, np.full((30, 40, 3), (i * 20, 100, 50), np.uint8))
    yield v
    v.close()


def test_vipseg_taxonomy_facts():
    tax = vipseg_taxonomy()
    assert len(tax) == 124 and len(tax.thing_ids) == 58 and len(tax.stuff_ids) == 66
    assert tax.get(0).name == "wall" and not tax.get(0).isthing
    assert tax.get(60).name == "person" and tax.get(60).isthing
    assert tax.by_name("sky").id == 28
    assert tax.search("pers")[0].name == "person"
    with pytest.raises(InputError, match="unknown category id 124"):
        tax.get(124)


def test_custom_taxonomy_yaml_and_errors(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("categories:\n- {id: 0, name: road, isthing: 0, color: [1, 2, 3]}\n"
                 "- {id: 1, name: cat, isthing: 1, color: [4, 5, 6]}\n")
    tax = load_taxonomy(p)
    assert tax.name == "t" and tax.thing_ids == [1]
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"id": 0, "name": "a", "isthing": 0, "color": [1, 2, 3]},
                               {"id": 0, "name": "b", "isthing": 1, "color": [1, 2, 3]}]))
    with pytest.raises(InputError, match="duplicate category id 0"):
        load_taxonomy(bad)
    bad.write_text("[{\"id\": 0}]")
    with pytest.raises(InputError, match="entry 0 is invalid"):
        load_taxonomy(bad)


def test_round_trip_labels_tracks_states(video, tmp_path):
    person, sky = video.new_track(60, note="left"), video.new_track(28)
    label = panoptic.empty_label(30, 40)
    label[:10, :10] = person.id
    label[20:] = sky.id
    video.write_label(5, label, state=FrameState.MANUAL)
    video.write_label(6, label, state=FrameState.PROPAGATED)
    video.set_keyframes([0, 5, 10])
    video.close()
    project = Project.open(tmp_path / "p.vpsproj")
    with project.open_video("clip") as again:
        np.testing.assert_array_equal(again.read_label(5), label)
        assert again.read_label(5).dtype == np.uint16
        assert again.tracks[person.id].note == "left" and again.tracks[sky.id].category_id == 28
        assert again.frame_state(5) == FrameState.MANUAL and again.frame_state(6) == FrameState.PROPAGATED
        assert again.provenance(6) == {person.id: FrameState.PROPAGATED, sky.id: FrameState.PROPAGATED}
        assert again.track_frames(person.id) == [5, 6]
        assert again.keyframes == [0, 5, 10]
        assert again.read_frame(3)[0, 0, 0] == pytest.approx(60, abs=2)
        assert not again.has_label(0) and again.read_label(0).max() == 0


def test_provenance_keeps_human_tracks_when_frame_is_extended(video):
    a, b = video.new_track(60), video.new_track(61)
    label = panoptic.empty_label(30, 40)
    label[:5] = a.id
    video.write_label(1, label, state=FrameState.PROPAGATED)
    label[10:15] = b.id
    video.write_label(1, label, provenance={a.id: FrameState.PROPAGATED, b.id: FrameState.REFINED})
    assert video.provenance(1) == {a.id: FrameState.PROPAGATED, b.id: FrameState.REFINED}


def test_track_ids_never_reused(video):
    a = video.new_track(60)
    video.delete_track(a.id)
    b = video.new_track(60)
    assert b.id > a.id
    with pytest.raises(InputError, match="never reused"):
        video.add_track(a.id, 60)
    with pytest.raises(InputError, match="duplicate track id"):
        video.add_track(b.id, 60)


def test_delete_track_clears_pixels_everywhere(video):
    a, s = video.new_track(60), video.new_track(28)
    label = panoptic.empty_label(30, 40)
    label[:5] = a.id
    label[5:] = s.id
    for i in (0, 3):
        video.write_label(i, label)
    video.write_label(0, label, layer="gt")
    video.delete_track(a.id)
    for i in (0, 3):
        assert a.id not in panoptic.present_ids(video.read_label(i))
    assert a.id not in panoptic.present_ids(video.read_label(0, layer="gt"))
    assert video.track_frames(s.id) == [0, 3]


def test_bad_inputs_have_clear_errors_and_write_nothing(video, tmp_path):
    t = video.new_track(60)
    with pytest.raises(InputError, match="40x30"):
        video.write_label(0, np.zeros((31, 40), np.uint16))
    unknown = np.zeros((30, 40), np.uint16)
    unknown[0, 0] = 99
    with pytest.raises(InputError, match=r"ids \[99\] are not tracks"):
        video.write_label(0, unknown)
    with pytest.raises(InputError, match="unknown category id 500"):
        video.new_track(500)
    with pytest.raises(InputError, match="out of range"):
        video.read_label(12)
    assert not video.has_label(0) and video.frame_state(0) == FrameState.UNLABELLED
    assert video.tracks.keys() == {t.id}
    with pytest.raises(InputError, match="must be a 2-D"):
        video.write_label(0, np.zeros((30, 40, 3), np.uint16))


def test_corrupt_label_png_is_reported(video):
    t = video.new_track(60)
    video.write_label(2, np.full((30, 40), t.id, np.uint16))
    (video.path / "labels" / "00002.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="00002.png: not a readable PNG"):
        video.read_label(2)


def test_project_errors(tmp_path):
    with pytest.raises(ProjectError, match="not a VPS Annotator project"):
        Project.open(tmp_path)
    p = Project.create(tmp_path / "x.vpsproj")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "x.vpsproj")
    with pytest.raises(InputError, match="invalid video id"):
        p.create_video("../evil", ["a"], 4, 4)
    with pytest.raises(InputError, match="no frames"):
        p.create_video("empty", [], 4, 4)
    with pytest.raises(ProjectError, match="no video 'nope'"):
        p.open_video("nope")
    (tmp_path / "x.vpsproj" / "project.json").write_text("{")
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(tmp_path / "x.vpsproj")


def test_interrupted_import_is_not_listed_and_cannot_open(tmp_path):
    p = Project.create(tmp_path / "x.vpsproj")
    p.create_video("half", ["a", "b"], 4, 4)  # never saved/closed: import interrupted
    assert p.video_ids == [] and p.incomplete_video_ids == ["half"]
    with pytest.raises(ProjectError, match="did not finish"):
        p.open_video("half")


def test_custom_taxonomy_project(tmp_path):
    tax = Taxonomy.from_json([{"id": 0, "name": "lesion", "isthing": 1, "color": [255, 0, 0]}], name="med")
    Project.create(tmp_path / "m.vpsproj", taxonomy=tax)
    again = Project.open(tmp_path / "m.vpsproj")
    assert again.taxonomy.name == "med" and again.taxonomy.thing_ids == [0]


def test_cli_new_and_info(tmp_path, capsys):
    path = tmp_path / "c.vpsproj"
    assert cli_main(["new", str(path)]) == 0
    v = Project.open(path).create_video("v1", ["a", "b", "c"], 8, 8)
    v.new_track(28)
    v.close()
    assert cli_main(["info", str(path)]) == 1  # its frame images were never written: info names them
    out = capsys.readouterr().out
    assert "v1: 3 frames 8x8" in out and "1 tracks" in out
    assert "backends: SAM:" in out and "propagation:" in out
    assert cli_main(["info", str(path), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["videos"][0]["keyframes"] == 1
    assert info["backends"]["propagation"].startswith("propagation:")
    assert cli_main(["info", str(tmp_path / "missing")]) == 2
    assert "not a VPS Annotator project" in capsys.readouterr().err


def test_discard_removes_unfinished_video(tmp_path):
    p = Project.create(tmp_path / "x.vpsproj")
    v = p.create_video("half", ["a", "b"], 4, 4)
    v.discard()
    assert not (p.videos_dir / "half").exists() and p.video_ids == [] and p.incomplete_video_ids == []


def test_source_inside_project_survives_moving_the_project(tmp_path):
    from annotator.project import SourceInfo

    p = Project.create(tmp_path / "x.vpsproj")
    (p.path / "sources").mkdir()
    src = SourceInfo(kind="folder", path=str(p.path / "sources" / "clip"), fps=25.0)
    p.create_video("v", ["a"], 4, 4, source=src).close()
    moved = tmp_path / "moved.vpsproj"
    p.path.rename(moved)
    with Project.open(moved).open_video("v") as v:
        assert v.source.path == str(moved / "sources" / "clip")


def test_restore_track_brings_back_deleted_id_only(video, tmp_path):
    a = video.new_track(60, note="red car")
    with pytest.raises(ProjectError, match="in use"):
        video.restore_track(a)
    video.delete_track(a.id)
    restored = video.restore_track(a)
    assert (restored.id, restored.category_id, restored.note) == (a.id, 60, "red car")
    never = type(a)(id=a.id + 50, category_id=60)
    with pytest.raises(ProjectError, match="never created"):
        video.restore_track(never)
    assert video.new_track(60).id > a.id


def test_cli_output_into_a_closed_pipe_is_not_a_traceback(tmp_path):
    """`main.py info P | head` must not end with a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "c.vpsproj"
    assert cli_main(["new", str(path)]) == 0
    r, w = os.pipe()
    os.close(r)
    main_py = Path(__file__).resolve().parents[1] / "main.py"
    try:
        p = subprocess.run([sys.executable, str(main_py), "info", str(path)], stdout=w, stderr=subprocess.PIPE,
                           timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr.decode()
