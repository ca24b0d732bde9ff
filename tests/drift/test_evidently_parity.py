"""Every feature's score and verdict equal what Evidently's DataDriftPreset reports."""

from __future__ import annotations

import pytest
from evidently.legacy.calculations.stattests.registry import get_registered_stattest
from evidently.legacy.core import ColumnType

from monitor.config import DriftConfig, FeatureDriftOverride
from monitor.drift import DriftAnalyzer
from tests.drift.helpers import Frames, breast_cancer_frames, evidently_verdicts, wine_frames

TOLERANCE = 1e-9


def _display(method: str, kind: str) -> str:
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    try:
        return get_registered_stattest(method, column_type).display_name
    except ValueError:  # z / chi-square chosen by default for low-cardinality numbers
        return get_registered_stattest(method, ColumnType.Categorical).display_name


def _assert_same(
    frames: Frames, config: DriftConfig, share_from_columns: bool = False, **preset
) -> set[str]:
    ours = DriftAnalyzer(
        frames.numeric, frames.categorical, config, "regression", threshold_mode="fixed"
    )
    report = ours.fit(frames.reference).analyze(frames.current)
    theirs, share = evidently_verdicts(frames, **preset)
    assert set(theirs) == set(report.features)
    for name, (method, score, threshold, drifted) in theirs.items():
        mine = report.features[name]
        # Evidently names a method it chose by its display name, a configured one as given
        assert method in (mine.method, _display(mine.method, mine.kind)), name
        assert abs(mine.score - score) <= TOLERANCE, (name, mine.score, score)
        assert mine.threshold == pytest.approx(threshold, abs=1e-12), name
        assert mine.drifted == drifted, name
    if share_from_columns:
        share = sum(drifted for *_, drifted in theirs.values()) / len(theirs)
    assert report.drift_share == pytest.approx(share, abs=1e-12)
    assert report.dataset_drift == (share >= 0.5)
    return {f.method for f in report.features.values()}


@pytest.mark.parametrize(
    ("frames", "expected_methods"),
    [
        pytest.param(
            lambda: breast_cancer_frames(400, 300), {"ks", "chisquare", "z"}, id="small-reference"
        ),
        pytest.param(wine_frames, {"ks", "chisquare", "z"}, id="wine-low-cardinality-numeric"),
        pytest.param(
            lambda: breast_cancer_frames(3000, 2000),
            {"wasserstein", "jensenshannon"},
            id="large-reference",
        ),
    ],
)
def test_default_tests_match_data_drift_preset(frames, expected_methods):
    methods = _assert_same(frames(), DriftConfig())
    assert methods == expected_methods


def test_missing_and_infinite_values_are_dropped_like_evidently():
    frames = breast_cancer_frames(1500, 800)
    frames.current.loc[:40, "mean radius"] = float("nan")
    frames.current.loc[41:45, "mean texture"] = float("inf")
    frames.reference.loc[:30, "worst area"] = float("nan")
    frames.current.loc[:25, "region"] = None
    # Evidently's ValueDrift drops infinities, its DriftedColumnsCount does not (it only
    # cleans columns that hold NaN): the share follows the per-column verdicts
    _assert_same(frames, DriftConfig(), share_from_columns=True)


@pytest.mark.parametrize(
    ("method", "threshold", "rows"),
    [("psi", 0.2, 400), ("jensenshannon", 0.05, 2500)],
    ids=["psi-small", "jensenshannon-large"],
)
def test_configured_method_for_every_feature(method, threshold, rows):
    frames = breast_cancer_frames(rows, 600, seed=3)
    methods = _assert_same(
        frames, DriftConfig(method=method, threshold=threshold), method=method, threshold=threshold
    )
    assert methods == {method}


@pytest.mark.parametrize(
    ("method", "threshold"),
    [("ks", 0.01), ("wasserstein", 0.2), ("anderson", 0.05)],
    ids=["ks", "wasserstein", "anderson-delegated-to-evidently"],
)
def test_per_feature_method_and_threshold(method, threshold):
    frames = breast_cancer_frames(1200, 500, seed=5)
    chosen = frames.numeric[:5]
    config = DriftConfig(
        features={n: FeatureDriftOverride(method=method, threshold=threshold) for n in chosen}
    )
    methods = _assert_same(
        frames,
        config,
        per_column_method=dict.fromkeys(chosen, method),
        per_column_threshold=dict.fromkeys(chosen, threshold),
    )
    assert methods == {method, "wasserstein", "jensenshannon"}
