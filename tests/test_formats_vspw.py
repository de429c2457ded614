"""VSPW import: semantic class-index videos -> stuff tracks + thing instance proposals (association), flagged."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from annotator.errors import InputError
from annotator.formats.vspw import FLAG_KIND, components
from annotator.project import Project
from annotator.review.store import ReviewStore
from annotator.stages.import_dataset import import_vspw
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import generate_demo_video

TAX = vipseg_taxonomy()


def _vspw_folder(root, scenario="mixed", seed=0, name="vid0"):
    """A VSPW-style folder from the demo ground truth reduced to class indices (VSPW index = VIPSeg id + 1)."""
    demo = generate_demo_video(seed=seed, num_frames=50, height=120, width=214, scenario=scenario)
    idx = demo.dense_indices(5)
    lut = np.zeros(max(demo.tracks) + 1, np.uint8)
    for t, c in demo.tracks.items():
        lut[t] = c + 1
    vd = root / "data" / name
    (vd / "origin").mkdir(parents=True)
    (vd / "mask").mkdir(parents=True)
    for k, i in enumerate(idx):
        cv2.imwrite(str(vd / "origin" / f"{k:05d}.jpg"), demo.frames[i][..., ::-1])
        cv2.imwrite(str(vd / "mask" / f"{k:05d}.png"), lut[demo.labels[i]])
    (root / "label_num_dic_final.json").write_text(json.dumps({"others": 0, **{c.name: c.id + 1 for c in TAX}}))
    return demo, idx


def _recovery(demo, idx, video) -> float:
    """Share of GT thing pixels whose track is the one matched (one-to-one, over the video) to their instance."""
    things = [t for t, c in demo.tracks.items() if TAX.get(c).isthing]
    gt = np.stack([demo.labels[i] for i in idx]).astype(np.int64)
    pr = np.stack([video.read_label(k) for k in range(len(idx))]).astype(np.int64)
    m = np.isin(gt, things)
    ug, gi = np.unique(gt[m], return_inverse=True)
    up, pi = np.unique(pr[m], return_inverse=True)
    table = np.zeros((ug.size, up.size))
    np.add.at(table, (gi, pi), 1)
    r, c = linear_sum_assignment(-table)
    return float(table[r, c].sum() / m.sum())


def test_demo_vspw_proposals_recover_instances(tmp_path):
    demo, idx = _vspw_folder(tmp_path / "vspw")
    report = import_vspw(tmp_path / "vspw", tmp_path / "p.vpsproj")
    proj = Project.open(tmp_path / "p.vpsproj")
    with proj.open_video("vid0", readonly=True) as video:
        stuff = {t.category_id for t in video.tracks.values() if not TAX.get(t.category_id).isthing}
        assert len(stuff) == sum(1 for t in video.tracks.values() if not TAX.get(t.category_id).isthing)
        assert stuff == {c for t, c in demo.tracks.items() if not TAX.get(c).isthing}
        rec = _recovery(demo, idx, video)
        print(f"VSPW demo (mixed, 5 fps): {100 * rec:.2f}% of thing pixels in the right track, "
              f"{report.proposals['vid0']} proposals for "
              f"{sum(1 for c in demo.tracks.values() if TAX.get(c).isthing)} instances")
        assert rec >= 0.95
        flags = ReviewStore(video).flags
        assert flags and all(f.kind == FLAG_KIND for f in flags)
        assert {f.track for f in flags if f.track} == {t for t, x in video.tracks.items()
                                                       if TAX.get(x.category_id).isthing}
        assert all("split into instances" in f.reason for f in flags)
        assert video.keyframes == list(range(len(idx)))
    with proj.open_video("vid0") as video:  # a later automatic flag run keeps the import's flags
        from annotator.review import compute_flags

        store = ReviewStore(video)
        store.set_flags(compute_flags(video))
        assert sum(f.kind == FLAG_KIND for f in store.flags) == len(flags)


def test_components_join_small_gaps():
    m = np.zeros((10, 20), bool)
    m[2:8, 2:6] = True
    m[2:8, 8:12] = True  # 2 px apart: one part with gap 2, two without
    assert components(m, 0)[0] == 3 and components(m, 2)[0] == 2


def test_bad_input_is_one_line_error_and_leaves_nothing(tmp_path):
    _vspw_folder(tmp_path / "vspw")
    mask = tmp_path / "vspw" / "data" / "vid0" / "mask" / "00003.png"
    m = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
    m[:2, :3] = 200  # not in the class list
    cv2.imwrite(str(mask), m)
    with pytest.raises(InputError) as err:
        import_vspw(tmp_path / "vspw", tmp_path / "a.vpsproj")
    assert "value 200 on 6 pixels" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "a.vpsproj").exists()
    cv2.imwrite(str(mask), m[:, :-4].clip(0, 124))  # now a size mismatch
    with pytest.raises(InputError, match="210x120 but its image is 214x120"):
        import_vspw(tmp_path / "vspw", tmp_path / "b.vpsproj")
    (tmp_path / "vspw" / "label_num_dic_final.json").write_text(json.dumps({"others": 0, "unicorn": 1}))
    with pytest.raises(InputError, match="unicorn"):
        import_vspw(tmp_path / "vspw", tmp_path / "c.vpsproj")
