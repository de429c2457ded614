"""QA regressions for export / import: bugs found by end-to-end use of the dataset commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.formats.labelme_json import export_labelme
from annotator.formats.vipseg import export_vipseg
from annotator.formats.ytvis import export_ytvis
from annotator.project import FrameState, Project

PERSON, WALL = 60, 0  # VIPSeg thing / stuff class ids


def make_project(path: Path, n: int = 4, h: int = 96, w: int = 128) -> Project:
    """One video with a wall and two persons on textured frames (so JPEGs have some size)."""
    proj = Project.create(path)
    video = proj.create_video("v", [f"{i:05d}" for i in range(n)], h, w)
    wall, a, b = video.new_track(WALL), video.new_track(PERSON), video.new_track(PERSON)
    rng = np.random.default_rng(0)
    for i in range(n):
        video.write_frame_image(i, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        lab = np.full((h, w), wall.id, np.uint16)
        lab[10:40, 10 + i:40 + i] = a.id
        lab[50:90, 60:100] = b.id
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.save()
    video.close()
    return proj


@pytest.mark.parametrize("fmt", ["vipseg", "vipseg-noresize", "ytvis", "labelme"])
def test_export_refuses_truncated_frame_jpeg(tmp_path: Path, fmt: str) -> None:
    """A frame JPEG cut in half still has a valid header; it was copied (or decoded with grey rows
    and re-encoded) into the dataset without a word. It must be a clear error with no output."""
    proj = make_project(tmp_path / "p.vpsproj")
    frame = proj.path / "videos" / "v" / "frames" / "00002.jpg"
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="00002.jpg is truncated"):
        if fmt.startswith("vipseg"):
            export_vipseg(proj.path, out, resize_height=None if fmt.endswith("noresize") else 720)
        elif fmt == "ytvis":
            export_ytvis(proj.path, out)
        else:
            export_labelme(proj.path, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    frame.write_bytes(data)  # intact again: the export works
    export_vipseg(proj.path, out, resize_height=None)
    assert (out / "images" / "v" / "00002.jpg").read_bytes() == data


@pytest.mark.parametrize("fmt", ["vipseg", "ytvis", "labelme"])
def test_export_with_overwrite_into_the_project_is_refused(tmp_path: Path, fmt: str) -> None:
    """``export P --out P/videos --overwrite`` replaced the project's videos folder with the dataset
    (every video lost). An output inside the project must be refused before anything is written."""
    from annotator.cli import main

    proj = make_project(tmp_path / "p.vpsproj", n=2)
    before = sorted(str(p.relative_to(proj.path)) for p in proj.path.rglob("*"))
    for target in (proj.path / "videos", proj.path / "videos" / "v", proj.path / "exports"):
        assert main(["export", str(proj.path), "--format", fmt, "--out", str(target), "--overwrite"]) == 2
        with pytest.raises(InputError, match="inside the project"):
            {"vipseg": export_vipseg, "ytvis": export_ytvis, "labelme": export_labelme}[fmt](
                proj.path, target, overwrite=True)
    assert sorted(str(p.relative_to(proj.path)) for p in proj.path.rglob("*")) == before
    assert Project.open(proj.path).video_ids == ["v"]


def _farm_project(path: Path) -> Project:
    from annotator.taxonomy import Taxonomy

    tax = Taxonomy.from_json([{"id": 0, "name": "grass", "isthing": 0, "color": [0, 200, 0]},
                              {"id": 1, "name": "cow", "isthing": 1, "color": [120, 60, 0]}], name="farm")
    proj = Project.create(path, taxonomy=tax)
    video = proj.create_video("field", ["a", "b"], 8, 12)
    g, c = video.new_track(0), video.new_track(1)
    for i in range(2):
        video.write_frame_image(i, np.zeros((8, 12, 3), np.uint8))
        lab = np.full((8, 12), g.id, np.uint16)
        lab[2:5, 2:5] = c.id
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.save()
    video.close()
    return proj


@pytest.mark.parametrize("keep", ["raw", "rgb"])
def test_vipseg_import_into_project_with_other_classes_is_refused(tmp_path: Path, keep: str) -> None:
    """A custom-taxonomy dataset imported into an existing VIPSeg project silently became VIPSeg
    classes with the same ids (grass -> wall); with --on-invalid void every mismatch went unnoticed."""
    import shutil

    from annotator.formats.vipseg import import_vipseg

    _farm_project(tmp_path / "farm.vpsproj")
    out = tmp_path / "exp"
    export_vipseg(tmp_path / "farm.vpsproj", out, resize_height=None)
    shutil.rmtree(out / ("panomasksRGB" if keep == "raw" else "panomasks"))
    if keep == "rgb":
        (out / "panoVIPSeg_categories.json").unlink()  # the names then come from the panoptic JSON
    target = Project.create(tmp_path / "vip.vpsproj")
    with pytest.raises(InputError, match="0 is 'grass' in the dataset but 'wall' in the project"):
        import_vipseg(out, target.path, on_invalid="void")
    assert Project.open(target.path).video_ids == []
    # a new project takes the dataset's classes; a project with the same classes accepts it
    s = import_vipseg(out, tmp_path / "new.vpsproj")
    assert s.videos == ["field"]
    new = Project.open(tmp_path / "new.vpsproj")
    assert [(c.id, c.name) for c in new.taxonomy] == [(0, "grass"), (1, "cow")]
    same = Project.create(tmp_path / "same.vpsproj", taxonomy=Project.open(tmp_path / "farm.vpsproj").taxonomy)
    assert import_vipseg(out, same.path).videos == ["field"]


def test_vipseg_export_refuses_thing_class_zero(tmp_path: Path) -> None:
    """Thing class 0 encodes as raw 100..199, whose first values decode as stuff 99..123; the export
    failed with the baffling 'unknown category id 99'. It must name the class and the reason."""
    from annotator.taxonomy import Taxonomy

    tax = Taxonomy.from_json([{"id": 0, "name": "cow", "isthing": 1, "color": [120, 60, 0]},
                              {"id": 1, "name": "grass", "isthing": 0, "color": [0, 200, 0]}])
    proj = Project.create(tmp_path / "p.vpsproj", taxonomy=tax)
    video = proj.create_video("v", ["a"], 8, 12)
    g, c = video.new_track(1), video.new_track(0)
    video.write_frame_image(0, np.zeros((8, 12, 3), np.uint8))
    lab = np.full((8, 12), g.id, np.uint16)
    lab[2:5, 2:5] = c.id
    video.write_label(0, lab, state=FrameState.REVIEWED)
    video.save()
    video.close()
    with pytest.raises(InputError, match="thing class 'cow' has id 0"):
        export_vipseg(proj.path, tmp_path / "e", resize_height=None)
    assert not (tmp_path / "e").exists()


def test_ytvis_import_reports_annotations_of_unlisted_videos(tmp_path: Path) -> None:
    """Annotations whose video_id is not in 'videos' were dropped silently (a track lost)."""
    import json

    from annotator.formats.ytvis import import_ytvis

    make_project(tmp_path / "p.vpsproj", n=2)
    export_ytvis(tmp_path / "p.vpsproj", tmp_path / "yt")
    doc = json.loads((tmp_path / "yt" / "annotations.json").read_text())
    doc["annotations"][0]["video_id"] = 99
    (tmp_path / "yt" / "annotations.json").write_text(json.dumps(doc))
    s = import_ytvis(tmp_path / "yt", tmp_path / "back.vpsproj")
    assert s.tracks == 1
    assert any("not listed in 'videos'" in w and "ids 1" in w for w in s.warnings)


def test_labelme_import_refuses_unknown_shape_type(tmp_path: Path) -> None:
    """A shape with an unknown shape_type (e.g. 'ellipse') was treated like a line: its region
    silently vanished from the imported label map."""
    import json

    from annotator.formats.labelme_json import import_labelme

    make_project(tmp_path / "p.vpsproj", n=2)
    export_labelme(tmp_path / "p.vpsproj", tmp_path / "lm")
    f = tmp_path / "lm" / "v" / "00000.json"
    doc = json.loads(f.read_text())
    doc["shapes"][0]["shape_type"] = "ellipse"
    f.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unknown shape_type 'ellipse'"):
        import_labelme(tmp_path / "lm", tmp_path / "back.vpsproj")
    assert not (tmp_path / "back.vpsproj").exists()
    doc["shapes"][0]["shape_type"] = "polygon"
    doc["shapes"].append({"label": "person", "points": [[1, 1], [5, 5]], "group_id": None, "shape_type": "line"})
    f.write_text(json.dumps(doc))
    assert import_labelme(tmp_path / "lm", tmp_path / "back.vpsproj").videos == ["v"]


def test_paths_under_a_file_give_one_line_errors(tmp_path: Path) -> None:
    """--out / --project below (or at) a regular file crashed with NotADirectoryError/FileExistsError."""
    from annotator.cli import main
    from annotator.errors import ProjectError
    from annotator.formats.vipseg import import_vipseg

    make_project(tmp_path / "p.vpsproj", n=2)
    export_vipseg(tmp_path / "p.vpsproj", tmp_path / "exp", resize_height=None)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create the output folder"):
        export_vipseg(tmp_path / "p.vpsproj", blocker / "out")
    for target in (blocker, blocker / "sub.vpsproj"):
        with pytest.raises(ProjectError):
            import_vipseg(tmp_path / "exp", target)
        assert main(["import-dataset", str(tmp_path / "exp"), "--format", "vipseg", "--project", str(target)]) == 2
    assert blocker.read_text() == "x"


def test_stuff_segment_id_is_the_same_in_every_video_when_colours_collide(tmp_path: Path) -> None:
    """Two stuff classes sharing a colour: the id of the second depended on whether the first was
    present in the video (docs/architecture.md, VIPSeg encoding: a stuff class has the same segment id in every video)."""
    import json

    from annotator.taxonomy import Taxonomy

    tax = Taxonomy.from_json([{"id": 0, "name": "grass", "isthing": 0, "color": [0, 200, 0]},
                              {"id": 1, "name": "sky", "isthing": 0, "color": [0, 200, 0]},
                              {"id": 2, "name": "cow", "isthing": 1, "color": [120, 60, 0]}])
    proj = Project.create(tmp_path / "p.vpsproj", taxonomy=tax)
    for vid, classes in (("a_sky_only", [1]), ("b_both", [0, 1])):
        video = proj.create_video(vid, ["f"], 8, 12)
        tids = [video.new_track(c).id for c in classes]
        lab = np.full((8, 12), tids[0], np.uint16)
        lab[:3] = tids[-1]
        video.write_frame_image(0, np.zeros((8, 12, 3), np.uint8))
        video.write_label(0, lab, state=FrameState.REVIEWED)
        video.save()
        video.close()
    export_vipseg(proj.path, tmp_path / "e", resize_height=None)
    doc = json.loads((tmp_path / "e" / "panoptic_gt_VIPSeg.json").read_text())
    ids: dict[int, set[int]] = {}
    for entry in doc["annotations"]:
        for s in entry["annotations"][0]["segments_info"]:
            ids.setdefault(s["category_id"], set()).add(s["id"])
    assert len(ids[1]) == 1 and ids[0] != ids[1]
    assert ids[0] == {0 + 200 * 256}


@pytest.mark.parametrize("fmt", ["vipseg", "ytvis", "labelme"])
def test_export_of_nothing_is_an_error_and_keeps_the_old_dataset(tmp_path: Path, fmt: str) -> None:
    """``--layer propagatd`` (typo) exported 0 videos with exit code 0; with --overwrite it replaced
    a good dataset by an empty one."""
    from annotator.cli import main

    make_project(tmp_path / "p.vpsproj", n=2)
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "p.vpsproj"), "--format", fmt, "--out", str(out)]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["export", str(tmp_path / "p.vpsproj"), "--format", fmt, "--out", str(out), "--overwrite",
                 "--layer", "propagatd"]) == 2
    assert sorted(p.name for p in out.rglob("*")) == before
    fn = {"vipseg": export_vipseg, "ytvis": export_ytvis, "labelme": export_labelme}[fmt]
    with pytest.raises(InputError, match="nothing to export"):
        fn(tmp_path / "p.vpsproj", tmp_path / "out2", layer="propagatd")
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("fmt", ["vipseg", "ytvis", "labelme"])
def test_import_refuses_truncated_dataset_image(tmp_path: Path, fmt: str, capsys) -> None:
    """A dataset frame cut short decodes with grey rows and no error; import-dataset must name it."""
    from annotator.cli import main as cli_main

    proj = make_project(tmp_path / "p.vpsproj")
    out = tmp_path / "ds"
    {"vipseg": lambda: export_vipseg(proj.path, out, resize_height=None),
     "ytvis": lambda: export_ytvis(proj.path, out), "labelme": lambda: export_labelme(proj.path, out)}[fmt]()
    jpg = sorted(p for p in out.rglob("*.jpg"))[1]
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size * 2 // 3])
    target = tmp_path / "t.vpsproj"
    assert cli_main(["import-dataset", str(out), "--format", fmt, "--project", str(target)]) == 2
    assert f"{jpg} is damaged" in capsys.readouterr().err
    assert not target.exists()
