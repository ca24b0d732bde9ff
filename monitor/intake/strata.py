"""A window sample stratified by record attributes, for segments and fairness.

With `[models.segments] stratify = true`, a second, bounded sample is drawn beside the
uniform one: one reservoir per cross of the declared attributes' values (each holding
at most `sample_size` rows), then `monitor.fairness.allocate` decides how many rows each
stratum gives so that every attribute value reaches `min_rows` when the window has
them. Each sampled row carries the weight ``rows in its stratum / rows drawn from it``
(the inverse of its inclusion rate), so weighted rates estimate the whole window. Drift
and attributions keep the uniform sample: an oversampled group is no drift.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.intake.sampling import Reservoir

Key = tuple[str, ...]


class AttributeStrata:
    """Bounded reservoirs of records per attribute cross; `draw()` allocates and weighs."""

    def __init__(self, attributes: Sequence[str], size: int, min_rows: int, seed: int = 0):
        self.attributes = tuple(attributes)
        self.size, self.min_rows, self.seed = size, min_rows, seed
        self.seen = 0
        self._strata: dict[Key, Reservoir[tuple[int, Any]]] = {}

    def offer(self, record: Any) -> None:
        """Consider one validated record (its `attributes` give its stratum)."""
        from monitor.fairness.records import group_keys

        values = [(record.attributes or {}).get(name) for name in self.attributes]
        key = tuple(group_keys(np.array(values, dtype=object)).tolist())
        reservoir = self._strata.get(key)
        if reservoir is None:
            # seeds follow first appearance, so the sample does not depend on hash()
            reservoir = self._strata[key] = Reservoir(self.size, self.seed * 1_000_003 + len(self._strata))
        reservoir.offer((self.seen, record))
        self.seen += 1

    def draw(self) -> tuple[list[Any], np.ndarray, Any]:
        """(records in stream order, their weights, the `StratifiedSample` describing the
        strata: rows, rows drawn, weight) of the allocated sample."""
        from monitor.fairness import StratifiedSample, Stratum, allocate

        counts = {key: r.seen for key, r in self._strata.items()}
        if not counts:
            return [], np.empty(0), StratifiedSample(self.attributes, np.empty(0, int), np.empty(0), (),
                                                      self.size, self.min_rows)
        quotas = allocate(counts, self.size, self.min_rows, self.seed)
        rng = random.Random(self.seed)
        chosen: list[tuple[int, Any, float]] = []
        strata = []
        for key in sorted(counts):
            pool = self._strata[key].items()
            take = min(quotas.get(key, 0), len(pool))
            picked = pool if take >= len(pool) else rng.sample(pool, take)
            weight = counts[key] / take if take else 0.0
            chosen += [(seq, record, weight) for seq, record in picked]
            strata.append(Stratum(key, int(counts[key]), int(take), float(weight)))
        chosen.sort(key=lambda item: item[0])
        weights = np.array([w for _, _, w in chosen], dtype=float)
        described = StratifiedSample(
            self.attributes, np.arange(len(chosen)), weights, tuple(strata), self.size, self.min_rows
        )
        return [record for _, record, _ in chosen], weights, described
