"""Group keys of segment columns: text values as they are, numeric inputs in quantile bins.

A model input used as a segment (``[models.segments] features``) may be continuous;
its groups are the bins between the baseline's quantiles, learned once by ``fit`` so
every window is cut the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from monitor.fairness.records import MISSING, FairnessError, group_keys


class GroupKeys:
    """Turns segment columns into text group keys (``fit`` learns numeric bin edges)."""

    def __init__(self, columns: Sequence[str], numeric: Sequence[str] = (), bins: int = 4):
        self.columns = tuple(columns)
        self.numeric = tuple(c for c in columns if c in set(numeric))
        self.bins = bins
        self.edges: dict[str, np.ndarray] = {}

    def fit(self, frame: pd.DataFrame) -> GroupKeys:
        """Learn the quantile edges of each numeric column from `frame` (the baseline)."""
        require_columns(frame, self.columns, "baseline")
        for name in self.numeric:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
            values = values[np.isfinite(values)]
            if not len(values):
                self.edges[name] = np.empty(0)
                continue
            qs = np.quantile(values, np.linspace(0, 1, self.bins + 1)[1:-1])
            self.edges[name] = np.unique(qs)
        return self

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Column -> (n,) text group keys; numeric columns cut at the learned edges."""
        require_columns(frame, self.columns, "window")
        if any(name not in self.edges for name in self.numeric):
            self.fit(frame)
        return {name: self._keys(name, frame[name]) for name in self.columns}

    def _keys(self, name: str, column: pd.Series) -> np.ndarray:
        if name not in self.numeric:
            return group_keys(column.to_numpy(dtype=object))
        values = pd.to_numeric(column, errors="coerce").to_numpy(float)
        edges = self.edges[name]
        labels = bin_labels(edges)
        out = np.full(len(values), MISSING, dtype=object)
        finite = np.isfinite(values)
        out[finite] = np.asarray(labels, dtype=object)[np.searchsorted(edges, values[finite], "left")]
        return out


def bin_labels(edges: np.ndarray) -> list[str]:
    """Readable labels of the bins cut by `edges`: ``<= a``, ``(a, b]``, ``> b``."""
    if not len(edges):
        return ["all"]
    text = [f"{e:.4g}" for e in edges]
    middle = [f"({a}, {b}]" for a, b in zip(text[:-1], text[1:], strict=True)]
    return [f"<= {text[0]}", *middle, f"> {text[-1]}"]


def require_columns(frame: pd.DataFrame, names: Sequence[str] | Mapping[str, object], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise FairnessError(f"{what} lacks the segment column(s) {missing}")
