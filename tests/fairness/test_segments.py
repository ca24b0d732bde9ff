"""Segment engine: which segments are reported, their rates and performance, drift only where
the prediction moved, weighted rates from a stratified sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.fairness import SegmentAnalyzer, stratified_sample
from tests.fairness.helpers import population


def _frame(rows: int, seed: int, **kw) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    attrs, scores, labels = population(rows, seed, **kw)
    attrs["income"] = np.random.default_rng(seed).lognormal(10, 0.5, rows)
    return attrs, scores, labels


def test_segments_values_crosses_cap_and_min_rows() -> None:
    attrs, scores, labels = _frame(3000, seed=1)
    analyzer = SegmentAnalyzer(
        ["sex", "age_band", "income"],
        "binary_classification",
        numeric=["income"],
        max_segments=12,
        min_rows=200,
    ).fit(*_frame(3000, seed=2))
    report = analyzer.analyze(attrs, scores, labels)
    names = [s.name for s in report.segments]
    singles = [n for n in names if "&" not in n]
    assert len(report.segments) == 12 and report.candidates > 12
    assert names[: len(singles)] == singles  # single values before crosses
    assert {"sex=F", "sex=M", "age_band=60+"} <= set(singles)
    assert sum(n.startswith("income=") for n in singles) == 4  # quartile bins of the baseline
    assert all(s.rows >= 200 for s in report.segments)
    f = report.segment("sex=F")
    mask = (attrs["sex"] == "F").to_numpy()
    assert f.rows == mask.sum() and f.share == pytest.approx(mask.mean())
    assert f.prediction_rate == pytest.approx(np.mean(scores[mask] >= 0.5))
    assert f.prediction_mean == pytest.approx(scores[mask].mean())
    known = mask & ~np.isnan(labels)
    assert f.labelled_rows == known.sum()
    assert f.realized["accuracy"] == pytest.approx(np.mean((scores[known] >= 0.5) == labels[known]))
    json.dumps(report.to_dict(), allow_nan=False)
    row = attrs.iloc[[0]]
    belongs = analyzer.membership(row)[0]
    assert f"sex={row['sex'].iloc[0]}" in belongs and len(belongs) == 3 + 3
    assert any(name in belongs for name in [s.name for s in report.segments if "income=" in s.name])


def test_drift_flags_the_segment_whose_predictions_moved() -> None:
    analyzer = SegmentAnalyzer(["sex", "age_band"], "binary_classification").fit(*_frame(4000, seed=3))
    clean = analyzer.analyze(*_frame(1500, seed=4))
    assert not clean.drifted and clean.tested == len(clean.segments)
    moved = analyzer.analyze(*_frame(1500, seed=5, penalty=1.0))
    names = {s.name for s in moved.drifted}
    assert "sex=F" in names and "sex=M" not in names
    assert all("sex=M" not in n for n in names)


def test_multiclass_and_regression_segments_and_the_estimator() -> None:
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"region": rng.choice(["north", "south"], 2000)})
    scores = rng.dirichlet([1, 1, 1], 2000)
    labels = rng.integers(0, 3, 2000)
    seen = []

    def estimate(positions: np.ndarray) -> dict[str, float]:
        seen.append(positions)
        return {"accuracy": 0.5}

    multi = SegmentAnalyzer(["region"], "multiclass_classification", class_names=["a", "b", "c"])
    report = multi.fit(groups, scores, labels).analyze(groups, scores, labels, estimate=estimate)
    north = report.segment("region=north")
    mask = (groups["region"] == "north").to_numpy()
    assert north.drift_method == "chisquare" and north.drift_p_value == pytest.approx(1.0)
    assert north.class_shares["c"] == pytest.approx(np.mean(scores[mask].argmax(1) == 2))
    assert dict(north.estimated) == {"accuracy": 0.5} and len(seen) == 2
    assert any(np.array_equal(positions, np.flatnonzero(mask)) for positions in seen)
    values = rng.normal(size=2000)
    reg = SegmentAnalyzer(["region"], "regression").fit(groups, values, values + 1)
    south = reg.analyze(groups, values + 0.5 * (~mask), values).segment("region=south")
    assert south.drifted and south.drift_method == "ks"
    assert south.realized["mae"] == pytest.approx(0.5) and south.baseline_realized["rmse"] == pytest.approx(1)


def test_stratified_sample_weights_recover_the_window() -> None:
    attrs, scores, labels = _frame(20000, seed=6, p_female=0.03)
    sample = stratified_sample(attrs, ["sex", "age_band"], 600, min_rows=60, seed=1)
    picked = attrs.iloc[sample.positions]
    assert (picked["sex"] == "M").sum() <= 600 and (picked["sex"] == "F").sum() >= 60
    analyzer = SegmentAnalyzer(["sex"], "binary_classification", min_rows=30)
    weighted = analyzer.analyze(picked, scores[sample.positions], labels[sample.positions], sample.weights)
    full = analyzer.analyze(attrs, scores, labels)
    assert weighted.weighted
    f_w, f_full = weighted.segment("sex=F"), full.segment("sex=F")
    assert f_w.share == pytest.approx(f_full.share, abs=0.01)  # 3 % of the window, 10 % of the sample
    assert f_w.rows / 600 > 3 * f_full.share
    assert weighted.segment("sex=M").prediction_rate == pytest.approx(
        full.segment("sex=M").prediction_rate, abs=0.06
    )


@pytest.mark.parametrize("task", ["binary_classification", "regression"])
def test_a_segment_value_the_baseline_never_saw_is_reported_untested(task) -> None:
    """A new value (a new region, a new product) is a segment of the window with no
    baseline rows: it is reported with its rows and rate, not tested, and the rest judged."""
    base_attrs, base_scores, base_labels = _frame(2000, seed=6)
    analyzer = SegmentAnalyzer(["sex", "age_band"], task, min_rows=50).fit(
        base_attrs, base_scores, base_labels)
    attrs, scores, labels = _frame(1200, seed=7)
    attrs.loc[attrs.index[:300], "sex"] = "X"  # never in the baseline
    report = analyzer.analyze(attrs, scores, labels)
    new = report.segment("sex=X")
    assert new.rows == 300 and new.baseline_rows == 0 and new.drift_p_value is None
    assert new.baseline_rate is None and new.baseline_mean is None and not new.drifted
    if task == "binary_classification":
        assert new.prediction_rate == pytest.approx(np.mean(scores[:300] >= 0.5))
    assert report.segment("sex=F").drift_p_value is not None  # the others are still judged
    json.dumps(report.to_dict(), allow_nan=False)
