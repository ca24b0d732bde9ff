"""Explanation disparity: a planted proxy feature and planted reasons are found, for the right
group and feature; clean windows find (almost) nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.fairness import DisparityAnalyzer, FeatureInfluence, ReasonDisparity

FEATURES = ["income", "debt", "tenure", "zip_density", "age_of_account", "inquiries"]


def _window(rows: int, seed: int, *, proxy: float = 1.0, reason: str | None = None):
    """Attributions of P(approve): negative values push towards denial."""
    rng = np.random.default_rng(seed)
    attrs = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], rows, p=[0.4, 0.6]),
            "age_band": rng.choice(["18-40", "40-60", "60+"], rows, p=[0.4, 0.4, 0.2]),
        }
    )
    values = rng.normal(0, 1, (rows, len(FEATURES)))
    female = (attrs["sex"] == "F").to_numpy()
    values[female, FEATURES.index("zip_density")] *= proxy  # the model leans on a proxy of sex
    if reason is not None:  # women are denied because of this feature
        values[female, FEATURES.index(reason)] -= 1.5
    favorable = values.sum(axis=1) + rng.normal(0, 0.5, rows) > 0
    return attrs, values, favorable


def _analyzer() -> DisparityAnalyzer:
    return DisparityAnalyzer(["sex", "age_band"], FEATURES, permutations=1000)


def test_a_planted_proxy_is_found_for_that_feature_and_attribute() -> None:
    analyzer = _analyzer().fit(*_window(3000, seed=1), sign=-1.0)
    report = analyzer.analyze(*_window(1200, seed=2, proxy=2.5), sign=-1.0)
    found = [f for f in report.findings if isinstance(f, FeatureInfluence)]
    assert [(f.attribute, f.feature) for f in found] == [("sex", "zip_density")]
    proxy = found[0]
    assert proxy.group == "F" and proxy.group_mean_abs > 2 * proxy.other_mean_abs
    assert abs(proxy.statistic) > proxy.threshold and proxy.p_value < 0.005
    json.loads(json.dumps(report.to_dict(), allow_nan=False))


def test_groups_denied_for_different_reasons() -> None:
    analyzer = _analyzer().fit(*_window(3000, seed=3), sign=-1.0)
    report = analyzer.analyze(*_window(1200, seed=4, reason="tenure"), sign=-1.0)
    found = {
        (r.attribute, r.group, r.compared_with) for r in report.findings if isinstance(r, ReasonDisparity)
    }
    assert ("sex", "F", "other_groups") in found and ("sex", "F", "baseline") in found
    assert ("sex", "M", "baseline") not in found
    # every age band's reasons moved with the women in it (a true change against the
    # baseline), but the bands do not differ from one another
    assert not any(a == "age_band" and other == "other_groups" for a, _, other in found)
    across = next(r for r in report.reasons if r.group == "F" and r.compared_with == "other_groups")
    assert next(iter(across.group_reasons)) == "tenure"
    assert across.distance > across.threshold


@pytest.mark.slow
def test_clean_windows_find_almost_nothing() -> None:
    analyzer = _analyzer().fit(*_window(3000, seed=5), sign=-1.0)
    windows, flagged = 20, 0
    for seed in range(windows):
        report = analyzer.analyze(*_window(600, seed=100 + seed), sign=-1.0, seed=seed)
        flagged += bool(report.findings)
    print(f"explanation disparity on clean windows: {flagged}/{windows} windows with a finding")
    assert flagged <= 1


@pytest.mark.slow
def test_a_gap_the_baseline_already_had_is_not_news() -> None:
    """Women were already denied for `tenure` and `zip_density` already weighed more for
    them in the baseline: clean windows of the same model raise (almost) nothing, and
    each test says what the baseline's gap was."""
    analyzer = _analyzer().fit(*_window(3000, seed=7, proxy=2.5, reason="tenure"), sign=-1.0)
    windows, flagged = 20, 0
    for seed in range(windows):
        report = analyzer.analyze(*_window(600, seed=200 + seed, proxy=2.5, reason="tenure"), sign=-1.0,
                                  seed=seed)
        flagged += bool(report.findings)
        across = next(r for r in report.reasons if r.attribute == "sex" and r.compared_with == "other_groups")
        assert across.judged == "change" and across.baseline_distance > 0.1
        women = across.group_reasons if across.group == "F" else across.other_reasons
        assert next(iter(women)) == "tenure"  # the gap is there, and was before
        influence = next(i for i in report.influence if i.attribute == "sex")
        assert influence.judged == "change" and influence.baseline_group_mean_abs is not None
    print(f"explanation disparity with a gap the baseline had: {flagged}/{windows} windows with a finding")
    assert flagged <= 1


def test_a_gap_that_grew_since_the_baseline_is_found() -> None:
    analyzer = _analyzer().fit(*_window(3000, seed=8, proxy=2.0), sign=-1.0)
    report = analyzer.analyze(*_window(1200, seed=9, proxy=4.0), sign=-1.0)
    found = [f for f in report.findings if isinstance(f, FeatureInfluence)]
    assert [(f.attribute, f.group, f.feature) for f in found] == [("sex", "F", "zip_density")]
    grew = found[0]
    assert grew.judged == "change" and grew.statistic > 0
    gap_now = grew.group_mean_abs - grew.other_mean_abs
    assert gap_now > grew.baseline_group_mean_abs - grew.baseline_other_mean_abs
    as_dict = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_dict["influence"][0]["judged"] in ("change", "gap")


def test_a_group_new_since_the_baseline_is_judged_on_its_gap() -> None:
    analyzer = _analyzer().fit(*_window(3000, seed=10), sign=-1.0)
    attrs, values, favorable = _window(1200, seed=11)
    attrs.loc[attrs.index[:400], "age_band"] = "75+"  # a band the baseline never had
    report = analyzer.analyze(attrs, values, favorable, sign=-1.0)
    new = next(r for r in report.reasons if r.attribute == "age_band" and r.group == "75+"
               and r.compared_with == "other_groups")
    assert new.judged == "gap" and new.baseline_distance is None
    old = next(r for r in report.reasons if r.group == "18-40" and r.compared_with == "other_groups")
    assert old.judged == "change"
