"""QA regressions for scoring sources: bugs found by end-to-end use of ``score``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from annotator.metrics.engine import score_source
from annotator.metrics.sources import MatchedPairs, open_source

PERSON = 60  # a thing class of the VIPSeg taxonomy (raw value (60+1)*100 + instance)
WALL = 0     # a stuff class (raw value 1)


def _raw_frames(n: int, swap_from: int | None = None) -> list[np.ndarray]:
    """Wall background with two person instances; from ``swap_from`` on their instance numbers swap."""
    out = []
    for i in range(n):
        m = np.full((8, 12), WALL + 1, np.uint16)
        a, b = (PERSON + 1) * 100, (PERSON + 1) * 100 + 1
        if swap_from is not None and i >= swap_from:
            a, b = b, a
        m[1:4, 1:4] = a
        m[4:7, 6:10] = b
        out.append(m)
    return out


def _write_raw(root: Path, video: str, stems: list[str], maps: list[np.ndarray]) -> Path:
    folder = root / "panomasks" / video
    folder.mkdir(parents=True, exist_ok=True)
    for s, m in zip(stems, maps, strict=True):
        assert cv2.imwrite(str(folder / f"{s}.png"), m)
    return root


def test_raw_panomasks_frames_in_natural_order(tmp_path: Path) -> None:
    """Unpadded frame names (f1..f12) must keep temporal order: a string sort puts f10 after f1
    and builds VPQ windows out of non-consecutive frames (wrong VPQ^L for L > 1)."""
    stems = [f"f{i + 1}" for i in range(12)]
    padded = [f"{i:05d}" for i in range(12)]
    gt_maps, pred_maps = _raw_frames(12), _raw_frames(12, swap_from=5)
    vpq = {}
    for tag, names in (("unpadded", stems), ("padded", padded)):
        gt = open_source(_write_raw(tmp_path / tag / "gt", "v", names, gt_maps))
        pred = open_source(_write_raw(tmp_path / tag / "pred", "v", names, pred_maps))
        assert gt.frame_names("v") == names
        pairs = MatchedPairs(gt, pred)
        vpq[tag] = score_source(pairs, pairs.categories(), metrics=("vpq",)).vpq.vpq["all"]
    assert abs(vpq["unpadded"] - vpq["padded"]) < 1e-9


def test_gt_video_without_labelled_frames_is_left_out_with_a_note(tmp_path: Path, capsys) -> None:
    """A GT video with no labelled frame (images-only test split, not annotated yet) contributes
    nothing to the official sums; it used to fail the whole run with 'has no labelled frame'."""
    import json

    from annotator.cli import main
    from annotator.taxonomy import vipseg_taxonomy

    gt_root = tmp_path / "gt"
    maps = _raw_frames(3)
    stems = ["a", "b", "c"]
    segs = [{"id": int(v), "category_id": (int(v) - 1 if v < 125 else int(v) // 100 - 1), "iscrowd": 0,
             "area": int((m == v).sum())} for m in maps[:1] for v in np.unique(m)]
    rgb_dir = gt_root / "panomasksRGB" / "v"
    rgb_dir.mkdir(parents=True)
    for s, m in zip(stems, maps, strict=True):
        ids = m.astype(np.int64)
        cv2.imwrite(str(rgb_dir / f"{s}.png"),
                    np.stack([ids >> 16 & 255, ids >> 8 & 255, ids & 255], -1).astype(np.uint8))
    doc = {"videos": [{"video_id": "v", "images": []}, {"video_id": "empty", "images": []}],
           "annotations": [{"video_id": "v", "annotations": [
               {"image_id": s, "file_name": f"{s}.png", "segments_info": segs} for s in stems]},
               {"video_id": "empty", "annotations": []}],
           "categories": [c.to_json() for c in vipseg_taxonomy()]}
    (gt_root / "panoptic_gt_VIPSeg.json").write_text(json.dumps(doc))
    pred_root = tmp_path / "pred"
    pred_root.mkdir()
    (pred_root / "pred.json").write_text(json.dumps({"annotations": [doc["annotations"][0]]}))
    (pred_root / "pan_pred").mkdir()
    (pred_root / "pan_pred" / "v").symlink_to(rgb_dir)
    gt, pred = open_source(gt_root), open_source(pred_root)
    pairs = MatchedPairs(gt, pred)
    assert pairs.video_ids == ["v"] and pairs.skipped == ["empty"]
    rep = score_source(pairs, pairs.categories())
    assert rep.vpq.vpq["all"] == 100.0 and abs(rep.stq.stq - 1.0) < 1e-12
    assert main(["score", "--gt", str(gt_root), "--pred", str(pred_root), "--no-figure"]) == 0
    assert "without labelled frames: empty" in capsys.readouterr().out


def test_prediction_with_unknown_category_is_an_error_not_void() -> None:
    """A prediction using 1-based (or otherwise unknown) category ids was silently scored as void;
    the official VPQ script raises KeyError there. It must be a one-line InputError."""
    import pytest

    from annotator.errors import InputError
    from annotator.metrics.engine import score_pairs
    from annotator.metrics.types import Categories, VideoPair, make_frame

    cats = Categories({0: False, 1: True})
    ids = np.zeros((4, 4), np.int64)
    ids[:, :2] = 1
    ids[:, 2:] = 2
    gt = [make_frame(ids, {1: 0, 2: 1}, "a")]
    for bad in (2, -1, 124):
        pred = [make_frame(ids, {1: 0, 2: bad}, "a")]
        with pytest.raises(InputError, match=f"unknown category id.*category {bad}"):
            score_pairs([VideoPair("v", gt, pred)], cats)
    ok = score_pairs([VideoPair("v", gt, [make_frame(ids, {1: 0, 2: 1}, "a")])], cats)
    assert ok.vpq.vpq["all"] == 100.0


def test_unknown_project_layer_is_an_error_not_zero_scores(tmp_path: Path) -> None:
    """``--pred-layer propagatd`` (a typo) scored every frame as void and printed VPQ 0 / STQ 0."""
    import pytest

    from annotator.cli import main
    from annotator.errors import InputError
    from annotator.project import FrameState, Project

    proj = Project.create(tmp_path / "p.vpsproj")
    video = proj.create_video("v", ["a", "b"], 8, 12)
    t = video.new_track(PERSON)
    for i in range(2):
        video.write_frame_image(i, np.zeros((8, 12, 3), np.uint8))
        lab = np.zeros((8, 12), np.uint16)
        lab[2:5, 2:5] = t.id
        video.write_label(i, lab, state=FrameState.REVIEWED)
        video.write_label(i, lab, layer="propagated")
    video.save()
    video.close()
    with pytest.raises(InputError, match="no label layer 'propagatd'.*propagated"):
        open_source(proj.path, layer="propagatd")
    assert main(["score", "--gt", str(proj.path), "--pred", str(proj.path), "--pred-layer", "propagatd",
                 "--no-figure"]) == 2
    assert main(["score", "--gt", str(proj.path), "--pred", str(proj.path), "--pred-layer", "propagated",
                 "--no-figure"]) == 0


def test_report_names_come_from_the_export_categories(tmp_path: Path) -> None:
    """Scoring against a VIPSeg export of a custom taxonomy labelled per_class.csv with VIPSeg names
    (grass/cow became wall/door)."""
    import csv

    from annotator.cli import main
    from annotator.formats.vipseg import export_vipseg
    from annotator.project import FrameState, Project
    from annotator.taxonomy import Taxonomy

    tax = Taxonomy.from_json([{"id": 0, "name": "grass", "isthing": 0, "color": [0, 200, 0]},
                              {"id": 1, "name": "cow", "isthing": 1, "color": [120, 60, 0]}], name="farm")
    proj = Project.create(tmp_path / "farm.vpsproj", taxonomy=tax)
    video = proj.create_video("v", ["a", "b"], 8, 12)
    g, c = video.new_track(0), video.new_track(1)
    for i in range(2):
        video.write_frame_image(i, np.zeros((8, 12, 3), np.uint8))
        lab = np.full((8, 12), g.id, np.uint16)
        lab[2:5, 2:5] = c.id
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.save()
    video.close()
    export_vipseg(proj.path, tmp_path / "exp", resize_height=None)
    assert main(["score", "--gt", str(tmp_path / "exp"), "--pred", str(proj.path), "--out", str(tmp_path / "rep"),
                 "--no-figure", "--windows", "1"]) == 0
    with open(tmp_path / "rep" / "per_class.csv", encoding="utf-8") as fh:
        names = {int(r["category_id"]): r["name"] for r in csv.DictReader(fh)}
    assert names == {0: "grass", 1: "cow"}


def test_project_gt_skips_frames_marked_unlabelled_like_the_export(tmp_path: Path) -> None:
    """A frame with a label file but state 'unlabelled' is left out of the VIPSeg export, but the
    project source counted it as ground truth, so scoring a project against its own export failed
    with 'prediction lacks frame(s)'."""
    from annotator.cli import main
    from annotator.formats.vipseg import export_vipseg
    from annotator.project import FrameState, Project

    proj = Project.create(tmp_path / "p.vpsproj")
    video = proj.create_video("v", ["a", "b", "c"], 8, 12)
    w, t = video.new_track(WALL), video.new_track(PERSON)
    for i in range(3):
        video.write_frame_image(i, np.zeros((8, 12, 3), np.uint8))
        lab = np.full((8, 12), w.id, np.uint16)
        lab[2:5, 2:5] = t.id
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.set_frame_state(1, FrameState.UNLABELLED)
    video.save()
    video.close()
    export_vipseg(proj.path, tmp_path / "exp", resize_height=None)
    gt = open_source(proj.path)
    assert gt.frame_names("v") == ["a", "c"]
    assert main(["score", "--gt", str(proj.path), "--pred", str(tmp_path / "exp"), "--no-figure"]) == 0


def test_repeated_window_length_counts_once() -> None:
    """``--windows 1,1,8`` counted L=1 twice in the mean over L (VPQ 87.9 instead of 81.9)."""
    from annotator.metrics.engine import score_pairs
    from annotator.metrics.types import Categories, VideoPair, make_frame

    cats = Categories({WALL: False, PERSON: True})
    gt_maps, pred_maps = _raw_frames(10), _raw_frames(10, swap_from=4)

    def frames(maps):
        return [make_frame(m.astype(np.int64), {int(v): (int(v) - 1 if v < 125 else int(v) // 100 - 1)
                                                 for v in np.unique(m)}, str(i)) for i, m in enumerate(maps)]

    pair = [VideoPair("v", frames(gt_maps), frames(pred_maps))]
    once = score_pairs(pair, cats, windows=(1, 8), metrics=("vpq",))
    twice = score_pairs(pair, cats, windows=(1, 1, 8), metrics=("vpq",))
    assert once.vpq.vpq["all"] != 100.0
    assert twice.vpq.vpq == once.vpq.vpq and twice.windows == [1, 8]


def test_sources_with_different_class_numbering_are_refused(tmp_path: Path) -> None:
    """Scoring compares category ids; a prediction project whose taxonomy gives the ids other
    names (custom vs VIPSeg) was scored as if grass were wall."""
    import pytest

    from annotator.errors import InputError
    from annotator.project import FrameState, Project
    from annotator.taxonomy import Taxonomy

    farm = Taxonomy.from_json([{"id": 0, "name": "grass", "isthing": 0, "color": [0, 200, 0]},
                               {"id": 1, "name": "sky", "isthing": 0, "color": [0, 0, 200]}], name="farm")
    paths = []
    for name, tax in (("gt", farm), ("pred", None)):
        proj = Project.create(tmp_path / f"{name}.vpsproj", taxonomy=tax)
        video = proj.create_video("v", ["a"], 8, 12)
        g, s = video.new_track(0), video.new_track(1)
        lab = np.full((8, 12), g.id, np.uint16)
        lab[:3] = s.id
        video.write_frame_image(0, np.zeros((8, 12, 3), np.uint8))
        video.write_label(0, lab, state=FrameState.REVIEWED)
        video.save()
        video.close()
        paths.append(proj.path)
    with pytest.raises(InputError, match="0 is 'grass' in the ground truth but 'wall' in the prediction"):
        MatchedPairs(open_source(paths[0]), open_source(paths[1]))
    pairs = MatchedPairs(open_source(paths[0]), open_source(paths[0]))
    assert score_source(pairs, pairs.categories(), windows=(1,)).vpq.vpq["all"] == 100.0
