"""Training the small Clip-PanoFCN on a tiny demo project: targets, losses, resumable checkpoints,
Ctrl+C safety, the CLI with a held-out evaluation, and pre-annotation with the trained file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from annotator.cli import main as cli_main
from annotator.project import Project
from annotator.stages.preannotate import DRAFT_LAYER, preannotate_video
from annotator.stages.train_preannotator import train
from annotator.taxonomy import vipseg_taxonomy
from models.clip_panofcn.categories import channel_map
from models.clip_panofcn.checkpoint import load_clip_panofcn
from models.clip_panofcn.network import SMALL_CONFIG
from models.clip_panofcn.train import center_focal_loss, clip_targets, dice_loss
from resources.demo import write_demo_project


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("train")
    path = write_demo_project(root / "d.vpsproj", scenarios=("crossing", "mixed"), num_frames=15, height=64,
                              width=96, source=None)
    return Project.open(path)


def test_targets_put_a_peak_on_the_centre_and_classes_on_the_levels():
    tax = vipseg_taxonomy()
    cmap = channel_map(tax, 58, 67)
    thing_cat = next(c.id for c in tax if c.isthing)
    stuff_cat = next(c.id for c in tax if not c.isthing)
    labels = np.full((2, 64, 96), 1, np.int32)  # stuff track 1 everywhere
    labels[:, 16:32, 40:56] = 2  # a 16x16 thing (size 16: level P3 only)
    cats = {1: stuff_cat, 2: thing_cat}
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    tg = clip_targets(labels, cats, cmap, SMALL_CONFIG, sizes, (16, 24))
    _, ch = cmap.channel_of(thing_cat)
    heat = tg.thing_heat[0][0, ch]
    # mass centre (23.5, 47.5) px -> stride-8 cell (2, 5), where the target is exactly 1 (a focal positive)
    assert float(heat[2, 5]) == 1.0 and tuple(np.unravel_index(int(heat.argmax()), heat.shape)) == (2, 5)
    assert all(float(h.max()) == 0 for h in tg.thing_heat[1:])  # too small for the coarser levels
    _, sch = cmap.channel_of(stuff_cat)
    assert tg.stuff_map[0][0, sch].sum() > 0 and tg.stuff_map[0][0, 0, 2, 5] == 1  # thing pixels: channel 0
    assert tg.num_things == 1 and len(tg.instances) == 2
    thing = next(i for i in tg.instances if i[0])
    assert [lvl for lvl, _ in thing[1]] == [0] and thing[2].shape == (2, 16, 24) and thing[2].sum() == 2 * 16


def test_losses_are_zero_for_perfect_predictions():
    target = torch.zeros(1, 1, 5, 5)
    target[0, 0, 2, 2] = 1.0
    good = torch.where(target > 0, torch.tensor(20.0), torch.tensor(-20.0))
    assert float(center_focal_loss(good, target, 1)) < 1e-3 < float(center_focal_loss(-good, target, 1))
    assert float(dice_loss(good, target)) < 1e-3 and float(dice_loss(-good, target)) > 0.9


def test_train_resume_and_interrupt(project, tmp_path):
    out = tmp_path / "small.pth"
    st = train(project, out, ["demo_crossing"], max_steps=1)
    assert st.step == 1 and len(st.losses) == 1 and math.isfinite(st.losses[0])

    def stop(done, total, message=""):  # Ctrl+C arriving after the first step of the resumed run
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(project, out, ["demo_crossing"], max_steps=5, progress=stop)
    saved = torch.load(out, weights_only=True)
    assert saved["step"] == 2 and len(saved["losses"]) == 2  # resumed at 1, the finished step was saved
    assert saved["optimizer"]["state"]  # the optimiser resumes too
    model = load_clip_panofcn(out)  # full validation: keys, shapes and the damage checks
    assert model.config.depth == 18 and model.config.backbone_norm == "gn" and not model.training


def test_cli_trains_with_held_out_scores_and_the_result_preannotates(project, tmp_path, capsys):
    out = tmp_path / "cli.pth"
    assert cli_main(["train-preannotator", str(project.path), "--out", str(out), "--eval-video", "demo_mixed",
                     "--steps", "1"]) == 0
    text = capsys.readouterr().out
    assert "before: VPQ" in text and "after: VPQ" in text and "s/step" in text
    res = preannotate_video(project, "demo_mixed", out)
    assert res.frames == 3
    with project.open_video("demo_mixed") as v:
        assert v.has_label(0, DRAFT_LAYER)
    assert cli_main(["train-preannotator", str(project.path), "--out", str(out), "--minutes", "nan"]) == 2
