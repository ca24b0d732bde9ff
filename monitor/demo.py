"""`make demo` / `monitor demo`: the whole loop on embedded data, in a few minutes.

1. trains a small Keras model on scikit-learn's bundled breast-cancer data (ten
   measurements plus a synthetic `clinic` category), with dict inputs;
2. stores its baseline (reference sample, predictions, attributions, performance)
   from 2,000 patients drawn from the same population production traffic comes from;
3. replays six hours of production traffic through the real HTTP ingest endpoint with
   the Python client, some rows malformed, and a shift injected into a few features
   from the fourth hour on; labels arrive later for part of the traffic;
4. runs the monitoring cycle for each hour, delivering alerts to the console;
5. answers "why?" for one request and writes the HTML report of the last run.

Everything goes where config.toml points (demo-output/ in the repository's example).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import ModelConfig, Settings

log = logging.getLogger(__name__)

SEED = 7
HOURS = 6
SHIFT_FROM = 3  # 0-based: hours 4, 5 and 6 are shifted
ROWS_PER_HOUR = 400
REFERENCE_ROWS = 2000
BAD_ROWS_PER_HOUR = 6
CLINICS = np.array(["north", "south", "east"])

Echo = Callable[[str], None]


def breast_cancer_frame(numeric: tuple[str, ...]) -> pd.DataFrame:
    """scikit-learn's breast-cancer data with snake_case names, a clinic and the label."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    rng = np.random.default_rng(SEED)
    out = frame[list(numeric)].astype("float64").copy()
    out["clinic"] = rng.choice(CLINICS, size=len(out), p=[0.5, 0.3, 0.2])
    out["malignant"] = (data.target == 0).astype(int).to_numpy()  # sklearn: 0 = malignant
    return out


