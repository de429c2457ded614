"""The fitted error model: (frame, track) features -> probability the mask is under the 0.9 IoU bar,
and per-pixel features -> probability a pixel's label is wrong.

Why logistic regressions in a JSON file: the model must be small, readable and reproducible
(``bench/fit_error_model.py`` fits it with scikit-learn on real flow-propagator output of the demo
scenarios and part of the shared DAVIS sequences and writes ``resources/error_model.json``), and
the tool must not need scikit-learn to use it: prediction is one standardised dot product and a
sigmoid in numpy. Figures (leave-sequences-out): ``docs/review.md``.

The file holds, per model (``pair``, ``pixel``): ``features`` (names, checked against
:data:`annotator.review.estimate.PAIR_FEATURES` / ``PIXEL_FEATURES``), ``mean``, ``scale``,
``coef``, ``intercept``; and ``queue_p`` (the p_bad bar of the review queue chosen on the fitting
data) and ``sure_p`` (the bar under which a gap counts as sure), plus what it was fitted on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import ProjectError
from annotator.review.estimate import PAIR_FEATURES, PIXEL_FEATURES

MODEL_PATH = Path(__file__).resolve().parents[2] / "resources" / "error_model.json"


@dataclass(frozen=True)
class Logistic:
    """A standardised logistic regression: p = sigmoid(((x - mean) / scale) . coef + intercept)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_json(cls, doc: dict[str, Any], expected: tuple[str, ...], where: str) -> Logistic:
        feats = tuple(doc.get("features", ()))
        if feats != expected:
            raise ProjectError(f"{where}: the model's features {list(feats)} are not the ones the tool "
                               f"computes {list(expected)}; refit it with bench/fit_error_model.py")
        arrs = [np.asarray(doc[k], np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (len(expected),) for a in arrs):
            raise ProjectError(f"{where}: mean/scale/coef must each hold {len(expected)} numbers")
        return cls(feats, arrs[0], np.where(arrs[1] > 0, arrs[1], 1.0), arrs[2], float(doc["intercept"]))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.round(6).tolist(),
                "scale": self.scale.round(6).tolist(), "coef": self.coef.round(6).tolist(),
                "intercept": round(self.intercept, 6)}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for rows of features (``(..., n_features)`` -> ``(...)``, float32)."""
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


@dataclass(frozen=True)
class ErrorModel:
    """Both models and the bars the queue uses."""

    pair: Logistic
    pixel: Logistic
    queue_p: float = 0.3
    sure_p: float = 0.05
    meta: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "error model") -> ErrorModel:
        try:
            return cls(Logistic.from_json(doc["pair"], PAIR_FEATURES, where + " (pair)"),
                       Logistic.from_json(doc["pixel"], PIXEL_FEATURES, where + " (pixel)"),
                       float(doc.get("queue_p", 0.3)), float(doc.get("sure_p", 0.05)), doc.get("meta"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"{where} is malformed ({exc!r}); refit it with bench/fit_error_model.py") from None

    def to_json(self) -> dict[str, Any]:
        return {"pair": self.pair.to_json(), "pixel": self.pixel.to_json(), "queue_p": round(self.queue_p, 4),
                "sure_p": round(self.sure_p, 4), "meta": self.meta or {}}


def _prior_model() -> ErrorModel:
    """Used only when no fitted file exists (a fresh checkout before the fit): confidence, distance
    and area change, with hand-set signs; the shipped JSON replaces it."""
    pf = np.zeros(len(PAIR_FEATURES))
    for name, c in {"log_ref_distance": 1.0, "conf_mean": -2.0, "low_share": 1.5, "area_change": 1.0,
                    "absent": 2.0, "iou_prev": -1.0}.items():
        pf[PAIR_FEATURES.index(name)] = c
    xf = np.zeros(len(PIXEL_FEATURES))
    for name, c in {"unconfident": 1.0, "log_boundary_distance": -1.5, "p_own": 1.0, "p_near_close": 1.0}.items():
        xf[PIXEL_FEATURES.index(name)] = c
    mk = lambda names, coef: Logistic(names, np.zeros(len(names)), np.ones(len(names)), coef, -1.0)  # noqa: E731
    return ErrorModel(mk(PAIR_FEATURES, pf), mk(PIXEL_FEATURES, xf), meta={"prior": True})


def load_model(path: str | Path | None = None) -> ErrorModel:
    """The shipped model (``resources/error_model.json``) or the one at ``path``."""
    return _load(str(Path(path) if path else MODEL_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> ErrorModel:
    p = Path(path)
    if not p.exists():
        return _prior_model()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProjectError(f"error model {p} is not readable JSON ({exc}); refit it with "
                           "bench/fit_error_model.py") from None
    return ErrorModel.from_json(doc, str(p))


def save_model(model: ErrorModel, path: str | Path | None = None) -> Path:
    """Write a model as JSON (the fitting script's output)."""
    p = Path(path) if path else MODEL_PATH
    p.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
    _load.cache_clear()
    return p
