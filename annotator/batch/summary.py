"""Task results and the run summary (text for people, JSON for scripts)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class TaskResult:
    """What one video's task did; ``reason`` is one line (why skipped / why failed)."""

    video_id: str
    status: str
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    node: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchSummary:
    """The whole run: per-video results plus run-level notes (assembly, storage check)."""

    stage: str
    project: str
    runner: str
    results: list[TaskResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # run-level failures (e.g. the export assembly)
    seconds: float = 0.0

    def of(self, status: str) -> list[TaskResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        """Exit 0 only when nothing failed (skipped videos are not failures)."""
        return not self.of(FAILED) and not self.errors

    def lines(self) -> list[str]:
        done, skipped, failed = self.of(DONE), self.of(SKIPPED), self.of(FAILED)
        frames = sum(r.frames for r in done)
        out = [f"batch {self.stage} ({self.runner}): {len(done)} done ({frames} frames), {len(skipped)} skipped, "
               f"{len(failed)} failed in {self.seconds:.1f} s"]
        out += [f"  skipped {r.video_id}: {r.reason}" for r in skipped]
        out += [f"  FAILED {r.video_id}: {r.reason}" for r in failed]
        out += [f"  FAILED: {e}" for e in self.errors]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "project": self.project, "runner": self.runner, "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "counts": {s: len(self.of(s)) for s in (DONE, SKIPPED, FAILED)},
                "results": [asdict(r) for r in self.results], "errors": self.errors, "notes": self.notes}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)
