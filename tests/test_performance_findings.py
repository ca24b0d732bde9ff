"""Estimated performance_drop: only when the whole band is beyond the allowed change,
said to rest on an estimate assuming no concept drift; labels trump estimates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor import alerts
from monitor.config import PerformanceConfig
from monitor.estimation import Estimate, Method, MetricEstimate, Task
from monitor.performance import judge_estimate
from monitor.slack.messages import alert_message
from tests.factories import run_result

BASELINE = {"accuracy": 0.95, "roc_auc": 0.99, "f1": 0.93}


def estimate(accuracy: float, half_band: float) -> Estimate:
    metrics = {
        "accuracy": MetricEstimate("accuracy", accuracy, half_band / 3, accuracy - half_band,
                                   min(1.0, accuracy + half_band)),
        "f1": MetricEstimate("f1", 0.5, 0.01, 0.47, 0.53),  # reported, never alerted on
    }
    return Estimate(Task.BINARY, Method.CBPE, 200, metrics, decision_threshold=0.5)


@pytest.mark.parametrize(
    ("accuracy", "half_band", "drops"),
    [(0.80, 0.05, True), (0.86, 0.05, False), (0.93, 0.02, False)],
    ids=["band-beyond-limit", "band-crosses-limit", "clean"],
)
def test_estimated_drop_needs_the_whole_band_beyond_the_limit(accuracy, half_band, drops):
    judged = judge_estimate(estimate(accuracy, half_band), BASELINE, PerformanceConfig(), None)
    assert judged.changes["accuracy"].limit == pytest.approx(0.90)
    assert judged.changes["f1"].degraded is False
    result = replace(run_result(drifted=()), estimated=judged)
    found = [f for f in alerts.findings(result) if f.kind == "performance_drop"]
    assert bool(found) is drops
    if drops:
        (finding,) = found
        assert finding.details["basis"] == "estimated"
        assert "assuming no concept drift" in finding.title
        assert list(finding.details["metrics"]) == ["accuracy"]
        text, blocks = alert_message(
            "alert_opened",
            {"alert": {"id": 1, "kind": "performance_drop", "title": finding.title, "severity": "warning"},
             "details": dict(finding.details), "lines": list(finding.lines)},
            with_buttons=False,
        )
        assert "assuming no concept drift" in json_text(blocks)


def test_error_metrics_judged_on_the_lower_edge():
    metrics = {"mae": MetricEstimate("mae", 2.0, 0.2, 1.4, 2.6)}
    est = Estimate(Task.REGRESSION, Method.DLE, 200, metrics)
    cfg = PerformanceConfig()
    assert judge_estimate(est, {"mae": 1.0}, cfg, 1.0).changes["mae"].degraded is True  # 1.4 > 1.25
    assert judge_estimate(est, {"mae": 1.2}, cfg, 1.0).changes["mae"].degraded is False  # 1.4 < 1.5


def json_text(blocks) -> str:
    import json

    return json.dumps(blocks)


def test_a_budget_interval_is_not_called_100_percent():
    from types import SimpleNamespace

    from monitor.alerts import _metric_line

    metric = SimpleNamespace(baseline=0.94, current=0.46, ci=(0.29, 0.62), ci_level=0.99991)
    assert "(99.991% interval 0.29 .. 0.62)" in _metric_line("accuracy", metric)
    assert "(95% interval" in _metric_line("accuracy", SimpleNamespace(**{**vars(metric), "ci_level": 0.95}))
