"""Label-free performance estimation vs NannyML 0.13 (CBPE, DLE) on the same data and chunks.

Binary: scikit-learn's breast cancer data, a logistic regression on four weak features
(ROC AUC about 0.86). Regression: the diabetes data, a ridge regression. Each repeat
shuffles the rows into training (30%), a labelled baseline (35%) and an analysis part
(35%) cut into chunks by the quantiles of one of the model's own inputs: covariate
shift with no concept drift (rows are selected on what the model sees, so P(y | x)
is unchanged). The realized metric of each chunk comes from its true labels.

For each metric: mean |estimated − realized| over all chunks of all repeats, ours and
NannyML's, the paired difference with its standard error, how often the band holds
the realized value, and the median time per chunk of `estimate` (fit once per
baseline, timed apart). NannyML runs in its own virtualenv, in a subprocess reading
the same chunks from parquet files; our timing is taken before and after it.

    python benchmarks/estimation.py --nannyml-python .venv-nannyml/bin/python [--repeats 30]

Targets: our error <= NannyML's for every metric, our time per chunk <= NannyML's.
Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

BINARY_FEATURES = ["mean texture", "mean smoothness", "mean symmetry", "mean fractal dimension"]
SCENARIOS = {
    # name: (task, shift feature, chunks per repeat, metrics)
    "binary": (
        "binary_classification",
        "mean texture",
        4,
        ("roc_auc", "accuracy", "precision", "recall", "f1"),
    ),
    "regression": ("regression", "bmi", 3, ("mae", "rmse")),
}


def _columns(features: list[str]) -> dict[str, str]:
    # NannyML wants plain column names; keep a stable mapping both sides use
    return {name: f"f{i}" for i, name in enumerate(features)}


def make_scenario(name: str, repeats: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and analysis rows of every repeat, with scores, labels and chunk ids."""
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task, shift, chunks, _ = SCENARIOS[name]
    if task == "regression":
        data = load_diabetes(as_frame=True)
        x, y, features = data.data, data.target.to_numpy(float), list(data.data.columns)
    else:
        data = load_breast_cancer(as_frame=True)
        x, y, features = data.data[BINARY_FEATURES], 1 - data.target.to_numpy(), BINARY_FEATURES
    rename = _columns(features)
    references, analyses = [], []
    for rep in range(repeats):
        rng = np.random.default_rng(rep)
        order = rng.permutation(len(x))
        train, ref, ana = np.split(order, [int(0.30 * len(x)), int(0.65 * len(x))])
        if task == "regression":
            model = Ridge(alpha=1.0).fit(x.iloc[train], y[train])
            score = model.predict
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x.iloc[train], y[train])
            score = lambda frame, model=model: model.predict_proba(frame)[:, 1]  # noqa: E731
        ana = ana[np.argsort(x.iloc[ana][shift].to_numpy(), kind="stable")]
        for part, rows, chunk in (
            ("reference", ref, np.zeros(len(ref), int)),
            ("analysis", ana, np.repeat(np.arange(chunks), [len(c) for c in np.array_split(ana, chunks)])),
        ):
            frame = x.iloc[rows].rename(columns=rename).reset_index(drop=True)
            frame["score"] = score(x.iloc[rows])
            frame["label"] = y[rows]
            frame["rep"] = rep
            frame["chunk"] = chunk
            # NannyML chunks by period: one day per chunk, baseline before them
            frame["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(
                (chunk + 1) if part == "analysis" else 0, unit="D"
            )
            if task != "regression":
                frame["pred"] = (frame["score"] >= 0.5).astype(int)
            (references if part == "reference" else analyses).append(frame)
    return (
        pd.concat(references, ignore_index=True),
        pd.concat(analyses, ignore_index=True),
        list(rename.values()),
    )


# ----------------------------------------------------------------------------- ours


