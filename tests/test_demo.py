"""The synthetic demo generator: determinism, exact ground truth, and the scripted hard cases."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.project import FrameState, Project
from annotator.taxonomy import vipseg_taxonomy
from resources.demo import (
    SCENARIOS,
    STUFF_TRACKS,
    DemoScene,
    generate_demo_video,
    write_demo_project,
    write_demo_source,
)


def _area(demo, tid: int) -> np.ndarray:
    return np.array([(lab == tid).sum() for lab in demo.labels])


def _centroid_x(lab: np.ndarray, tid: int) -> float:
    return float(np.nonzero(lab == tid)[1].mean())


def _track_of(demo, category: int) -> list[int]:
    return [t for t, c in sorted(demo.tracks.items()) if c == category and t >= 5]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_frames_and_labels_are_consistent(scenario):
    demo = generate_demo_video(seed=3, num_frames=20, height=90, width=160, scenario=scenario)
    tax = vipseg_taxonomy()
    assert demo.num_frames == 20 and demo.fps == 25.0
    assert len(demo.frames) == len(demo.labels) == 20
    for img, lab in zip(demo.frames, demo.labels, strict=True):
        assert img.shape == (90, 160, 3) and img.dtype == np.uint8
        assert lab.shape == (90, 160) and lab.dtype == np.uint16
        assert lab.min() >= 1, "no void pixels in the demo"
        assert set(np.unique(lab).tolist()) <= set(demo.tracks)
    for tid, cat in demo.tracks.items():
        assert cat in tax
        assert tax.get(cat).isthing == (tid >= 5), (tid, cat)
    for tid, cat in STUFF_TRACKS.items():
        assert demo.tracks[tid] == cat


def test_deterministic_per_seed():
    a = generate_demo_video(seed=7, num_frames=6, height=48, width=64)
    b = generate_demo_video(seed=7, num_frames=6, height=48, width=64)
    c = generate_demo_video(seed=8, num_frames=6, height=48, width=64)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a.labels, b.labels, strict=True))
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_regions_are_textured_and_distinct():
    demo = generate_demo_video(seed=0, num_frames=1, height=180, width=320, noise=0.0)
    img, lab = demo.frames[0].astype(np.float32), demo.labels[0]
    means = []
    for tid in STUFF_TRACKS:
        pixels = img[lab == tid]
        assert len(pixels) > 500
        assert pixels.std(axis=0).mean() > 8.0, f"stuff region {tid} has no texture for flow"
        means.append(pixels.mean(axis=0))
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            assert np.abs(means[i] - means[j]).max() > 15.0


def test_occlusion_hides_the_person_completely_then_reveals_it():
    demo = generate_demo_video(seed=0, num_frames=50, scenario="occlusion")
    (person,) = _track_of(demo, 60)
    area = _area(demo, person)
    assert area[0] > 0 and area[-1] > 0
    hidden = np.nonzero(area == 0)[0]
    assert len(hidden) >= 5 and hidden[0] > 0 and hidden[-1] < 49


def test_crossing_swaps_order_and_overlaps():
    demo = generate_demo_video(seed=0, num_frames=50, scenario="crossing")
    p1, p2 = _track_of(demo, 60)
    first, last = demo.labels[0], demo.labels[-1]
    assert _centroid_x(first, p1) < _centroid_x(first, p2)
    assert _centroid_x(last, p1) > _centroid_x(last, p2)
    area = _area(demo, p1)
    assert area.min() < 0.8 * np.median(area), "the rear person is partly occluded while they cross"


def test_enter_and_leave():
    demo = generate_demo_video(seed=0, num_frames=50, scenario="enter_leave")
    dog = _track_of(demo, 62)[0]
    person_leaving = _track_of(demo, 60)[0]
    dog_area, person_area = _area(demo, dog), _area(demo, person_leaving)
    assert dog_area[0] == 0 and dog_area[-1] > 0
    assert person_area[0] > 0 and person_area[-1] == 0
    late = _track_of(demo, 60)[1]
    assert _area(demo, late)[0] == 0 and _area(demo, late)[-1] > 0  # appears mid-clip


def test_mixed_has_scale_change_and_every_track_present():
    demo = generate_demo_video(seed=0, num_frames=50, scenario="mixed")
    grower = _track_of(demo, 60)[1]
    area = _area(demo, grower)
    assert area[-1] > 2.5 * area[0]
    assert len([t for t in demo.tracks if t >= 5]) == 4


def test_sizes_are_configurable_and_render_is_streamable():
    scene = DemoScene(seed=1, num_frames=3000, height=720, width=1280, scenario="mixed", pan=0.1)
    img, lab = scene.render(2999)
    assert img.shape == (720, 1280, 3) and lab.shape == (720, 1280)
    with pytest.raises(IndexError):
        scene.render(3000)
    demo = generate_demo_video(num_frames=4, height=24, width=32)
    assert demo.frames[0].shape == (24, 32, 3)


def test_unknown_scenario():
    with pytest.raises(ValueError, match="unknown demo scenario"):
        generate_demo_video(scenario="nope")


def test_dense_indices():
    assert generate_demo_video(num_frames=12, height=24, width=32, fps=30).dense_indices(5) == [0, 6]
    assert generate_demo_video(num_frames=11, height=24, width=32).dense_indices(5) == [0, 5, 10]


def test_ground_truth_project(tmp_path):
    path = write_demo_project(tmp_path / "gt.vpsproj", seed=2, scenarios=("mixed", "occlusion"),
                              num_frames=21, height=60, width=96)
    demo = generate_demo_video(seed=2, num_frames=21, height=60, width=96, scenario="mixed")
    proj = Project.open(path)
    assert proj.video_ids == ["demo_mixed", "demo_occlusion"]
    with proj.open_video("demo_mixed", readonly=True) as video:
        assert video.num_frames == 5 and video.keyframes == [0]
        assert video.source.source_indices == [0, 5, 10, 15, 20]
        assert {t: tr.category_id for t, tr in video.tracks.items()} == demo.tracks
        for i, s in enumerate(video.source.source_indices):
            assert video.frame_state(i) == FrameState.REVIEWED
            assert np.array_equal(video.read_label(i), demo.labels[s])
            assert np.abs(video.read_frame(i).astype(int) - demo.frames[s]).mean() < 8
        between = video.read_source_frames(1, 2)  # source frames 5..10 from the lossless PNG folder
        assert len(between) == 6
        for k in range(1, 5):
            assert np.array_equal(between[k], demo.frames[5 + k])


def test_write_source_mp4(tmp_path):
    import cv2

    demo = generate_demo_video(num_frames=8, height=48, width=64)
    path = write_demo_source(demo, tmp_path / "clip.mp4", "mp4")
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    cap.release()
