"""Stratified sampling of a window so that small groups are represented, with weights.

Every value of every segment attribute should reach ``min_rows`` sampled rows (when
the window has them) while the rest of the sample stays proportional. Strata are the
crosses of the attribute values; a stratum is sampled at the largest rate any of its
values needs, the common rate is lowered until the sample fits ``size``, and each
sampled row carries the weight ``rows in its stratum / rows sampled from it`` (the
inverse of its inclusion probability) so weighted rates estimate the whole window's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.fairness.groups import GroupKeys
from monitor.fairness.records import MISSING, FairnessError, plain

Key = tuple[str, ...]


@dataclass(frozen=True)
class Stratum:
    """One cross of attribute values: its rows in the window, rows sampled, their weight."""

    key: Key
    rows: int
    sampled: int
    weight: float

    def to_dict(self, attributes: Sequence[str]) -> dict[str, Any]:
        return {
            "values": dict(zip(attributes, self.key, strict=True)),
            "rows": int(self.rows),
            "sampled": int(self.sampled),
            "weight": plain(float(self.weight)),
        }


@dataclass(frozen=True)
class StratifiedSample:
    """Positions (into the window frame, ascending) of the sampled rows and their weights."""

    attributes: tuple[str, ...]
    positions: np.ndarray
    weights: np.ndarray
    strata: tuple[Stratum, ...]
    size: int
    min_rows: int

    def to_dict(self) -> dict[str, Any]:
        """The weights used, per stratum (not the positions)."""
        return {
            "attributes": list(self.attributes),
            "rows": int(sum(s.rows for s in self.strata)),
            "sampled": int(len(self.positions)),
            "size": int(self.size),
            "min_rows": int(self.min_rows),
            "strata": [s.to_dict(self.attributes) for s in self.strata],
        }


def allocate(counts: Mapping[Key, int], size: int, min_rows: int, seed: int = 0) -> dict[Key, int]:
    """Rows to draw from each stratum (a cross of attribute values) for a sample of `size`.

    Each attribute value (position i of the key, MISSING excluded) gets at least
    ``min(min_rows, its rows)`` rows when the floors fit in `size` (else the floors
    shrink in proportion); the rest follows the strata's sizes. Totals are exact
    (fractions rounded at random, seeded) and never exceed a stratum's rows.
    """
    keys, n, rates, boosted = _rates(counts, size, min_rows)
    quotas = _round_to(n * rates, n, size, boosted, np.random.default_rng(seed))
    out = {k: int(q) for k, q in zip(keys, quotas, strict=True)}
    return out | {k: 0 for k, c in counts.items() if c <= 0}


def _rates(
    counts: Mapping[Key, int], size: int, min_rows: int
) -> tuple[list[Key], np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty strata, their rows, their sampling rates, and which of them are
    sampled above the common rate so that one of their values reaches `min_rows`."""
    if size <= 0 or min_rows < 0:
        raise FairnessError(f"size must be > 0 and min_rows >= 0, got {size}, {min_rows}")
    keys = [k for k, c in counts.items() if c > 0]
    n = np.array([counts[k] for k in keys], dtype=float)
    total = n.sum()
    if total <= size:
        return keys, n, np.ones(len(keys)), np.zeros(len(keys), bool)
    need = _value_rates(keys, n, min_rows)

    def expected(base: float, scale: float = 1.0) -> float:
        return float(np.sum(n * np.minimum(1.0, np.maximum(base, need * scale))))

    if expected(0.0) >= size:  # the floors alone do not fit: shrink them
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if expected(0.0, mid) < size else (lo, mid)
        return keys, n, np.minimum(1.0, need * lo), np.zeros(len(keys), bool)
    lo, hi = 0.0, size / total
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < size else (lo, mid)
    return keys, n, np.minimum(1.0, np.maximum(hi, need)), need > hi


