"""VIPSeg export/import: spec check field by field, round trips, determinism and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator.cli import main as cli_main
from annotator.errors import InputError, ProjectError
from annotator.formats.common import assign_splits
from annotator.formats.vipseg import (
    MAX_INSTANCES,
    decode_raw_value,
    encode_raw,
    encode_video,
    export_vipseg,
    import_vipseg,
    resize_label,
    rgb_id,
)
from annotator.jobs import Cancelled, CancelToken
from annotator.project import FrameState, Project
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import PERSON, write_demo_project

TAX = vipseg_taxonomy()
STUFF_COLOUR_IDS = {rgb_id(c.color) for c in TAX if not c.isthing}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Two demo videos, 10 dense labelled frames each, 320x180 (read-only for the tests)."""
    return write_demo_project(tmp_path_factory.mktemp("vip") / "demo.vpsproj", scenarios=("mixed", "crossing"),
                              num_frames=50, source=None)


@pytest.fixture(scope="module")
def export720(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exp") / "VIPSeg_720P"
    export_vipseg(demo, out, split_ratios=(0.5, 0.5, 0.0), seed=1)
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def _expected_raw(video) -> dict[int, int]:
    """Raw value of every track by the spec: stuff cid+1, things (cid+1)*100 + n-th instance by id."""
    out, seen = {}, {}
    for tid, t in sorted(video.tracks.items()):
        if TAX.get(t.category_id).isthing:
            out[tid] = (t.category_id + 1) * 100 + seen.setdefault(t.category_id, 0)
            seen[t.category_id] += 1
        else:
            out[tid] = t.category_id + 1
    return out


# ------------------------------------------------------------------------------------------ encoding
def test_raw_encoding_and_decoding():
    assert encode_raw(0, False) == 1 and encode_raw(123, False) == 124
    assert encode_raw(60, True, 0) == 6100 and encode_raw(60, True, 99) == 6199
    with pytest.raises(InputError):
        encode_raw(60, True, 100)
    with pytest.raises(InputError):
        encode_raw(124, False)
    assert decode_raw_value(29, TAX) == (28, -1)           # sky
    assert decode_raw_value(6103, TAX) == (60, 3)          # person instance 3
    assert "not a thing" in decode_raw_value(2900, TAX)    # sky is stuff: official converter mislabels
    assert ">= 12500" in decode_raw_value(12500, TAX)
    assert "thing" in decode_raw_value(61, TAX)            # person encoded as stuff


def test_segment_ids_are_deterministic_unique_and_never_stuff_colours():
    tracks = {1: 28, 2: 0, **{10 + k: PERSON for k in range(100)}, 200: 48}
    a = encode_video("v", tracks, TAX)
    b = encode_video("v", dict(reversed(list(tracks.items()))), TAX)
    assert a.raw == b.raw and a.segment_id == b.segment_id
    assert a.segment_id[29] == rgb_id(TAX.get(28).color) and a.segment_id[1] == rgb_id(TAX.get(0).color)
    things = [sid for v, sid in a.segment_id.items() if v >= 125]
    assert len(set(things)) == len(things) == 101
    assert not set(things) & STUFF_COLOUR_IDS and 0 not in things
    assert sorted(a.raw[10 + k] for k in range(100)) == list(range(6100, 6200))


def test_more_than_100_instances_is_a_clear_error():
    with pytest.raises(InputError, match=r"video 'v'.*'person'.*101 instances"):
        encode_video("v", {k: PERSON for k in range(1, MAX_INSTANCES + 2)}, TAX)


def test_seeded_and_listed_splits():
    ids = [f"v{i}" for i in range(10)]
    a = assign_splits(ids, ratios=(0.8, 0.1, 0.1), seed=3)
    assert a == assign_splits(list(reversed(ids)), ratios=(0.8, 0.1, 0.1), seed=3)
    assert [len(a[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(sum(a.values(), [])) == sorted(ids)
    b = assign_splits(["a", "b"], {"train": ["a"], "test": ["b"]})
    assert b == {"train": ["a"], "val": [], "test": ["b"]}
    with pytest.raises(InputError, match="in no split"):
        assign_splits(["a", "b"], {"train": ["a"]})
    with pytest.raises(InputError, match="both split"):
        assign_splits(["a"], {"train": ["a"], "val": ["a"]})


# ------------------------------------------------------------------------------------------ spec check
def test_demo_export_matches_the_spec_field_by_field(demo, export720):
    root = export720
    proj = Project.open(demo)
    names = {p.name for p in root.iterdir()}
    assert {"images", "panomasks", "panomasksRGB", "panoptic_gt_VIPSeg.json", "panoptic_gt_VIPSeg_train.json",
            "panoptic_gt_VIPSeg_val.json", "panoptic_gt_VIPSeg_test.json", "panoVIPSeg_categories.json",
            "train.txt", "val.txt", "test.txt"} <= names
    assert json.loads((root / "panoVIPSeg_categories.json").read_text()) == [
        {"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)} for c in TAX]
    gt = json.loads((root / "panoptic_gt_VIPSeg.json").read_text())
    assert set(gt) == {"videos", "annotations", "categories"} and len(gt["categories"]) == 124
    assert [v["video_id"] for v in gt["videos"]] == sorted(proj.video_ids)
    for ventry, aentry in zip(gt["videos"], gt["annotations"], strict=True):
        vid = ventry["video_id"]
        assert aentry["video_id"] == vid and isinstance(vid, str)
        video = proj.open_video(vid, readonly=True)
        expected_raw = _expected_raw(video)
        assert [im["id"] for im in ventry["images"]] == video.frame_names
        thing_ids: dict[int, int] = {}
        for i, (im, ann) in enumerate(zip(ventry["images"], aentry["annotations"], strict=True)):
            stem = video.frame_names[i]
            assert im == {"id": stem, "width": 1280, "height": 720, "file_name": f"{stem}.png"}
            assert ann["image_id"] == stem and ann["file_name"] == f"{stem}.png"
            assert "." not in stem
            jpg = cv2.imread(str(root / "images" / vid / f"{stem}.jpg"))
            assert jpg.shape == (720, 1280, 3)  # height 720, width int(720 * 320 / 180)
            raw = cv2.imread(str(root / "panomasks" / vid / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            assert raw.dtype == np.uint16 and raw.shape == (720, 1280)
            label = resize_label(video.read_label(i), 720, 1280)
            lut = np.zeros(max(expected_raw) + 1, np.uint16)
            for tid, v in expected_raw.items():
                lut[tid] = v
            np.testing.assert_array_equal(raw, lut[label])
            bgr = cv2.imread(str(root / "panomasksRGB" / vid / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            assert bgr.dtype == np.uint8 and bgr.shape == (720, 1280, 3)
            b64 = bgr.astype(np.int64)
            ids = b64[..., 2] + 256 * b64[..., 1] + 65536 * b64[..., 0]
            assert ((ids == 0) == (raw == 0)).all()
            segs = ann["segments_info"]
            assert [set(s) for s in segs] == [{"id", "category_id", "iscrowd", "area"}] * len(segs)
            seg_raw = []
            for s in segs:
                region = ids == s["id"]
                values = np.unique(raw[region])
                assert len(values) == 1, "one segment id <-> one raw value"
                v = int(values[0])
                seg_raw.append(v)
                assert s["area"] == int(region.sum()) == int((raw == v).sum())  # exact pixel count
                assert s["iscrowd"] == 0
                cid = v - 1 if v < 125 else v // 100 - 1
                assert s["category_id"] == cid
                if v < 125:
                    assert s["id"] == rgb_id(TAX.get(cid).color)
                else:
                    assert s["id"] not in STUFF_COLOUR_IDS
                    assert thing_ids.setdefault(v, s["id"]) == s["id"], "thing colour constant across frames"
            assert seg_raw == sorted(seg_raw), "stuff first, then things, by raw value"
            assert set(seg_raw) == set(np.unique(raw).tolist()) - {0}
        assert len(set(thing_ids.values())) == len(thing_ids)
        video.close()
    split_ids = []
    for s in ("train", "val", "test"):
        text = (root / f"{s}.txt").read_text()
        lines = text.splitlines()
        assert text == "".join(f"{ln}\n" for ln in lines)  # every line ends with a newline
        split_ids += lines
        sj = json.loads((root / f"panoptic_gt_VIPSeg_{s}.json").read_text())
        assert [v["video_id"] for v in sj["videos"]] == lines == [a["video_id"] for a in sj["annotations"]]
    assert sorted(split_ids) == sorted(proj.video_ids)
    assert _leftovers(root.parent) == []


def test_two_exports_are_byte_identical(demo, export720, tmp_path):
    again = tmp_path / "again"
    export_vipseg(demo, again, split_ratios=(0.5, 0.5, 0.0), seed=1, workers=3)
    assert _tree(again) == _tree(export720)


# ------------------------------------------------------------------------------------------ round trips
def _assert_same_project(a: Path, b: Path, resize: tuple[int, int] | None = None) -> None:
    pa, pb = Project.open(a), Project.open(b)
    assert pa.video_ids == pb.video_ids
    for vid in pa.video_ids:
        with pa.open_video(vid, readonly=True) as va, pb.open_video(vid, readonly=True) as vb:
            assert va.tracks == vb.tracks and va.frame_names == vb.frame_names
            for i in range(va.num_frames):
                expected = va.read_label(i) if resize is None else resize_label(va.read_label(i), *resize)
                np.testing.assert_array_equal(vb.read_label(i), expected)
                assert vb.frame_state(i) == FrameState.REVIEWED


def test_round_trip_no_resize_is_exact(demo, tmp_path):
    export_vipseg(demo, tmp_path / "ds", resize_height=None)
    summary = import_vipseg(tmp_path / "ds", tmp_path / "back.vpsproj")
    assert summary.frames == 20 and not summary.problems
    _assert_same_project(demo, tmp_path / "back.vpsproj")


def test_round_trip_720p_equals_the_resized_labels(demo, export720, tmp_path):
    import_vipseg(export720, tmp_path / "back.vpsproj", videos=["demo_mixed"])
    pb = Project.open(tmp_path / "back.vpsproj")
    assert pb.video_ids == ["demo_mixed"]
    with Project.open(demo).open_video("demo_mixed", readonly=True) as va, pb.open_video("demo_mixed") as vb:
        assert vb.shape == (720, 1280) and va.tracks == vb.tracks
        for i in (0, 4, 9):
            np.testing.assert_array_equal(vb.read_label(i), resize_label(va.read_label(i), 720, 1280))


def test_import_from_rgb_masks_and_json_without_sidecar(demo, tmp_path):
    export_vipseg(demo, tmp_path / "ds", resize_height=None, videos=["demo_crossing"])
    shutil.rmtree(tmp_path / "ds" / "panomasks")
    (tmp_path / "ds" / "vps_annotator.json").unlink()
    import_vipseg(tmp_path / "ds", tmp_path / "back.vpsproj")
    with Project.open(demo).open_video("demo_crossing", readonly=True) as va, \
            Project.open(tmp_path / "back.vpsproj").open_video("demo_crossing", readonly=True) as vb:
        # without our sidecar, ids are assigned stuff first then things, by class: same partition and classes
        for i in range(va.num_frames):
            la, lb = va.read_label(i), vb.read_label(i)
            pairs = set(zip(la.ravel().tolist(), lb.ravel().tolist(), strict=True))
            assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
            for a, b in pairs:
                assert va.tracks[a].category_id == vb.tracks[b].category_id


def test_include_unlabelled_writes_images_only(demo, tmp_path):
    proj_path = tmp_path / "p.vpsproj"
    shutil.copytree(demo, proj_path)
    with Project.open(proj_path).open_video("demo_mixed") as v:
        v.set_frame_state(3, FrameState.UNLABELLED)
    export_vipseg(proj_path, tmp_path / "a", videos=["demo_mixed"], resize_height=None)
    assert not (tmp_path / "a" / "images" / "demo_mixed" / "00003.jpg").exists()
    export_vipseg(proj_path, tmp_path / "b", videos=["demo_mixed"], resize_height=None, include_unlabelled=True)
    assert (tmp_path / "b" / "images" / "demo_mixed" / "00003.jpg").exists()
    assert not (tmp_path / "b" / "panomasks" / "demo_mixed" / "00003.png").exists()
    gt = json.loads((tmp_path / "b" / "panoptic_gt_VIPSeg.json").read_text())
    assert "00003" in [im["id"] for im in gt["videos"][0]["images"]]
    assert "00003" not in [a["image_id"] for a in gt["annotations"][0]["annotations"]]
    # re-import: the images-only frame comes back unlabelled
    import_vipseg(tmp_path / "b", tmp_path / "back.vpsproj")
    with Project.open(tmp_path / "back.vpsproj").open_video("demo_mixed", readonly=True) as vb:
        assert vb.frame_state(3) == FrameState.UNLABELLED and vb.frame_state(2) == FrameState.REVIEWED


# ------------------------------------------------------------------------------------------ bad inputs: export
def _many_instances_project(path: Path, n: int) -> Path:
    proj = Project.create(path)
    video = proj.create_video("crowd", ["00000"], 16, 16)
    label = np.zeros((16, 16), np.uint16)
    for k in range(n):
        video.add_track(k + 1, PERSON)
        label.flat[k] = k + 1
    video.write_frame_image(0, np.zeros((16, 16, 3), np.uint8))
    video.write_label(0, label)
    video.close()
    return path


def test_export_of_more_than_100_instances_fails_and_writes_nothing(tmp_path):
    proj = _many_instances_project(tmp_path / "crowd.vpsproj", MAX_INSTANCES + 1)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"'crowd'.*'person'.*101 instances"):
        export_vipseg(proj, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_exactly_100_instances_export(tmp_path):
    proj = _many_instances_project(tmp_path / "crowd.vpsproj", MAX_INSTANCES)
    export_vipseg(proj, tmp_path / "out", resize_height=None)
    raw = cv2.imread(str(tmp_path / "out" / "panomasks" / "crowd" / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert raw.flat[0] == 6100 and raw.flat[99] == 6199


def test_non_empty_output_is_refused_unless_overwrite(demo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty.*--overwrite"):
        export_vipseg(demo, out, videos=["demo_crossing"], resize_height=None)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --overwrite replaces only a previous export (marker file) or an empty folder, never user files
    with pytest.raises(InputError, match="holds no export of this tool"):
        export_vipseg(demo, out, videos=["demo_crossing"], resize_height=None, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    export_vipseg(demo, out, videos=["demo_crossing"], resize_height=None)
    (out / "extra.txt").write_text("stale file of the previous export")
    export_vipseg(demo, out, videos=["demo_crossing"], resize_height=None, overwrite=True)
    assert not (out / "extra.txt").exists() and (out / "train.txt").exists()
    assert _leftovers(tmp_path) == []
    (tmp_path / "empty").mkdir()
    export_vipseg(demo, tmp_path / "empty", videos=["demo_crossing"], resize_height=None)  # empty is fine


def _copy(demo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy.vpsproj"
    shutil.copytree(demo, dst)
    return dst


@pytest.mark.parametrize("damage", ["missing_frame", "corrupt_label", "size_mismatch", "unknown_class"])
def test_bad_project_fails_cleanly(demo, tmp_path, damage):
    proj = _copy(demo, tmp_path)
    video_dir = proj / "videos" / "demo_mixed"
    if damage == "missing_frame":
        (video_dir / "frames" / "00004.jpg").unlink()
        pattern = "frame 4 .*frame image is missing.*00004.jpg"  # named by the integrity check
    elif damage == "corrupt_label":
        path = video_dir / "labels" / "00004.png"
        path.write_bytes(path.read_bytes()[:100])
        pattern = "00004.png.*not a readable PNG"
    elif damage == "size_mismatch":
        cv2.imwrite(str(video_dir / "labels" / "00004.png"), np.ones((90, 160), np.uint16))
        pattern = "160x90.*320x180"
    else:
        doc = json.loads((proj / "project.json").read_text())
        doc["taxonomy"]["categories"] = [c for c in doc["taxonomy"]["categories"] if c["id"] != PERSON]
        (proj / "project.json").write_text(json.dumps(doc))
        pattern = "unknown class id 60"
    out = tmp_path / "out"
    with pytest.raises((InputError, ProjectError), match=pattern):
        export_vipseg(proj, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cancel_leaves_no_output(demo, tmp_path):
    token = CancelToken()

    def progress(done, total, msg):
        if done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        export_vipseg(demo, tmp_path / "out", resize_height=None, progress=progress, cancel=token)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ bad inputs: import
@pytest.fixture()
def small_ds(demo, tmp_path) -> Path:
    out = tmp_path / "ds"
    export_vipseg(demo, out, resize_height=None, videos=["demo_crossing"])
    return out


def _raw_path(ds: Path, stem: str = "00002") -> Path:
    return ds / "panomasks" / "demo_crossing" / f"{stem}.png"


def test_import_reports_undecodable_values_with_file_and_pixel_count(small_ds, tmp_path):
    raw = cv2.imread(str(_raw_path(small_ds)), cv2.IMREAD_UNCHANGED)
    raw[:2, :5] = 2900     # sky (stuff) with an instance: the official converter mislabels this
    raw[10, :3] = 13000    # >= 12500
    cv2.imwrite(str(_raw_path(small_ds)), raw)
    target = tmp_path / "back.vpsproj"
    with pytest.raises(InputError) as err:
        import_vipseg(small_ds, target)
    msg = str(err.value)
    assert "00002.png: value 2900 on 10 pixels" in msg and "not a thing" in msg
    assert "value 13000 on 3 pixels" in msg
    assert not target.exists()
    summary = import_vipseg(small_ds, target, on_invalid="void")
    assert {(p.value, p.pixels) for p in summary.problems} == {(2900, 10), (13000, 3)}
    with Project.open(target).open_video("demo_crossing", readonly=True) as v:
        lab = v.read_label(2)
        assert (lab[:2, :5] == 0).all() and (lab[10, :3] == 0).all() and (lab[5:9] != 0).all()


def test_import_unknown_rgb_id_and_unknown_class(small_ds, tmp_path):
    shutil.rmtree(small_ds / "panomasks")
    rgb_path = small_ds / "panomasksRGB" / "demo_crossing" / "00001.png"
    bgr = cv2.imread(str(rgb_path))
    bgr[:3, :3] = (1, 2, 3)
    cv2.imwrite(str(rgb_path), bgr)
    with pytest.raises(InputError, match=r"00001.png: value \d+ on 9 pixels \(RGB id not in"):
        import_vipseg(small_ds, tmp_path / "a.vpsproj")
    gt_path = small_ds / "panoptic_gt_VIPSeg.json"
    gt = json.loads(gt_path.read_text())
    gt["annotations"][0]["annotations"][0]["segments_info"][0]["category_id"] = 500
    gt_path.write_text(json.dumps(gt))
    with pytest.raises(InputError, match="class 500 is not in the taxonomy"):
        import_vipseg(small_ds, tmp_path / "a.vpsproj", on_invalid="error")
    assert not (tmp_path / "a.vpsproj").exists()


@pytest.mark.parametrize("damage", ["size_mismatch", "corrupt_png", "missing_frame"])
def test_import_bad_dataset_leaves_existing_project_unchanged(small_ds, tmp_path, damage):
    existing = tmp_path / "existing.vpsproj"
    Project.create(existing)
    before = _tree(existing)
    if damage == "size_mismatch":
        cv2.imwrite(str(_raw_path(small_ds)), np.ones((90, 160), np.uint16))
        pattern = "160x90 but image .* 320x180"
    elif damage == "corrupt_png":
        _raw_path(small_ds).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        pattern = "00002.png is not a readable PNG"
    else:
        (small_ds / "images" / "demo_crossing" / "00005.jpg").unlink()
        pattern = "00005 have no frame image.*missing frames"
    with pytest.raises(InputError, match=pattern):
        import_vipseg(small_ds, existing)
    assert _tree(existing) == before and Project.open(existing).video_ids == []


def test_import_refuses_existing_video_ids(small_ds, tmp_path):
    target = tmp_path / "p.vpsproj"
    import_vipseg(small_ds, target)
    with pytest.raises(ProjectError, match="already has video"):
        import_vipseg(small_ds, target)


# ------------------------------------------------------------------------------------------ CLI
def test_cli_export_and_import_dataset(demo, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["export", str(demo), "--format", "vipseg", "--out", str(out), "--no-resize",
                   "--split", "train=demo_mixed", "--split", "val=demo_crossing"])
    assert rc == 0
    assert (out / "train.txt").read_text() == "demo_mixed\n" and (out / "val.txt").read_text() == "demo_crossing\n"
    assert (out / "test.txt").read_text() == ""
    assert cli_main(["export", str(demo), "--format", "vipseg", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    rc = cli_main(["import-dataset", str(out), "--format", "vipseg", "--project", str(tmp_path / "b.vpsproj"),
                   "--videos", "demo_mixed"])
    assert rc == 0 and Project.open(tmp_path / "b.vpsproj").video_ids == ["demo_mixed"]


def test_overwrite_never_replaces_the_project_itself(demo, tmp_path):
    with pytest.raises(InputError, match="would replace the project"):
        export_vipseg(demo, demo, overwrite=True)
    with pytest.raises(InputError, match="would replace the project"):
        export_vipseg(demo, demo.parent, overwrite=True)
    assert Project.open(demo).video_ids == ["demo_crossing", "demo_mixed"]


def test_split_crowded_video_into_parts(tmp_path):
    proj = Project.create(tmp_path / "c.vpsproj")
    video = proj.create_video("crowd", ["00000", "00001"], 16, 16)
    for k in range(1, 102):
        video.add_track(k, PERSON)
    first, second = np.zeros((16, 16), np.uint16), np.zeros((16, 16), np.uint16)
    first.flat[:60] = np.arange(1, 61)
    second.flat[:52] = np.arange(50, 102)
    for i, lab in enumerate((first, second)):
        video.write_frame_image(i, np.zeros((16, 16, 3), np.uint8))
        video.write_label(i, lab)
    video.close()
    with pytest.raises(InputError, match="101 instances"):
        export_vipseg(proj.path, tmp_path / "a")
    summary = export_vipseg(proj.path, tmp_path / "b", resize_height=None, split_crowded=True)
    assert sorted(summary.videos) == ["crowd_part0", "crowd_part1"]
    raw1 = cv2.imread(str(tmp_path / "b" / "panomasks" / "crowd_part1" / "00001.png"), cv2.IMREAD_UNCHANGED)
    assert raw1.flat[0] == 6100 and raw1.flat[51] == 6151  # numbering restarts in every part
    assert not (tmp_path / "b" / "panomasks" / "crowd_part0" / "00001.png").exists()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(1, 2000), st.sampled_from(TAX.ids), min_size=1, max_size=60))
def test_encoding_decodes_back_to_every_track_class(tracks):
    """Property: every track's raw value decodes to its class; things get unique values and colours."""
    enc = encode_video("v", tracks, TAX)
    for tid, cid in tracks.items():
        dec = decode_raw_value(enc.raw[tid], TAX)
        assert not isinstance(dec, str) and dec[0] == cid
        assert enc.category[enc.raw[tid]] == cid
    things = [enc.raw[t] for t, c in tracks.items() if TAX.get(c).isthing]
    assert len(set(things)) == len(things)
    assert len(set(enc.segment_id.values())) == len(enc.segment_id)
    assert 0 not in enc.segment_id.values()
