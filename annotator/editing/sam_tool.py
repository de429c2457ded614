"""The SAM click/box tool's state: prompts, 3 candidates to cycle through, logits fed back.

Why a separate object: the canvas only forwards clicks; what SAM's own demo does between clicks -
keep every click, feed the chosen candidate's low-resolution logits back as ``mask_input`` so the
next click refines rather than restarts, let the user cycle the three candidates - is tool logic
that must be testable without Qt. The engine is duck-typed (``predict(emb, **prompt)``), so
this module imports neither torch nor ``models.sam``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from annotator.editing.operations import EditError, Region


class _Predictor(Protocol):
    def predict(self, emb: Any, **prompt: Any) -> Any: ...


@dataclass
class SamPrompt:
    """Clicks (``labels`` 1 = positive, 0 = negative) and an optional box for one object."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    refine: bool = True  # feed the chosen candidate's logits back (SAM demo behaviour)
    multimask: bool = True
    prediction: Any = None  # models.sam.SamPrediction of the last run
    choice: int = 0  # index of the candidate shown

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def add_click(self, x: float, y: float, positive: bool = True) -> None:
        self.points.append((float(x), float(y)))
        self.labels.append(1 if positive else 0)

    def remove_last_click(self) -> None:
        if self.points:
            self.points.pop()
            self.labels.pop()
        if self.empty:
            self.reset()

    def set_box(self, box: Sequence[float] | None) -> None:
        self.box = None if box is None else tuple(float(v) for v in box)  # type: ignore[assignment]

    def reset(self) -> None:
        """Start a new object: forget prompts, candidates and the fed-back logits."""
        self.points.clear()
        self.labels.clear()
        self.box = None
        self.prediction = None
        self.choice = 0

    def run(self, engine: _Predictor, embedding: Any) -> Any:
        """Decode the current prompts; picks the best-scored candidate. Raises ``InputError`` on bad prompts."""
        if self.empty:
            raise EditError("SAM: click on the object or drag a box first")
        prev = None
        if self.refine and self.prediction is not None and self.points:
            prev = self.prediction.logits[self.choice]
        pred = engine.predict(embedding, points=self.points or None, labels=self.labels or None,
                              box=self.box, prev_logits=prev, multimask=self.multimask)
        self.prediction = pred
        self.choice = pred.best()
        return pred

    def cycle(self, step: int = 1) -> int:
        """Show the next candidate (wrapping); returns its index."""
        if self.prediction is None:
            return 0
        self.choice = (self.choice + step) % len(self.prediction)
        return self.choice

    @property
    def score(self) -> float:
        return float(self.prediction.scores[self.choice]) if self.prediction is not None else float("nan")

    def mask(self) -> np.ndarray | None:
        """The chosen candidate as a full-frame bool mask (``None`` before the first run)."""
        return None if self.prediction is None else np.asarray(self.prediction.mask(self.choice), bool)

    def region(self) -> Region:
        """The chosen candidate cropped to its box, ready for ``Paint``; empty before the first run."""
        m = self.mask()
        return Region(0, 0, np.zeros((0, 0), bool)) if m is None else Region.from_mask(m)
