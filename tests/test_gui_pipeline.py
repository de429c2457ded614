"""The pipeline in the window (issue 12): associate and propagate as background jobs through the
Pipeline menu's keys, the flags panel (click = jump + select), the heat-map, the EditSession
contract, and an event loop that keeps running while propagation works."""

from __future__ import annotations

import shutil
import threading

import pytest
from PyQt5.QtCore import Qt, QTimer

from annotator.gui.main_window import MainWindow
from annotator.project import FrameState, Project
from tests.gui_helpers_workspace import isolate_settings

NUM_SOURCE, HEIGHT, WIDTH = 60, 72, 96  # 12 dense frames at 5 fps, keyframes 0, 5, 10


def make_project(root, seed: int = 1, scenario: str = "crossing"):
    """A demo video whose keyframes hold the ground truth under shuffled ids; returns (path, demo gt)."""
    from annotator.stages.tracking_eval import write_shuffled_keyframes
    from resources.demo import generate_demo_video

    demo = generate_demo_video(seed, NUM_SOURCE, HEIGHT, WIDTH, scenario)
    idx = demo.dense_indices(5.0)
    proj = Project.create(root / "pipe.vpsproj")
    video = proj.create_video("v", [f"{i:05d}" for i in range(len(idx))], HEIGHT, WIDTH)
    for i, s in enumerate(idx):
        video.write_frame_image(i, demo.frames[s])
    gt = {i: demo.labels[s] for i, s in enumerate(idx)}
    write_shuffled_keyframes(video, {k: gt[k] for k in video.keyframes}, demo.tracks, seed=seed)
    video.save()
    video.close()
    return proj.path, gt, demo.tracks


@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)
    path, gt, cats = make_project(tmp_path)
    ref = tmp_path / "ref.vpsproj"
    shutil.copytree(path, ref)  # the same inputs, for the engines run headless (what the CLI does)
    w = MainWindow(Project.open(path))
    w.ref_path = ref
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.gt, w.gt_cats = gt, cats
    yield w
    w.job_runner.shutdown()


def wait_job(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.pipeline.jobs.busy, timeout=timeout)


