"""The fairness alert rules: one finding per attribute and group, with the groups, the
interval and its level, the band (bias), the baseline and p-value (bias drift), the
reasons or the proxy feature (explanation disparity); Slack shows them."""

from __future__ import annotations

import json

from monitor.alerts import dedup_key, findings
from monitor.bias_rules import fairness_findings
from monitor.fairness import Bands, DisparityAnalyzer, FairnessAnalyzer, Outcome
from monitor.result import RunResult
from monitor.slack.messages import alert_message
from monitor.vocab import SEVERITY, AlertKind, RunStatus, Severity
from tests.factories import T0
from tests.fairness.helpers import population
from tests.fairness.test_disparity import FEATURES, _window


def _fairness(penalty: float):
    analyzer = FairnessAnalyzer(["sex", "age_band"], Outcome.resolve("binary_classification", 1),
                                bands=Bands(), resamples=1000)
    analyzer.fit(*population(4000, seed=1))
    return analyzer.analyze(*population(2000, seed=2, penalty=penalty))


def test_bias_and_bias_drift_name_the_group_interval_band_and_baseline() -> None:
    found = fairness_findings(_fairness(penalty=1.5), None)
    bias = [f for f in found if f.kind == AlertKind.BIAS]
    drift = [f for f in found if f.kind == AlertKind.BIAS_DRIFT]
    assert [f.feature for f in bias] == ["sex=F"]
    # every age band holds women: their rates moved against the baseline too (a true change)
    assert "sex=F" in {f.feature for f in drift} and "sex=M" not in {f.feature for f in drift}
    assert SEVERITY[AlertKind.BIAS] is Severity.CRITICAL
    b = bias[0]
    assert b.details["compared_with"] == "M" and "disparate_impact" in b.details["metrics"]
    di = b.details["metrics"]["disparate_impact"]
    assert di["ci"][1] < 0.8
    line = next(x for x in b.lines if "disparate_impact" in x)
    assert "sex=F vs sex=M" in line and "interval" in line and "allowed band 0.8..1.25" in line
    assert f"{b.details['interval_level']:.1%}" in line
    d = drift[0]
    assert all("in the baseline ->" in x and "p = " in x for x in d.lines)
    assert dedup_key("m", b.kind, b.feature) == "m|bias|sex=F"
    payload = {"alert": {"kind": "bias", "id": 1}, "lines": list(b.lines), "details": dict(b.details)}
    text = json.dumps(alert_message("alert_opened", payload)[1])
    assert "against `sex=M`" in text and "allowed [0.8, 1.25]" in text


def test_a_clean_window_has_no_fairness_finding() -> None:
    assert fairness_findings(_fairness(penalty=0.0), None) == []


def test_explanation_disparity_names_the_proxy_feature_per_group() -> None:
    analyzer = DisparityAnalyzer(["sex", "age_band"], FEATURES, permutations=1000)
    analyzer.fit(*_window(3000, seed=1), sign=-1.0)
    report = analyzer.analyze(*_window(1200, seed=2, proxy=2.5), sign=-1.0)
    result = RunResult("m", T0, T0, RunStatus.SUCCEEDED, disparity=report)
    found = [f for f in findings(result) if f.kind == AlertKind.EXPLANATION_DISPARITY]
    assert [f.feature for f in found] == ["sex=F"]
    assert any("zip_density" in line and "possible proxy for sex" in line for line in found[0].lines)
    assert any("in the baseline" in line and "more than before" in line for line in found[0].lines)
    text = json.dumps(alert_message("alert_opened", {"alert": {"kind": "explanation_disparity", "id": 2},
                                                      "details": dict(found[0].details)})[1])
    assert "`zip_density` weighs differently" in text
    assert "fairness" in result.to_dict() and "explanation_disparity" in result.to_dict()["fairness"]
