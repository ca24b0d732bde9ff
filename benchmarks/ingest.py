"""HTTP batch ingest throughput into PostgreSQL and SQLite, against a COPY floor.

Batches of 1,000 records with 30 numeric features are POSTed to /v1/predictions of a
real uvicorn server (a separate process) backed by a fresh PostgreSQL database (created
and dropped here) and by a SQLite file. The floor is PostgreSQL COPY of the same rows,
already serialized, straight into the prediction table, one transaction per batch.
Prints the median rows/s of several repeats and the ratio to the floor.

    python benchmarks/ingest.py [--batches 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import settings_from_dict  # noqa: E402
from monitor.store import make_engine, upgrade  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FEATURES = [f"f{i:02d}" for i in range(30)]
BATCH = 1000
TARGET_RPS = 50_000


def settings_for(url: str):
    model = {
        "name": "bench",
        "path": "model.keras",
        "task": "binary_classification",
        "features": {"numeric": FEATURES},
    }
    return settings_from_dict({"database": {"url": url}, "models": [model]}, env={})


def make_batches(count: int, tag: str) -> list[bytes]:
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    values = rng.normal(size=(BATCH, len(FEATURES))).round(6).tolist()
    bodies = []
    for b in range(count):
        rows = [
            {
                "model": "bench",
                "request_id": f"{tag}-{b}-{i}",
                "timestamp": (t0 + timedelta(milliseconds=b * BATCH + i)).isoformat(),
                "features": dict(zip(FEATURES, values[i], strict=True)),
                "prediction": (i % 100) / 100,
            }
            for i in range(BATCH)
        ]
        bodies.append(orjson.dumps(rows))
    return bodies


def _serve(url: str, port_queue: mp.Queue) -> None:
    from monitor.server import BackgroundServer, create_app

    settings = settings_for(url)
    server = BackgroundServer(create_app(settings, make_engine(url)), port=0).start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


def http_rate(url: str, bodies: list[bytes]) -> float:
    """Rows/s POSTing every body once, sequentially, to a server process on `url`."""
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(url, ports), daemon=True)
    proc.start()
    try:
        port = ports.get(timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            client.post("/v1/predictions", content=b"[]").raise_for_status()
            start = time.perf_counter()
            for body in bodies:
                answer = client.post(
                    "/v1/predictions", content=body, headers={"content-type": "application/json"}
                )
                answer.raise_for_status()
                if answer.json()["accepted"] != BATCH:
                    raise RuntimeError(f"not all rows accepted: {answer.text}")
            return len(bodies) * BATCH / (time.perf_counter() - start)
    finally:
        proc.kill()
        proc.join()


def copy_rate(url: str, bodies: list[bytes]) -> float:
    """Rows/s of psycopg COPY of the same rows (pre-serialized) into prediction."""
    import psycopg

    now = datetime.now(UTC)
    batches = []
    for body in bodies:
        batches.append(
            [
                (
                    r["model"],
                    r["request_id"],
                    r["timestamp"],
                    now,
                    orjson.dumps(r["features"]).decode(),
                    orjson.dumps(r["prediction"]).decode(),
                )
                for r in orjson.loads(body)
            ]
        )
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        start = time.perf_counter()
        for rows in batches:
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY prediction (model, request_id, ts, received_at, features, prediction)"
                    " FROM STDIN"
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        return len(batches) * BATCH / (time.perf_counter() - start)


def truncate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM prediction"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg_url = admin.url.set(database=name).render_as_string(hide_password=False)
    tmp = tempfile.TemporaryDirectory()
    sqlite_url = f"sqlite:///{tmp.name}/bench.db"
    try:
        for url in (pg_url, sqlite_url):
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        results: dict[str, list[float]] = {"copy": [], "pg": [], "sqlite": []}
        for repeat in range(args.repeats):
            bodies = make_batches(args.batches, f"r{repeat}")
            results["copy"].append(copy_rate(pg_url, bodies))
            truncate(pg_url)
            results["pg"].append(http_rate(pg_url, bodies))
            truncate(pg_url)
            results["sqlite"].append(http_rate(sqlite_url, bodies))
            truncate(sqlite_url)
        med = {k: statistics.median(v) for k, v in results.items()}
        rows = args.batches * BATCH
        print(
            f"ingest: {args.repeats} repeats x {rows} rows, batches of {BATCH}, "
            f"{len(FEATURES)} features (medians)"
        )
        print(f"  PostgreSQL COPY floor     {med['copy']:>10,.0f} rows/s")
        print(
            f"  HTTP -> PostgreSQL        {med['pg']:>10,.0f} rows/s   "
            f"{med['pg'] / med['copy']:.2f}x COPY   target >= {TARGET_RPS:,} and >= 0.5x"
        )
        print(
            f"  HTTP -> SQLite            {med['sqlite']:>10,.0f} rows/s   "
            f"{med['sqlite'] / med['copy']:.2f}x COPY"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
