"""File sources (VIPSeg export, raw panomasks, prediction folder, project layers), reports and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.cli import main
from annotator.errors import InputError
from annotator.metrics.engine import score_source
from annotator.metrics.report import summary_text, write_report
from annotator.metrics.sources import MatchedPairs, decode_raw_panomask, open_source
from annotator.taxonomy import vipseg_taxonomy

WALL, SKY, PERSON = 0, 28, 60
ISTHING = {c.id: c.isthing for c in vipseg_taxonomy()}


def base_map() -> np.ndarray:
    m = np.zeros((4, 8), np.int64)
    m[:, :4] = 1
    m[:, 4:] = 2
    m[0:2, 0:2] = 3
    m[2:4, 6:8] = 4
    return m


CAT = {1: WALL, 2: SKY, 3: PERSON, 4: PERSON}
# RGB ids: stuff takes a category-like colour, things their own colours
RGB_ID = {1: 120 + 120 * 256 + 120 * 65536, 2: 70 + 130 * 256 + 180 * 65536, 3: 220 + 20 * 256 + 60 * 65536,
          4: 221 + 21 * 256 + 61 * 65536}


def swapped(m):
    out = m.copy()
    out[m == 3], out[m == 4] = 4, 3
    return out


def write_rgb(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    cv2.imwrite(str(path), rgb[..., ::-1])


def video_json(maps, stems, cat=CAT):
    anns = []
    for m, s in zip(maps, stems, strict=True):
        segs = [{"id": RGB_ID[i], "category_id": cat[i], "iscrowd": 0, "area": int((m == i).sum())}
                for i in sorted(cat) if (m == i).any()]
        anns.append({"image_id": s, "file_name": f"{s}.png", "segments_info": segs})
    return anns


def write_export(root: Path, maps_by_video: dict[str, list[np.ndarray]]) -> Path:
    doc = {"videos": [], "annotations": [], "categories": [c.to_json() for c in vipseg_taxonomy()]}
    for vid, maps in maps_by_video.items():
        stems = [f"{i * 5:08d}" for i in range(len(maps))]
        doc["videos"].append({"video_id": vid, "images": [{"id": s, "width": 8, "height": 4, "file_name": f"{s}.png"}
                                                          for s in stems]})
        doc["annotations"].append({"video_id": vid, "annotations": video_json(maps, stems)})
        lut = np.zeros(5, np.int64)
        for k, v in RGB_ID.items():
            lut[k] = v
        for m, s in zip(maps, stems, strict=True):
            write_rgb(root / "panomasksRGB" / vid / f"{s}.png", lut[m])
            raw = np.zeros_like(m, dtype=np.uint16)
            raw[m == 1], raw[m == 2] = WALL + 1, SKY + 1
            raw[m == 3], raw[m == 4] = (PERSON + 1) * 100, (PERSON + 1) * 100 + 1
            (root / "panomasks" / vid).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "panomasks" / vid / f"{s}.png"), raw)
    (root / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(doc))
    return root


def write_pred(root: Path, maps_by_video: dict[str, list[np.ndarray]]) -> Path:
    doc = {"annotations": []}
    lut = np.zeros(5, np.int64)
    for k, v in RGB_ID.items():
        lut[k] = v
    for vid, maps in maps_by_video.items():
        stems = [f"{i * 5:08d}" for i in range(len(maps))]
        doc["annotations"].append({"video_id": vid, "annotations": video_json(maps, stems)})
        for m, s in zip(maps, stems, strict=True):
            write_rgb(root / "pan_pred" / vid / f"{s}.png", lut[m])
    (root / "pred.json").write_text(json.dumps(doc))
    return root


@pytest.fixture
def export_and_pred(tmp_path):
    gt = {"vidA": [base_map()] * 8, "vidB": [base_map()] * 5}
    pred = {"vidA": [base_map()] * 4 + [swapped(base_map())] * 4, "vidB": [base_map()] * 5}
    return write_export(tmp_path / "VIPSeg_720P", gt), write_pred(tmp_path / "sub", pred)


def test_export_vs_prediction_folder(export_and_pred):
    gt_root, pred_root = export_and_pred
    pairs = MatchedPairs(open_source(gt_root, split="val"), open_source(pred_root))
    rep = score_source(pairs, pairs.categories())
    assert [v.video_id for v in rep.videos] == ["vidA", "vidB"]
    va = rep.videos[0]
    assert va.vpq.vpq["all"] == pytest.approx(83.3143, abs=1e-3)
    assert va.stq.stq == pytest.approx(0.57735, abs=1e-5)
    assert rep.videos[1].vpq.vpq["all"] == pytest.approx(100)
    assert "official" in summary_text(rep)


def test_raw_panomasks_give_the_same_scores(export_and_pred, tmp_path):
    gt_root, pred_root = export_and_pred
    raw_root = tmp_path / "raw"
    (raw_root / "panomasks").mkdir(parents=True)
    for vid in ("vidA", "vidB"):
        (gt_root / "panomasks" / vid).rename(raw_root / "panomasks" / vid)
    a = MatchedPairs(open_source(gt_root, split="val"), open_source(pred_root))
    b = MatchedPairs(open_source(raw_root), open_source(pred_root))
    ra, rb = score_source(a, a.categories()), score_source(b, b.categories())
    assert ra.vpq.vpq == pytest.approx(rb.vpq.vpq)
    assert rb.stq.stq == pytest.approx(ra.stq.stq)


def test_raw_decoding_vector():
    raw = np.array([[0, 1, 29], [6100, 6101, 4900]], np.uint16)
    segs = decode_raw_panomask(raw, ISTHING, "x")
    assert {v: s.category_id for v, s in segs.items()} == {1: WALL, 29: SKY, 6100: PERSON, 6101: PERSON, 4900: 48}
    assert list(segs) == [1, 29, 4900, 6100, 6101]  # stuff first, then things by raw value
    with pytest.raises(InputError, match="not a thing"):
        decode_raw_panomask(np.array([[2900]], np.uint16), ISTHING, "x")  # sky is stuff
    with pytest.raises(InputError, match="out of range"):
        decode_raw_panomask(np.array([[12600]], np.uint16), ISTHING, "x")


def test_missing_prediction_frame_is_a_clear_error(export_and_pred):
    gt_root, pred_root = export_and_pred
    doc = json.loads((pred_root / "pred.json").read_text())
    doc["annotations"][0]["annotations"].pop(3)
    (pred_root / "pred.json").write_text(json.dumps(doc))
    pairs = MatchedPairs(open_source(gt_root, split="val"), open_source(pred_root))
    with pytest.raises(InputError, match="lacks frame"):
        score_source(pairs, pairs.categories())


def test_gt_id_in_png_but_not_in_json_is_an_error(export_and_pred):
    gt_root, pred_root = export_and_pred
    doc = json.loads((gt_root / "panoptic_gt_VIPSeg_val.json").read_text())
    doc["annotations"][1]["annotations"][2]["segments_info"].pop(0)
    (gt_root / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(doc))
    pairs = MatchedPairs(open_source(gt_root, split="val"), open_source(pred_root))
    with pytest.raises(InputError, match="in the PNG but not in the JSON"):
        score_source(pairs, pairs.categories())


def test_missing_prediction_video(export_and_pred, tmp_path):
    gt_root, _ = export_and_pred
    pred = write_pred(tmp_path / "p2", {"vidA": [base_map()] * 8})
    with pytest.raises(InputError, match="vidB"):
        MatchedPairs(open_source(gt_root, split="val"), open_source(pred))


def test_cli_score_writes_report(export_and_pred, tmp_path, capsys):
    gt_root, pred_root = export_and_pred
    out = tmp_path / "report"
    code = main(["score", "--gt", str(gt_root), "--split", "val", "--pred", str(pred_root), "--out", str(out),
                 "--workers", "2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "mode: official" in text and "STQ" in text
    data = json.loads((out / "scores.json").read_text())
    assert data["mode"] == "official"
    assert {r["video_id"] for r in data["per_video"]} == {"vidA", "vidB"}
    assert (out / "per_class.csv").read_text().startswith("category_id")
    assert (out / "scores.png").stat().st_size > 1000


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    code = main(["score", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_cli_bad_windows(export_and_pred, capsys):
    gt_root, pred_root = export_and_pred
    assert main(["score", "--gt", str(gt_root), "--split", "val", "--pred", str(pred_root), "--windows", "1,x"]) == 2


def test_project_layers(tmp_path):
    from annotator.project import FrameState, Project

    proj = Project.create(tmp_path / "p.vpsproj")
    names = [f"f{i:03d}" for i in range(8)]
    video = proj.create_video("clip", names, 4, 8)
    for tid, cat in CAT.items():
        video.add_track(tid, cat)
    for i in range(8):
        video.write_label(i, base_map().astype(np.uint16), state=FrameState.MANUAL)
        video.write_label(i, (base_map() if i < 4 else swapped(base_map())).astype(np.uint16), layer="propagated")
    video.close()
    gt = open_source(proj.path)
    pred = open_source(proj.path, layer="propagated")
    pairs = MatchedPairs(gt, pred)
    rep = score_source(pairs, pairs.categories())
    assert rep.vpq.vpq["all"] == pytest.approx(83.3143, abs=1e-3)
    assert rep.stq.stq == pytest.approx(0.57735, abs=1e-5)
    paths = write_report(rep, tmp_path / "r", figure=False)
    assert all(p.exists() for p in paths)


def test_cli_clean_mode_and_metric_choice(export_and_pred, capsys):
    gt_root, pred_root = export_and_pred
    code = main(["score", "--gt", str(gt_root), "--split", "val", "--pred", str(pred_root), "--mode", "clean",
                 "--metrics", "stq", "--windows", "1,2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "mode: clean" in text and "VPQ" not in text and "STQ" in text
