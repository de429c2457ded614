"""Correction operations of the sparse tracking loop: exact effect on every frame, and exact undo."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.cli import main as cli_main
from annotator.errors import InputError, ProjectError
from annotator.project import FrameState, Project, Video
from annotator.stages import corrections
from annotator.stages.association import apply_correction, associate_video, stored_flags
from propagation.base import CopyPropagator

H, W, N = 24, 40, 10
PERSON, CAR, SKY, ROAD = 60, 48, 28, 18


def _scene(t: int) -> np.ndarray:
    """Two persons (1, 2) walking towards each other, a car (3), sky (4) / road (5) stuff."""
    lab = np.full((H, W), 4, np.uint16)
    lab[H // 2:] = 5
    lab[8:14, 2 + 2 * t:6 + 2 * t] = 1
    lab[9:15, 32 - 2 * t:36 - 2 * t] = 2
    lab[18:22, 10:18] = 3
    if t in (4, 5):
        lab[18:22, 10:18] = 5  # the car is absent on frames 4 and 5
    return lab


@pytest.fixture
def video(tmp_path) -> Video:
    proj = Project.create(tmp_path / "c.vpsproj")
    v = proj.create_video("v", [f"f{i:03d}" for i in range(N)], H, W, keyframes=[0, 3, 6, 9])
    for tid, cat in ((1, PERSON), (2, PERSON), (3, CAR), (4, SKY), (5, ROAD)):
        v.add_track(tid, cat)
    for i in range(N):
        state = FrameState.MANUAL if v.is_keyframe(i) else FrameState.PROPAGATED
        v.write_label(i, _scene(i), state=state)
    v.set_frame_state(7, FrameState.REFINED)
    yield v
    v.close()


def _snapshot(v: Video) -> dict:
    return {"labels": [v.read_label(i) for i in range(v.num_frames)],
            "states": [v.frame_state(i) for i in range(v.num_frames)],
            "prov": [v.provenance(i) for i in range(v.num_frames)],
            "tracks": dict(v.tracks)}


def _assert_same(v: Video, snap: dict) -> None:
    now = _snapshot(v)
    for i in range(v.num_frames):
        np.testing.assert_array_equal(now["labels"][i], snap["labels"][i], err_msg=f"frame {i}")
    assert now["states"] == snap["states"]
    assert now["prov"] == snap["prov"]
    assert now["tracks"] == snap["tracks"]


def _expect_frames(v: Video, expected: dict[int, np.ndarray]) -> None:
    for i in range(v.num_frames):
        np.testing.assert_array_equal(v.read_label(i), expected[i], err_msg=f"frame {i}")


def _remap(lab: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = lab.copy()
    for a, b in mapping.items():
        out[lab == a] = b
    return out


def test_reassign_from_frame_and_undo(video):
    before = _snapshot(video)
    res = corrections.reassign(video, 1, 2, from_frame=4)
    assert res.frames == [4, 5, 6, 7, 8, 9] and res.undo_id
    _expect_frames(video, {i: _scene(i) if i < 4 else _remap(_scene(i), {1: 2}) for i in range(N)})
    assert video.track_frames(1) == [0, 1, 2, 3]
    assert video.track_frames(2) == list(range(N))
    assert video.frame_state(7) == FrameState.REFINED  # states are not touched
    assert video.provenance(4)[2] == FrameState.PROPAGATED
    event = video.log[-1]
    assert event["kind"] == "correction" and event["op"] == "reassign" and event["undo"] == res.undo_id
    corrections.undo_last(video)
    _assert_same(video, before)
    assert video.log[-1]["kind"] == "undo"
    with pytest.raises(ProjectError, match="nothing to undo"):
        corrections.undo_last(video)


def test_reassign_to_new_track_and_undo(video):
    before = _snapshot(video)
    res = corrections.reassign(video, 3, None, from_frame=6)
    new = res.new_track
    assert new is not None and new not in before["tracks"]
    assert video.tracks[new].category_id == CAR
    _expect_frames(video, {i: _scene(i) if i < 6 else _remap(_scene(i), {3: new}) for i in range(N)})
    assert video.track_frames(new) == [6, 7, 8, 9]
    corrections.undo_last(video)
    _assert_same(video, before)
    assert new not in video.tracks
    assert video.new_track(CAR).id > new  # the id stays retired


def test_swap_from_frame_and_undo(video):
    before = _snapshot(video)
    res = corrections.swap(video, 1, 2, from_frame=5)
    assert res.frames == [5, 6, 7, 8, 9]
    _expect_frames(video, {i: _scene(i) if i < 5 else _remap(_scene(i), {1: 2, 2: 1}) for i in range(N)})
    corrections.undo_last(video, res.undo_id)
    _assert_same(video, before)


def test_merge_and_undo(video):
    before = _snapshot(video)
    res = corrections.merge(video, 1, 2)
    assert res.frames == list(range(N))
    assert 2 not in video.tracks
    _expect_frames(video, {i: _remap(_scene(i), {2: 1}) for i in range(N)})
    corrections.undo_last(video)
    _assert_same(video, before)


def test_split_and_undo(video):
    before = _snapshot(video)
    res = corrections.split(video, 2, at_frame=3)
    new = res.new_track
    assert video.tracks[new].category_id == PERSON
    _expect_frames(video, {i: _scene(i) if i < 3 else _remap(_scene(i), {2: new}) for i in range(N)})
    assert video.track_frames(2) == [0, 1, 2]
    corrections.undo_last(video)
    _assert_same(video, before)


def test_set_class_and_undo(video):
    before = _snapshot(video)
    res = corrections.set_class(video, 3, 49)  # car -> bus
    assert res.frames == [] and video.tracks[3].category_id == 49
    _expect_frames(video, {i: _scene(i) for i in range(N)})
    corrections.undo_last(video)
    _assert_same(video, before)


def test_delete_and_undo_keeps_id(video):
    before = _snapshot(video)
    res = corrections.delete(video, 3)
    assert 3 not in video.tracks
    assert res.frames == [0, 1, 2, 3, 6, 7, 8, 9]
    _expect_frames(video, {i: _remap(_scene(i), {3: 0}) for i in range(N)})
    assert all(3 not in video.provenance(i) for i in range(N))
    corrections.undo_last(video)
    _assert_same(video, before)
    assert video.tracks[3].category_id == CAR


def test_delete_clears_extra_layers_and_undo(video):
    video.write_label(2, _scene(2), layer="draft")
    before = _snapshot(video)
    corrections.delete(video, 1)
    assert not (video.read_label(2, "draft") == 1).any()
    corrections.undo_last(video)
    _assert_same(video, before)
    np.testing.assert_array_equal(video.read_label(2, "draft"), _scene(2))


def test_undo_survives_reopen_and_is_lifo(tmp_path, video):
    before = _snapshot(video)
    r1 = corrections.swap(video, 1, 2, from_frame=2)
    mid = _snapshot(video)
    r2 = corrections.split(video, 3, at_frame=7)
    proj, vid = video.project, video.id
    video.close()
    with proj.open_video(vid) as v2:
        with pytest.raises(ProjectError, match="not the latest"):
            corrections.undo_last(v2, r1.undo_id)
        assert [e["undo"] for e in corrections.undo_stack(v2)] == [r1.undo_id, r2.undo_id]
        corrections.undo_last(v2)
        _assert_same(v2, mid)
        corrections.undo_last(v2)
        _assert_same(v2, before)


def test_undo_refuses_after_later_edit(video):
    corrections.swap(video, 1, 2, from_frame=0)
    lab = video.read_label(5)
    lab[0:2, 0:2] = 2  # the annotator paints over a region the swap wrote
    lab[lab == 1] = 4
    video.write_label(5, lab)
    with pytest.raises(ProjectError, match="edited since"):
        corrections.undo_last(video)


@pytest.mark.parametrize("call, message", [
    (lambda v: corrections.swap(v, 1, 3), "change the class first"),
    (lambda v: corrections.merge(v, 1, 1), "itself"),
    (lambda v: corrections.reassign(v, 99, 1), "no track 99"),
    (lambda v: corrections.split(v, 1, at_frame=0), "nothing would remain"),
    (lambda v: corrections.split(v, 1, at_frame=50), "out of range"),
    (lambda v: corrections.set_class(v, 1, 9999), "unknown category"),
    (lambda v: apply_correction(v, "explode", track=1), "unknown correction"),
    (lambda v: apply_correction(v, "swap", track=1), "bad parameters"),
])
def test_bad_corrections_are_refused_without_changes(video, call, message):
    before = _snapshot(video)
    with pytest.raises(InputError, match=message):
        call(video)
    _assert_same(video, before)
    assert corrections.undo_stack(video) == []


def _slow_scene(t: int) -> np.ndarray:
    """Two persons 8 px wide moving 1 px a frame (copy propagation still overlaps), sky / road."""
    lab = np.full((H, W), 4, np.uint16)
    lab[H // 2:] = 5
    lab[4:10, 2 + t:10 + t] = 1
    lab[12:20, 28 - t:36 - t] = 2
    return lab


def test_correction_reassociates_later_keyframes_as_one_undo_step(tmp_path):
    """The paper's loop: a keyframe drawn after the first run follows the corrected identities."""
    proj = Project.create(tmp_path / "r.vpsproj")
    with proj.create_video("v", [f"f{i:03d}" for i in range(N)], H, W, keyframes=[0, 3, 6, 9]) as v:
        for tid, cat in ((1, PERSON), (2, PERSON), (4, SKY), (5, ROAD)):
            v.add_track(tid, cat)
        for k in (0, 3, 6):
            v.write_label(k, _slow_scene(k), state=FrameState.MANUAL)
        assoc = associate_video(v, CopyPropagator())
        assert assoc.undo_id is None and not assoc.new_tracks and assoc.skipped == [9]  # ids were right
        # keyframe 9 drawn later, identity-free: provisional tracks 6..9
        prov = {t: v.new_track(v.tracks[t].category_id).id for t in (1, 2, 4, 5)}
        v.write_label(9, _remap(_slow_scene(9), prov), state=FrameState.MANUAL)
        before = _snapshot(v)
        res, re = apply_correction(v, "swap", propagator=CopyPropagator(), track_a=1, track_b=2, from_frame=3)
        assert re is not None and re.keyframes == [3, 6, 9]
        assert res.frames == [3, 6, 9]
        np.testing.assert_array_equal(v.read_label(0), _slow_scene(0))
        for k in (3, 6, 9):  # keyframe 9 follows the corrected keyframes
            np.testing.assert_array_equal(v.read_label(k), _remap(_slow_scene(k), {1: 2, 2: 1}), err_msg=str(k))
        assert sorted(v.tracks) == [1, 2, 4, 5]  # provisional tracks merged away
        event = v.log[-1]
        assert event["kind"] == "correction" and event["reassociated_from"] == 3 and event["undo"] == res.undo_id
        corrections.undo_last(v)  # one step: correction + re-association
        _assert_same(v, before)
        assert corrections.undo_stack(v) == []


