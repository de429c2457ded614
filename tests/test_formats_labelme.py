"""labelme JSON: per-frame export (polygons with holes, masks), import of labelme folders, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import labelme
import numpy as np
import pytest

from annotator.cli import main as cli_main
from annotator.errors import InputError
from annotator.formats.labelme_json import export_labelme, import_labelme, mask_to_polygons
from annotator.project import FrameState, Project
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import CAR, DOG, GRASS, PERSON, SKY, WALL, write_demo_project

TAX = vipseg_taxonomy()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_demo_project(tmp_path_factory.mktemp("lm") / "demo.vpsproj", scenarios=("mixed",),
                              num_frames=50, source=None)


def _project(path: Path, labels: list[np.ndarray], tracks: dict[int, int], vid: str = "v",
             notes: dict[int, str] | None = None) -> Path:
    proj = Project.create(path)
    h, w = labels[0].shape
    video = proj.create_video(vid, [f"f{i:03d}" for i in range(len(labels))], h, w)
    for tid, cid in sorted(tracks.items()):
        video.add_track(tid, cid, (notes or {}).get(tid, ""))
    for i, lab in enumerate(labels):
        video.write_frame_image(i, np.full((h, w, 3), 60 + 30 * i, np.uint8))
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.close()
    return path


def _holey_label() -> np.ndarray:
    """Stuff with a void hole, a thing with a hole holding another thing, specks and a diagonal line."""
    lab = np.full((60, 80), 1, np.uint16)          # wall everywhere
    lab[5:25, 5:25] = 0                             # void hole in the wall
    lab[30:55, 30:70] = 7                           # car ...
    lab[38:47, 42:58] = 9                           # ... with a person inside it (a hole of the car)
    lab[2, 70] = 9                                  # one-pixel part of the person
    lab[10, 60:62] = 4                              # two-pixel dog
    for k in range(12):                             # one-pixel-wide diagonal of grass
        lab[40 + k, 5 + k] = 3
    return lab


def _within_one_pixel(orig: np.ndarray, back: np.ndarray) -> bool:
    """Every differing pixel lies on or next to the original mask's contour."""
    k = np.ones((3, 3), np.uint8)
    o = orig.astype(np.uint8)
    band = (cv2.dilate(o, k) != cv2.erode(o, k))
    return bool(((orig != back) & ~band).sum() == 0)


def test_polygon_export_fields_and_holes(tmp_path):
    lab = _holey_label()
    proj = _project(tmp_path / "p.vpsproj", [lab], {1: WALL, 3: GRASS, 4: DOG, 7: CAR, 9: PERSON}, notes={7: "red"})
    export_labelme(proj, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "v" / "f000.json").read_text())
    assert doc["imagePath"] == "f000.jpg" and doc["imageData"] is None
    assert (doc["imageHeight"], doc["imageWidth"]) == (60, 80)
    assert (tmp_path / "out" / "v" / "f000.jpg").exists()
    assert doc["vps_annotator"]["video_id"] == "v"
    meta = {t["id"]: t for t in doc["vps_annotator"]["tracks"]}
    assert meta[7] == {"id": 7, "category_id": CAR, "class": "car", "note": "red"}
    assert {s["group_id"] for s in doc["shapes"]} == {1, 3, 4, 7, 9}
    for s in doc["shapes"]:
        assert s["label"] == TAX.get({1: WALL, 3: GRASS, 4: DOG, 7: CAR, 9: PERSON}[s["group_id"]]).name
        assert s["shape_type"] == "polygon" and len(s["points"]) >= 3
    holes = [s for s in doc["shapes"] if s["flags"].get("hole")]
    assert {s["group_id"] for s in holes} == {1, 7}  # the wall's void hole, the car around the person
    lf = labelme.LabelFile(str(tmp_path / "out" / "v" / "f000.json"))  # labelme itself reads it
    assert len(lf.shapes) == len(doc["shapes"])


