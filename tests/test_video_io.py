"""Video import: sampling from 30/25/24 fps sources, resize, source reader, bad inputs, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.cli import main as cli_main
from annotator.errors import InputError, ProjectError
from annotator.jobs import Cancelled, CancelToken
from annotator.project import (
    FrameCache,
    Project,
    SourceInfo,
    SourceReader,
    dense_size,
    dense_source_indices,
    import_source,
    natural_key,
    probe_source,
)
from resources.demo import generate_demo_video, write_demo_source

EXPECTED_5FPS = {
    30: [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60],
    25: [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60],
    24: [0, 5, 10, 14, 19, 24, 29, 34, 38, 43, 48, 53, 58],
}
EXPECTED_1FPS = {30: [0, 30, 60], 25: [0, 25, 50], 24: [0, 24, 48]}


@pytest.fixture(scope="module")
def clips():
    """61 source frames (about 2.5 s) at each frame rate; small so import is fast."""
    return {fps: generate_demo_video(seed=fps, num_frames=61, height=72, width=128, fps=fps)
            for fps in (30, 25, 24)}


def _nothing_written(proj: Project) -> bool:
    return not any(proj.videos_dir.iterdir())


@pytest.mark.parametrize("fps", [30, 25, 24])
def test_sampling_rule(fps):
    assert dense_source_indices(61, fps, 5) == EXPECTED_5FPS[fps]
    assert dense_source_indices(61, fps, 1) == EXPECTED_1FPS[fps]
    assert dense_source_indices(3, 2, 5) == [0, 1, 2]  # slower than dense: keep everything
    assert dense_source_indices(0, 25, 5) == []


@pytest.mark.parametrize("fps", [30, 25, 24])
@pytest.mark.parametrize("kind", ["mp4", "folder"])
def test_import_samples_5fps_with_1fps_keyframes(tmp_path, clips, fps, kind):
    demo = clips[fps]
    src = write_demo_source(demo, tmp_path / f"clip_{fps}", kind)
    proj = Project.create(tmp_path / "p.vpsproj")
    seen = []
    vid = import_source(proj, src, source_fps=fps if kind == "folder" else None,
                        progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (len(EXPECTED_5FPS[fps]), len(EXPECTED_5FPS[fps]))
    assert proj.video_ids == [vid]
    with proj.open_video(vid) as video:
        expected = EXPECTED_5FPS[fps]
        assert video.num_frames == len(expected)
        assert video.source.source_indices == expected
        assert video.source.kind == ("folder" if kind == "folder" else "video")
        assert video.source.fps == pytest.approx(fps)
        assert video.source.num_source_frames == 61
        assert video.source.original_size == (72, 128)
        assert video.dense_fps == 5.0
        assert video.keyframes == [0, 5, 10]  # 1 fps
        assert (video.height, video.width) == (72, 128)
        for i in (0, 4, len(expected) - 1):  # the right source frame landed at each dense index
            frame = video.read_frame(i).astype(int)
            err = np.abs(frame - demo.frames[expected[i]]).mean()
            wrong = np.abs(frame - demo.frames[expected[i] + (1 if i == 0 else -1)]).mean()
            assert err < 10 and err < wrong
        between = video.read_source_frames(1, 2)
        assert len(between) == expected[2] - expected[1] + 1


@pytest.mark.parametrize("fps", [30, 25, 24])
def test_import_1fps(tmp_path, clips, fps):
    src = write_demo_source(clips[fps], tmp_path / "clip.mp4", "mp4")
    proj = Project.create(tmp_path / "p.vpsproj")
    vid = import_source(proj, src, video_id="one", dense_fps=1, key_every=1)
    with proj.open_video(vid) as video:
        assert vid == "one"
        assert video.source.source_indices == EXPECTED_1FPS[fps]
        assert video.dense_fps == 1.0
        assert video.keyframes == [0, 1, 2]


def test_resize_keeps_original_size(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip", "folder")
    proj = Project.create(tmp_path / "p.vpsproj")
    vid = import_source(proj, src, resize_height=36, source_fps=25)
    with proj.open_video(vid) as video:
        assert (video.height, video.width) == (36, 64)
        assert video.source.original_size == (72, 128)
        assert video.read_frame(0).shape == (36, 64, 3)
        assert all(f.shape == (36, 64, 3) for f in video.read_source_frames(0, 1))
    assert dense_size(1080, 1920, 720) == (720, 1280)
    assert dense_size(480, 640, 720) == (480, 640)  # never upscaled
    assert dense_size(1080, 1920, None) == (1080, 1920)


def test_folder_natural_sort_and_default_rate(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for n in (1, 2, 10, 3):
        img = np.full((16, 16, 3), n * 20, np.uint8)
        cv2.imwrite(str(folder / f"f{n}.png"), img)
    (folder / "notes.txt").write_text("ignored")
    assert [f for f in sorted(["f10.png", "f2.png", "f1.png"], key=natural_key)] == ["f1.png", "f2.png", "f10.png"]
    proj = Project.create(tmp_path / "p.vpsproj")
    vid = import_source(proj, folder)  # no fps: every image is a dense frame
    with proj.open_video(vid) as video:
        assert video.frame_names == ["f1", "f2", "f3", "f10"]
        assert [int(video.read_frame(i)[0, 0, 0]) for i in range(4)] == [20, 40, 60, 200]


def test_source_reader_random_access_matches_sequential(tmp_path, clips):
    src = write_demo_source(clips[30], tmp_path / "clip.mp4", "mp4")
    info = probe_source(src)
    with SourceReader(info) as reader:
        seq = reader.read_range(0, 60)
        for i in (40, 7, 33, 34, 35, 60, 0, 52):
            assert np.array_equal(reader.read(i), seq[i])
        assert len(reader.read_range(10, 12)) == 3
        with pytest.raises(InputError, match="out of range"):
            reader.read(61)
    with SourceReader(info, size=(36, 64)) as reader:
        assert reader.read(5).shape == (36, 64, 3)
    with pytest.raises(InputError, match="gone"):
        SourceReader(SourceInfo(kind="video", path=str(tmp_path / "moved.mp4"), num_source_frames=3))


def test_missing_source_falls_back_to_dense(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip.mp4", "mp4")
    proj = Project.create(tmp_path / "p.vpsproj")
    vid = import_source(proj, src)
    src.unlink()
    with proj.open_video(vid) as video:
        assert len(video.read_source_frames(0, 2)) == 3


def test_missing_file(tmp_path):
    proj = Project.create(tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match="does not exist"):
        import_source(proj, tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="not a supported video"):
        (tmp_path / "a.txt").write_text("x")
        import_source(proj, tmp_path / "a.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        import_source(proj, tmp_path / "empty")
    assert _nothing_written(proj)


def test_corrupt_image_names_the_file_and_writes_nothing(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip", "folder")
    (src / "frame_30.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    proj = Project.create(tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match="frame_30.png"):
        import_source(proj, src, source_fps=25)
    assert _nothing_written(proj) and proj.video_ids == [] and proj.incomplete_video_ids == []


def test_mismatched_image_size_in_folder(tmp_path, clips):
    import cv2

    src = write_demo_source(clips[25], tmp_path / "clip", "folder")
    cv2.imwrite(str(src / "frame_10.png"), np.zeros((10, 10, 3), np.uint8))
    proj = Project.create(tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match="frame_10.png"):
        import_source(proj, src, source_fps=25)
    assert _nothing_written(proj)


def test_zero_frame_and_garbage_videos(tmp_path):
    import cv2

    proj = Project.create(tmp_path / "p.vpsproj")
    empty = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    writer.release()  # a container with no frames
    with pytest.raises(InputError, match=r"empty\.mp4"):
        import_source(proj, empty)
    zero = tmp_path / "zero.avi"
    zero.write_bytes(b"")
    with pytest.raises(InputError, match=r"zero\.avi"):
        import_source(proj, zero)
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"garbage\.mkv"):
        import_source(proj, garbage)
    assert _nothing_written(proj)


def test_cancel_leaves_nothing(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip.mp4", "mp4")
    proj = Project.create(tmp_path / "p.vpsproj")
    token = CancelToken()

    def progress(done, total, msg):
        if done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        import_source(proj, src, progress=progress, cancel=token)
    assert _nothing_written(proj)
    vid = import_source(proj, src)  # the same id is free again
    assert proj.video_ids == [vid]


def test_duplicate_video_id(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip.mp4", "mp4")
    proj = Project.create(tmp_path / "p.vpsproj")
    assert import_source(proj, src) == "clip"
    assert import_source(proj, src) == "clip_2"
    with pytest.raises(ProjectError, match="already exists"):
        import_source(proj, src, video_id="clip")
    assert proj.video_ids == ["clip", "clip_2"]


def test_frame_cache_is_bounded():
    cache = FrameCache(max_bytes=3 * 1000)
    calls = []

    def loader(k):
        def load():
            calls.append(k)
            return np.zeros(1000, np.uint8)
        return load

    for k in range(10):
        cache.get(k, loader(k))
    assert len(cache) == 3 and cache.nbytes == 3000
    cache.get(9, loader(9))
    assert calls.count(9) == 1 and cache.hits == 1
    cache.get(0, loader(0))
    assert calls.count(0) == 2
    assert not cache.get(0, loader(0)).flags.writeable


def test_cli_import_and_demo(tmp_path, clips, capsys):
    src = write_demo_source(clips[24], tmp_path / "clip.mp4", "mp4")
    proj_path = tmp_path / "cli.vpsproj"
    assert cli_main(["import", str(proj_path), str(src), "--video-id", "v1", "--fps", "1", "--key-every", "2",
                     "--no-resize"]) == 0
    assert "3 dense frames" in capsys.readouterr().out
    with Project.open(proj_path).open_video("v1") as video:
        assert video.source.source_indices == [0, 24, 48] and video.keyframes == [0, 2]
    assert cli_main(["import", str(proj_path), str(tmp_path / "missing.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "demo.vpsproj"
    assert cli_main(["demo", "--out", str(out), "--frames", "11", "--size", "64x48", "--scenarios",
                     "crossing,occlusion"]) == 0
    assert Project.open(out).video_ids == ["demo_crossing", "demo_occlusion"]
    assert cli_main(["demo", "--out", str(tmp_path / "x"), "--scenarios", "bogus"]) == 2


# ----------------------------------------------------------------- damaged sources (issue 18 item 7)
def test_intact_sources_give_no_note(tmp_path, clips):
    for kind in ("mp4", "avi"):
        src = write_demo_source(clips[25], tmp_path / f"ok_{kind}", kind)
        notes: list[str] = []
        import_source(Project.create(tmp_path / f"{kind}.vpsproj"), src, notes=notes)
        assert notes == []


def test_truncated_video_is_named_not_imported_short(tmp_path, clips):
    src = write_demo_source(clips[25], tmp_path / "clip", "avi")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # plausible: decodes, but only about half the frames
    assert probe_source(src).num_source_frames == 61  # what the header declares
    proj = Project.create(tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match=r"declares 61 frames but only \d+ decode.*--allow-damaged"):
        import_source(proj, src)
    assert _nothing_written(proj)
    notes: list[str] = []
    vid = import_source(proj, src, notes=notes, allow_damaged=True)
    assert len(notes) == 1 and "--allow-damaged" in notes[0]
    with proj.open_video(vid, readonly=True) as v:
        decoded = v.source.num_source_frames
        assert 0 < decoded < 61 and v.source.source_indices[-1] < decoded
    assert cli_main(["import", str(proj.path), str(src), "--video-id", "again"]) == 2


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_truncated_image_in_frame_folder_is_named(tmp_path, clips, ext):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(6):
        cv2.imwrite(str(folder / f"f{t}.{ext}"), cv2.cvtColor(clips[25].frames[t], cv2.COLOR_RGB2BGR))
    bad = folder / f"f3.{ext}"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 2 // 3])
    assert cv2.imread(str(bad)) is not None or ext == "png"  # a cut JPEG still decodes (grey rows)
    proj = Project.create(tmp_path / "p.vpsproj")
    with pytest.raises(InputError, match=rf"f3.{ext} is damaged.*cut short"):
        import_source(proj, folder)
    assert _nothing_written(proj)


def test_declared_versus_decoded_rules():
    from pathlib import Path

    from annotator.project import check_declared

    p = Path("v.mp4")
    assert check_declared(p, 100, 100, 25.0, 25.0, False, False) == ("", "")
    err, note = check_declared(p, 100, 99, 25.0, 25.1, False, False)  # off by one: a note, never silent
    assert err == "" and "declares 100 frames and 99 decode" in note
    err, _ = check_declared(p, 100, 60, 25.0, 25.0, False, False)
    assert "truncated or damaged" in err
    err, _ = check_declared(p, 100, 100, 25.0, 12.5, False, False)  # header fps disagrees with timestamps
    assert "declares 25 fps" in err and "--source-fps" in err
    assert check_declared(p, 100, 100, 25.0, 12.5, True, False) == ("", "")  # --source-fps given: trusted