def test_cli_correct_and_undo(tmp_path, video, capsys):
    proj_path, vid = str(video.project.path), video.id
    before = _snapshot(video)
    video.close()
    assert cli_main(["correct", proj_path, "--video", vid, "--no-reassociate", "swap", "1", "2", "--from", "4"]) == 0
    assert "swap: changed 6 frames" in capsys.readouterr().out
    assert cli_main(["correct", proj_path, "--video", vid, "set-class", "3", "bus"]) == 0
    assert cli_main(["correct", proj_path, "--video", vid, "history"]) == 0
    assert "2 steps can be undone" in capsys.readouterr().out
    assert cli_main(["correct", proj_path, "--video", vid, "merge", "1", "3"]) == 2
    assert "change the class first" in capsys.readouterr().err
    assert cli_main(["correct", proj_path, "--video", vid, "undo"]) == 0
    assert cli_main(["correct", proj_path, "--video", vid, "undo"]) == 0
    assert cli_main(["correct", proj_path, "--video", vid, "undo"]) == 2
    with Project.open(proj_path).open_video(vid) as v:
        _assert_same(v, before)


# ----------------------------------------------------------------- confirmed keyframes: fixed anchors
def _slow_video(tmp_path, name: str = "f") -> Video:
    """Keyframes 0, 3, 6, 9 drawn with the right ids: association changes nothing on its own."""
    proj = Project.create(tmp_path / f"{name}.vpsproj")
    v = proj.create_video("v", [f"f{i:03d}" for i in range(N)], H, W, keyframes=[0, 3, 6, 9])
    for tid, cat in ((1, PERSON), (2, PERSON), (4, SKY), (5, ROAD)):
        v.add_track(tid, cat)
    for k in (0, 3, 6, 9):
        v.write_label(k, _slow_scene(k), state=FrameState.MANUAL)
    return v