@pytest.mark.parametrize("shapes", ["polygon", "mask"])
def test_round_trip_with_holes(tmp_path, shapes):
    lab = _holey_label()
    tracks = {1: WALL, 3: GRASS, 4: DOG, 7: CAR, 9: PERSON}
    proj = _project(tmp_path / "p.vpsproj", [lab, np.roll(lab, 3, axis=1)], tracks, notes={9: "driver"})
    export_labelme(proj, tmp_path / "out", shapes=shapes)
    import_labelme(tmp_path / "out", tmp_path / "back.vpsproj")
    with Project.open(tmp_path / "back.vpsproj").open_video("v", readonly=True) as v:
        assert {t: tr.category_id for t, tr in v.tracks.items()} == tracks
        assert v.tracks[9].note == "driver"
        for i, orig in enumerate([lab, np.roll(lab, 3, axis=1)]):
            back = v.read_label(i)
            assert v.frame_state(i) == FrameState.REVIEWED
            if shapes == "mask":
                np.testing.assert_array_equal(back, orig)
                continue
            for tid in tracks:
                assert _within_one_pixel(orig == tid, back == tid), f"track {tid} frame {i}"
            assert back[15, 15] == 0 and back[42, 50] == 9  # hole interiors survive


def test_demo_round_trip_keeps_classes_ids_and_masks(demo, tmp_path):
    export_labelme(demo, tmp_path / "out")
    summary = import_labelme(tmp_path / "out", tmp_path / "back.vpsproj")
    assert summary.frames == 10
    with Project.open(demo).open_video("demo_mixed", readonly=True) as va, \
            Project.open(tmp_path / "back.vpsproj").open_video("demo_mixed", readonly=True) as vb:
        assert va.tracks == vb.tracks
        for i in range(va.num_frames):
            la, lb = va.read_label(i), vb.read_label(i)
            for tid in va.tracks:
                assert _within_one_pixel(la == tid, lb == tid)


def test_polygons_of_a_ring():
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[6:14, 6:14] = False
    polys = mask_to_polygons(m)
    assert [hole for _, hole in polys] == [False, True]


def _write_labelme(folder: Path, stem: str, shapes: list[dict], h: int = 20, w: int = 30,
                   image: bool = True, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        cv2.imwrite(str(folder / f"{stem}.jpg"), np.full((h, w, 3), 90, np.uint8))
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.jpg", "imageData": None,
           "imageHeight": h, "imageWidth": w, **extra}
    (folder / f"{stem}.json").write_text(json.dumps(doc))


def _poly(label: str, pts: list[list[float]], gid: int | None = None, st: str = "polygon") -> dict:
    return {"label": label, "points": pts, "group_id": gid, "shape_type": st, "flags": {}, "description": ""}


def test_import_plain_labelme_folder_without_group_ids(tmp_path):
    root = tmp_path / "lm" / "clipA"
    sq = [[2, 2], [8, 2], [8, 8], [2, 8]]
    _write_labelme(root, "frame_2", [_poly("sky", [[0, 0], [29, 0], [29, 3], [0, 3]]),
                                     _poly("person", sq), _poly("Person", [[12, 2], [18, 2], [18, 8], [12, 8]]),
                                     _poly("sky", [[0, 17], [29, 17], [29, 19], [0, 19]]),
                                     _poly("car", [[20, 10], [28, 15]], st="rectangle"),
                                     {"label": "person", "points": [[1, 1]], "group_id": None,
                                      "shape_type": "point", "flags": {}}])
    _write_labelme(root, "frame_10", [_poly("person", sq, gid=5)])
    cv2.imwrite(str(root / "frame_11.jpg"), np.zeros((20, 30, 3), np.uint8))  # no JSON: unlabelled frame
    import_labelme(tmp_path / "lm", tmp_path / "p.vpsproj")
    with Project.open(tmp_path / "p.vpsproj").open_video("clipA", readonly=True) as v:
        assert v.frame_names == ["frame_2", "frame_10", "frame_11"]
        cats = sorted(t.category_id for t in v.tracks.values())
        assert cats == sorted([SKY, PERSON, PERSON, CAR, PERSON])  # both sky shapes are one stuff track
        lab = v.read_label(0)
        sky = lab[0, 0]
        assert lab[18, 5] == sky and lab[5, 5] != lab[5, 15] and lab[12, 24] != 0
        assert v.tracks[int(lab[12, 24])].category_id == CAR
        assert (v.read_label(1)[2:9, 2:9] == 5).all()
        assert v.frame_state(2) == FrameState.UNLABELLED and v.frame_state(0) == FrameState.REVIEWED