def _value_rates(keys: list[Key], n: np.ndarray, min_rows: int) -> np.ndarray:
    """Per stratum: the largest sampling rate any of its attribute values needs."""
    need = np.zeros(len(keys))
    width = len(keys[0]) if keys else 0
    for i in range(width):
        values: dict[str, float] = {}
        for key, rows in zip(keys, n, strict=True):
            values[key[i]] = values.get(key[i], 0.0) + rows
        for j, key in enumerate(keys):
            if key[i] != MISSING:
                need[j] = max(need[j], min(1.0, min_rows / values[key[i]]))
    return need


def _round_to(
    target: np.ndarray, cap: np.ndarray, size: int, boosted: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Integer quotas near `target`, each <= `cap`, summing to min(size, cap.sum()).

    Boosted strata round up (their values' floors hold), the others round down; rows
    still missing go to strata drawn in proportion to their fractions, rows over the
    size come off the largest unboosted strata.
    """
    quotas = np.minimum(np.where(boosted, np.ceil(target - 1e-9), np.floor(target)), cap)
    goal = min(size, int(cap.sum()))
    empty = (quotas == 0) & (cap > 0)
    if quotas.sum() + empty.sum() <= goal:  # one row per stratum keeps every stratum seen
        quotas[empty] = 1
    while quotas.sum() > goal:
        spare = np.where(boosted | (quotas <= 1), -1, quotas)
        j = int(np.argmax(spare)) if spare.max() > 0 else int(np.argmax(quotas))
        quotas[j] -= 1
    missing = int(goal - quotas.sum())
    if missing > 0:
        rest = np.where(quotas < cap, np.maximum(target - quotas, 0) + 1e-12, 0.0)
        extra = rng.choice(len(quotas), size=missing, replace=False, p=rest / rest.sum())
        quotas[extra] += 1
    return quotas


def stratified_sample(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    size: int,
    *,
    min_rows: int = 30,
    seed: int = 0,
    numeric: Sequence[str] = (),
    bins: int = 4,
) -> StratifiedSample:
    """A seeded sample of `frame`'s rows where every attribute value is represented.

    Numeric attributes are cut into `bins` quantile bins of `frame`. Returns positions
    (``frame.iloc[positions]``) and per-row weights; pass the weights to the segment
    and fairness analyzers so their rates estimate the whole window.
    """
    if not attributes:
        raise FairnessError("stratified_sample needs at least one attribute")
    keyed = GroupKeys(attributes, numeric, bins).fit(frame).transform(frame)
    cross = pd.DataFrame({name: keyed[name] for name in attributes})
    codes = cross.groupby(list(attributes), sort=True).ngroup().to_numpy()
    firsts = cross.drop_duplicates().sort_values(list(attributes))
    keys = [tuple(row) for row in firsts.itertuples(index=False, name=None)]
    counts = np.bincount(codes, minlength=len(keys))
    rng = np.random.default_rng(seed)
    keys, n, rates, boosted = _rates(dict(zip(keys, counts.tolist(), strict=True)), size, min_rows)
    quotas = _round_to(n * rates, n, size, boosted, rng)
    index = {key: code for code, key in enumerate(firsts.itertuples(index=False, name=None))}
    picked, weights, strata = [], [], []
    for key, rows, rate, take in zip(keys, n, rates, quotas.astype(int), strict=True):
        members = np.flatnonzero(codes == index[key])
        chosen = rng.choice(members, size=take, replace=False) if take < len(members) else members
        # rows / sampled when the stratum got about its share; else 1 / its inclusion rate
        weight = rows / take if take and rows * rate >= 1 else 1 / max(rate, 1e-12)
        picked.append(chosen)
        weights.append(np.full(len(chosen), weight))
        strata.append(Stratum(key, int(rows), int(take), float(weight)))
    positions = np.concatenate(picked) if picked else np.empty(0, dtype=int)
    order = np.argsort(positions, kind="stable")
    return StratifiedSample(
        tuple(attributes),
        positions[order],
        np.concatenate(weights)[order] if weights else np.empty(0),
        tuple(strata),
        int(size),
        int(min_rows),
    )