def test_corrected_keyframe_survives_a_full_reassociation_bit_for_bit(tmp_path):
    v = _slow_video(tmp_path)
    assert associate_video(v, CopyPropagator()).undo_id is None  # the drawn ids are what association finds
    original = _snapshot(v)
    # the annotator decides the two persons are the other way round from keyframe 3 on
    res, re = apply_correction(v, "swap", propagator=CopyPropagator(), track_a=1, track_b=2, from_frame=3)
    assert res.confirmed == [3] and corrections.confirmed_keyframes(v) == {3}
    assert re is not None and re.fixed == [3] and v.log[-1]["confirmed"] == [3]
    corrected = _snapshot(v)
    for k in (3, 6, 9):
        np.testing.assert_array_equal(v.read_label(k), _remap(_slow_scene(k), {1: 2, 2: 1}), err_msg=str(k))
    # a later full run from keyframe 0 keeps keyframe 3 as it is and the later ones follow it
    full = associate_video(v, CopyPropagator())
    _assert_same(v, corrected)
    assert full.fixed == [3] and full.undo_id is None and not full.new_tracks
    fixed = [m for m in full.matches if m.keyframe == 3 and m.kind == "fixed"]
    assert {m.track for m in fixed} == {1, 2, 4, 5} and all(m.track == m.segment for m in fixed)
    disputed = {(f.track, f.frame) for f in full.flags if f.kind == "disputed"}
    assert disputed == {(1, 3), (2, 3)}  # carried 1 would have taken 2's segment and vice versa
    assert stored_flags(v) == full.flags
    assert not any(f.kind == "disputed" for f in full.flags if f.frame != 3)
    # without the confirmation the same run re-derives the original ids: the anchor is what keeps them
    un, _ = apply_correction(v, "unconfirm", frame=3)
    assert un.unconfirmed == [3] and corrections.confirmed_keyframes(v) == set()
    redo = associate_video(v, CopyPropagator())
    assert redo.fixed == [] and redo.undo_id is not None
    for k in (0, 3, 6, 9):
        np.testing.assert_array_equal(v.read_label(k), _slow_scene(k), err_msg=str(k))
    corrections.undo_last(v)  # the re-derivation
    corrections.undo_last(v)  # the unconfirm
    _assert_same(v, corrected)
    assert corrections.confirmed_keyframes(v) == {3}
    corrections.undo_last(v)  # the swap and its confirmation, one step
    _assert_same(v, original)
    assert corrections.confirmed_keyframes(v) == set()
    v.close()


