"""Fairness engine: intervals that cover the truth, bias only where the model turned, none
on clean windows, bias drift against the baseline, and JSON-safe results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.fairness import Bands, FairnessAnalyzer, FairnessError, Metric, Outcome
from tests.fairness.helpers import population

BINARY = Outcome.resolve("binary_classification", 1)


def _analyzer(**kw) -> FairnessAnalyzer:
    return FairnessAnalyzer(["sex", "age_band"], BINARY, **kw)


def test_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    """Known group rates: a (TPR .8, FPR .2) vs b (TPR .7, FPR .1), half the labels favorable,
    so DI = .4/.5 = .8 and every difference is -.1; intervals over 300 windows."""
    truth = {
        Metric.DISPARATE_IMPACT: 0.8,
        Metric.PARITY_DIFFERENCE: -0.1,
        Metric.TPR_DIFFERENCE: -0.1,
        Metric.FPR_DIFFERENCE: -0.1,
        Metric.AVERAGE_ODDS: -0.1,
    }
    analyzer = FairnessAnalyzer(["g"], BINARY, reference_groups={"g": "a"}, resamples=500)
    covered = dict.fromkeys(truth, 0)
    windows = 300
    for seed in range(windows):
        rng = np.random.default_rng(seed)
        groups = np.array(["a"] * 400 + ["b"] * 250)
        y = (rng.uniform(size=650) < 0.5).astype(float)
        tpr, fpr = np.where(groups == "a", 0.8, 0.7), np.where(groups == "a", 0.2, 0.1)
        decided = rng.uniform(size=650) < np.where(y == 1, tpr, fpr)
        report = analyzer.analyze(pd.DataFrame({"g": groups}), np.where(decided, 0.9, 0.1), y, seed=seed)
        metrics = report.attributes["g"].groups["b"].metrics
        for metric, value in truth.items():
            covered[metric] += metrics[metric].ci_low <= value <= metrics[metric].ci_high
    rates = {m.value: covered[m] / windows for m in truth}
    level = report.attributes["g"].interval_level
    print(f"coverage of {level:.4f} intervals (95% made simultaneous over 3 families):", rates)
    assert level == pytest.approx(1 - 0.05 / 3)
    for metric, rate in rates.items():
        assert level - 0.04 <= rate <= min(level + 0.015, 1.0), (metric, rate)


def test_unlabelled_intervals_cover_at_the_nominal_rate() -> None:
    """Without labels one family is judged: the intervals are the plain 95 % ones."""
    analyzer = FairnessAnalyzer(["g"], BINARY, reference_groups={"g": "a"}, resamples=500)
    covered, windows = {Metric.DISPARATE_IMPACT: 0, Metric.PARITY_DIFFERENCE: 0}, 300
    for seed in range(windows):
        rng = np.random.default_rng(seed)
        groups = np.array(["a"] * 300 + ["b"] * 120)
        decided = rng.uniform(size=420) < np.where(groups == "a", 0.5, 0.35)
        report = analyzer.analyze(pd.DataFrame({"g": groups}), np.where(decided, 0.9, 0.1), seed=seed)
        metrics = report.attributes["g"].groups["b"].metrics
        for metric, value in ((Metric.DISPARATE_IMPACT, 0.7), (Metric.PARITY_DIFFERENCE, -0.15)):
            covered[metric] += metrics[metric].ci_low <= value <= metrics[metric].ci_high
    assert report.attributes["g"].interval_level == pytest.approx(0.95)
    rates = {m.value: c / windows for m, c in covered.items()}
    print("coverage of 95% intervals without labels:", rates)
    assert all(0.91 <= r <= 0.98 for r in rates.values()), rates


def test_a_drop_for_one_group_flags_that_group_only_from_the_drop_on() -> None:
    analyzer = _analyzer().fit(*population(4000, seed=1))
    flagged = []
    for window in range(20):
        penalty = 1.2 if window >= 10 else 0.0
        report = analyzer.analyze(*population(600, seed=100 + window, penalty=penalty), seed=window)
        flagged.append({(f.attribute, f.group) for f in report.bias})
        if window >= 10:
            metrics = {f.metric for f in report.bias}
            assert Metric.DISPARATE_IMPACT in metrics and Metric.PARITY_DIFFERENCE in metrics
            assert {(d.attribute, d.group) for d in report.drift} >= {("sex", "F")}
    assert flagged[:10] == [set()] * 10
    assert flagged[10:] == [{("sex", "F")}] * 10


def test_a_drop_of_the_reference_group_names_that_group() -> None:
    """F is the largest group here (the reference): M then looks favoured beyond the band,
    and the finding is oriented from F's side."""
    analyzer = _analyzer().fit(*population(4000, seed=2, p_female=0.6))
    assert analyzer.baseline.attributes["sex"].reference_group == "F"
    report = analyzer.analyze(*population(800, seed=3, p_female=0.6, penalty=1.2))
    found = [f for f in report.bias if f.attribute == "sex"]
    assert found and {(f.group, f.compared_with) for f in found} == {("F", "M")}
    ratio = next(f for f in found if f.metric is Metric.DISPARATE_IMPACT)
    assert ratio.ci_high < 0.8 and ratio.value < 0.8
    raw = report.attributes["sex"].groups["M"].metrics[Metric.DISPARATE_IMPACT]
    assert raw.bias and raw.ci_low > 1.25 and ratio.value == pytest.approx(1 / raw.value)


