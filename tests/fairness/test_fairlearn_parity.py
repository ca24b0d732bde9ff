"""Fairness metrics equal fairlearn's (MetricFrame, demographic parity, equalized odds) to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from monitor.fairness import FairnessAnalyzer, Metric, Outcome

TOL = 1e-9


def _fairlearn(decided: np.ndarray, good: np.ndarray, groups: np.ndarray, weights: np.ndarray | None) -> dict:
    """fairlearn's per-group rates and between-groups summaries for favorable = 1."""
    sw = {} if weights is None else {"sample_weight": weights}
    known = ~np.isnan(good)
    kw = {} if weights is None else {"sample_weight": weights[known]}
    sel = MetricFrame(
        metrics=selection_rate,
        y_true=decided,
        y_pred=decided,
        sensitive_features=groups,
        sample_params=sw,
    )
    y, d, g = good[known].astype(int), decided[known], groups[known]
    odds = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=d,
        sensitive_features=g,
        sample_params={"tpr": kw, "fpr": kw},
    )
    return {
        "sel": sel.by_group,
        "tpr": odds.by_group["tpr"],
        "fpr": odds.by_group["fpr"],
        "dpd": demographic_parity_difference(decided, decided, sensitive_features=groups, **sw),
        "dpr": demographic_parity_ratio(decided, decided, sensitive_features=groups, **sw),
        "eod": equal_opportunity_difference(y, d, sensitive_features=g, **kw),
        "eqo": equalized_odds_difference(y, d, sensitive_features=g, **kw),
    }


def _check(report, attribute: str, decided, good, groups, weights) -> None:
    ref = _fairlearn(decided.astype(int), good, groups, weights)
    att = report.attributes[attribute]
    base = att.reference_group
    for g, result in att.groups.items():
        assert result.selection_rate == pytest.approx(ref["sel"][g], abs=TOL)
        assert result.true_positive_rate == pytest.approx(ref["tpr"][g], abs=TOL)
        assert result.false_positive_rate == pytest.approx(ref["fpr"][g], abs=TOL)
        if g == base:
            continue
        m = result.metrics
        assert m[Metric.DISPARATE_IMPACT].value == pytest.approx(ref["sel"][g] / ref["sel"][base], abs=TOL)
        assert m[Metric.PARITY_DIFFERENCE].value == pytest.approx(ref["sel"][g] - ref["sel"][base], abs=TOL)
        tpr = ref["tpr"][g] - ref["tpr"][base]
        fpr = ref["fpr"][g] - ref["fpr"][base]
        assert m[Metric.TPR_DIFFERENCE].value == pytest.approx(tpr, abs=TOL)
        assert m[Metric.FPR_DIFFERENCE].value == pytest.approx(fpr, abs=TOL)
        assert m[Metric.AVERAGE_ODDS].value == pytest.approx((tpr + fpr) / 2, abs=TOL)
    assert att.demographic_parity_difference == pytest.approx(ref["dpd"], abs=TOL)
    assert att.demographic_parity_ratio == pytest.approx(ref["dpr"], abs=TOL)
    assert att.equal_opportunity_difference == pytest.approx(ref["eod"], abs=TOL)
    assert att.equalized_odds_difference == pytest.approx(ref["eqo"], abs=TOL)


CASES = {
    "binary-favorable-1": ("binary_classification", 1, None, False),
    "binary-favorable-0-weighted": ("binary_classification", 0, None, True),
    "binary-above-0.3": ("binary_classification", "above", 0.3, False),
    "multiclass-class-2-weighted": ("multiclass_classification", 2, None, True),
    "regression-below": ("regression", "below", 0.0, False),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_per_group_values_equal_fairlearn(case: str) -> None:
    task, favorable, threshold, weighted = CASES[case]
    rng = np.random.default_rng(7)
    n = 4000
    groups = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    shift = pd.Series(groups).map({"a": 0.0, "b": 0.3, "c": -0.4, "d": 0.8}).to_numpy()
    if task == "multiclass_classification":
        predictions = rng.dirichlet([1, 1, 1], n) + np.c_[np.zeros(n), np.zeros(n), shift / 4]
        labels = rng.integers(0, 3, n).astype(float)
    elif task == "regression":
        predictions = rng.normal(shift, 1.0)
        labels = predictions + rng.normal(0, 1.0, n)
    else:
        predictions = 1 / (1 + np.exp(-rng.normal(shift, 1.0)))
        labels = (rng.uniform(size=n) < predictions).astype(float)
    labels[rng.uniform(size=n) < 0.25] = np.nan  # labels not arrived yet
    weights = rng.choice([0.5, 1.0, 3.0], n) if weighted else None
    outcome = Outcome.resolve(task, favorable, threshold)
    analyzer = FairnessAnalyzer(["group"], outcome, min_rows=1, resamples=200)
    report = analyzer.analyze(pd.DataFrame({"group": groups}), predictions, labels, weights)
    decided = outcome.decisions(predictions)
    good = outcome.label_outcomes(labels, n)
    assert 0 < decided.mean() < 1 and np.nanmean(good) not in (0, 1)
    _check(report, "group", decided, good, groups, weights)


@pytest.fixture(scope="module")
def diabetes_model():
    """A real Keras regressor on scikit-learn's diabetes data (which records sex)."""
    import keras
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False).frame
    features = [c for c in data.columns if c not in ("target", "sex")]
    x = ((data[features] - data[features].mean()) / data[features].std()).to_numpy("float32")
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    net.fit(x, data["target"].to_numpy("float32"), epochs=30, batch_size=64, verbose=0)
    return data, net.predict(x, verbose=0).reshape(-1)


def test_real_model_on_diabetes_equals_fairlearn(diabetes_model) -> None:
    data, predictions = diabetes_model
    attrs = pd.DataFrame(
        {
            "sex": data["sex"].map({1.0: "1", 2.0: "2"}),
            "age_band": pd.cut(data["age"], [0, 40, 50, 60, 100]).astype(str),
        }
    )
    outcome = Outcome.resolve("regression", "below", float(np.median(data["target"])))
    report = FairnessAnalyzer(["sex", "age_band"], outcome, min_rows=1, resamples=200).analyze(
        attrs, predictions, data["target"].to_numpy()
    )
    decided, good = outcome.decisions(predictions), outcome.label_outcomes(data["target"], len(data))
    assert 0.2 < decided.mean() < 0.8
    for name in ("sex", "age_band"):
        _check(report, name, decided, good, attrs[name].to_numpy(), None)
