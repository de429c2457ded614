"""Reports of a scoring run: a summary table (text), JSON, CSV tables and a PNG figure.

The CLI prints :func:`summary_text` and writes :func:`write_report`; the GUI will show the same
data from :func:`report_dict`. Every output states the mode (``official`` or ``clean``) and the
notes on anything left out where the official scripts would crash.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.metrics.engine import ScoreReport
from annotator.metrics.vpq import VPQResult


def _f(x: float | None, scale: float = 1.0) -> float | None:
    return None if x is None else round(float(x) * scale, 6)


def _vpq_dict(r: VPQResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    per_length = {}
    for L, groups in r.per_length.items():
        per_length[str(L)] = {g: (None if s is None else {"pq": _f(s.pq, 100), "sq": _f(s.sq, 100), "rq": _f(s.rq, 100),
                                                        "n": s.n}) for g, s in groups.items()}
    return {"vpq": {k: _f(v) for k, v in r.vpq.items()}, "per_length": per_length, "notes": list(r.notes)}


def _stq_dict(r) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"stq": _f(r.stq), "aq": _f(r.aq), "sq": _f(r.sq), "mode": r.mode, "notes": list(r.notes)}


def class_rows(report: ScoreReport, names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One row per category that occurs: VPQ^L for every L, mean VPQ, TP/FP/FN at L=1, STQ IoU."""
    names = names or {}
    rows: dict[int, dict[str, Any]] = {}
    if report.vpq is not None:
        for L in report.windows:
            for c, d in report.vpq.per_class.get(L, {}).items():
                row = rows.setdefault(c, {"category_id": c})
                row[f"vpq_{L}"] = _f(d["pq"], 100)
                if report.windows[0] == L:
                    row.update(tp=d["tp"], fp=d["fp"], fn=d["fn"])
        for c, v in report.vpq.class_vpq().items():
            rows[c]["vpq"] = _f(v)
    if report.stq is not None:
        for c, iou in report.stq.class_iou.items():
            rows.setdefault(c, {"category_id": c})["iou"] = _f(iou)
    out = []
    for c in sorted(rows):
        r = rows[c]
        r["name"] = "void (predicted)" if c == -1 else names.get(c, str(c))
        r["isthing"] = None if c == -1 else bool(report.categories.isthing.get(c, False))
        out.append(r)
    return out


def video_rows(report: ScoreReport) -> list[dict[str, Any]]:
    """One row per video: frames, VPQ (all/things/stuff), VPQ^L, STQ/AQ/SQ."""
    rows = []
    for v in report.videos:
        row: dict[str, Any] = {"video_id": v.video_id, "frames": v.num_frames}
        if v.vpq is not None:
            row.update({f"vpq_{k}": _f(x) for k, x in v.vpq.vpq.items()})
            for L in report.windows:
                g = v.vpq.per_length.get(L, {}).get("all")
                row[f"vpq_L{L}"] = None if g is None else _f(g.pq, 100)
        if v.stq is not None:
            row.update(stq=_f(v.stq.stq), aq=_f(v.stq.aq), sq=_f(v.stq.sq))
        rows.append(row)
    return rows


def report_dict(report: ScoreReport, names: dict[int, str] | None = None) -> dict[str, Any]:
    notes = list(report.notes)
    if report.vpq is not None:
        notes += report.vpq.notes
    if report.stq is not None:
        notes += report.stq.notes
    return {
        "mode": report.mode, "ground_truth": report.gt_name, "prediction": report.pred_name,
        "windows": report.windows, "videos": len(report.videos), "frames": report.num_frames,
        "vpq": _vpq_dict(report.vpq), "stq": _stq_dict(report.stq), "notes": notes,
        "per_video": video_rows(report), "per_class": class_rows(report, names),
    }


def summary_text(report: ScoreReport, names: dict[int, str] | None = None) -> str:
    """The summary table the CLI prints."""
    lines = [f"mode: {report.mode}   videos: {len(report.videos)}   frames: {report.num_frames}"]
    if report.gt_name or report.pred_name:
        lines.append(f"ground truth: {report.gt_name}   prediction: {report.pred_name}")
    fmt = lambda x: "   -  " if x is None else f"{x:6.2f}"  # noqa: E731
    if report.vpq is not None:
        lines.append(f"{'':8s}" + "".join(f" VPQ^{L:<2d}" for L in report.windows) + "    VPQ")
        for g in ("all", "things", "stuff"):
            vals = []
            for L in report.windows:
                s = report.vpq.per_length.get(L, {}).get(g)
                vals.append(None if s is None else 100 * s.pq)
            lines.append(f"{g:8s}" + "".join(f" {fmt(v)}" for v in vals) + f" {fmt(report.vpq.vpq[g])}")
    if report.stq is not None:
        s = report.stq
        aq = "undefined" if s.aq is None else f"{s.aq:.5f}"
        lines.append(f"STQ {s.stq:.5f}   AQ {aq}   SQ(mIoU) {s.sq:.5f}")
    for n in report_dict(report)["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})


def write_report(report: ScoreReport, out_dir: str | Path, names: dict[int, str] | None = None,
                 figure: bool = True) -> list[Path]:
    """Write ``scores.json``, ``per_video.csv``, ``per_class.csv`` and ``scores.png`` into ``out_dir``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report folder {out}: {exc.strerror}") from None
    data = report_dict(report, names)
    paths = [out / "scores.json", out / "per_video.csv", out / "per_class.csv"]
    tmp = paths[0].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(paths[0])
    _write_csv(paths[1], data["per_video"])
    _write_csv(paths[2], data["per_class"])
    if figure:
        paths.append(write_figure(report, out / "scores.png", names))
    return paths


def write_figure(report: ScoreReport, path: str | Path, names: dict[int, str] | None = None) -> Path:
    """VPQ vs window length (all/things/stuff) and a per-class bar chart, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rows = [r for r in class_rows(report, names) if r.get("vpq") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    if report.vpq is not None:
        for g in ("all", "things", "stuff"):
            xs, ys = [], []
            for L in report.windows:
                s = report.vpq.per_length.get(L, {}).get(g)
                if s is not None:
                    xs.append(L)
                    ys.append(100 * s.pq)
            if xs:
                ax1.plot(xs, ys, marker="o", label=g)
        ax1.set_xlabel("window length L (frames)")
        ax1.set_ylabel("VPQ^L")
        ax1.set_xticks(report.windows)
        ax1.legend()
    title = f"mode {report.mode}"
    if report.stq is not None and report.stq.stq is not None:
        title += f" | STQ {report.stq.stq:.3f}"
    ax1.set_title(title)
    rows.sort(key=lambda r: r["vpq"], reverse=True)
    ax2.bar(range(len(rows)), [r["vpq"] for r in rows],
            color=["tab:orange" if r["isthing"] else "tab:blue" for r in rows])
    ax2.set_xticks(range(len(rows)))
    ax2.set_xticklabels([r["name"] for r in rows], rotation=90, fontsize=7)
    ax2.set_ylabel("VPQ per class (orange: things, blue: stuff)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