def test_clean_windows_flag_nothing() -> None:
    """100 seeded windows from the baseline's distribution: measured false-flag rates."""
    analyzer = _analyzer().fit(*population(4000, seed=5))
    bias = drift = 0
    windows = 100
    for window in range(windows):
        report = analyzer.analyze(*population(500, seed=1000 + window), seed=window)
        bias += bool(report.bias)
        drift += bool(report.drift)
    print(f"clean windows: bias flagged {bias}/{windows}, bias drift flagged {drift}/{windows}")
    assert bias == 0
    assert drift <= 3  # Bonferroni at 0.01 per attribute: about 2 % of windows at most


def test_weights_act_like_repeated_rows() -> None:
    attrs, scores, labels = population(600, seed=9)
    weights = np.random.default_rng(0).integers(1, 4, len(scores)).astype(float)
    repeat = np.repeat(np.arange(len(scores)), weights.astype(int))
    a = _analyzer(min_rows=1).analyze(attrs, scores, labels, weights)
    b = _analyzer(min_rows=1).analyze(attrs.iloc[repeat], scores[repeat], labels[repeat])
    for name in ("sex", "age_band"):
        for group, result in a.attributes[name].groups.items():
            other = b.attributes[name].groups[group]
            assert result.weighted_rows == other.rows
            for metric, value in result.metrics.items():
                assert value.value == pytest.approx(other.metrics[metric].value, abs=1e-12)


def test_band_verdicts_and_small_groups() -> None:
    attrs, scores, labels = population(2000, seed=4, penalty=0.6)
    wide = FairnessAnalyzer(["sex"], BINARY, bands=Bands(0.2, 5.0, 0.9)).analyze(attrs, scores, labels)
    assert not wide.bias
    tight = FairnessAnalyzer(["sex"], BINARY, bands=Bands(0.99, 1.01, 0.01)).analyze(attrs, scores, labels)
    assert {(f.group, f.metric) for f in tight.bias} >= {("F", Metric.PARITY_DIFFERENCE)}
    tiny = FairnessAnalyzer(["sex"], BINARY, min_rows=5000).analyze(attrs, scores, labels)
    assert all(not g.metrics and not g.sufficient for g in tiny.attributes["sex"].groups.values())
    missing = FairnessAnalyzer(["sex"], BINARY, reference_groups={"sex": "X"}).analyze(attrs, scores, labels)
    assert "'X'" in missing.attributes["sex"].note and not missing.bias


def test_without_labels_only_rate_metrics_and_json_is_strict() -> None:
    attrs, scores, _ = population(800, seed=6, penalty=1.5)
    analyzer = _analyzer().fit(*population(3000, seed=7)[:2])
    report = analyzer.analyze(attrs, scores)
    metrics = report.attributes["sex"].groups["F"].metrics
    assert set(metrics) == {Metric.SELECTION_RATE, Metric.DISPARATE_IMPACT, Metric.PARITY_DIFFERENCE}
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["bias"] and data["bias"][0]["group"] == "F"
    assert data["attributes"]["sex"]["groups"]["F"]["metrics"]["disparate_impact"]["baseline"] is not None


def test_misaligned_inputs_are_refused() -> None:
    attrs, scores, labels = population(100, seed=1)
    with pytest.raises(FairnessError, match="attribute rows"):
        _analyzer().analyze(attrs.iloc[:50], scores, labels)
    with pytest.raises(FairnessError, match="lacks"):
        _analyzer().analyze(attrs[["sex"]], scores, labels)
    with pytest.raises(FairnessError, match="favorable class"):
        Outcome.resolve("multiclass_classification", "approved", class_names=("denied", "review"))


def test_a_small_group_at_a_rate_of_one_is_not_flagged_by_chance() -> None:
    """Same TPR (0.85) in both groups, 15 positives in the small one: it often catches all
    15 (9 % of windows), where a plain percentile bootstrap collapses to a point."""
    analyzer = FairnessAnalyzer(["g"], BINARY, reference_groups={"g": "a"}, resamples=500)
    windows, flagged, perfect = 200, 0, 0
    for seed in range(windows):
        rng = np.random.default_rng(seed)
        groups = np.array(["a"] * 600 + ["b"] * 40)
        y = np.r_[(rng.uniform(size=600) < 0.5), np.ones(15), np.zeros(25)].astype(float)
        decided = rng.uniform(size=640) < np.where(y == 1, 0.85, 0.15)
        report = analyzer.analyze(pd.DataFrame({"g": groups}), np.where(decided, 0.9, 0.1), y, seed=seed)
        perfect += report.attributes["g"].groups["b"].true_positive_rate == 1.0
        flagged += bool(report.bias)
    assert perfect >= 8  # the case happened
    assert flagged <= 0.02 * windows, flagged