def test_confirmed_set_is_durable_and_merge_split_confirm_their_first_keyframe(tmp_path):
    v = _slow_video(tmp_path)
    split = corrections.split(v, 2, at_frame=5)
    assert split.confirmed == [6]  # the first keyframe it rewrote, not the dense frame 5
    merge = corrections.merge(v, 2, split.new_track)
    assert merge.confirmed == []  # keyframe 6 is confirmed already: nothing new
    proj, vid = v.project, v.id
    v.close()
    with proj.open_video(vid) as v2:
        assert corrections.confirmed_keyframes(v2) == {6}
        corrections.undo_last(v2)
        assert corrections.confirmed_keyframes(v2) == {6}  # the split still confirms it
        corrections.undo_last(v2)
        assert corrections.confirmed_keyframes(v2) == set()
        assert corrections.swap(v2, 1, 2, from_frame=1).confirmed == [3]
        assert corrections.set_class(v2, 1, 49).confirmed == []  # no identity decision on a keyframe
        assert corrections.delete(v2, 4).confirmed == []


def test_explicit_confirm_keeps_drawn_ids_and_later_keyframes_follow(tmp_path):
    v = _slow_video(tmp_path)
    # keyframe 6 redrawn identity-free: provisional tracks; the annotator confirms it as it is
    prov = {t: v.new_track(v.tracks[t].category_id).id for t in (1, 2, 4, 5)}
    drawn6 = _remap(_slow_scene(6), prov)
    v.write_label(6, drawn6, state=FrameState.MANUAL)
    v.write_label(9, _remap(_slow_scene(9), {1: 2, 2: 1}), state=FrameState.MANUAL)  # wrong ids on 9
    before = _snapshot(v)
    res, re = apply_correction(v, "confirm", propagator=CopyPropagator(), frame=6)
    assert res.confirmed == [6] and res.frames == [9] and re is not None and re.keyframes == [6, 9]
    np.testing.assert_array_equal(v.read_label(6), drawn6)  # never relabelled
    # the persons follow the anchor; stuff stays one track per class per video (and 6's is disputed)
    np.testing.assert_array_equal(v.read_label(9), _remap(_slow_scene(9), {1: prov[1], 2: prov[2]}))
    disputed = {(f.frame, f.track) for f in re.flags if f.kind == "disputed"}
    assert disputed == {(6, prov[t]) for t in (1, 2, 4, 5)}
    full = associate_video(v, CopyPropagator())
    assert full.undo_id is None and full.fixed == [6]
    np.testing.assert_array_equal(v.read_label(6), drawn6)
    with pytest.raises(InputError, match="already confirmed"):
        corrections.confirm(v, 6)
    with pytest.raises(InputError, match="not a keyframe"):
        corrections.confirm(v, 5)
    with pytest.raises(InputError, match="not confirmed"):
        corrections.unconfirm(v, 3)
    corrections.undo_last(v)
    _assert_same(v, before)
    assert corrections.confirmed_keyframes(v) == set()
    v.close()


