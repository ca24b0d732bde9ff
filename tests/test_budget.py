"""One alert budget per model: the stream's per-window rate, its shares, overrides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.budget import AlertBudget, configured_families, normalised_shares
from monitor.config import ModelConfig
from monitor.drift import family_alpha
from monitor.vocab import BudgetFamily

HOURLY = family_alpha(1.0, timedelta(hours=1))


def model(**extra: Any) -> ModelConfig:
    data: dict[str, Any] = {
        "name": "credit", "path": "m.keras", "task": "binary_classification", "window": "1h",
        "features": {"numeric": ["amount", "age"], "categorical": ["channel"]},
    }
    data.update(extra)
    return ModelConfig(**data)


def with_fairness(**extra: Any) -> ModelConfig:
    return model(segments={"attributes": ["sex", "region"]},
                 fairness={"protected": ["sex", "region"], "favorable": 0}, **extra)


def test_the_shares_of_every_configured_check_sum_to_the_whole_stream():
    budget = AlertBudget.for_model(with_fairness())
    assert budget.per_window == pytest.approx(1 / 720)
    assert set(budget.shares) == set(BudgetFamily)
    assert sum(budget.rate(f) for f in BudgetFamily) == pytest.approx(budget.per_window)
    # the defaults favour drift and sum to 1 already
    assert budget.drift == pytest.approx(0.4 * HOURLY)
    assert budget.quality == pytest.approx(0.1 * HOURLY)
    assert budget.rate(BudgetFamily.FAIRNESS) == pytest.approx(0.15 * HOURLY)


def test_weights_are_normalised():
    budget = AlertBudget.for_model(with_fairness(alerts={"shares": {
        "drift": 2, "attribution": 1, "quality": 1, "performance": 0, "fairness": 0,
        "disparity": 0, "transparency": 0}}))
    assert budget.drift == pytest.approx(0.5 * HOURLY)
    assert budget.attribution == budget.quality == pytest.approx(0.25 * HOURLY)
    # a weight of 0 silences the check's statistical findings
    assert budget.performance == budget.bias == budget.reasons == 0.0


def test_a_check_not_configured_gives_its_share_back():
    plain = model()
    assert configured_families(plain) == set(BudgetFamily) - {BudgetFamily.FAIRNESS, BudgetFamily.DISPARITY}
    budget = AlertBudget.for_model(plain)
    assert BudgetFamily.FAIRNESS not in budget.shares
    assert budget.bias == budget.disparity == 0.0
    # 0.4 of the 0.8 left by fairness (0.15) and disparity (0.05)
    assert budget.drift == pytest.approx(0.5 * HOURLY)
    assert sum(budget.rate(f) for f in BudgetFamily) == pytest.approx(budget.per_window)
    # segments without protected attributes: still no fairness check
    assert BudgetFamily.FAIRNESS not in configured_families(model(segments={"attributes": ["sex"]}))


def test_the_rate_follows_the_window_length_and_the_monthly_budget():
    minute = AlertBudget.for_model(model(window="1m", alerts={"false_alarms_per_month": 3}))
    assert minute.per_window == pytest.approx(3 / (30 * 24 * 60))
    assert minute.drift == pytest.approx(0.5 * minute.per_window)


def test_checks_split_their_part_over_their_tests():
    budget = AlertBudget.for_model(with_fairness())
    transparency = budget.rate(BudgetFamily.TRANSPARENCY)
    # surrogate, reasons and faithfulness a third each; the surrogate's two tests half of it
    assert budget.reasons == budget.faithfulness == pytest.approx(transparency / 3)
    assert budget.surrogate == pytest.approx(transparency / 6)
    # fairness: bias and bias drift half each, per protected attribute (two here)
    assert budget.bias == budget.bias_drift == pytest.approx(budget.rate(BudgetFamily.FAIRNESS) / 4)
    # disparity: two test kinds per attribute
    assert budget.disparity == pytest.approx(budget.rate(BudgetFamily.DISPARITY) / 4)


def test_explicit_levels_are_overrides_outside_the_budget():
    budget = AlertBudget.for_model(with_fairness(
        surrogate={"alpha": 0.01}, reasons={"p_value": 0.02}, performance={"ci_level": 0.9},
        drift={"threshold_mode": "fixed"}))
    assert budget.overrides == ("performance.ci_level", "surrogate.alpha", "reasons.p_value",
                                "drift.threshold_mode")
    # the shares do not move: an override does not take from the others
    assert budget.drift == pytest.approx(0.4 * HOURLY)
    assert AlertBudget.for_model(model()).overrides == ()


def test_the_budget_document_names_each_family():
    doc = AlertBudget.for_model(model()).to_dict()
    assert doc["per_window"] == pytest.approx(1 / 720)
    assert doc["false_alarms_per_month"] == 1.0
    assert set(doc["families"]) == {"drift", "attribution", "quality", "performance", "transparency"}
    assert sum(doc["families"].values()) == pytest.approx(doc["per_window"])


def test_normalising_nothing_leaves_nothing():
    assert normalised_shares({"drift": 0.0}, frozenset({BudgetFamily.DRIFT})) == {BudgetFamily.DRIFT: 0.0}


def test_the_config_table_names_exactly_the_budgeted_families():
    from monitor.config import AlertShares

    assert set(AlertShares.model_fields) == {str(f) for f in BudgetFamily}


def test_fairness_and_disparity_levels_come_from_the_budget():
    from monitor.fairness import DisparityAnalyzer, FairnessAnalyzer

    cfg = with_fairness()
    budget = AlertBudget.for_model(cfg)
    fairness = FairnessAnalyzer.from_config(cfg)
    assert fairness.confidence == pytest.approx(1 - budget.bias)
    assert fairness.drift_p_value == pytest.approx(budget.bias_drift)
    assert DisparityAnalyzer.from_config(cfg).alpha == pytest.approx(budget.disparity)
    # explicit levels are honoured as given
    explicit = with_fairness()
    explicit = explicit.model_copy(update={"fairness": explicit.fairness.model_copy(
        update={"confidence": 0.95, "drift_p_value": 0.01, "disparity_alpha": 0.005})})
    assert FairnessAnalyzer.from_config(explicit).confidence == 0.95
    assert FairnessAnalyzer.from_config(explicit).drift_p_value == 0.01
    assert DisparityAnalyzer.from_config(explicit).alpha == 0.005


def test_a_fairness_interval_beyond_its_draws_is_the_normal_one():
    """2,000 bootstrap draws cannot place a tail of 1e-6: the interval is then the value
    ± z × the bootstrap's standard error, wider than every draw."""
    import numpy as np

    from monitor.fairness.metrics import _estimate
    from monitor.fairness.records import Metric

    draws = np.random.default_rng(4).normal(0.05, 0.02, 2000)
    est = _estimate(Metric.PARITY_DIFFERENCE, 0.05, draws, 1 - 2e-6)
    assert est.ci_low < draws.min() and est.ci_high > draws.max()
    assert est.ci_high - 0.05 == pytest.approx(4.753 * draws.std(ddof=1), rel=1e-3)
