"""Issue #28 in the window: a video whose journal breaks its schema opens with a banner naming the
file, the line and the key, never a traceback; the other video of the project still opens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from annotator.gui.main_window import MainWindow
from annotator.project import Project
from tests import records_project as rp


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    from tests.gui_helpers_workspace import isolate_settings

    isolate_settings(tmp_path, monkeypatch)


def test_window_names_a_bogus_journal_record_in_its_banner(qtbot, tmp_path):
    proj = rp.copy(tmp_path)
    journal = proj / "videos" / rp.VIDEO / "journal.jsonl"
    with open(journal, "a") as fh:
        fh.write(json.dumps({"op": "frame", "i": 0, "state": "bogus", "provenance": {}, "tracks": [1],
                             "seq": 99}) + "\n")
    before = journal.read_bytes()
    w = MainWindow(Project.open(proj))
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    assert w.controller.video is None  # refused, as export and propagate refuse
    assert not w.banner.isHidden()
    text = w.banner.text()
    assert f"cannot open video {rp.VIDEO!r}" in text and "line 9, key 'state'" in text and "'bogus'" in text
    assert "restore journal.jsonl from a backup" in text
    shot = Path(os.environ.get("VPS_TEST_SCREENSHOT_DIR", tmp_path)) / "records_banner.png"
    assert w.grab().save(str(shot))
    assert journal.read_bytes() == before  # opening changed nothing
    assert not (journal.parent / ".lock").exists()  # the refused writable open released its lock
    w.close()


def test_window_names_a_damaged_review_json_and_raises_nothing(qtbot, tmp_path):
    """Found by the slow fuzz budget: the review panel read ``review.json`` in a slot and raised."""
    proj = rp.copy(tmp_path)
    path = proj / "videos" / rp.VIDEO / "review.json"
    doc = json.loads(path.read_text())
    doc["decisions"][0]["decision"] = None
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with qtbot.capture_exceptions() as raised:
        w = MainWindow(Project.open(proj))
        qtbot.addWidget(w)
        w.resize(1100, 700)
        w.show()
        qtbot.waitExposed(w)
        w.pipeline.review.update_progress()
        assert w.pipeline.review._decide("accept track", lambda store, comment: store.accept_track(1)) is False
    assert not raised, [str(e[1]) for e in raised]
    assert w.controller.video is not None  # the labels are fine: the video opens, review is refused
    text = w.banner.text()
    assert "review.json, key 'decision' of 'decisions[0]': found null None" in text
    assert "damaged" in w.pipeline.review.summary.text()
    shot = Path(os.environ.get("VPS_TEST_SCREENSHOT_DIR", tmp_path)) / "records_review_banner.png"
    assert w.grab().save(str(shot))
    assert path.read_bytes() == before
    w.close()


def test_window_shows_a_grey_frame_for_a_frame_name_without_its_image(qtbot, tmp_path):
    """Found by the slow fuzz budget: a ``frame_names`` entry changed to a valid-looking name whose
    JPEG does not exist raised in the canvas's paint slot; now the banner names it, the frame is grey."""
    proj = rp.copy(tmp_path)
    vjson = proj / "videos" / rp.VIDEO / "video.json"
    doc = json.loads(vjson.read_text())
    doc["frame_names"][0] = "bogus"
    vjson.write_text(json.dumps(doc))
    with qtbot.capture_exceptions() as raised:
        w = MainWindow(Project.open(proj))
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        qtbot.wait(20)
        assert w.controller.image().shape == (48, 64, 3)
    assert not raised, [str(e[1]) for e in raised]
    assert "bogus.jpg" in w.banner.text() and "frame image is missing" in w.banner.text()
    w.close()


def test_window_names_a_video_its_list_hides(qtbot, tmp_path):
    """Found by the slow fuzz budget: ``"complete": null`` in video.json hid the video from the list,
    and the window showed an empty project without a word."""
    proj = rp.copy(tmp_path)
    vjson = proj / "videos" / rp.VIDEO / "video.json"
    doc = json.loads(vjson.read_text())
    doc["complete"] = None
    vjson.write_text(json.dumps(doc))
    w = MainWindow(Project.open(proj))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.controller.video is None and not w.banner.isHidden()
    text = w.banner.text()
    assert "1 video(s) not listed" in text and "key 'complete': found null None, expected true or false" in text
    w.close()
