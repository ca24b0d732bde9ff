"""Drift engine vs Evidently's Report([DataDriftPreset()]) on the same two frames.

100,000 rows x (40 numeric + 10 categorical), current vs reference. Prints the median
of several repeats for each side, the speed ratio, the largest per-column score
difference, whether every verdict agrees, and each side's peak traced memory.

    python benchmarks/drift.py [--rows 100000] [--repeats 5] [--evidently-repeats 2]

Evidently's report takes about a minute per run at 100,000 rows on 2 shared cores, so
it is repeated fewer times than ours by default (plus one traced run for memory).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import DriftConfig
from monitor.drift import DriftAnalyzer

NUMERIC, CATEGORICAL = 40, 10


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


def evidently_scores(reference, current, numeric, categorical) -> dict[str, tuple[float, bool]]:
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


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        tick = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times), result


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak memory traced by tracemalloc while `fn` runs, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--evidently-repeats", type=int, default=2)
    args = parser.parse_args()
    reference, current, numeric, categorical = make_frames(args.rows)
    print(
        f"rows={args.rows:,} numeric={NUMERIC} categorical={CATEGORICAL} "
        f"repeats: ours {args.repeats}, evidently {args.evidently_repeats}"
    )

    evidently_scores(reference.iloc[:2000], current.iloc[:2000], numeric, categorical)  # warm-up
    theirs_s, theirs = timed(
        lambda: evidently_scores(reference, current, numeric, categorical), args.evidently_repeats
    )

    def ours_full():
        analyzer = DriftAnalyzer(numeric, categorical, DriftConfig(), "regression").fit(reference)
        return analyzer.analyze(current)

    fitted = DriftAnalyzer(numeric, categorical, DriftConfig(), "regression").fit(reference)
    fitted.analyze(current.iloc[:2000])  # warm-up (scipy imports)
    fit_s, _ = timed(
        lambda: DriftAnalyzer(numeric, categorical, DriftConfig(), "regression").fit(reference),
        args.repeats,
    )
    analyze_s, report = timed(lambda: fitted.analyze(current), args.repeats)
    full_s, _ = timed(ours_full, args.repeats)

    diff = max(abs(report.features[n].score - s) for n, (s, _) in theirs.items())
    agree = all(report.features[n].drifted == d for n, (_, d) in theirs.items())
    methods = sorted({f.method for f in report.features.values()})
    print(
        f"methods: {', '.join(methods)}; drifted {len(report.drifted_features)} of "
        f"{len(report.features)} (share {report.drift_share:.3f})"
    )
    print(f"evidently Report([DataDriftPreset()]) median {theirs_s:8.3f} s")
    print(f"ours fit (once per baseline)         median {fit_s:8.3f} s")
    print(
        f"ours analyze (per window, fitted)    median {analyze_s:8.3f} s  "
        f"ratio {theirs_s / analyze_s:6.1f}x"
    )
    print(
        f"ours fit + analyze                   median {full_s:8.3f} s  "
        f"ratio {theirs_s / full_s:6.1f}x"
    )
    print(f"largest |score difference| {diff:.3e}; every verdict equal: {agree}")
    theirs_mb = peak_mb(lambda: evidently_scores(reference, current, numeric, categorical))
    analyze_mb = peak_mb(lambda: fitted.analyze(current))
    fit_mb = peak_mb(
        lambda: DriftAnalyzer(numeric, categorical, DriftConfig(), "regression").fit(reference)
    )
    print(
        f"peak traced memory: evidently {theirs_mb:.0f} MiB, ours analyze {analyze_mb:.0f} MiB, "
        f"ours fit {fit_mb:.0f} MiB"
    )


if __name__ == "__main__":
    main()