def test_cli_confirm_unconfirm_history_and_undo(tmp_path, capsys):
    v = _slow_video(tmp_path, "cli")
    proj_path, vid = str(v.project.path), v.id
    before = _snapshot(v)
    v.close()
    base = ["correct", proj_path, "--video", vid]
    assert cli_main(base + ["--propagator", "copy", "confirm", "--frame", "3"]) == 0
    assert "confirmed keyframe 3" in capsys.readouterr().out
    assert cli_main(base + ["confirm", "--frame", "3"]) == 2
    assert "already confirmed" in capsys.readouterr().err
    assert cli_main(base + ["history"]) == 0
    assert "confirmed keyframes: 3" in capsys.readouterr().out
    assert cli_main(["associate", proj_path, "--video", vid, "--propagator", "copy", "--quiet"]) == 0
    assert "kept fixed (confirmed): 3" in capsys.readouterr().out
    assert cli_main(base + ["unconfirm", "--frame", "3"]) == 0
    assert "unconfirmed keyframe 3" in capsys.readouterr().out
    assert cli_main(base + ["history"]) == 0
    assert "confirmed keyframes: none" in capsys.readouterr().out
    assert cli_main(base + ["undo"]) == 0
    with Project.open(proj_path).open_video(vid) as v2:
        assert corrections.confirmed_keyframes(v2) == {3}
    assert cli_main(base + ["undo"]) == 0
    with Project.open(proj_path).open_video(vid) as v2:
        assert corrections.confirmed_keyframes(v2) == set()
        _assert_same(v2, before)


def test_reassociate_from_after_a_manual_fix_confirms_it_in_the_same_undo_step(tmp_path):
    from annotator.stages.association import reassociate_from

    v = _slow_video(tmp_path, "m")
    v.write_label(3, _remap(_slow_scene(3), {1: 2, 2: 1}))  # fixed with the drawing tools, not a correction
    drawn = _snapshot(v)
    res = reassociate_from(v, 2, CopyPropagator())  # frame 2: the first keyframe at or after it is 3
    assert res.fixed == [3] and res.keyframes == [3, 6, 9] and res.undo_id is not None
    assert corrections.confirmed_keyframes(v) == {3} and v.log[-1]["confirmed"] == [3]
    for k in (3, 6, 9):
        np.testing.assert_array_equal(v.read_label(k), _remap(_slow_scene(k), {1: 2, 2: 1}), err_msg=str(k))
    corrections.undo_last(v)
    _assert_same(v, drawn)
    assert corrections.confirmed_keyframes(v) == set()
    v.close()
