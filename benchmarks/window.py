"""`monitor once` on windows of 2k, 100k and 1M logged rows: wall time and peak RSS.

A run should cost about the same whatever its window holds: the database counts the
window and hands over only its sample. This loads three hours of the demo's traffic
into a fresh PostgreSQL database (created and dropped here), 20% of it labelled, with
the demo's Keras model and baseline, then runs ``monitor once --force`` on each window as
a separate process, interleaved (2k, 100k, 1M, 2k, ...), and reads each process's
wall time and peak RSS (``wait4``). Prints medians, the targets (the 1M-row window at
most 1.5x the 2k-row window's time; peak RSS flat: at most 1.15x) and exits 1 on a miss.

    python benchmarks/window.py [--sizes 2000,100000,1000000] [--repeats 3] [--sample-size 2000]
                                [--stratified]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_settings  # noqa: E402
from monitor.intake.ingest import ingest_labels, ingest_predictions, parse_body  # noqa: E402
from monitor.store import make_engine, upgrade  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_TIME = 1.5
TARGET_RSS = 1.15
LOAD_BATCH = 5000
LABELLED = 0.2

CONFIG = """
[database]
url = "{url}"

[logging]
level = "WARNING"

[[models]]
name = "diagnosis"
path = "{dir}/model.keras"
task = "binary_classification"
label = "malignant"
window = "1h"
sample_size = {sample_size}
source = "log"
stratify = {stratify}

[models.features]
numeric = [
  "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
  "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
  "mean_fractal_dimension",
]
categorical = ["clinic"]

[models.baseline]
data = "{dir}/reference.parquet"
{segments}"""

#: `--stratified`: both stratified samples, by predicted class and by a declared attribute
SEGMENTS = """
[models.segments]
attributes = ["sex"]
stratify = true
"""


def load_hour(engine, settings, start: datetime, rows: int, pool) -> None:
    """`rows` requests of the demo's population spread over [start, start + 1h), logged
    through the ingest path in batches; a fifth of them labelled."""
    from monitor.demo import jitter

    model = settings.models[0]
    rng = np.random.default_rng(rows)
    step = 3600 / rows
    names = list(model.features.numeric)
    done = 0
    while done < rows:
        n = min(LOAD_BATCH, rows - done)
        frame = jitter(pool, model, rng, n)
        values = frame[names].to_numpy().round(6).tolist()
        clinics = frame["clinic"].tolist()
        labels = frame["malignant"].tolist()
        records, label_rows = [], []
        for i in range(n):
            rid = f"{start:%H}-{done + i}"
            features = dict(zip(names, values[i], strict=True))
            features["clinic"] = clinics[i]
            record = {
                "model": model.name,
                "request_id": rid,
                "timestamp": (start + timedelta(seconds=(done + i) * step)).isoformat(),
                "features": features,
                "prediction": float(rng.random()),
            }
            if model.segments.attributes:
                record["attributes"] = {"sex": "F" if rng.random() < 0.1 else "M"}
            records.append(record)
            if rng.random() < LABELLED:
                label_rows.append({"model": model.name, "request_id": rid, "label": int(labels[i])})
        ingest_predictions(engine, settings.models, parse_body(orjson.dumps(records)), source="bench")
        if label_rows:
            ingest_labels(engine, settings.models, parse_body(orjson.dumps(label_rows)), source="bench")
        done += n
        if done % 100_000 == 0 or done == rows:  # what autovacuum would do for a growing log
            with engine.connect() as conn:
                conn.execute(text("ANALYZE label"))
                conn.execute(text("ANALYZE prediction_key"))
                conn.commit()
        print(f"\r  loading {start:%H:%M}: {done:,}/{rows:,}", end="", flush=True)
    print()


def run_once(config: Path, start: datetime) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MiB, the run document) of one `monitor once --force` process."""
    cmd = [sys.executable, "-m", "monitor", "--config", str(config), "once", "diagnosis",
           "--start", start.isoformat(), "--end", (start + timedelta(hours=1)).isoformat(),
           "--force", "--no-deliver", "--json"]
    with tempfile.TemporaryFile() as err:
        tick = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tick
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"monitor once failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, orjson.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,100000,1000000", help="rows per window, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-size", type=int, default=2000)
    parser.add_argument("--stratified", action="store_true",
                        help="sample by predicted class and by a declared attribute (sex, 10%% F)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # a stopped benchmark still drops its database
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    name = f"monitor_bench_window_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return _bench(Path(tmp), url, sizes, args.repeats, args.sample_size, args.stratified)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bench(tmp: Path, url: str, sizes: list[int], repeats: int, sample_size: int, stratified: bool) -> int:
    from monitor.baseline import build_baseline
    from monitor.demo import SEED, breast_cancer_frame, jitter, train_model
    from monitor.store.maintenance import ensure_partitions

    config = tmp / "config.toml"
    config.write_text(
        CONFIG.format(url=url, dir=tmp, sample_size=sample_size, stratify=str(stratified).lower(),
                      segments=SEGMENTS if stratified else ""),
        encoding="utf-8",
    )
    settings = load_settings(config, env={})
    model = settings.models[0]
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    ensure_partitions(engine, now)
    print(f"training the demo's model and storing its baseline ({tmp})")
    pool = breast_cancer_frame(model.features.numeric)
    train_model(pool.sample(frac=0.6, random_state=SEED), model, model.path)
    jitter(pool, model, np.random.default_rng(SEED + 1), 2000).to_parquet(model.baseline.data, index=False)
    build_baseline(settings, engine, model.name, created_by="bench")

    day = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {size: day + timedelta(hours=i + 1) for i, size in enumerate(sizes)}
    for size, start in starts.items():
        load_hour(engine, settings, start, size, pool)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()

    print(f"load average {os.getloadavg()[0]:.1f}; sample_size {sample_size}; {repeats} interleaved repeats")
    walls: dict[int, list[float]] = {s: [] for s in sizes}
    rss: dict[int, list[float]] = {s: [] for s in sizes}
    for r in range(repeats):
        for size in sizes:
            wall, peak, document = run_once(config, starts[size])
            if document["rows"] != size:
                raise SystemExit(f"window of {size} rows: the run counted {document['rows']}")
            walls[size].append(wall)
            rss[size].append(peak)
            read = document.get("timings", {}).get("read")
            print(f"  repeat {r + 1}: {size:>9,} rows  {wall:6.2f} s  {peak:7.0f} MiB  (read {read} s)")

    small, large = sizes[0], sizes[-1]
    print(f"\n{'rows per window':>16} {'median wall':>12} {'median peak RSS':>16}")
    for size in sizes:
        wall, peak = statistics.median(walls[size]), statistics.median(rss[size])
        print(f"{size:>16,} {wall:>10.2f} s {peak:>12.0f} MiB")
    time_ratio = statistics.median(walls[large]) / statistics.median(walls[small])
    rss_ratio = statistics.median(rss[large]) / statistics.median(rss[small])
    ok_time, ok_rss = time_ratio <= TARGET_TIME, rss_ratio <= TARGET_RSS
    print(f"\n{large:,}-row window / {small:,}-row window: time {time_ratio:.2f}x "
          f"(target <= {TARGET_TIME}x: {'met' if ok_time else 'MISSED'}), "
          f"peak RSS {rss_ratio:.2f}x (target <= {TARGET_RSS}x: {'met' if ok_rss else 'MISSED'})")
    return 0 if ok_time and ok_rss else 1


if __name__ == "__main__":
    raise SystemExit(main())
