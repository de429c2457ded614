"""The scoring dialog also scores under the Cityscapes-VPS protocol, with the CLI's numbers."""

from __future__ import annotations

import pytest
from PyQt5.QtCore import Qt

from annotator.cli import main as cli_main
from annotator.gui.main_window import MainWindow
from annotator.project import Project
from tests.gui_helpers_workspace import isolate_settings
from tests.test_formats_cityscapes_vps import _city_project


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    isolate_settings(tmp_path, monkeypatch)


def test_cityscapes_vps_protocol_in_the_dialog_equals_the_cli(qtbot, tmp_path, capsys):
    path = tmp_path / "p.vpsproj"
    _city_project(path, videos=("clipA",))
    w = MainWindow(Project.open(path))
    qtbot.addWidget(w)
    w.show()
    dlg = w.pipeline.open_score()
    dlg.gt.path.setText(str(path))
    dlg.protocol.setCurrentText("cityscapes-vps")
    qtbot.mouseClick(dlg.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Cityscapes-VPS" in dlg.status.text() or "failed" in dlg.status.text(), timeout=60_000)
    assert "failed" not in dlg.status.text(), dlg.status.text()
    w.close()
    capsys.readouterr()
    assert cli_main(["score", "--protocol", "cityscapes-vps", "--gt", str(path), "--pred", str(path)]) == 0
    assert dlg.summary.toPlainText().strip() == capsys.readouterr().out.strip()
    assert "100.0" in dlg.summary.toPlainText()


def test_export_and_import_dialogs_reach_the_cityscapes_vps_format(tmp_path):
    from annotator.gui.pipeline.export_dialog import IMPORT_ONLY, run_export
    from annotator.gui.pipeline.import_dialog import run_import

    path = tmp_path / "p.vpsproj"
    _city_project(path, videos=("clipA",))
    opts = {"overwrite": False, "videos": "", "seed": 0, "no_resize": False, "include_unlabelled": False,
            "layer": "labels", "split_crowded": False, "shapes": "polygon"}
    lines = run_export(str(path), "cityscapes-vps", str(tmp_path / "cv"), opts)
    assert (tmp_path / "cv" / "panoptic_gt_val_city_vps.json").exists(), lines
    run_import("cityscapes-vps", str(tmp_path / "cv"), str(tmp_path / "b.vpsproj"), None, "error", None)
    assert Project.open(tmp_path / "b.vpsproj").video_ids == ["clipA"]
    assert "vspw" in IMPORT_ONLY