def run_ours(name: str, reference: pd.DataFrame, analysis: pd.DataFrame, features: list[str]):
    """Per (rep, chunk, metric): value, lower, upper; and fit / per-chunk times per repeat."""
    from monitor.estimation import PerformanceEstimator

    task, _, _, metrics = SCENARIOS[name]
    rows, fit_s, chunk_s = [], [], []
    for rep, ref in reference.groupby("rep"):
        ana = analysis[analysis["rep"] == rep]
        tick = time.perf_counter()
        estimator = PerformanceEstimator(task).fit(
            ref[features], ref["score"].to_numpy(), ref["label"].to_numpy()
        )
        fit_s.append(time.perf_counter() - tick)
        parts = [(c, chunk) for c, chunk in ana.groupby("chunk")]
        tick = time.perf_counter()
        estimates = [
            (c, estimator.estimate(chunk[features], chunk["score"].to_numpy())) for c, chunk in parts
        ]
        chunk_s.append((time.perf_counter() - tick) / len(parts))
        for c, estimate in estimates:
            for metric in metrics:
                m = estimate[metric]
                rows.append((rep, c, metric, m.value, m.lower, m.upper))
    return pd.DataFrame(rows, columns=["rep", "chunk", "metric", "value", "lower", "upper"]), fit_s, chunk_s


# ----------------------------------------------------------------------------- NannyML


def nannyml_worker(folder: Path) -> None:
    """Runs inside NannyML's virtualenv: reads the chunks, writes estimates and times."""
    import nannyml as nml

    spec = json.loads((folder / "spec.json").read_text())
    reference = pd.read_parquet(folder / "reference.parquet")
    analysis = pd.read_parquet(folder / "analysis.parquet")
    rows, fit_s, chunk_s = [], [], []
    for rep, ref in reference.groupby("rep"):
        ana = analysis[analysis["rep"] == rep].drop(columns=["label"])
        if spec["task"] == "regression":
            calc = nml.DLE(
                feature_column_names=spec["features"],
                y_pred="score",
                y_true="label",
                timestamp_column_name="ts",
                chunk_period="D",
                metrics=spec["metrics"],
            )
        else:
            calc = nml.CBPE(
                y_pred_proba="score",
                y_pred="pred",
                y_true="label",
                timestamp_column_name="ts",
                chunk_period="D",
                metrics=spec["metrics"],
                problem_type="classification_binary",
            )
        tick = time.perf_counter()
        calc.fit(ref)
        fit_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        result = calc.estimate(ana)
        chunks = ana["chunk"].nunique()
        chunk_s.append((time.perf_counter() - tick) / chunks)
        frame = result.filter(period="analysis").to_df()
        for c in range(chunks):
            for metric in spec["metrics"]:
                rows.append(
                    (
                        int(rep),
                        c,
                        metric,
                        float(frame[(metric, "value")].iloc[c]),
                        float(frame[(metric, "lower_confidence_boundary")].iloc[c]),
                        float(frame[(metric, "upper_confidence_boundary")].iloc[c]),
                    )
                )
    pd.DataFrame(rows, columns=["rep", "chunk", "metric", "value", "lower", "upper"]).to_parquet(
        folder / "nannyml.parquet"
    )
    (folder / "times.json").write_text(json.dumps({"fit_s": fit_s, "chunk_s": chunk_s}))


