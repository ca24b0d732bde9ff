"""Clean windows raise each budgeted check at most at its share of the alert budget
(measured through the engines at the levels `AlertBudget` gives them; the budget is
inflated so that a few hundred windows can count the rates: see benchmarks/budget.py)."""

from __future__ import annotations

import math

import pytest

from benchmarks.budget import measure


@pytest.mark.slow
def test_each_check_stays_within_its_share_on_clean_windows():
    out = measure(windows=600, rows=300, per_month=144.0, seed=3)
    assert out["per_window"] == pytest.approx(0.2)
    for name, level in out["levels"].items():
        rate = out["hits"][name] / out["windows"]
        # at or below nominal, allowing 3 binomial standard errors of 600 windows
        assert rate <= level + 3 * math.sqrt(level * (1 - level) / out["windows"]), name
    # the drift share is spent, not wasted: calibrated tests fire at a visible rate
    assert out["hits"]["drift"] > 0
