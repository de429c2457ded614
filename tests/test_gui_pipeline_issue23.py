"""Issue 23 items 13 and 14 in the window: a cancel stops propagation between frames and says how
much was kept; Help is the last menu; job names use the room there is; the score plots are shown
at the size they were drawn at; the message banner has a close button."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from PyQt5.QtCore import QPoint, Qt

from annotator.jobs import Cancelled, CancelToken
from annotator.project import FrameState, Project
from propagation.base import CopyPropagator
from tests.test_gui_pipeline import make_project, wait_job
from tests.test_gui_pipeline import window as window  # noqa: F401 - the fixture


class _SecondGapWaits:
    """Copies the first gap at once, then holds the second until the job is cancelled."""

    name = "second-gap-waits"

    def __init__(self) -> None:
        self.inner = CopyPropagator()
        self.calls = 0
        self.waiting = threading.Event()

    def propagate(self, video, refs, targets, progress=None, cancel=None):
        self.calls += 1
        if self.calls == 2:
            self.waiting.set()
            while not (cancel is not None and cancel.cancelled):
                threading.Event().wait(0.01)
            raise Cancelled()
        return self.inner.propagate(video, refs, targets, progress=progress, cancel=cancel)


def test_cancel_says_how_much_propagation_kept(qtbot, window, monkeypatch):
    from annotator.gui.pipeline import actions

    engine = _SecondGapWaits()
    monkeypatch.setattr(actions, "build_propagator", lambda settings: engine)
    w = window
    v = w.controller.video
    qtbot.keyClick(w.canvas, Qt.Key_B, Qt.ControlModifier | Qt.ShiftModifier)  # propagate the whole video
    qtbot.waitUntil(engine.waiting.is_set, timeout=20_000)
    job = w.pipeline.jobs.job
    row = w.shell.jobs_panel.rows[job]
    qtbot.mouseClick(row.cancel_button, Qt.LeftButton)  # the jobs panel's Cancel
    wait_job(qtbot, w)
    assert job.status == "cancelled"
    # keyframes 0, 5, 10 of 12 frames: 9 targets, the first gap (4 frames) was written before the cancel
    assert row.status.text() == "cancelled: 4 of 9 frames propagated and kept"
    assert "4 of 9 frames propagated and kept" in w.status.message.text()
    assert [v.frame_state(i) for i in (1, 2, 3, 4)] == [FrameState.PROPAGATED] * 4
    assert all(v.frame_state(i) == FrameState.UNLABELLED for i in (6, 7, 8, 9, 11))


def test_cancel_is_checked_between_the_frames_a_gap_writes(tmp_path):
    """A cancel while a gap is written (after the engine finished it) stops at the next frame."""
    from annotator.stages.propagate import propagate_video

    path, _gt, _cats = make_project(tmp_path)
    token = CancelToken()
    with Project.open(path).open_video("v") as video:
        real = video.write_label
        written: list[int] = []

        def write_label(i, *args, **kwargs):
            real(i, *args, **kwargs)
            written.append(i)
            if len(written) == 3:
                token.cancel()  # the click lands while the third frame is written

        video.write_label = write_label
        with pytest.raises(Cancelled, match="^3 of 9 frames propagated and kept$"):
            propagate_video(video, CopyPropagator(), cancel=token)
        assert written == [1, 2, 3]
    with Project.open(path).open_video("v") as video:  # what was kept is on disk, whole
        assert [video.frame_state(i) for i in (1, 2, 3, 4)] == [FrameState.PROPAGATED] * 3 + [FrameState.UNLABELLED]
        assert video.log[-1]["kind"] == "propagation" and video.log[-1]["cancelled"] is True


def test_help_is_the_last_menu(qtbot, window):
    bar = window.menuBar()
    titles = [a.text().replace("&", "") for a in bar.actions()]
    assert titles[-1] == "Help" and {"Pipeline", "Review"} < set(titles)
    # the rightmost menu title on screen opens the Help menu
    last = max(bar.actions(), key=lambda a: bar.actionGeometry(a).x())
    assert last.text().replace("&", "") == "Help"


def test_job_names_use_the_free_room(qtbot, tmp_path):
    from PyQt5.QtCore import QObject

    from annotator.gui.job_runner import JobRunner
    from annotator.gui.jobs_panel import JobsPanel

    parent = QObject()
    runner = JobRunner(parent)
    panel = JobsPanel(runner)
    qtbot.addWidget(panel)
    title = "propagate horsejump-high frames 1-11 with optical flow (balanced)"
    job = runner.track_external(title)
    short = runner.track_external("associate keyframes of dog")
    panel.resize(1200, 200)
    panel.show()
    qtbot.waitExposed(panel)
    row, other = panel.rows[job], panel.rows[short]
    assert row.title.text() == title  # the whole name where there is room
    assert row.title.width() == other.title.width()  # the bars still line up
    assert row.bar.x() == other.bar.x()
    panel.grab().save(str(tmp_path / "jobs_wide.png"))
    panel.resize(420, 200)  # a narrow dock: only then is the name shortened
    qtbot.waitUntil(lambda: row.title.text() != title)
    assert "\u2026" in row.title.text()
    job.finish()
    short.finish()


def test_score_plots_are_shown_at_their_size(qtbot, window, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from annotator.gui.pipeline.score_dialog import ScoreDialog

    fig = plt.figure(figsize=(12, 4.5))
    fig.add_subplot(111).bar(range(3), [1, 2, 3])
    png = tmp_path / "scores.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    dlg = ScoreDialog(window)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    dlg._done({"summary": "VPQ", "classes": [{"name": "person", "vpq": 50.0}], "figure": png,
               "report": SimpleNamespace(videos=["v"])})
    bar = dlg.results.tabBar()
    plots = next(i for i in range(bar.count()) if bar.tabText(i) == "Plots")
    qtbot.mouseClick(bar, Qt.LeftButton, Qt.NoModifier, bar.tabRect(plots).center())
    assert dlg.results.currentWidget() is dlg.figure_scroll
    pm = dlg.figure.pixmap()
    assert (pm.width(), pm.height()) == (1200, 450)  # not scaled down: the class names stay readable
    assert dlg.figure.size() == pm.size()
    qtbot.waitUntil(lambda: dlg.figure_scroll.horizontalScrollBar().maximum() > 0)  # scrolled, not shrunk
    dlg.grab().save(str(tmp_path / "score_plots.png"))


def test_the_banner_can_be_dismissed(qtbot, window, tmp_path):
    from annotator.gui.main_window import BANNER_INFO

    w = window
    w._show_banner("recovered 3 frame(s) from the autosave: 1 (00000), 2 (00001), 3 (00002)", BANNER_INFO)
    assert w.banner.isVisible()
    button = w.banner.close_button
    assert button.isVisible() and button.geometry().right() <= w.banner.width()
    w.grab().save(str(tmp_path / "banner.png"))
    qtbot.mouseClick(button, Qt.LeftButton, Qt.NoModifier, QPoint(button.width() // 2, button.height() // 2))
    assert not w.banner.isVisible()
    w._show_banner("another message", BANNER_INFO)  # the next message shows again
    assert w.banner.isVisible()
