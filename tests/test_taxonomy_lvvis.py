"""LV-VIS vocabulary: a taxonomy from an annotation file's categories (ids kept, things only), round trip."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from annotator.errors import InputError
from annotator.formats.ytvis import export_ytvis, import_ytvis
from annotator.project import FrameState, Project
from annotator.taxonomy import taxonomy_from_annotations

N_CLASSES = 1196


def _rle(mask):
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def _lvvis(root):
    """An LV-VIS-style JSON: 1,196 categories with ids 1..1196, one video of 3 frames, two instances."""
    cats = [{"id": i, "name": f"class_{i:04d}_{'ab'[i % 2]}", "synset": f"s{i}.n.01", "frequency": "c"}
            for i in range(1, N_CLASSES + 1)]
    h, w = 24, 40
    names = [f"v1/{k:05d}.jpg" for k in range(3)]
    (root / "JPEGImages" / "v1").mkdir(parents=True)
    for n in names:
        cv2.imwrite(str(root / "JPEGImages" / n), np.full((h, w, 3), 90, np.uint8))
    a = np.zeros((h, w), bool)
    a[2:10, 3:12] = True
    b = np.zeros((h, w), bool)
    b[12:20, 20:35] = True
    anns = [{"id": 1, "video_id": 1, "category_id": 1196, "iscrowd": 0, "segmentations": [_rle(a)] * 3},
            {"id": 2, "video_id": 1, "category_id": 7, "iscrowd": 0, "segmentations": [_rle(b), None, _rle(b)]}]
    doc = {"videos": [{"id": 1, "file_names": names, "height": h, "width": w, "length": 3}],
           "annotations": anns, "categories": cats}
    (root / "train_instances.json").write_text(json.dumps(doc))
    return root / "train_instances.json", doc


def test_taxonomy_keeps_ids_and_is_stuff_free(tmp_path):
    path, doc = _lvvis(tmp_path)
    tax = taxonomy_from_annotations(path)
    assert len(tax) == N_CLASSES and tax.ids == list(range(1, N_CLASSES + 1))
    assert not tax.stuff_ids and tax.get(1196).name == "class_1196_a"
    assert tax.by_name("CLASS_0007_b").id == 7
    doc["categories"][5]["name"] = doc["categories"][4]["name"]
    with pytest.raises(InputError, match="must be unique"):
        taxonomy_from_annotations(doc)
    with pytest.raises(InputError, match="no 'categories'"):
        taxonomy_from_annotations({"videos": []})


def test_lvvis_round_trip_same_ids(tmp_path):
    path, doc = _lvvis(tmp_path / "in")
    proj = Project.create(tmp_path / "p.vpsproj", taxonomy=taxonomy_from_annotations(path))
    import_ytvis(path, proj.path)
    proj = Project.open(proj.path)
    assert proj.taxonomy.ids == list(range(1, N_CLASSES + 1))  # stored and reloaded with the file's ids
    with proj.open_video("v1") as video:  # annotate: a new instance of class 555 on frame 1
        t = video.new_track(555)
        label = video.read_label(1)
        label[20:23, 1:6] = t.id
        video.write_label(1, label, state=FrameState.REVIEWED)
        video.save()
    export_ytvis(proj, tmp_path / "out")
    out = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [(c["id"], c["name"]) for c in out["categories"]] == [(c["id"], c["name"]) for c in doc["categories"]]
    assert sorted(a["category_id"] for a in out["annotations"]) == [7, 555, 1196]
    by_cat = {a["category_id"]: a for a in out["annotations"]}
    assert by_cat[7]["segmentations"][1] is None and by_cat[555]["areas"] == [None, 15, None]
    assert by_cat[1196]["areas"] == [72, 72, 72]


def test_new_taxonomy_options(tmp_path):
    from argparse import Namespace

    from annotator.commands.protocols import new_taxonomy

    path, _ = _lvvis(tmp_path)
    assert len(new_taxonomy(Namespace(taxonomy=None, taxonomy_from=str(path)))) == N_CLASSES
    assert new_taxonomy(Namespace(taxonomy="cityscapes-vps", taxonomy_from=None)).name == "cityscapes_vps"
    assert new_taxonomy(Namespace(taxonomy=None, taxonomy_from=None)) is None
    with pytest.raises(InputError, match="not both"):
        new_taxonomy(Namespace(taxonomy="vipseg", taxonomy_from=str(path)))
