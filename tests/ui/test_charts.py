"""The drift chart's scale: a drifted feature gets the long bar, for p-values and distances."""

from __future__ import annotations

import math

import pytest

from monitor.charts import drift_chart, drift_strength, is_p_value


@pytest.mark.parametrize(
    ("method", "drifted", "healthy", "threshold"),
    [("ks", 1e-9, 0.8, 0.05), ("chisquare", 0.001, 0.3, 0.05), ("wasserstein", 0.3, 0.02, 0.1),
     ("psi", 0.5, 0.05, 0.1)],
    ids=["ks-p-value", "chisquare-p-value", "wasserstein-distance", "psi-distance"],
)
def test_a_drifted_feature_has_the_longer_bar(method, drifted, healthy, threshold):
    p = is_p_value({"method": method})
    assert p == (method in ("ks", "chisquare"))
    strong = drift_strength(drifted, threshold, p)
    weak = drift_strength(healthy, threshold, p)
    assert strong > 1.0 > weak  # 1 is the threshold on every test's scale
    assert drift_strength(threshold, threshold, p) == pytest.approx(1.0)


def test_undrawable_scores_are_none_not_a_crash():
    assert drift_strength(None, 0.05, True) is None
    assert drift_strength(float("nan"), 0.05, True) is None
    assert drift_strength(0.2, 0.0, False) is None
    assert drift_strength(0.0, 0.05, True) == pytest.approx(300 / -math.log10(0.05))  # p floored


def test_the_chart_is_a_png():
    png = drift_chart({"a": {"method": "ks", "score": 1e-6, "threshold": 0.05, "drifted": True},
                       "b": {"method": "ks", "score": 0.9, "threshold": 0.05, "drifted": False}})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