def train_model(train: pd.DataFrame, model: ModelConfig, path: Path) -> Any:
    """A small MLP with one named input per feature; the clinic goes through StringLookup."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    inputs, parts = {}, []
    for name in model.features.numeric:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="float32")
        norm = keras.layers.Normalization(name=f"norm_{name}")
        norm.adapt(train[[name]].to_numpy(dtype="float32"))
        parts.append(norm(inputs[name]))
    for name in model.features.categorical:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="string")
        lookup = keras.layers.StringLookup(
            vocabulary=list(CLINICS), output_mode="one_hot", name=f"lookup_{name}"
        )
        parts.append(keras.layers.Reshape((len(CLINICS) + 1,))(lookup(inputs[name])))
    x = keras.layers.Concatenate()(parts)
    x = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3))(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="malignant")(x)
    net = keras.Model(inputs, out)
    net.compile(optimizer=keras.optimizers.Adam(0.005), loss="binary_crossentropy", metrics=["accuracy"])
    features = {n: train[[n]].to_numpy(dtype="float32") for n in model.features.numeric}
    # Keras 3 takes string inputs as tensors, not numpy string arrays
    features.update({n: tf.constant(train[[n]].to_numpy().astype(str)) for n in model.features.categorical})
    net.fit(features, train["malignant"].to_numpy(dtype="float32"), epochs=25, batch_size=32, verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save(path)
    return net


def jitter(pool: pd.DataFrame, model: ModelConfig, rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """`rows` patients drawn from the pool, each measurement with 3% noise."""
    out = pool.sample(rows, replace=True, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    for name in model.features.numeric:
        out[name] = out[name] * rng.normal(1.0, 0.03, len(out))
    return out


def hour_of_traffic(
    pool: pd.DataFrame, hour: int, rng: np.random.Generator, model: ModelConfig
) -> pd.DataFrame:
    """One hour of requests from the same population; shifted from SHIFT_FROM on."""
    rows = jitter(pool, model, rng, ROWS_PER_HOUR)
    if hour >= SHIFT_FROM:
        # a new scanner calibration: sizes read larger, texture and smoothness noisier,
        # and most requests now come from a newly connected clinic
        rows["mean_radius"] *= 1.3
        rows["mean_perimeter"] *= 1.3
        rows["mean_area"] *= 1.6
        rows["mean_texture"] += rng.normal(6.0, 2.0, len(rows))
        rows["mean_smoothness"] *= rng.normal(1.25, 0.05, len(rows))
        rows.loc[rows.sample(frac=0.6, random_state=hour).index, "clinic"] = "east"
    return rows


def _bad_rows(hour: int) -> list[dict[str, Any]]:
    """Rows a buggy client sends: each must be quarantined with its reason, not lost."""
    return [
        {"request_id": f"bad-{hour}-0", "features": {"mean_radius": 12.0}, "prediction": 0.2},
        {"request_id": f"bad-{hour}-1", "features": {"mean_radius": "twelve"}, "prediction": 0.2},
        {"request_id": f"bad-{hour}-2", "features": {}, "prediction": "yes"},
    ][: BAD_ROWS_PER_HOUR // 2]


def run_demo(settings: Settings, echo: Echo = print, fresh: bool = True) -> dict[str, Any]:
    """The whole demo; returns what it produced (paths, run ids, alerts)."""

    from monitor.baseline import build_baseline
    from monitor.cycle import Runtime, last_complete_window, run_once
    from monitor.explain import explain_request
    from monitor.notify import ConsoleNotifier, deliver_outbox
    from monitor.report import build_report
    from monitor.store import make_engine, upgrade

    model = settings.models[0]
    out_dir = model.path.parent
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    echo(f"1/5 training a Keras model on scikit-learn's breast-cancer data -> {model.path}")
    data = breast_cancer_frame(model.features.numeric)
    train = data.sample(frac=0.6, random_state=SEED)
    net = train_model(train, model, model.path)
    # the reference: what production looked like when the model was approved
    population = jitter(data, model, np.random.default_rng(SEED + 1), REFERENCE_ROWS)
    population.to_parquet(model.baseline.data, index=False)

    engine = make_engine(settings.database.url)
    upgrade(engine)
    echo(f"2/5 storing the baseline from {model.baseline.data}")
    summary = build_baseline(settings, engine, model.name, created_by="demo")
    echo(
        f"    baseline v{summary.version}: {summary.rows} rows, attributions by {summary.attribution_method},"
        f" performance {_fmt(summary.performance)}"
    )

    _, last_end = last_complete_window(model.window)
    first_start = last_end - HOURS * model.window
    echo(
        f"3/5 replaying {HOURS} hours of traffic over HTTP ({first_start:%H:%M}..{last_end:%H:%M} UTC), "
        f"shift from hour {SHIFT_FROM + 1}"
    )
    explained = _replay(settings, engine, model, net, data, first_start)

    echo("4/5 running the monitoring cycle for each hour (alerts below come from the console notifier)")
    runtime, runs = Runtime(), []
    for hour in range(HOURS):
        start = first_start + hour * model.window
        outcome = run_once(
            settings, engine, model.name, start, start + model.window, runtime=runtime, channels=["console"]
        )
        echo(f"    hour {hour + 1}: run {outcome.run_id}, " + _run_line(outcome))
        deliver_outbox(engine, {"console": ConsoleNotifier()})
        runs.append(outcome)

    echo("5/5 why did the model decide what it did for one shifted request?")
    from monitor.store import transaction
    from monitor.store.runs import explained_requests

    with transaction(engine) as session:
        stored = explained_requests(session, runs[-1].run_id, limit=1)
    request_id = stored[0] if stored else explained[-1]
    answer = explain_request(settings, engine, model.name, request_id)
    from monitor.commands.why import render

    for line in render(answer, top=6):
        echo("    " + line)
    report_path = out_dir / f"report-{runs[-1].run_id}.html"
    report_path.write_text(build_report(settings, engine, runs[-1].run_id), encoding="utf-8")
    echo(f"\nreport of the last run: {report_path}")
    echo("next: `monitor alerts`, `monitor why diagnosis <request_id>`, `monitor run` for the daemon")
    engine.dispose()
    return {
        "runs": [r.run_id for r in runs],
        "report": report_path,
        "why": answer,
        "alerts": [a for r in runs for a in r.summary.get("alerts", [])],
    }


def _replay(
    settings: Settings, engine: Any, model: ModelConfig, net: Any, pool: pd.DataFrame, first_start: Any
) -> list[str]:
    """Send each hour through the real HTTP endpoint with the Python client."""
    import tensorflow as tf

    from monitor.client import PredictionLogger
    from monitor.server import BackgroundServer, create_app

    rng = np.random.default_rng(SEED)
    request_ids: list[str] = []
    token = settings.secrets.ingest_token.get_secret_value() if settings.secrets.ingest_token else None
    with (
        BackgroundServer(create_app(settings, engine)) as server,
        PredictionLogger(server.url, model=model.name, token=token) as client,
    ):
        for hour in range(HOURS):
            rows = hour_of_traffic(pool, hour, rng, model)
            inputs = {n: rows[[n]].to_numpy(dtype="float32") for n in model.features.numeric}
            inputs.update(
                {n: tf.constant(rows[[n]].to_numpy().astype(str)) for n in model.features.categorical}
            )
            scores = np.asarray(net.predict(inputs, verbose=0)).reshape(-1)
            start = first_start + hour * model.window
            offsets = np.sort(rng.uniform(0, model.window.total_seconds() - 1, len(rows)))
            for i, row in rows.iterrows():
                request_id = f"h{hour + 1}-{i:04d}"
                features = {n: float(row[n]) for n in model.features.numeric}
                features.update({n: str(row[n]) for n in model.features.categorical})
                client.log(
                    features,
                    float(scores[i]),
                    request_id=request_id,
                    timestamp=start + timedelta(seconds=float(offsets[i])),
                )
                if i % 3 == 0:  # ground truth arrives later for a third of the requests
                    client.log_label(request_id, int(row["malignant"]))
                request_ids.append(request_id)
            for bad in _bad_rows(hour):
                client.log(
                    bad["features"],
                    bad["prediction"],
                    request_id=bad["request_id"],
                    timestamp=start + timedelta(minutes=30),
                )
        client.flush()
    return request_ids


def _run_line(outcome: Any) -> str:
    """Rows, quarantine, drifted features and attribution nDCG of a computed run."""
    result = outcome.result
    if result is None:
        return "the stored run (computed before)"
    drifted = result.drift.drifted_features if result.drift is not None else ()
    line = f"{result.rows} rows, {result.quarantined} quarantined, drifted: {', '.join(drifted) or 'none'}"
    attribution = result.attribution
    if attribution is not None and attribution.drift is not None:
        line += f", attribution nDCG {attribution.drift.ndcg:.3f}"
    estimated = result.estimated
    if estimated is not None:
        shown = [
            f"{name} {m.value:.3f} ± {m.sampling_error:.3f}"
            for name, m in estimated.estimate.metrics.items()
            if name in ("accuracy", "roc_auc", "mae", "rmse")
        ]
        if shown:
            line += ", estimated " + ", ".join(shown)
    return line


def _fmt(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "n/a"
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float))
