"""Issue 23 item 8: the default (720p) VIPSeg export of a 480p project is scored against its own
project: the prediction is resized to the ground truth's size by nearest neighbour, and the
report says so. Also: VIPSeg's 720p width rule gives 1281 for 854x480."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.errors import InputError
from annotator.formats.common import resized_shape
from annotator.formats.vipseg import export_vipseg, resize_label
from annotator.metrics.scoring import compute_score, open_pair
from annotator.metrics.sources import fit_prediction, is_rescale, resize_ids
from annotator.metrics.types import Frame, Segment
from annotator.project import FrameState, Project

WALL, PERSON = 0, 60


def project_480p(path: Path, frames: int = 3, size: tuple[int, int] = (480, 854)) -> Path:
    """A project at 854x480 (DAVIS size) with a wall and two persons on every frame."""
    h, w = size
    proj = Project.create(path)
    video = proj.create_video("dog", [f"{i:05d}" for i in range(frames)], h, w)
    wall, a, b = video.new_track(WALL), video.new_track(PERSON), video.new_track(PERSON)
    for i in range(frames):
        video.write_frame_image(i, np.zeros((h, w, 3), np.uint8))
        lab = np.full((h, w), wall.id, np.uint16)
        lab[100 + i:301, 101:333] = a.id
        lab[37:150, 500 + 3 * i:777] = b.id
        lab[5:7, 5:6] = b.id  # a 2x1 sliver: it must survive the upscale of the export
        video.write_label(i, lab, state=FrameState.REVIEWED)
    video.save()
    video.close()
    return path


def test_vipseg_720p_width_rule_gives_1281_for_854x480():
    # change2_720p.py: PIL resize to (int(720 * w / h), 720) for every frame, up or down
    assert resized_shape(480, 854, 720) == (720, 1281)
    assert resized_shape(1080, 1920, 720) == (720, 1280)
    assert is_rescale((480, 854), (720, 1281)) and is_rescale((720, 1281), (480, 854))
    assert not is_rescale((480, 640), (720, 1281))


def test_resize_ids_is_the_export_rule_for_every_dtype():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 2**24, (48, 85)).astype(np.uint32)  # RGB ids need 24 bits
    out = resize_ids(ids, 72, 128)
    assert out.dtype == np.uint32 and out.shape == (72, 128)
    assert np.array_equal(out, resize_label(ids.astype(np.int32), 72, 128))
    small = (ids % 60000).astype(np.uint16)
    assert np.array_equal(resize_ids(small, 72, 128), resize_label(small, 72, 128))


def test_fit_prediction_drops_segments_a_downscale_erases_and_refuses_other_shapes():
    gt = Frame(np.zeros((4, 6), np.int32), {}, "f")
    ids = np.zeros((8, 12), np.int32)
    ids[0, 0] = 7  # one pixel: gone at half size
    ids[2:8, 2:8] = 9
    fp = fit_prediction(gt, Frame(ids, {7: Segment(1, 1), 9: Segment(2, 36)}, "f"), "v")
    assert fp.ids.shape == (4, 6) and set(fp.segments) == {9} and fp.segments[9].area is None
    with pytest.raises(InputError, match="not a resize"):
        fit_prediction(gt, Frame(np.zeros((4, 4), np.int32), {}, "f"), "v")


def test_720p_export_scores_against_its_project_at_one_size(tmp_path, capsys):
    proj = project_480p(tmp_path / "dog.vpsproj")
    export_vipseg(proj, tmp_path / "exp")  # the default: height 720
    mask = next((tmp_path / "exp" / "panomasksRGB" / "dog").glob("*.png"))
    from annotator.project import image_size
    assert image_size(mask) == (720, 1281)
    # the export as ground truth, the project as prediction (and the other way round)
    for gt, pred in ((tmp_path / "exp", proj), (proj, tmp_path / "exp")):
        capsys.readouterr()
        out = tmp_path / f"rep_{Path(gt).name}"
        assert main(["score", "--gt", str(gt), "--pred", str(pred), "--no-figure", "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "resized to the ground truth's size by nearest neighbour" in text
        scores = json.loads((out / "scores.json").read_text())
        assert any("nearest neighbour" in n for n in scores["notes"])
        assert scores["vpq"]["vpq"]["all"] == pytest.approx(100.0)
    # upscaled with the export's own rule, the project's labels equal the export's pixel for pixel
    report, _ = compute_score(open_pair(str(tmp_path / "exp"), str(proj)), [1], "official", ("vpq", "stq"))
    assert report.stq.stq == pytest.approx(1.0)


def test_no_resize_keeps_the_official_rule(tmp_path, capsys):
    proj = project_480p(tmp_path / "dog.vpsproj", frames=2)
    export_vipseg(proj, tmp_path / "exp")
    assert main(["score", "--gt", str(tmp_path / "exp"), "--pred", str(proj), "--no-figure", "--no-resize"]) == 2
    assert "ground truth is 1281x720, prediction 854x480" in capsys.readouterr().err


def test_score_dialog_scores_a_720p_export_against_its_project(qtbot, tmp_path, monkeypatch):
    from PyQt5.QtCore import QPoint, Qt

    from annotator.gui.main_window import MainWindow
    from tests.gui_helpers_workspace import isolate_settings

    isolate_settings(tmp_path, monkeypatch)
    proj = project_480p(tmp_path / "dog.vpsproj", frames=2)
    export_vipseg(proj, tmp_path / "exp")
    w = MainWindow(Project.open(proj))
    qtbot.addWidget(w)
    w.show()
    dlg = w.pipeline.open_score()
    qtbot.waitExposed(dlg)
    assert dlg.resize_pred.isChecked()  # on by default, as `score` without --no-resize
    dlg.gt.path.setFocus()
    qtbot.keyClicks(dlg.gt.path, str(tmp_path / "exp"))
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "scored" in dlg.status.text() or "failed" in dlg.status.text(), timeout=60_000)
    assert "failed" not in dlg.status.text(), dlg.status.text()
    text = dlg.summary.toPlainText()
    assert "resized to the ground truth's size by nearest neighbour" in text and "854x480 -> 1281x720" in text
    shots = Path("/tmp/h23")
    if shots.is_dir():
        dlg.grab().save(str(shots / "item8_score_dialog.png"))
    # unticked: the official rule, and the error says both sizes
    qtbot.mouseClick(dlg.resize_pred, Qt.LeftButton, pos=QPoint(6, dlg.resize_pred.height() // 2))
    assert not dlg.resize_pred.isChecked()
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "failed" in dlg.status.text(), timeout=60_000)
    assert "ground truth is 1281x720, prediction 854x480" in dlg.status.text()
    w.close()
