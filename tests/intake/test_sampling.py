"""The reservoir: uniform (chi-square), seeded, stratified, and flat in memory."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from monitor.intake.sampling import Reservoir, StratifiedReservoir, sample


def test_inclusion_is_uniform_chi_square() -> None:
    n, k, trials = 200, 20, 2000
    counts = np.zeros(n)
    for seed in range(trials):
        for item in sample(range(n), k, seed=seed):
            counts[item] += 1
    expected = trials * k / n
    assert counts.sum() == trials * k
    _, p_value = stats.chisquare(counts, np.full(n, expected))
    assert p_value > 0.001, f"inclusion counts not uniform (p={p_value:.2g})"
    # the last items of the stream are not favoured or starved
    assert abs(counts[-50:].mean() - expected) < 0.1 * expected


def test_same_seed_same_sample_and_order() -> None:
    a = sample(range(10_000), 50, seed=7)
    assert a == sample(range(10_000), 50, seed=7)
    assert a != sample(range(10_000), 50, seed=8)
    assert a == sorted(a) and len(set(a)) == 50


def test_short_stream_is_kept_whole() -> None:
    assert sample(range(5), 10, seed=0) == [0, 1, 2, 3, 4]


def test_stratified_keeps_class_shares() -> None:
    reservoir = StratifiedReservoir(100, seed=3)
    labels = [0] * 7000 + [1] * 2000 + [2] * 1000
    rng = np.random.default_rng(0)
    rng.shuffle(labels)
    for i, label in enumerate(labels):
        reservoir.offer(label, (i, label))
    chosen = reservoir.items()
    assert len(chosen) == 100
    assert Counter(label for _, label in chosen) == {0: 70, 1: 20, 2: 10}
    assert [i for i, _ in chosen] == sorted(i for i, _ in chosen)


def _peak(n: int) -> int:
    tracemalloc.start()
    reservoir: Reservoir[tuple[int, float]] = Reservoir(1000, seed=1)
    for i in range(n):
        reservoir.offer((i, i * 0.5))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.timeout(60)
def test_memory_is_flat_from_100k_to_1m_rows() -> None:
    small, large = _peak(100_000), _peak(1_000_000)
    assert large < 1.3 * small + 64_000, f"peak {small} B at 100k vs {large} B at 1M"
