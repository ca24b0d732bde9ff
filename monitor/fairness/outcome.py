"""What "favorable" means for a model: decisions and label outcomes as booleans.

A binary model's prediction is P(class 1); it decides class 1 when the score is at or
above the threshold (0.5 by default). ``favorable`` is a class (index or name) or
``"above"`` / ``"below"`` the threshold (binary scores and regression values: "above"
means ``>= threshold``, "below" means ``< threshold``). Labels follow the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from monitor.fairness.records import FairnessError

TASKS = ("binary_classification", "multiclass_classification", "regression")


@dataclass(frozen=True)
class Outcome:
    """The favorable outcome of one model, resolved from the configuration."""

    task: str
    #: classification: the favorable class index (binary "above" is class 1, "below" class 0)
    favorable_class: int | None
    #: binary / regression: which side of `threshold` is favorable
    direction: Literal["above", "below"] | None
    threshold: float

    @classmethod
    def resolve(
        cls,
        task: str,
        favorable: int | str,
        threshold: float | None = None,
        class_names: Sequence[str] = (),
    ) -> Outcome:
        """Build from config values (`FairnessConfig.favorable` / `.threshold`)."""
        if task not in TASKS:
            raise FairnessError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if isinstance(favorable, str) and favorable not in ("above", "below"):
            if favorable not in class_names:
                raise FairnessError(f"favorable class {favorable!r} is not in class_names")
            favorable = list(class_names).index(favorable)
        if task == "regression":
            if favorable not in ("above", "below") or threshold is None:
                raise FairnessError("regression needs favorable 'above'/'below' and a threshold")
            return cls(task, None, favorable, float(threshold))  # type: ignore[arg-type]
        if task == "multiclass_classification":
            if not isinstance(favorable, int):
                raise FairnessError("multiclass models need a favorable class, not above/below")
            return cls(task, favorable, None, 0.5)
        cut = 0.5 if threshold is None else float(threshold)
        if favorable in ("above", "below"):
            return cls(task, 1 if favorable == "above" else 0, favorable, cut)  # type: ignore[arg-type]
        if favorable not in (0, 1):
            raise FairnessError(f"binary favorable class must be 0 or 1, got {favorable!r}")
        return cls(task, int(favorable), "above" if favorable == 1 else "below", cut)

    def decisions(self, predictions: Any) -> np.ndarray:
        """(n,) bool: the model's decision was favorable for the row."""
        scores = np.asarray(predictions, dtype=float)
        if self.task == "multiclass_classification":
            if scores.ndim != 2:
                raise FairnessError(f"multiclass predictions must be (rows, classes), got {scores.shape}")
            return scores.argmax(axis=1) == self.favorable_class
        return self._side(scores.reshape(-1))

    def label_outcomes(self, labels: Any, rows: int) -> np.ndarray:
        """(n,) float: 1.0 favorable label, 0.0 unfavorable, NaN when not known yet."""
        if labels is None:
            return np.full(rows, np.nan)
        y = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object).reshape(-1)), errors="coerce")
        y = y.to_numpy(float)
        if len(y) != rows:
            raise FairnessError(f"{len(y)} labels for {rows} predictions: they must be aligned by row")
        known = np.isfinite(y)
        out = np.full(rows, np.nan)
        if self.task == "regression":
            out[known] = self._side(y[known])
        else:
            out[known] = y[known] == self.favorable_class
        return out

    def against_sign(self) -> float:
        """Sign of an attribution that pushes a binary/regression score away from favorable.

        For multiclass models it depends on the explained class: +1 when the attributions
        explain the (unfavorable) predicted class, -1 when they explain the favorable one.
        """
        if self.direction is None:
            raise FairnessError("against_sign: give the sign explicitly for multiclass models")
        return -1.0 if self.direction == "above" else 1.0

    def _side(self, values: np.ndarray) -> np.ndarray:
        return values >= self.threshold if self.direction == "above" else values < self.threshold
