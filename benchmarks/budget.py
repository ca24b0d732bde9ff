"""Achieved false-alarm rate of each budgeted check on clean windows against its share.

Clean windows are drawn from the baseline's own distribution and judged by the engines
at the levels `monitor.budget.AlertBudget` gives them. The real budget (1 a month,
hourly: 1/720 per window) is too small to count in a few hundred windows, so the
budget here is inflated (`--per-month`, default 144: 0.2 per window) and every check
keeps its share of it; the rates scale down with the budget.

    python -m benchmarks.budget --windows 400
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import numpy as np
import pandas as pd

from monitor.budget import AlertBudget
from monitor.config import DriftConfig, ModelConfig
from monitor.drift import DriftAnalyzer
from monitor.fairness import FairnessAnalyzer
from monitor.reasons import reason_shift
from monitor.vocab import BudgetFamily


def model(per_month: float) -> ModelConfig:
    return ModelConfig(
        name="credit", path="m.keras", task="binary_classification", window="1h",
        features={"numeric": ["amount", "count", "score"], "categorical": ["channel"]},
        segments={"attributes": ["sex"]}, fairness={"protected": ["sex"], "favorable": 0},
        alerts={"false_alarms_per_month": per_month},
    )


def frame(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]:
    """Zero-inflated lognormal amount, Poisson count, normal score, 4 categories; a
    binary score, its label and a protected attribute independent of the inputs."""
    amount = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(3, 1.2, n))
    x = pd.DataFrame({
        "amount": amount, "count": rng.poisson(1.2, n).astype(float), "score": rng.normal(0, 1, n),
        "channel": rng.choice(["web", "app", "branch", "phone"], n, p=[0.5, 0.3, 0.15, 0.05]),
    })
    p = 1 / (1 + np.exp(-(x["score"].to_numpy() - 0.5)))
    y = (rng.random(n) < p).astype(float)
    sex = pd.DataFrame({"sex": rng.choice(["F", "M"], n, p=[0.4, 0.6])})
    return x, p, y, sex


def measure(windows: int, rows: int, per_month: float, seed: int = 0) -> dict[str, Any]:
    cfg = model(per_month)
    budget = AlertBudget.for_model(cfg)
    rng = np.random.default_rng(seed)
    base_x, base_p, base_y, base_sex = frame(rng, 3000)
    drift = DriftAnalyzer(cfg.features.numeric, cfg.features.categorical, DriftConfig(), cfg.task,
                          family_alpha=budget.drift, performance_alpha=budget.performance, seed=1)
    drift.fit(base_x, base_p, base_y)
    fairness = FairnessAnalyzer.from_config(cfg).fit(base_sex, base_p, base_y)
    reasons_base = list(rng.choice(["amount", "score", "count", "channel"], 600, p=[0.4, 0.3, 0.2, 0.1]))
    hits = {"drift": 0, "performance": 0, "fairness": 0, "reasons": 0}
    for _ in range(windows):
        x, p, y, sex = frame(rng, rows)
        report = drift.analyze(x, p, y)
        hits["drift"] += bool(report.drifted_features or (report.prediction and report.prediction.drifted))
        hits["performance"] += bool(report.performance and report.performance.degraded)
        fair = fairness.analyze(sex, p, y)
        hits["fairness"] += bool(fair.bias or fair.drift)
        window_reasons = list(rng.choice(["amount", "score", "count", "channel"], 80, p=[0.4, 0.3, 0.2, 0.1]))
        shift = reason_shift(window_reasons, reasons_base, alpha=budget.reasons, permutations=1000,
                             min_decisions=20, seed=int(rng.integers(1 << 31)))
        hits["reasons"] += bool(shift is not None and shift.shifted)
    levels = {"drift": budget.rate(BudgetFamily.DRIFT), "performance": budget.performance,
              "fairness": budget.rate(BudgetFamily.FAIRNESS), "reasons": budget.reasons}
    return {"per_window": budget.per_window, "windows": windows, "hits": hits, "levels": levels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=400)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--per-month", type=float, default=144.0)
    args = parser.parse_args()
    from scipy.stats import binom

    print(f"target: each check's clean-window rate not significantly above its share of the "
          f"budget (one-sided binomial, 5%); load average {os.getloadavg()[0]:.1f}")
    out = measure(args.windows, args.rows, args.per_month)
    print(f"per-window rate {out['per_window']:.3g}; {out['windows']} clean windows of {args.rows} rows")
    print("| check | share of the window's rate | nominal | achieved | windows flagged |")
    print("|---|---|---|---|---|")
    misses = []
    for name, level in out["levels"].items():
        k = out["hits"][name]
        rate = k / out["windows"]
        sd = math.sqrt(level * (1 - level) / out["windows"])
        print(f"| {name} | {level / out['per_window']:.1%} | {level:.4f} | {rate:.4f} (±{sd:.4f}) | {k} |")
        p = binom.sf(k - 1, out["windows"], level)
        if p < 0.05:
            misses.append(f"{name}: {k} of {out['windows']} clean windows flagged, above its level "
                          f"{level:.4f} (P(X >= {k}) = {p:.3g})")
    for miss in misses:
        print("MISS:", miss)
    print("all targets met" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
