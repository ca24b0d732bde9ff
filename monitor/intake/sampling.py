"""Seeded, bounded-memory sampling of a stream: a uniform reservoir, optionally
stratified by predicted class.

Memory is bounded by the sample size (times the number of classes when stratified),
however many rows the window holds. The reservoir is Li's "Algorithm L", which
draws a random number only when an item is taken, so a long stream costs little.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Reservoir(Generic[T]):
    """A uniform random sample of at most `size` items from a stream of unknown length.

    Every item seen has the same probability, size/seen, of being in `items()`; the
    same seed and stream give the same sample.
    """

    def __init__(self, size: int, seed: int | None = 0):
        if size <= 0:
            raise ValueError(f"reservoir size must be positive, got {size}")
        self.size = size
        self.seen = 0
        self._rng = random.Random(seed)
        self._items: list[tuple[int, T]] = []
        self._w = 1.0
        self._next = 0

    def _uniform(self) -> float:
        # random() may return 0.0, whose log is undefined
        return self._rng.random() or 5e-324

    def _skip(self) -> None:
        self._next += int(math.log(self._uniform()) / math.log1p(-self._w)) + 1

    def offer(self, item: T) -> None:
        """Consider one item of the stream."""
        index = self.seen
        self.seen += 1
        if index < self.size:
            self._items.append((index, item))
            if self.seen == self.size:
                self._w = math.exp(math.log(self._uniform()) / self.size)
                self._next = index
                self._skip()
            return
        if index == self._next:
            self._items[self._rng.randrange(self.size)] = (index, item)
            self._w *= math.exp(math.log(self._uniform()) / self.size)
            self._skip()

    def extend(self, items: Iterable[T]) -> Reservoir[T]:
        """Offer every item; returns self."""
        for item in items:
            self.offer(item)
        return self

    def items(self) -> list[T]:
        """The sample, in stream order."""
        return [item for _, item in sorted(self._items, key=lambda pair: pair[0])]

    def indexed(self) -> list[tuple[int, T]]:
        """The sample as (position in the stream, item), in stream order."""
        return sorted(self._items, key=lambda pair: pair[0])


class StratifiedReservoir(Generic[T]):
    """A sample in which each stratum (e.g. predicted class) keeps its share of the stream.

    One reservoir per stratum; at the end each stratum gets ``size * its share`` slots
    (largest remainders break ties), drawn uniformly from its reservoir.
    """

    def __init__(self, size: int, seed: int | None = 0):
        self.size = size
        self.seed = seed
        self.seen = 0
        self._strata: dict[Hashable, Reservoir[tuple[int, T]]] = {}

    def offer(self, stratum: Hashable, item: T) -> None:
        """Consider one item belonging to `stratum`."""
        reservoir = self._strata.get(stratum)
        if reservoir is None:
            # seeds follow first appearance, so the result does not depend on hash()
            seed = None if self.seed is None else self.seed * 1_000_003 + len(self._strata)
            reservoir = self._strata[stratum] = Reservoir(self.size, seed)
        reservoir.offer((self.seen, item))
        self.seen += 1

    def allocation(self) -> dict[Hashable, int]:
        """Slots per stratum: proportional to how many items each had, summing to the sample."""
        return proportional_slots({k: r.seen for k, r in self._strata.items()}, self.size)

    def items(self) -> list[T]:
        """The stratified sample, in stream order."""
        rng = random.Random(self.seed)
        chosen: list[tuple[int, T]] = []
        for key, count in self.allocation().items():
            pool = self._strata[key].items()
            chosen.extend(pool if count >= len(pool) else rng.sample(pool, count))
        return [item for _, item in sorted(chosen, key=lambda pair: pair[0])]


def proportional_slots(counts: dict[Hashable, int], size: int) -> dict[Hashable, int]:
    """Slots per stratum for a sample of at most `size`: proportional to each stratum's
    count, summing to min(size, total); the largest remainders (first seen on a tie)
    get the spare slots."""
    seen = sum(counts.values())
    if not seen:
        return {}
    total = min(size, seen)
    exact = {k: total * n / seen for k, n in counts.items()}
    slots = {k: int(v) for k, v in exact.items()}
    spare = total - sum(slots.values())
    for key in sorted(exact, key=lambda k: slots[k] - exact[k])[:spare]:
        slots[key] += 1
    return slots


def sample(items: Iterable[Any], size: int, seed: int | None = 0) -> list[Any]:
    """A seeded uniform sample of at most `size` items of `items`, in stream order."""
    return Reservoir(size, seed).extend(items).items()
