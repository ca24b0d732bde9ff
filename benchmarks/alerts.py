"""Can drift alerts be trusted? Calibrated vs fixed thresholds on the same windows.

A synthetic 10-feature model (8 numeric of assorted shapes, one 4-level and one
2-level categorical, a prediction computed from them). For references of 500 rows
(Evidently's K-S / chi-square / Z regime) and 3,000 rows (Wasserstein / Jensen-Shannon),
and windows of 50, 100, 300 and 1,000 rows, both modes analyze the SAME windows:

* clean windows drawn from the reference's distribution (several independent
  references, so one lucky or unlucky reference does not decide the figure): the share
  raising any drift finding (a feature or the prediction);
* windows whose first feature moved by +0.5 standard deviation: the share in which
  that feature is flagged;
* cost: fit time (fit + the nulls of the window's size buckets) and per-window time,
  fixed and calibrated interleaved window by window (medians), as CPU time of this
  process: the machine is shared, and wall time measures the neighbours' load too.

Targets (exit 1 on a miss): calibrated clean windows flagged <= 1% at every size and,
all sizes pooled, not significantly above the budget's per-window rate (one-sided
binomial, 5%);
detection of +0.5 sd at 300 rows >= 95%; calibrated per-window time <= 1.5x fixed.

    python benchmarks/alerts.py [--clean 500] [--shifted 100] [--references 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from scipy.stats import binom

from monitor.budget import AlertBudget
from monitor.config import DriftConfig, ModelConfig
from monitor.drift import DriftAnalyzer

NUMERIC = [f"x{i}" for i in range(8)]
CATEGORICAL = ["region", "channel"]
SIZES = (50, 100, 300, 1000)
REFERENCES = (500, 3000)
#: hourly windows and the default budget of 1 false alarm a month: 1/720 per window
WINDOW = timedelta(hours=1)
BUDGET = 1.0
SHIFT = 0.5
MAX_FALSE_RATE, MIN_DETECTION, MAX_COST = 0.01, 0.95, 1.5


def population(rows: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """Rows of the synthetic population; `shift` moves x0 by that many sds."""
    x0 = rng.normal(0.0, 1.0, rows)
    data = {
        "x0": x0 + shift,
        "x1": 0.6 * x0 + 0.8 * rng.normal(0.0, 1.0, rows),
        "x2": rng.lognormal(0.0, 0.6, rows),
        "x3": rng.integers(0, 100, rows).astype(float),
        "x4": rng.gamma(2.0, 1.5, rows),
        "x5": rng.standard_t(5, rows),
        "x6": rng.uniform(-1.0, 1.0, rows),
        "x7": rng.poisson(3.0, rows).astype(float),
        "region": rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        "channel": rng.choice(["web", "store"], rows, p=[0.6, 0.4]),
    }
    return pd.DataFrame(data)


def predict(frame: pd.DataFrame) -> np.ndarray:
    """A fixed model: a linear score of a few features."""
    return (0.8 * frame["x0"] - 0.3 * frame["x2"] + 0.01 * frame["x3"]
            + 0.5 * (frame["region"] == "north")).to_numpy()


def drift_alpha(window: timedelta = WINDOW) -> float:
    """Drift's part of the budget of a model like this one (no protected attributes), as
    the product gives it (`monitor.budget`): the rest goes to the other checks."""
    model = ModelConfig(name="bench", path="m.keras", task="regression", window=window,
                        features={"numeric": NUMERIC, "categorical": CATEGORICAL},
                        alerts={"false_alarms_per_month": BUDGET})
    return AlertBudget.for_model(model).drift


def any_finding(report) -> bool:
    return bool(report.drifted_features) or bool(report.prediction and report.prediction.drifted)


def run(clean: int, shifted: int, references: int, seed: int, window: timedelta = WINDOW,
        sizes: tuple[int, ...] = SIZES) -> list[dict]:
    alpha = drift_alpha(window)
    rows = []
    for m in REFERENCES:
        for n in sizes:
            stats = {mode: {"false": 0, "caught": 0, "times": [], "fit": [], "mds": []}
                     for mode in ("fixed", "calibrated")}
            per_ref = -(-clean // references)
            for r in range(references):
                rng = np.random.default_rng([seed, m, n, r])
                reference = population(m, rng)
                analyzers = {}
                for mode in ("fixed", "calibrated"):
                    start = time.process_time()
                    analyzer = DriftAnalyzer(
                        NUMERIC, CATEGORICAL, DriftConfig(), "regression",
                        threshold_mode=mode, family_alpha=alpha, seed=r,
                    ).fit(reference, predictions=predict(reference))
                    analyzer.prepare(n)
                    stats[mode]["fit"].append(time.process_time() - start)
                    analyzers[mode] = analyzer
                windows = [(population(n, rng), False) for _ in range(per_ref)]
                windows += [(population(n, rng, SHIFT), True)
                            for _ in range(-(-shifted // references))]
                for i, (window, moved) in enumerate(windows):
                    prediction = predict(window)
                    order = ("fixed", "calibrated") if i % 2 else ("calibrated", "fixed")
                    for mode in order:
                        start = time.process_time()
                        report = analyzers[mode].analyze(window, predictions=prediction)
                        stats[mode]["times"].append(time.process_time() - start)
                        if moved:
                            stats[mode]["caught"] += "x0" in report.drifted_features
                            shift = report.features["x0"].min_detectable_shift
                            stats[mode]["mds"].append(np.inf if shift is None else shift)
                        else:
                            stats[mode]["false"] += any_finding(report)
            total_clean = per_ref * references
            total_shifted = -(-shifted // references) * references
            for mode, s in stats.items():
                rows.append({
                    "reference": m, "window": n, "mode": mode,
                    "clean": total_clean, "false": s["false"],
                    "false_rate": s["false"] / total_clean,
                    "shifted": total_shifted, "detection": s["caught"] / total_shifted,
                    "fit_s": statistics.median(s["fit"]),
                    "window_ms": 1000 * statistics.median(s["times"]),
                    "mds": statistics.median(s["mds"]) if mode == "calibrated" else None,
                })
            print(_line(rows[-2]), _line(rows[-1]), sep="\n", flush=True)
    return rows


def _line(row: dict) -> str:
    return (
        f"ref {row['reference']:>5}  window {row['window']:>5}  {row['mode']:<10} "
        f"false alarms {row['false']:>3}/{row['clean']} ({100 * row['false_rate']:5.1f}%)  "
        f"+{SHIFT} sd caught {100 * row['detection']:5.1f}%  "
        f"fit {row['fit_s']:6.3f} s  window {row['window_ms']:6.2f} ms cpu"
        + (f"  x0 min detectable {row['mds']:.2f} sd" if row["mds"] is not None else "")
    )


def check(rows: list[dict]) -> list[str]:
    """The targets missed, as sentences (empty when all are met)."""
    alpha = drift_alpha()
    misses = []
    by = {(r["reference"], r["window"], r["mode"]): r for r in rows}
    for m in REFERENCES:
        for n in SIZES:
            cal, fixed = by[(m, n, "calibrated")], by[(m, n, "fixed")]
            if cal["false_rate"] > MAX_FALSE_RATE:
                misses.append(f"ref {m} window {n}: {100 * cal['false_rate']:.1f}% clean "
                              f"windows flagged > {100 * MAX_FALSE_RATE:.0f}%")
            if n == 300 and cal["detection"] < MIN_DETECTION:
                misses.append(f"ref {m} window 300: +{SHIFT} sd caught in "
                              f"{100 * cal['detection']:.1f}% < {100 * MIN_DETECTION:.0f}%")
            ratio = cal["window_ms"] / fixed["window_ms"]
            if ratio > MAX_COST:
                misses.append(f"ref {m} window {n}: calibrated window time {ratio:.2f}x "
                              f"fixed > {MAX_COST}x")
    # all sizes pooled, one test: P(X >= observed) if the true rate were the budget's
    calibrated = [r for r in rows if r["mode"] == "calibrated"]
    false, clean = sum(r["false"] for r in calibrated), sum(r["clean"] for r in calibrated)
    p = binom.sf(false - 1, clean, alpha)
    print(f"calibrated, all sizes: {false} false alarms in {clean} clean windows "
          f"({100 * false / clean:.2f}%; budget {100 * alpha:.2f}%, P(X >= {false}) = {p:.3f})")
    if p < 0.05:
        misses.append(f"{false} false alarms in {clean} clean windows is significantly above "
                      f"the budget ({alpha:.5f} per window, p={p:.3f})")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=500)
    parser.add_argument("--shifted", type=int, default=100)
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    alpha = drift_alpha()
    print(f"budget {BUDGET:g} false alarm/month, {WINDOW} windows: drift's part of the budget, "
          f"{alpha:.5f} per window over 11 tests (10 features + prediction)")
    print(f"targets: calibrated clean windows flagged <= {100 * MAX_FALSE_RATE:.0f}% and not "
          f"significantly above {alpha:.5f}; +{SHIFT} sd at 300 rows caught >= "
          f"{100 * MIN_DETECTION:.0f}%; per-window time <= {MAX_COST}x fixed (medians)")
    started = time.perf_counter()
    rows = run(args.clean, args.shifted, args.references, args.seed)
    misses = check(rows)
    print(f"total {time.perf_counter() - started:.0f} s")
    for miss in misses:
        print("MISS:", miss)
    print("all targets met" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
