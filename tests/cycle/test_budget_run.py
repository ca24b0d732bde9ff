"""A run spends one alert budget (issue 24): `once --json` shows it, and every check's
level in the stored document is its part of it; on SQLite and PostgreSQL with the small
real Keras model."""

from __future__ import annotations

import pytest

from monitor.baseline import build_baseline
from monitor.budget import AlertBudget
from monitor.cycle import Runtime, run_once
from tests.models import T0, WINDOW


def test_every_check_of_a_run_takes_its_level_from_the_budget(engine, settings, send_traffic):
    model = settings.model("cancer")
    budget = AlertBudget.for_model(model)
    build_baseline(settings, engine, "cancer", created_by="test")
    send_traffic(engine, settings, T0, seed=1, n=200)
    doc = run_once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=Runtime(),
                   channels=["console"]).summary

    # hourly windows, no protected attributes: fairness and disparity gave their share back
    assert doc["budget"]["per_window"] == pytest.approx(1 / 720)
    families = doc["budget"]["families"]
    assert set(families) == {"drift", "attribution", "quality", "performance", "transparency"}
    assert sum(families.values()) == pytest.approx(1 / 720)
    assert families["drift"] == pytest.approx(0.5 / 720)

    # drift and attribution were two families at the full rate each; quality spent 10% on top
    assert doc["drift"]["family_alpha"] == pytest.approx(budget.drift)
    assert doc["attribution"]["family_alpha"] == pytest.approx(budget.attribution)
    assert doc["quality"]["alpha"] == pytest.approx(budget.quality)
    # performance: one tail per metric, the performance part split over accuracy, AUC, log loss
    metrics = doc["performance"]["realized"]
    assert len(metrics) == 3
    assert [m["ci_level"] for m in metrics.values()] == [pytest.approx(1 - 2 * budget.performance / 3)] * 3
    # transparency: surrogate (each of its two tests), faithfulness
    assert doc["surrogate"]["alpha"] == pytest.approx(budget.surrogate)
    assert doc["faithfulness"]["alpha"] == pytest.approx(budget.faithfulness)
