"""Cityscapes-VPS export / import: a demo-like project labelled with Cityscapes classes round-trips."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from annotator.errors import InputError
from annotator.formats.cityscapes_vps import export_cityscapes_vps, import_cityscapes_vps
from annotator.formats.vipseg import rgb_image_to_id
from annotator.project import FrameState, Project
from annotator.taxonomy import cityscapes_vps_taxonomy
from resources.demo import BUS, CAR, DOG, GRASS, PERSON, ROAD, SKY, WALL, generate_demo_video

#: demo (VIPSeg) classes -> Cityscapes-VPS train ids (the dog plays a rider)
TO_CITY = {SKY: 10, WALL: 3, GRASS: 9, ROAD: 0, PERSON: 11, CAR: 13, DOG: 12, BUS: 15}


def _city_project(path, videos=("clipA", "clipB"), frames=6):
    proj = Project.create(path, taxonomy=cityscapes_vps_taxonomy())
    for n, vid in enumerate(videos):
        demo = generate_demo_video(seed=n, num_frames=frames * 5, height=72, width=128)
        idx = list(range(0, frames * 5, 5))
        video = proj.create_video(vid, [f"frankfurt_{n:06d}_{i:06d}" for i in idx], 72, 128)
        for tid, cat in sorted(demo.tracks.items()):
            video.add_track(tid, TO_CITY[cat], "crowd" if (n == 1 and cat == PERSON) else "")
        for j, i in enumerate(idx):
            video.write_frame_image(j, demo.frames[i])
            video.write_label(j, demo.labels[i], state=FrameState.REVIEWED)
        video.save()
        video.close()
    return proj


def test_export_layout_is_what_vpsnet_reads_and_reimports_exactly(tmp_path):
    proj = _city_project(tmp_path / "p.vpsproj")
    out = tmp_path / "cityscapes_vps"
    summary = export_cityscapes_vps(proj, out, split="val")
    assert summary.frames == 12 and not summary.warnings
    doc = json.loads((out / "panoptic_gt_val_city_vps.json").read_text())
    assert [c["id"] for c in doc["categories"]] == list(range(19))
    assert sum(c["isthing"] for c in doc["categories"]) == 8
    ids = [im["id"] for im in doc["images"]]
    assert ids == sorted(ids) and ids[0] == "0000_0000_frankfurt_000000_000000"
    # eval_vpq.py: GT PNG = file_name with _newImg8bit.png -> _final_mask.png; video = image_id[:4]
    for im, ann in zip(doc["images"], doc["annotations"], strict=True):
        assert ann["image_id"] == im["id"]
        mask = out / "val" / "panoptic_video" / im["file_name"].replace("_newImg8bit.png", "_final_mask.png")
        assert (out / "val" / "img" / im["file_name"]).exists()
        pan = rgb_image_to_id(cv2.imread(str(mask))[..., ::-1])
        listed = {s["id"]: s for s in ann["segments_info"]}
        present, counts = np.unique(pan, return_counts=True)
        assert set(present.tolist()) - {0} == set(listed)
        for sid, cnt in zip(present.tolist(), counts.tolist(), strict=True):
            if sid:
                assert listed[sid]["area"] == cnt
    crowd = [s for a in doc["annotations"] if a["image_id"].startswith("0001") for s in a["segments_info"]
             if s["category_id"] == 11]
    assert crowd and all(s["iscrowd"] == 1 for s in crowd)
    # the same thing keeps its segment id across the frames of a video
    first = {s["id"] for s in doc["annotations"][0]["segments_info"]}
    assert first & {s["id"] for s in doc["annotations"][5]["segments_info"]}
    back = tmp_path / "back.vpsproj"
    import_cityscapes_vps(out, back)
    proj2 = Project.open(back)
    assert sorted(proj2.video_ids) == ["clipA", "clipB"]
    for vid in ("clipA", "clipB"):
        a, b = proj.open_video(vid, readonly=True), proj2.open_video(vid, readonly=True)
        assert a.frame_names == b.frame_names
        assert {t: (x.category_id, x.note) for t, x in a.tracks.items()} == \
               {t: (x.category_id, x.note) for t, x in b.tracks.items()}
        for i in range(a.num_frames):
            assert np.array_equal(a.read_label(i), b.read_label(i))
        a.close()
        b.close()


def test_import_without_sidecar_and_bad_input(tmp_path):
    proj = _city_project(tmp_path / "p.vpsproj", videos=("clipA",))
    out = tmp_path / "cvps"
    export_cityscapes_vps(proj, out)
    (out / "vps_annotator.json").unlink()
    import_cityscapes_vps(out, tmp_path / "b.vpsproj")
    p2 = Project.open(tmp_path / "b.vpsproj")
    v = p2.open_video("0000", readonly=True)
    a = proj.open_video("clipA", readonly=True)
    for i in range(6):  # same partition and classes, ids numbered by first sight
        la, lb = a.read_label(i), v.read_label(i)
        pairs = np.unique(la.astype(np.int64) * 65536 + lb)
        assert len(pairs) == len(np.unique(la)) == len(np.unique(lb))
    v.close()
    a.close()
    doc = json.loads((out / "panoptic_gt_val_city_vps.json").read_text())
    doc["annotations"][0]["segments_info"][0]["category_id"] = 42
    (out / "panoptic_gt_val_city_vps.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unknown category 42|categories \\[42\\]"):
        import_cityscapes_vps(out, tmp_path / "c.vpsproj")
    assert not (tmp_path / "c.vpsproj").exists()


def test_score_an_export_against_a_vpsnet_style_submission(tmp_path):
    import shutil

    from annotator.metrics.cityscapes_vps import open_pairs, score_pair_source

    proj = _city_project(tmp_path / "p.vpsproj", videos=("clipA",))
    gt = tmp_path / "cvps"
    export_cityscapes_vps(proj, gt)
    doc = json.loads((gt / "panoptic_gt_val_city_vps.json").read_text())
    sub = tmp_path / "submit"
    (sub / "pan_pred").mkdir(parents=True)
    for ann in doc["annotations"]:  # a perfect submission, listed in reverse order
        shutil.copy(gt / "val" / "panoptic_video" / ann["file_name"], sub / "pan_pred" / f"{ann['image_id']}.png")
    preds = [{"image_id": a["image_id"], "segments_info": [{"id": s["id"], "category_id": s["category_id"]}
                                                          for s in a["segments_info"]]} for a in doc["annotations"]]
    (sub / "pred.json").write_text(json.dumps({"annotations": preds[::-1]}))
    res = score_pair_source(open_pairs(gt, sub))
    assert list(res.per_k) == [0, 5, 10, 15] and res.videos == ["0000"]
    assert res.vpq == {"all": pytest.approx(100.0), "things": pytest.approx(100.0), "stuff": pytest.approx(100.0)}
    assert any("by position" in n for n in res.notes)


def test_import_into_a_project_with_other_classes_is_refused(tmp_path):
    proj = _city_project(tmp_path / "p.vpsproj", videos=("clipA",))
    export_cityscapes_vps(proj, tmp_path / "cvps")
    Project.create(tmp_path / "vip.vpsproj")  # VIPSeg classes: id 0 is 'wall', not 'road'
    with pytest.raises(InputError, match="mean other classes"):
        import_cityscapes_vps(tmp_path / "cvps", tmp_path / "vip.vpsproj")


def test_cli_glue_export_import_score(tmp_path, capsys):
    from argparse import Namespace

    from annotator.commands.protocols import run_export_format, run_import_format, run_score_protocol

    _city_project(tmp_path / "p.vpsproj", videos=("clipA",))
    common = {"videos": None, "overwrite": False, "layer": "labels", "split": None}
    assert run_export_format(Namespace(format="vipseg", project="x", out="y", **common)) is None
    with pytest.raises(InputError, match="import format"):
        run_export_format(Namespace(format="vspw", project="x", out="y", **common))
    s = run_export_format(Namespace(format="cityscapes-vps", project=str(tmp_path / "p.vpsproj"),
                                    out=str(tmp_path / "cv"), split_name="test", **common))
    assert s.frames == 6 and (tmp_path / "cv" / "panoptic_gt_test_city_vps.json").exists()
    s = run_import_format(Namespace(format="cityscapes-vps", dataset=str(tmp_path / "cv"), videos=None,
                                    project=str(tmp_path / "b.vpsproj"), split_name=None))
    assert s.videos == ["clipA"]
    args = Namespace(protocol="cityscapes-vps", gt=str(tmp_path / "p.vpsproj"), pred=str(tmp_path / "b.vpsproj"),
                     videos=None, split=None, gt_layer=None, pred_layer=None, grouping="video", out=None)
    assert run_score_protocol(args) == 0
    assert "vpq_all:100.0000" in capsys.readouterr().out
    assert run_score_protocol(Namespace(protocol="vipseg")) is None


def test_through_the_command_line(tmp_path, capsys):
    """The subcommands reach the protocol modules: export, import-dataset, score and new."""
    from annotator.cli import main as cli_main

    _city_project(tmp_path / "p.vpsproj", videos=("clipA",))
    assert cli_main(["export", str(tmp_path / "p.vpsproj"), "--format", "cityscapes-vps",
                     "--out", str(tmp_path / "cv"), "--split-name", "val"]) == 0
    assert (tmp_path / "cv" / "panoptic_gt_val_city_vps.json").exists()
    assert cli_main(["import-dataset", str(tmp_path / "cv"), "--format", "cityscapes-vps",
                     "--project", str(tmp_path / "b.vpsproj")]) == 0
    capsys.readouterr()
    assert cli_main(["score", "--protocol", "cityscapes-vps", "--gt", str(tmp_path / "p.vpsproj"),
                     "--pred", str(tmp_path / "b.vpsproj")]) == 0
    assert "100.0" in capsys.readouterr().out
    assert cli_main(["new", str(tmp_path / "c.vpsproj"), "--taxonomy", "cityscapes-vps"]) == 0
    assert len(Project.open(tmp_path / "c.vpsproj").taxonomy) == 19