def run_nannyml(python: str, name: str, reference, analysis, features, folder: Path):
    task, _, _, metrics = SCENARIOS[name]
    reference.to_parquet(folder / "reference.parquet")
    analysis.to_parquet(folder / "analysis.parquet")
    (folder / "spec.json").write_text(
        json.dumps({"task": task, "features": features, "metrics": list(metrics)})
    )
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}  # NannyML phones home otherwise
    done = subprocess.run(
        [python, __file__, "--nannyml-worker", str(folder)], env=env, capture_output=True, text=True
    )
    if done.returncode:  # LightGBM is chatty on stdout: show it only when something failed
        sys.exit(f"NannyML worker failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    times = json.loads((folder / "times.json").read_text())
    return pd.read_parquet(folder / "nannyml.parquet"), times["fit_s"], times["chunk_s"]


# ----------------------------------------------------------------------------- scoring


def realized(name: str, analysis: pd.DataFrame) -> pd.DataFrame:
    """The realized metric of every chunk from its true labels (NaN when undefined)."""
    from monitor.estimation import realized_metrics

    task, _, _, metrics = SCENARIOS[name]
    rows = []
    for (rep, c), chunk in analysis.groupby(["rep", "chunk"]):
        found = realized_metrics(task, chunk["label"].to_numpy(), chunk["score"].to_numpy()).metrics
        rows += [(rep, c, m, found.get(m, math.nan)) for m in metrics]
    return pd.DataFrame(rows, columns=["rep", "chunk", "metric", "realized"])


def compare(name: str, truth: pd.DataFrame, ours: pd.DataFrame, theirs: pd.DataFrame) -> bool:
    """Print the error table of one scenario; True when ours is no worse on every metric."""
    keys = ["rep", "chunk", "metric"]
    both = truth.merge(ours, on=keys).merge(theirs, on=keys, suffixes=("_ours", "_nml"))
    ok = True
    print(
        f"{'metric':10s} {'chunks':>6s} {'ours':>8s} {'NannyML':>8s} {'diff ± se':>18s} "
        f"{'in band ours/NML':>17s} {'band width ours/NML':>20s}"
    )
    for metric, rows in both.groupby("metric", sort=False):
        rows = rows[
            np.isfinite(rows["realized"]) & np.isfinite(rows["value_ours"]) & np.isfinite(rows["value_nml"])
        ]
        e_ours = (rows["value_ours"] - rows["realized"]).abs()
        e_nml = (rows["value_nml"] - rows["realized"]).abs()
        diff = e_ours - e_nml
        se = diff.std(ddof=1) / math.sqrt(len(diff))
        cover = [
            ((rows[f"lower_{s}"] <= rows["realized"]) & (rows["realized"] <= rows[f"upper_{s}"])).mean()
            for s in ("ours", "nml")
        ]
        width = [(rows[f"upper_{s}"] - rows[f"lower_{s}"]).median() for s in ("ours", "nml")]
        met = e_ours.mean() <= e_nml.mean()
        ok &= met
        print(
            f"{metric:10s} {len(rows):6d} {e_ours.mean():8.4f} {e_nml.mean():8.4f} "
            f"{diff.mean():+9.4f} ± {se:6.4f} {cover[0]:8.1%} /{cover[1]:7.1%} "
            f"{width[0]:9.4f} /{width[1]:9.4f}  {'ok' if met else 'MISS'}"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nannyml-python", default=".venv-nannyml/bin/python")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--nannyml-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nannyml_worker:
        warnings.simplefilter("ignore")
        nannyml_worker(args.nannyml_worker)
        return
    ok = True
    for name in args.scenario or list(SCENARIOS):
        task, shift, chunks, _ = SCENARIOS[name]
        reference, analysis, features = make_scenario(name, args.repeats)
        print(
            f"\n== {name}: {task}, {args.repeats} repeats x {chunks} chunks shifted on {shift!r}; "
            f"baseline {len(reference) // args.repeats} rows, "
            f"chunks of ~{len(analysis) // args.repeats // chunks}"
        )
        ours_a, fit_a, per_a = run_ours(name, reference, analysis, features)
        with tempfile.TemporaryDirectory() as folder:
            theirs, fit_n, per_n = run_nannyml(
                args.nannyml_python, name, reference, analysis, features, Path(folder)
            )
        ours_b, fit_b, per_b = run_ours(name, reference, analysis, features)
        pd.testing.assert_frame_equal(ours_a, ours_b)  # seeded: the same estimates both times
        ok &= compare(name, realized(name, analysis), ours_a, theirs)
        ours_chunk, nml_chunk = statistics.median(per_a + per_b), statistics.median(per_n)
        fast = ours_chunk <= nml_chunk
        ok &= fast
        print(
            f"time per chunk (median): ours {ours_chunk * 1e3:.2f} ms, NannyML {nml_chunk * 1e3:.2f} ms "
            f"({nml_chunk / ours_chunk:.1f}x) {'ok' if fast else 'MISS'}; fit per baseline: ours "
            f"{statistics.median(fit_a + fit_b) * 1e3:.1f} ms, "
            f"NannyML {statistics.median(fit_n) * 1e3:.1f} ms"
        )
    print(
        "\ntargets: error <= NannyML's for every metric, time per chunk <= NannyML's:",
        "met" if ok else "NOT met",
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