def test_import_image_data_only(tmp_path):
    import base64

    ok, buf = cv2.imencode(".png", np.full((20, 30, 3), 200, np.uint8))
    _write_labelme(tmp_path / "lm", "a", [_poly("road", [[0, 0], [29, 0], [29, 19], [0, 19]], gid=2)], image=False)
    doc = json.loads((tmp_path / "lm" / "a.json").read_text())
    doc["imageData"] = base64.b64encode(buf.tobytes()).decode()
    (tmp_path / "lm" / "a.json").write_text(json.dumps(doc))
    import_labelme(tmp_path / "lm", tmp_path / "p.vpsproj")
    with Project.open(tmp_path / "p.vpsproj").open_video("lm", readonly=True) as v:
        assert (v.read_label(0) == 2).all() and abs(int(v.read_frame(0)[5, 5, 0]) - 200) <= 2


@pytest.mark.parametrize("bad", ["unknown_class", "size_mismatch", "missing_image", "two_points", "group_conflict",
                                 "corrupt_json"])
def test_import_bad_inputs(tmp_path, bad):
    folder = tmp_path / "lm"
    sq = [[2, 2], [8, 2], [8, 8], [2, 8]]
    shapes = [_poly("person", sq, gid=1)]
    kwargs = {}
    if bad == "unknown_class":
        shapes = [_poly("unicorn", sq)]
        pattern = "unknown class 'unicorn'"
    elif bad == "size_mismatch":
        kwargs = {"h": 20, "w": 30}
        pattern = "size mismatch"
    elif bad == "missing_image":
        pattern = "missing frame"
    elif bad == "two_points":
        shapes = [_poly("person", [[1, 1], [5, 5]], gid=1)]
        pattern = "shape 0 .* malformed"
    elif bad == "group_conflict":
        shapes = [_poly("person", sq, gid=1), _poly("car", sq, gid=1)]
        pattern = "group_id 1 with class 'car'"
    else:
        pattern = "not valid JSON"
    _write_labelme(folder, "f1", [_poly("person", sq, gid=1)])
    _write_labelme(folder, "f2", shapes, image=bad != "missing_image", **kwargs)
    if bad == "size_mismatch":
        cv2.imwrite(str(folder / "f2.jpg"), np.zeros((21, 30, 3), np.uint8))
    if bad == "corrupt_json":
        (folder / "f2.json").write_text('{"shapes": [')
    existing = tmp_path / "p.vpsproj"
    Project.create(existing)
    with pytest.raises(InputError, match=pattern):
        import_labelme(folder, existing)
    assert Project.open(existing).video_ids == [] and not list((existing / "videos").iterdir())
    with pytest.raises(InputError, match=pattern):
        import_labelme(folder, tmp_path / "new.vpsproj")
    assert not (tmp_path / "new.vpsproj").exists()


def test_export_errors_leave_nothing_and_cli(demo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export_labelme(demo, out)
    assert [p.name for p in out.iterdir()] == ["x"]
    assert cli_main(["export", str(demo), "--format", "labelme", "--out", str(out), "--overwrite",
                     "--shapes", "mask"]) == 2  # not a previous export: --overwrite refuses
    (out / "x").unlink()
    assert cli_main(["export", str(demo), "--format", "labelme", "--out", str(out), "--shapes", "mask"]) == 0
    shapes = json.loads((out / "demo_mixed" / "00000.json").read_text())["shapes"]
    assert {s["shape_type"] for s in shapes} == {"mask"}
    assert cli_main(["import-dataset", str(out), "--format", "labelme", "--project", str(tmp_path / "b.vpsproj")]) == 0
    assert Project.open(tmp_path / "b.vpsproj").video_ids == ["demo_mixed"]
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []
