"""Class picker with a large vocabulary (LV-VIS: 1,196 classes): search keystroke to list update.

Run: ``nice -n 10 .venv/bin/python bench/bench_class_picker.py [--classes 1196] [--rounds 8]``.
Builds a thing-only taxonomy the way ``new --taxonomy-from`` does (an LV-VIS-style ``categories``
list through :func:`annotator.taxonomy.taxonomy_from_annotations`), shows the real
:class:`annotator.gui.class_picker.ClassPicker` offscreen and types queries into its search field
with ``QTest.keyClick`` (key press -> filter -> list). Each sample is the time from the key event
to the end of event processing with the list view repainted, i.e. what the user waits for.
Prints median and p90 in ms (budget: a keystroke stays under one 60 Hz frame, 16 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

QUERIES = ("car", "dog", "person", "ba", "table_lamp", "zz", "s", "aerosol", "wheel", "cup")


def lvvis_like_categories(n: int) -> list[dict]:
    """Deterministic LV-VIS-looking names (``word`` or ``word_word``), ids 1..n as in LV-VIS."""
    rng = np.random.default_rng(0)
    syll = ["ca", "r", "do", "g", "per", "son", "ba", "ll", "ta", "ble", "lamp", "cup", "whe", "el", "ae", "ro",
            "sol", "ki", "te", "mo", "use", "pan", "da", "sh", "oe", "bo", "at", "tr", "ain", "ho", "rse"]
    names: set[str] = set()
    out = []
    while len(out) < n:
        words = ["".join(rng.choice(syll, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(1, 3)))]
        name = "_".join(words)
        if name in names:
            continue
        names.add(name)
        out.append({"id": len(out) + 1, "name": name, "frequency": "c"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=1196)
    ap.add_argument("--rounds", type=int, default=8, help="times the query list is typed")
    args = ap.parse_args()

    from PyQt5.QtCore import Qt
    from PyQt5.QtTest import QTest
    from PyQt5.QtWidgets import QApplication

    from annotator.gui.class_picker import ClassPicker
    from annotator.taxonomy import taxonomy_from_annotations

    app = QApplication.instance() or QApplication(sys.argv)
    tax = taxonomy_from_annotations({"categories": lvvis_like_categories(args.classes)}, name="lvvis_like")
    picker = ClassPicker()
    picker.resize(320, 700)
    t0 = time.perf_counter()
    picker.set_taxonomy(tax)
    picker.show()
    app.processEvents()
    build_ms = (time.perf_counter() - t0) * 1000
    samples: list[float] = []
    shown: list[int] = []
    for _ in range(args.rounds):
        for q in QUERIES:
            for ch in q:
                t = time.perf_counter()
                QTest.keyClick(picker.search, ch)
                app.processEvents()
                picker.list.viewport().repaint()
                samples.append((time.perf_counter() - t) * 1000)
                shown.append(picker.proxy.rowCount())
            for _ch in q:
                t = time.perf_counter()
                QTest.keyClick(picker.search, Qt.Key_Backspace)
                app.processEvents()
                picker.list.viewport().repaint()
                samples.append((time.perf_counter() - t) * 1000)
    assert picker.proxy.rowCount() == args.classes, "clearing the search must show every class again"
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
    print(f"class picker, {args.classes} classes (thing-only taxonomy from an LV-VIS-style file)")
    print(f"  model build + first show: {build_ms:.1f} ms")
    print(f"  keystroke -> list update: median {statistics.median(samples):.2f} ms, p90 {p90:.2f} ms, "
          f"max {samples[-1]:.2f} ms over {len(samples)} keystrokes (matches per keystroke: "
          f"{min(shown)}..{max(shown)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
