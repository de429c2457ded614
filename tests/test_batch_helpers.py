"""Shared setup of the batch tests (no tests here): a small multi-video demo project, comparisons."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np

from annotator.project import FrameState, Project
from resources.demo import write_demo_project

SCENARIOS = ("crossing", "occlusion", "mixed")
PRED_LAYER = "pred"


def make_project(path: Path) -> Path:
    """3 videos x 6 dense frames of 72x128; only keyframes labelled; a shifted ``pred`` layer."""
    p = write_demo_project(path, scenarios=SCENARIOS, num_frames=26, height=72, width=128, source=None)
    proj = Project.open(p)
    for vid in proj.video_ids:
        with proj.open_video(vid) as v:
            for i in range(v.num_frames):
                lab = v.read_label(i)
                v.write_label(i, np.roll(lab, 3, axis=1), layer=PRED_LAYER)
                if not v.is_keyframe(i):
                    v.write_label(i, np.zeros_like(lab), state=FrameState.UNLABELLED, provenance={})
            v.save()
    return p


def copy_project(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def same_tree(a: Path, b: Path) -> list[str]:
    """Paths that differ between two folders (content, or present on one side only)."""
    out: list[str] = []

    def walk(cmp: filecmp.dircmp, rel: str) -> None:
        out.extend(f"{rel}{n} (only left)" for n in cmp.left_only)
        out.extend(f"{rel}{n} (only right)" for n in cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        out.extend(f"{rel}{n}" for n in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(a, b), "")
    return out


def label_state(project: Path) -> dict[str, list]:
    """Per video: (label map bytes, frame state, provenance) of every frame, to compare runs."""
    proj = Project.open(project)
    out = {}
    for vid in proj.video_ids:
        with proj.open_video(vid, readonly=True) as v:
            out[vid] = [(v.read_label(i).tobytes(), v.frame_state(i).value,
                         sorted((t, s.value) for t, s in v.provenance(i).items())) for i in range(v.num_frames)]
    return out


def file_stamps(folder: Path, skip: tuple[str, ...] = ("batch",)) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file under ``folder`` (except the batch markers)."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part in skip for part in p.relative_to(folder).parts)}
