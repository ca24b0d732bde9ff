"""Measured false-flag and detection rates of bias and bias drift by window size (slow).

Run: pytest -m slow -s tests/fairness/test_false_flags.py  (the README quotes its output).
Two attributes (race 70/20/10 %, sex 50/50), half the labels known, a baseline of 5,000
rows; 200 clean windows and 50 windows where group "b" gets a 1.5-logit penalty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.fairness import FairnessAnalyzer, Outcome


def _population(rows: int, seed: int, penalty: float = 0.0):
    rng = np.random.default_rng(seed)
    race = rng.choice(["w", "b", "a"], rows, p=[0.7, 0.2, 0.1])
    sex = rng.choice(["F", "M"], rows)
    merit = rng.normal(0, 1.5, rows)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-merit))).astype(float)
    labels[rng.uniform(size=rows) < 0.5] = np.nan
    scores = 1 / (1 + np.exp(-(merit - penalty * (race == "b"))))
    return pd.DataFrame({"race": race, "sex": sex}), scores, labels


@pytest.mark.slow
@pytest.mark.parametrize("rows", [200, 500, 2000], ids=lambda n: f"{n}-rows")
def test_false_flags_and_detection_by_window_size(rows: int) -> None:
    analyzer = FairnessAnalyzer(["race", "sex"], Outcome.resolve("binary_classification", 1))
    analyzer.fit(*_population(5000, seed=1))
    bias = drift = detected = 0
    for window in range(200):
        report = analyzer.analyze(*_population(rows, seed=100 + window), seed=window)
        bias += bool(report.bias)
        drift += bool(report.drift)
    for window in range(50):
        report = analyzer.analyze(*_population(rows, seed=900 + window, penalty=1.5), seed=window)
        detected += {(f.attribute, f.group) for f in report.bias} == {("race", "b")}
    print(f"{rows} rows: clean bias {bias}/200, clean bias drift {drift}/200, drop found {detected}/50")
    assert bias <= 4 and drift <= 10
    assert detected >= {200: 30, 500: 45, 2000: 50}[rows]
