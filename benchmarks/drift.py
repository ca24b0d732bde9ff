"""Drift engine vs Evidently on the same two frames, interleaved, with fit time and memory.

100,000 rows x (40 numeric + 10 categorical), current vs reference. Two references run
in the same rounds as ours, taking turns (order reversed every other round), so load
on the shared machine hits every side alike:
  - Evidently's Report([DataDriftPreset()]) (mostly chart building);
  - Evidently's stat tests alone: per column, the cleaning, `get_stattest` choice and
    test call that its ValueDrift metric makes, without the report around them.
Ours is timed as fit (once per baseline), analyze (per window) and fit + analyze.
Peak traced memory (tracemalloc) of each side is taken in separate runs after the
timing. Targets (exit 1 when one is missed):
  - Report / ours analyze >= 7x; stat tests alone / ours fit + analyze >= 1x;
  - every score equal to both Evidently paths within 1e-12, every verdict equal;
  - ours fit peak memory <= the Report's.
Figures are medians; the load average is printed next to them.

    python benchmarks/drift.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import DriftConfig  # noqa: E402
from monitor.drift import DriftAnalyzer  # noqa: E402

NUMERIC, CATEGORICAL = 40, 10
TARGET_REPORT, TARGET_STATTESTS, TARGET_SCORE_DIFF = 7.0, 1.0, 1e-12

Scores = dict[str, tuple[float, bool]]


def make_frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """A reference and a current frame; a quarter of the columns drift."""
    rng = np.random.default_rng(seed)
    numeric = [f"num_{i:02d}" for i in range(NUMERIC)]
    categorical = [f"cat_{i:02d}" for i in range(CATEGORICAL)]

    def frame(shifted: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i, name in enumerate(numeric):
            shift = 0.15 if shifted and i % 4 == 0 else 0.0
            if i % 3 == 0:
                data[name] = rng.normal(shift, 1.0, rows)
            elif i % 3 == 1:
                data[name] = rng.lognormal(shift, 0.5, rows)
            else:
                data[name] = rng.integers(0, 100, rows) + shift * 10
        for i, name in enumerate(categorical):
            levels = np.array([f"level_{k}" for k in range(3 + 2 * i)])
            p = np.linspace(1.0, 2.0 if shifted and i % 4 == 0 else 1.0, len(levels))
            data[name] = rng.choice(levels, rows, p=p / p.sum())
        return pd.DataFrame(data)

    return frame(False), frame(True), numeric, categorical


def evidently_report(reference, current, numeric, categorical) -> Scores:
    """Per column (score, drifted) from Evidently's own report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = (
        Report([DataDriftPreset()], include_tests=True)
        .run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        .dict()
    )
    drifted = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in snapshot["tests"]
        if t["id"] == "drift"
    }
    return {
        m["config"]["column"]: (m["value"], drifted[m["config"]["column"]])
        for m in snapshot["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }


def evidently_stattests(reference, current, numeric, categorical) -> Scores:
    """Per column (score, drifted) from Evidently's stat tests alone, as its ValueDrift
    metric calls them (evidently.legacy.calculations.data_drift.get_one_column_drift):
    infinities and missing values dropped, the default test chosen, then run."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    out: Scores = {}
    for names, column_type in ((numeric, ColumnType.Numerical),
                               (categorical, ColumnType.Categorical)):
        for name in names:
            ref = reference[name].replace([-np.inf, np.inf], np.nan).dropna()
            cur = current[name].replace([-np.inf, np.inf], np.nan).dropna()
            result = get_stattest(ref, cur, column_type, None)(ref, cur, column_type, None)
            out[name] = (float(result.drift_score), bool(result.drifted))
    return out


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict, dict]:
    """Median seconds of each function over `repeats` rounds taken in turns (order
    reversed every other round), and each function's last result."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    names = list(fns)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            tick = time.perf_counter()
            results[name] = fns[name]()
            times[name].append(time.perf_counter() - tick)
    return {name: statistics.median(t) for name, t in times.items()}, results


def peak_mib(fn: Callable[[], Any]) -> float:
    """Peak memory traced by tracemalloc while `fn` runs, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reference, current, numeric, categorical = make_frames(args.rows)
    print(f"rows={args.rows:,} numeric={NUMERIC} categorical={CATEGORICAL}; medians of "
          f"{args.repeats} interleaved rounds after a warm-up; at start {load()}")

    def fit() -> DriftAnalyzer:
        # Evidently's own thresholds: the verdicts are compared with Evidently's
        fixed = DriftConfig(threshold_mode="fixed")
        return DriftAnalyzer(numeric, categorical, fixed, "regression").fit(reference)

    fitted = fit()
    # warm-up on a slice: imports, scipy, Evidently's registries
    small_ref, small_cur = reference.iloc[:2000], current.iloc[:2000]
    evidently_report(small_ref, small_cur, numeric, categorical)
    evidently_stattests(small_ref, small_cur, numeric, categorical)
    fitted.analyze(small_cur)

    seconds, results = interleaved({
        "report": lambda: evidently_report(reference, current, numeric, categorical),
        "stattests": lambda: evidently_stattests(reference, current, numeric, categorical),
        "fit": fit,
        "analyze": lambda: fitted.analyze(current),
        "fit+analyze": lambda: fit().analyze(current),
    }, args.repeats)
    timed_load = load()
    report = results["analyze"]
    mib = {
        "report": peak_mib(lambda: evidently_report(reference, current, numeric, categorical)),
        "stattests": peak_mib(
            lambda: evidently_stattests(reference, current, numeric, categorical)),
        "fit": peak_mib(fit),
        "analyze": peak_mib(lambda: fitted.analyze(current)),
        "fit+analyze": peak_mib(lambda: fit().analyze(current)),
    }

    methods = sorted({f.method for f in report.features.values()})
    print(f"methods: {', '.join(methods)}; drifted {len(report.drifted_features)} of "
          f"{len(report.features)} (share {report.drift_share:.3f}); timed with {timed_load}")
    labels = {
        "report": "evidently Report([DataDriftPreset()])",
        "stattests": "evidently stat tests alone",
        "fit": "ours fit (once per baseline)",
        "analyze": "ours analyze (per window, fitted)",
        "fit+analyze": "ours fit + analyze",
    }
    print(f"  {'':40s} {'median s':>9s} {'peak MiB':>9s}")
    for key, label in labels.items():
        print(f"  {label:40s} {seconds[key]:9.3f} {mib[key]:9.0f}")

    checks: list[tuple[str, float, str, bool]] = []

    def check(name: str, value: float, target: str, met: bool) -> None:
        checks.append((name, value, target, met))
        print(f"  TARGET {name}: {value:.3g} (target {target}) {'met' if met else 'MISSED'}")

    ratio_report = seconds["report"] / seconds["analyze"]
    ratio_stats = seconds["stattests"] / seconds["fit+analyze"]
    print(f"  report / ours fit + analyze: {seconds['report'] / seconds['fit+analyze']:.1f}x; "
          f"stat tests alone / ours analyze: {seconds['stattests'] / seconds['analyze']:.1f}x")
    check("evidently Report / ours analyze", ratio_report, f">= {TARGET_REPORT:g}x",
          ratio_report >= TARGET_REPORT)
    check("evidently stat tests alone / ours fit + analyze", ratio_stats,
          f">= {TARGET_STATTESTS:g}x", ratio_stats >= TARGET_STATTESTS)
    for key in ("report", "stattests"):
        theirs: Scores = results[key]
        diff = max(abs(report.features[n].score - s) for n, (s, _) in theirs.items())
        agree = all(report.features[n].drifted == d for n, (_, d) in theirs.items())
        check(f"largest |score difference| vs {labels[key]}", diff,
              f"<= {TARGET_SCORE_DIFF:g}", diff <= TARGET_SCORE_DIFF)
        check(f"verdicts equal to {labels[key]} (1 = all)", float(agree), "= 1", agree)
    check("ours fit peak MiB / evidently Report peak MiB", mib["fit"] / mib["report"],
          "<= 1", mib["fit"] <= mib["report"])
    missed = [name for name, _, _, met in checks if not met]
    print(f"{len(checks) - len(missed)} of {len(checks)} targets met; at the end {load()}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
