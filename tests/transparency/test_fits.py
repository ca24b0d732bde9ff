"""The surrogate's baseline bootstrap kept in a fit store: fitted once per size bucket,
the same report whether read back or built, rebuilt when a setting changes, and the
bucketed range close to the one bootstrapped at the window's exact size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.store import transaction
from monitor.surrogate import SurrogateBaseline, surrogate_report, window_surrogate
from tests.drift.test_fits import MemoryFits

COLS = list("abcd")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame(rng.normal(size=(600, 4)), columns=COLS)
    ref["color"] = rng.choice(["red", "blue", "green"], 600)
    y_ref = np.tanh(2 * ref["a"]) + 0.3 * ref["b"] + 0.2 * (ref["color"] == "red") + rng.normal(0, 0.2, 600)
    win = pd.DataFrame(rng.normal(size=(150, 4)), columns=COLS)
    win["color"] = rng.choice(["red", "blue", "green"], 150)
    y = np.tanh(2 * win["a"]) + 0.3 * win["b"] + 0.2 * (win["color"] == "red") + rng.normal(0, 0.2, 150)
    return ref, y_ref.to_numpy(), win, y.to_numpy()


@pytest.fixture
def bootstraps(monkeypatch):
    """The bucket sizes whose bootstrap range was fitted (a spy on the build function)."""
    calls: list[int] = []
    build = SurrogateBaseline._bootstrap

    def spy(self, size):
        calls.append(size)
        return build(self, size)

    monkeypatch.setattr(SurrogateBaseline, "_bootstrap", spy)
    return calls


def _report(data, fits, **settings):
    ref, y_ref, win, y = data
    options = {"max_depth": 3, "resamples": 60, "seed": 2, **settings}
    return surrogate_report(win, y, ref, y_ref, numeric=COLS, categorical=["color"], fits=fits, **options)


def test_a_kept_bootstrap_gives_the_same_report_and_fits_no_tree(data, bootstraps):
    fits = MemoryFits()
    cold = _report(data, fits)
    assert sorted(bootstraps) == [128, 181]  # the buckets around 150 rows
    assert {(check, key) for check, key, _ in fits.rows} == {
        ("surrogate", "128"), ("surrogate", "181"), ("surrogate", "whole")
    }
    warm = _report(data, fits)
    assert len(bootstraps) == 2, "the warm report fitted a bootstrap the store holds"
    assert warm.to_dict() == cold.to_dict()
    assert cold.lower_bound is not None and cold.lower_bound < cold.baseline_median
    assert cold.baseline_top_feature == "a" and not cold.flagged
    assert _report(data, None).to_dict() == cold.to_dict()


@pytest.mark.parametrize(
    "change", [{"resamples": 40}, {"max_depth": 2}, {"seed": 3}, {"holdout": 0.4}],
    ids=["resamples", "depth", "seed", "holdout"],
)
def test_a_setting_that_changes_the_bootstrap_fits_it_again(data, bootstraps, change):
    fits = MemoryFits()
    _report(data, fits)
    _report(data, fits, **change)
    assert len(bootstraps) == 4


def test_another_baseline_output_fits_it_again(data, bootstraps):
    ref, y_ref, win, y = data
    fits = MemoryFits()
    _report(data, fits)
    surrogate_report(win, y, ref, y_ref * 2, numeric=COLS, categorical=["color"], resamples=60, seed=2,
                     fits=fits)
    assert len(bootstraps) == 4


def test_a_window_on_a_bucket_fits_one_range_and_the_next_size_reuses_it(data, bootstraps):
    ref, y_ref, win, y = data
    baseline = SurrogateBaseline(ref, y_ref, numeric=COLS, categorical=["color"], resamples=40, seed=2)
    window_surrogate(win.iloc[:128], y[:128], baseline)
    assert bootstraps == [128]
    window_surrogate(win.iloc[:140], y[:140], baseline)
    assert bootstraps == [128, 181]


def test_the_bucketed_range_matches_the_range_at_the_exact_size(data):
    """Interpolating the neighbouring buckets in log n stands for a bootstrap at the
    window's own size: the quantiles agree within the bootstraps' own sampling error."""
    ref, y_ref, _, _ = data
    baseline = SurrogateBaseline(ref, y_ref, numeric=COLS, categorical=["color"], resamples=400, seed=5)
    from monitor.drift.calibration import interpolate_log_n

    n, (low, high) = 150, (128, 181)
    exact = baseline._bootstrap(n).fidelities
    for q in (0.05, 0.5):
        at = interpolate_log_n(n, low, high, *(np.quantile(baseline.range_at(s).fidelities, q)
                                               for s in (low, high)))
        spread = np.quantile(exact, 0.75) - np.quantile(exact, 0.25)
        assert abs(at - np.quantile(exact, q)) < 0.25 * spread, (q, at, np.quantile(exact, q))


# -- through real runs -------------------------------------------------------------------


@pytest.fixture
def nulls(monkeypatch):
    """The drift nulls built (a spy on the build function)."""
    from monitor.drift.calibration import ColumnCalibration

    calls: list[tuple[str, int]] = []
    build = ColumnCalibration._build

    def spy(self, method, n):
        calls.append((self.reference.name, method, n))
        return build(self, method, n)

    monkeypatch.setattr(ColumnCalibration, "_build", spy)
    return calls


def _run(settings, engine, start):
    """`monitor once` as a new process would compute it: nothing kept in memory."""
    from monitor.cycle import Runtime, run_once
    from tests.models import WINDOW

    outcome = run_once(settings, engine, "cancer", start, start + WINDOW, force=True, runtime=Runtime(),
                       channels=[])
    return outcome.result


def _decided(result):
    drift = result.drift
    tests = {**drift.features, **({"__prediction__": drift.prediction} if drift.prediction else {})}
    surrogate = result.surrogate
    return (
        {name: (f.p_value, f.alpha, f.threshold, f.min_detectable_shift) for name, f in tests.items()},
        (surrogate.lower_bound, surrogate.baseline_median, surrogate.top_feature_share, surrogate.resamples),
    )


def _settings(write_config, db_url, model_dir, extra="", name="config.toml"):
    from monitor.config import load_settings
    from tests.models import CONFIG, FEATURES

    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    return load_settings(write_config(body + extra, name=name), env={})


def test_a_second_run_on_the_same_baseline_fits_nothing(engine, db_url, model_dir, write_config,
                                                        send_traffic, nulls, bootstraps):
    from monitor.baseline import build_baseline
    from monitor.store.baselines import active_baseline
    from monitor.store.fits import count_fits
    from tests.models import T0

    settings = _settings(write_config, db_url, model_dir)
    build_baseline(settings, engine, "cancer", created_by="test")
    send_traffic(engine, settings, T0, seed=10)
    cold = _run(settings, engine, T0)
    assert nulls and bootstraps, "the first run on a baseline builds its nulls and bootstraps"
    with transaction(engine) as session:
        baseline = active_baseline(session, "cancer").id
        assert count_fits(session, baseline, "drift") == len(nulls)
        assert count_fits(session, baseline, "surrogate") == len(bootstraps) + 1  # + the whole tree

    nulls.clear(), bootstraps.clear()
    warm = _run(settings, engine, T0)
    assert nulls == [] and bootstraps == [], "a second run rebuilt a kept fit"
    assert _decided(warm) == _decided(cold)
    assert warm.surrogate.lower_bound is not None

    # settings that change the fits: both are built again, and replace the old ones
    changed = _settings(write_config, db_url, model_dir, name="changed.toml", extra=(
        "[models.drift]\ncalibration_resamples = 200\n[models.surrogate]\nmax_depth = 2\n"
    ))
    _run(changed, engine, T0)
    assert nulls and bootstraps
    with transaction(engine) as session:
        assert count_fits(session, baseline, "drift") == len(nulls)

    # a new baseline: nothing of the old one is read
    nulls.clear(), bootstraps.clear()
    build_baseline(settings, engine, "cancer", created_by="test")
    _run(settings, engine, T0)
    assert nulls and bootstraps