def test_associate_propagate_flags_heatmap(qtbot, window):
    w, c = window, window.controller
    v = c.video
    assert v.keyframes == [0, 5, 10]
    ids_before = {k: set(v.frame_tracks(k)) for k in v.keyframes}
    assert not (ids_before[0] & ids_before[5])  # shuffled: fresh ids on every keyframe
    w.canvas.setFocus()
    qtbot.keyClick(w.canvas, Qt.Key_A, Qt.ControlModifier | Qt.ShiftModifier)  # Associate keyframes
    assert w.pipeline.jobs.busy
    wait_job(qtbot, w)
    res = w.pipeline.last_association
    assert res is not None and res.keyframes == [0, 5, 10]
    # the window's run gives exactly what the engine gives headless on the same project
    from annotator.stages.association import associate_video
    from propagation.factory import association_propagator

    ref = Project.open(w.ref_path).open_video("v")
    ref_res = associate_video(ref, association_propagator())
    assert len(res.flags) == len(ref_res.flags) and res.new_tracks == ref_res.new_tracks
    for k in v.keyframes:
        assert (v.read_label(k) == ref.read_label(k)).all()
    ref.close()
    assert len({t for k in v.keyframes for t in v.frame_tracks(k)}) < sum(len(s) for s in ids_before.values())
    assert c.undo_stack.undo_entries[-1].name == "associate keyframes"
    # one Ctrl+Z undoes the whole run, Ctrl+Shift+Z runs it again
    associated = {k: v.read_label(k).copy() for k in v.keyframes}
    qtbot.keyClick(w.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert {k: set(v.frame_tracks(k)) for k in v.keyframes} == ids_before
    qtbot.keyClick(w.canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    for k in v.keyframes:
        assert (v.read_label(k) == associated[k]).all()
    assert w.pipeline.flags.assoc == [r for r in w.pipeline.flags.rows if r.source == "association"]

    # propagate the whole video (Ctrl+Shift+B); the timeline and the current frame refresh
    qtbot.keyClick(w.canvas, Qt.Key_B, Qt.ControlModifier | Qt.ShiftModifier)
    assert w.pipeline.jobs.busy
    wait_job(qtbot, w)
    states = [v.frame_state(i) for i in range(v.num_frames)]
    assert all(s == FrameState.PROPAGATED for i, s in enumerate(states) if i not in v.keyframes)
    assert w.timeline.states == states
    c.go_to(2)
    assert (c.session.label(2) == v.read_label(2)).all() and v.read_label(2).any()

    # heat-map overlay (Ctrl+H) shows the stored confidence of a propagated frame, nothing on a keyframe
    qtbot.keyClick(w.canvas, Qt.Key_H, Qt.ControlModifier)
    assert w.pipeline.heatmap.isVisible() and w.pipeline.heatmap.rgba is not None
    assert w.pipeline.heatmap.rgba.shape == (HEIGHT, WIDTH, 4)
    c.go_to(5)
    assert w.pipeline.heatmap.rgba is None

    # a flag click jumps to its frame and selects its track
    w.pipeline.compute_flags()
    wait_job(qtbot, w)
    rows = w.pipeline.flags.rows
    assert rows, "review/propagation flags expected on a crossing scene"
    n = next(i for i, r in enumerate(rows) if r.track and r.frame != c.index)
    tree = w.pipeline.flags.tree
    item = w.pipeline.flags.item_of(n)
    tree.scrollToItem(item)
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, tree.visualItemRect(item).center())
    assert c.index == rows[n].frame and c.selected == rows[n].track


def test_edits_are_flushed_before_and_views_refreshed_after(qtbot, window):
    """EditSession contract: a pending stroke is on disk when propagation starts; the session cache
    is invalidated afterwards (the canvas shows the propagated labels, not a stale copy)."""
    from annotator.editing import Erase, Region

    w, c = window, window.controller
    v = c.video
    c.go_to(5)
    lab = c.session.label(5)
    tid = int(lab[lab > 0][0])
    mask = lab == tid
    assert c.apply(Erase(Region.from_mask(mask), name="erase one object"), "erase")
    assert 5 in c.session.dirty
    c.go_to(3)
    _ = c.session.label(3)  # cached: unlabelled before propagation
    w.pipeline.propagate("gap")  # frames 0..5 around frame 3
    wait_job(qtbot, w)
    assert not (v.read_label(5) == tid).any()  # the stroke reached the disk before propagation
    assert (c.session.label(3) == v.read_label(3)).all() and v.read_label(3).any()
    assert (w.canvas.label == v.read_label(3)).all()
    assert v.frame_state(8) == FrameState.UNLABELLED  # outside the gap


class _SlowCopy:
    """A propagator that holds each call until the test lets it go (no timing in the test)."""

    name = "slow-copy"

    def __init__(self) -> None:
        from propagation.base import CopyPropagator

        self.inner = CopyPropagator()
        self.started = threading.Event()
        self.release = threading.Event()

    def propagate(self, video, refs, targets, progress=None, cancel=None):
        self.started.set()
        while not self.release.wait(0.01):
            if cancel is not None and cancel.cancelled:
                from annotator.jobs import Cancelled

                raise Cancelled()
        return self.inner.propagate(video, refs, targets, progress=progress, cancel=cancel)


def test_event_loop_runs_while_propagating(qtbot, window, monkeypatch):
    from annotator.gui.pipeline import actions

    slow = _SlowCopy()
    monkeypatch.setattr(actions, "build_propagator", lambda settings: slow)
    w, c = window, window.controller
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    job = w.pipeline.propagate()
    assert job is not None
    qtbot.waitUntil(slow.started.is_set, timeout=20_000)
    start = len(ticks)
    qtbot.waitUntil(lambda: len(ticks) >= start + 5, timeout=20_000)  # the timer keeps firing
    assert job.running
    # a click on the timeline is handled while the worker is busy: the frame changes
    pos = w.timeline.rect().center()
    target = w.timeline.index_at(pos.x())
    qtbot.mouseClick(w.timeline, Qt.LeftButton, Qt.NoModifier, pos)
    assert c.index == target and w.timeline.current == target
    # drawing is refused while the job writes labels
    from tests.gui_helpers_workspace import click

    before = c.session.label(c.index).copy()
    click(qtbot, w, 30, 30)
    assert "is running" in w.status.message.text()
    assert (c.session.label(c.index) == before).all()
    assert job.running
    slow.release.set()
    wait_job(qtbot, w)
    timer.stop()
    assert job.status == "done"
    assert c.video.frame_state(2) == FrameState.PROPAGATED


def test_cancel_keeps_window_usable(qtbot, window, monkeypatch):
    from annotator.gui.pipeline import actions

    slow = _SlowCopy()
    monkeypatch.setattr(actions, "build_propagator", lambda settings: slow)
    w = window
    job = w.pipeline.propagate()
    qtbot.waitUntil(slow.started.is_set, timeout=20_000)
    assert not w.shortcuts.actions["undo"].isEnabled()
    job.cancel()
    wait_job(qtbot, w)
    assert job.status == "cancelled"
    assert w.shortcuts.actions["undo"].isEnabled()
    assert w.pipeline.propagate() is not None  # a new job can start
    slow.release.set()
    wait_job(qtbot, w)


def test_closing_the_window_stops_a_running_job_first(qtbot, window, monkeypatch):
    """The window closes the video only after the job writing it was cancelled and ended."""
    from annotator.gui.pipeline import actions

    slow = _SlowCopy()
    monkeypatch.setattr(actions, "build_propagator", lambda settings: slow)
    w = window
    job = w.pipeline.propagate()
    qtbot.waitUntil(slow.started.is_set, timeout=20_000)
    path = w.project.path
    w.close()
    assert job.status == "cancelled" and not w.pipeline.jobs.busy
    assert w.controller.video is None
    with Project.open(path).open_video("v") as again:  # the lock was released, the video is whole
        assert not again.readonly
        assert all(again.frame_state(i) in (FrameState.PROPAGATED, FrameState.UNLABELLED, FrameState.MANUAL)
                   for i in range(again.num_frames))


def test_associate_from_current_keyframe_and_propagate_a_range(qtbot, window, monkeypatch):
    from annotator.gui.pipeline import actions
    from propagation.base import CopyPropagator

    w, c = window, window.controller
    v = c.video
    first = v.read_label(0).copy()
    c.go_to(7)  # inside the gap 5..10: "from the current keyframe" starts at keyframe 5
    w.pipeline.actions["associate_from"].trigger()
    wait_job(qtbot, w)
    res = w.pipeline.last_association
    assert res.keyframes == [5, 10]
    assert (v.read_label(0) == first).all()  # keyframes before the start are trusted as they are
    assert set(v.frame_tracks(0)) & set(v.frame_tracks(5))  # ...and the later ones follow them
    monkeypatch.setattr(actions, "build_propagator", lambda settings: CopyPropagator())

    def answer(dlg):  # the range dialog, answered as a person would: frames 7 to 9 (1-based)
        dlg.first.setValue(7)
        dlg.last.setValue(9)
        return True

    monkeypatch.setattr(actions.RangeDialog, "exec_", answer)
    w.pipeline.actions["propagate_range"].trigger()
    wait_job(qtbot, w)
    states = [v.frame_state(i) for i in range(v.num_frames)]
    assert [i for i, s in enumerate(states) if s == FrameState.PROPAGATED] == [6, 7, 8]
