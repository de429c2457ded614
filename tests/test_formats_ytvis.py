"""YouTube-VIS / LV-VIS JSON: spec fields, round trip of thing tracks, LV-VIS-style import, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from annotator.cli import main as cli_main
from annotator.errors import InputError
from annotator.formats.ytvis import encode_rle, export_ytvis, import_ytvis
from annotator.project import FrameState, Project
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import CAR, PERSON, SKY, write_demo_project

TAX = vipseg_taxonomy()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_demo_project(tmp_path_factory.mktemp("yt") / "demo.vpsproj", scenarios=("mixed", "enter_leave"),
                              num_frames=50, source=None)


def _project(path: Path, labels: list[np.ndarray], tracks: dict[int, int], vid: str = "v") -> Path:
    proj = Project.create(path)
    h, w = labels[0].shape
    video = proj.create_video(vid, [f"f{i:03d}" for i in range(len(labels))], h, w)
    for tid, cid in sorted(tracks.items()):
        video.add_track(tid, cid)
    for i, lab in enumerate(labels):
        video.write_frame_image(i, np.full((h, w, 3), 40 * i, np.uint8))
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.close()
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools under numpy 2
def test_export_fields_follow_youtube_vis_2019(tmp_path):
    a = np.zeros((24, 32), np.uint16)
    a[:, :] = 1                      # sky (stuff: not exported)
    a[2:8, 3:9] = 2                  # person
    b = a.copy()
    b[2:8, 3:9] = 1
    b[10:20, 10:30] = 3              # car only on frame 1
    proj = _project(tmp_path / "p.vpsproj", [a, b], {1: SKY, 2: PERSON, 3: CAR})
    export_ytvis(proj, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {"videos", "annotations", "categories"} <= set(doc)
    assert doc["videos"] == [{"id": 1, "file_names": ["v/f000.jpg", "v/f001.jpg"], "width": 32, "height": 24,
                              "length": 2}]
    for fn in doc["videos"][0]["file_names"]:
        assert cv2.imread(str(tmp_path / "out" / "JPEGImages" / fn)).shape == (24, 32, 3)
    assert [c["id"] for c in doc["categories"]] == TAX.thing_ids
    assert all(set(c) == {"id", "name", "supercategory"} for c in doc["categories"])
    person, car = doc["annotations"]
    assert (person["id"], person["video_id"], person["category_id"], person["iscrowd"]) == (1, 1, PERSON, 0)
    assert (car["id"], car["category_id"]) == (2, CAR)
    assert person["segmentations"][1] is None and person["areas"][1] is None and person["bboxes"][1] is None
    assert car["segmentations"][0] is None
    m = mask_utils.decode([{"size": person["segmentations"][0]["size"],
                            "counts": person["segmentations"][0]["counts"].encode()}])[:, :, 0]
    np.testing.assert_array_equal(m.astype(bool), a == 2)
    assert person["areas"][0] == 36 and person["bboxes"][0] == [3.0, 2.0, 6.0, 6.0]
    assert car["areas"][1] == 200 and car["bboxes"][1] == [10.0, 10.0, 20.0, 10.0]
    assert isinstance(person["segmentations"][0]["counts"], str)


def test_round_trip_keeps_thing_masks_and_classes(demo, tmp_path):
    export_ytvis(demo, tmp_path / "yt")
    summary = import_ytvis(tmp_path / "yt", tmp_path / "back.vpsproj")
    assert summary.frames == 20
    pa, pb = Project.open(demo), Project.open(tmp_path / "back.vpsproj")
    assert pb.video_ids == pa.video_ids
    for vid in pa.video_ids:
        with pa.open_video(vid, readonly=True) as va, pb.open_video(vid, readonly=True) as vb:
            things = [t for t in sorted(va.tracks) if TAX.get(va.tracks[t].category_id).isthing
                      and va.track_frames(t)]
            # tracks come back numbered 1..n in the original id order, classes kept
            assert sorted(vb.tracks) == list(range(1, len(things) + 1))
            lut = np.zeros(max(va.tracks) + 1, np.uint16)
            for new, old in enumerate(things, start=1):
                lut[old] = new
                assert vb.tracks[new].category_id == va.tracks[old].category_id
            for i in range(va.num_frames):
                np.testing.assert_array_equal(vb.read_label(i), lut[va.read_label(i)])
                assert vb.frame_state(i) == FrameState.REVIEWED


def test_export_is_deterministic_and_splits(demo, tmp_path):
    export_ytvis(demo, tmp_path / "a", splits={"train": ["demo_mixed"], "val": ["demo_enter_leave"]})
    export_ytvis(demo, tmp_path / "b", splits={"train": ["demo_mixed"], "val": ["demo_enter_leave"]})
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    train = json.loads((tmp_path / "a" / "annotations_train.json").read_text())
    assert [v["file_names"][0].split("/")[0] for v in train["videos"]] == ["demo_mixed"]
    assert {a["video_id"] for a in train["annotations"]} == {train["videos"][0]["id"]}


def _lvvis(tmp_path: Path, h: int = 20, w: int = 30) -> Path:
    """An LV-VIS-like dataset: own 1-based categories, polygon + RLE segmentations, overlapping instances."""
    root = tmp_path / "lvvis"
    (root / "JPEGImages" / "00042").mkdir(parents=True)
    for s in ("00000", "00005"):
        cv2.imwrite(str(root / "JPEGImages" / "00042" / f"{s}.jpg"), np.full((h, w, 3), 128, np.uint8))
    m = np.zeros((h, w), bool)
    m[5:15, 5:15] = True
    doc = {"videos": [{"id": 7, "file_names": ["00042/00000.jpg", "00042/00005.jpg"], "width": w, "height": h,
                       "length": 2}],
           "annotations": [
               {"id": 1, "video_id": 7, "category_id": 1, "iscrowd": 0,
                "segmentations": [encode_rle(m), None], "areas": [100, None], "bboxes": [[5, 5, 10, 10], None]},
               {"id": 2, "video_id": 7, "category_id": 2, "iscrowd": 0,
                "segmentations": [[[10.0, 10.0, 20.0, 10.0, 20.0, 18.0, 10.0, 18.0]], [[0, 0, 4, 0, 4, 4, 0, 4]]],
                "areas": [80, 16], "bboxes": [[10, 10, 10, 8], [0, 0, 4, 4]]}],
           "categories": [{"id": 1, "name": "aerosol_can", "supercategory": "object"},
                          {"id": 2, "name": "air_conditioner", "supercategory": "object"}]}
    (root / "train_instances.json").write_text(json.dumps(doc))
    return root


def test_import_lvvis_style_dataset_into_new_project(tmp_path):
    root = _lvvis(tmp_path)
    summary = import_ytvis(root / "train_instances.json", tmp_path / "p.vpsproj")
    assert any("claimed by two instances" in w for w in summary.warnings)
    proj = Project.open(tmp_path / "p.vpsproj")
    assert proj.taxonomy.by_name("aerosol_can").id == 1 and proj.taxonomy.get(2).isthing
    with proj.open_video("00042", readonly=True) as v:
        assert v.frame_names == ["00000", "00005"]
        assert {t: tr.category_id for t, tr in v.tracks.items()} == {1: 1, 2: 2}
        lab0 = v.read_label(0)
        assert (lab0[5:10, 5:10] == 1).all() and (lab0[12:15, 12:15] == 2).all()  # later annotation wins
        assert (v.read_label(1)[:4, :4] == 2).all() and (v.read_label(1) == 1).sum() == 0
        assert v.frame_state(1) == FrameState.REVIEWED


def test_import_bad_inputs_are_clear_and_leave_nothing(tmp_path):
    root = _lvvis(tmp_path)
    jp = root / "train_instances.json"
    existing = tmp_path / "vip.vpsproj"
    Project.create(existing)  # VIPSeg taxonomy: no aerosol_can
    with pytest.raises(InputError, match="aerosol_can.*unknown class"):
        import_ytvis(jp, existing)
    assert Project.open(existing).video_ids == [] and not list((existing / "videos").iterdir())
    doc = json.loads(jp.read_text())
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["category_id"] = 99
    jp.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="category 99.*unknown class"):
        import_ytvis(jp, tmp_path / "a.vpsproj")
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["segmentations"][0]["size"] = [10, 10]
    jp.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="mask is 10x10 but the video is 30x20"):
        import_ytvis(jp, tmp_path / "a.vpsproj")
    bad = json.loads(json.dumps(doc))
    bad["videos"][0]["width"] = 31
    jp.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="is 30x20 but .* says .* 31x20"):
        import_ytvis(jp, tmp_path / "a.vpsproj")
    jp.write_text(json.dumps(doc))
    (root / "JPEGImages" / "00042" / "00005.jpg").unlink()
    with pytest.raises(InputError, match="00005.jpg is missing"):
        import_ytvis(jp, tmp_path / "a.vpsproj")
    jp.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        import_ytvis(jp, tmp_path / "a.vpsproj")
    assert not (tmp_path / "a.vpsproj").exists()


def test_export_refuses_non_empty_output_and_cli(demo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export_ytvis(demo, out)
    rc = cli_main(["export", str(demo), "--format", "ytvis", "--out", str(out), "--overwrite",
                   "--videos", "demo_mixed"])
    assert rc == 2 and (out / "x").exists()  # --overwrite never replaces a folder of other files
    (out / "x").unlink()
    assert cli_main(["export", str(demo), "--format", "ytvis", "--out", str(out), "--videos", "demo_mixed"]) == 0
    (out / "x").write_text("x")
    rc = cli_main(["export", str(demo), "--format", "ytvis", "--out", str(out), "--overwrite",
                   "--videos", "demo_mixed"])
    assert rc == 0 and not (out / "x").exists()  # a previous export (marker file) is replaced
    rc = cli_main(["import-dataset", str(out), "--format", "ytvis", "--project", str(tmp_path / "b.vpsproj")])
    assert rc == 0 and Project.open(tmp_path / "b.vpsproj").video_ids == ["demo_mixed"]



def test_test_split_without_annotations_stays_unlabelled(tmp_path):
    root = _lvvis(tmp_path)
    doc = json.loads((root / "train_instances.json").read_text())
    doc["annotations"] = None
    (root / "train_instances.json").write_text(json.dumps(doc))
    import_ytvis(root, tmp_path / "p.vpsproj")
    with Project.open(tmp_path / "p.vpsproj").open_video("00042", readonly=True) as v:
        assert v.num_frames == 2 and v.frame_state(0) == FrameState.UNLABELLED and not v.tracks
