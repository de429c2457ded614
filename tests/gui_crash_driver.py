"""Run the main window offscreen on a project, draw strokes with real events, report, wait to be killed.

Used by tests/test_gui_crash.py: ``python tests/gui_crash_driver.py PROJECT OUT.npy``. After the
strokes the label map of frame 0 as the window holds it is saved to OUT.npy and "READY" is printed;
the strokes are *not* flushed (autosave is set to an hour and the frame never changes), so only the
undo journal holds them when the test kills this process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PyQt5.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PyQt5.QtGui import QMouseEvent  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402


def main(project_path: str, out: str) -> int:
    from annotator.gui.main_window import MainWindow
    from annotator.project import Project

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(Project.open(project_path))
    window.apply_settings({"autosave_s": 3600})
    window.show()
    app.processEvents()
    canvas = window.canvas
    vp = canvas.viewport()

    def pos(x: float, y: float):
        return canvas.image_to_widget(x, y)

    def drag(points: list[tuple[float, float]]) -> None:
        QApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, QPointF(pos(*points[0])), Qt.NoButton,
                                               Qt.NoButton, Qt.NoModifier))
        QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, pos(*points[0]))
        for p in points[1:]:
            QApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, QPointF(pos(*p)), Qt.NoButton,
                                                   Qt.LeftButton, Qt.NoModifier))
        QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, pos(*points[-1]))

    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_1, Qt.ShiftModifier)  # brush
    QTest.keyClick(canvas, Qt.Key_N)  # new object
    # the frame is fully labelled and the default panoptic order keeps stuff off labelled pixels:
    # paint in "replace" (Alt+3), as a person fixing labelled pixels would
    QTest.keyClick(canvas, Qt.Key_3, Qt.AltModifier)
    drag([(10, 10), (40, 12), (70, 14)])
    drag([(20, 50), (20, 70)])
    c = window.controller
    assert c.session is not None and c.session.dirty == [0], c.session.dirty
    np.save(out, c.session.label(0))
    print("READY", flush=True)
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
