"""HTTP batch ingest throughput into PostgreSQL and SQLite, against a COPY floor.

Batches of 1,000 records with 30 numeric features are POSTed to /v1/predictions of a
real uvicorn server (a separate process) by concurrent senders over keep-alive
connections, so the server is the bottleneck. The server is backed by a fresh
PostgreSQL database (created and dropped here) or by a SQLite file.

The floor is the fastest straightforward bulk load of the same rows into the same
table: the rows pre-serialized (outside the timing) into one binary COPY buffer per
batch, ``COPY prediction .. FROM STDIN (FORMAT BINARY)`` and a commit per batch,
with as many connections as there are HTTP senders. Each server is warmed up with a real
batch first. A second case POSTs batches of 10 records (the per-request cost), from the
same senders and from `--many-senders` (where batches share commits). The CPU time the
server process and PostgreSQL spend per 1,000-row batch is read from /proc, so the
bound the machine's cores put on the HTTP path is printed beside the rates. Prints
medians of the repeats, the targets (HTTP -> PostgreSQL >= 0.6x the COPY floor at 1,000-record
batches, >= 5,000 rows/s at 10-record batches) and exits 1 on a miss.

    python benchmarks/ingest.py [--batches 40] [--small-batches 400] [--repeats 3] [--senders 2]
                                [--many-senders 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import settings_from_dict  # noqa: E402
from monitor.intake.ingest import parse_body, validators_for  # noqa: E402
from monitor.intake.prepare import prepare_predictions  # noqa: E402
from monitor.store import make_engine, upgrade  # noqa: E402
from monitor.store.copy import COLUMNS, copy_payload  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FEATURES = [f"f{i:02d}" for i in range(30)]
BATCH = 1000
SMALL = 10
TARGET_RATIO = 0.6
TARGET_SMALL_RPS = 5_000
#: the first batch's timestamp
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def settings_for(url: str):
    model = {
        "name": "bench",
        "path": "model.keras",
        "task": "binary_classification",
        "features": {"numeric": FEATURES},
    }
    # the batches are stamped from T0: a retention that keeps them (ingest refuses older rows)
    retention = {"retention_days": (datetime.now(UTC) - T0).days + 2}
    return settings_from_dict({"database": {"url": url}, "scheduler": retention, "models": [model]},
                              env={})


def make_batches(count: int, tag: str, size: int = BATCH) -> list[bytes]:
    rng = np.random.default_rng(0)
    t0 = T0
    values = rng.normal(size=(size, len(FEATURES))).round(6).tolist()
    bodies = []
    for b in range(count):
        rows = [
            {
                "model": "bench",
                "request_id": f"{tag}-{b}-{i}",
                "timestamp": (t0 + timedelta(milliseconds=b * size + i)).isoformat(),
                "features": dict(zip(FEATURES, values[i], strict=True)),
                "prediction": (i % 100) / 100,
            }
            for i in range(size)
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


def concurrently(work: list, senders: int, send: Callable[[int, list], None]) -> float:
    """Seconds for `senders` threads to handle `work` (dealt round-robin) with `send`."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            send(index, work[index::senders])
        except BaseException as err:  # reported in the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


class Server:
    """A uvicorn server process for one database, started once for all repeats."""

    def __init__(self, url: str):
        ctx = mp.get_context("spawn")
        ports = ctx.Queue()
        self.proc = ctx.Process(target=_serve, args=(url, ports), daemon=True)
        self.proc.start()
        self.port = ports.get(timeout=120)

    def rate(self, bodies: list[bytes], senders: int, size: int = BATCH) -> float:
        """Rows/s POSTing every body once, over one keep-alive connection per sender."""

        def send(_index: int, mine: list[bytes], rows: int = size) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            headers = {"content-type": "application/json"}
            for body in mine:
                conn.request("POST", "/v1/predictions", body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                if answer.status != 200 or orjson.loads(data)["accepted"] != rows:
                    raise RuntimeError(f"not all rows accepted: {answer.status} {data[:200]!r}")
            conn.close()

        send(0, [b"[]"], 0)  # connection, imports
        return len(bodies) * size / concurrently(bodies, senders, send)

    def warm_up(self, url: str) -> None:
        """A real batch through every path (decoders, pool, COPY), then an empty log."""
        self.rate(make_batches(2, "warm"), 2)
        clear(url)

    def close(self) -> None:
        self.proc.kill()
        self.proc.join()


class WorkersServer(Server):
    """`monitor serve --workers N` as a real subprocess (uvicorn's multi-process mode)."""

    def __init__(self, url: str, workers: int, config_dir: str):
        import socket
        import subprocess
        import sys
        import urllib.request

        config = os.path.join(config_dir, f"workers-{workers}.toml")
        with open(config, "w", encoding="utf-8") as out:
            out.write(
                f'[database]\nurl = "{url}"\n[[models]]\nname = "bench"\npath = "model.keras"\n'
                f'task = "binary_classification"\n[models.features]\n'
                f"numeric = {orjson.dumps(FEATURES).decode()}\n"
            )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", config, "--log-level", "WARNING", "serve",
             "--workers", str(workers), "--port", str(self.port)],
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("monitor serve --workers did not start") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def copy_rate(url: str, bodies: list[bytes], senders: int, meter: CpuMeter | None = None) -> float:
    """Rows/s of binary COPY of the same rows, pre-serialized, one commit per batch.

    The connections are opened before `meter` starts and closed after it stops, so
    their backends' CPU is read while they still exist."""
    import psycopg

    validators = validators_for(settings_for(url).models)
    now = datetime.now(UTC)
    payloads = [
        copy_payload(prepare_predictions(parse_body(b), validators, source="bench").rows, now)
        for b in bodies
    ]
    columns = COLUMNS  # the same columns the server loads, sampling key included
    dsn = url.replace("+psycopg", "")
    conns = [psycopg.connect(dsn) for _ in range(senders)]

    def send(index: int, mine: list[bytes]) -> None:
        conn = conns[index]
        for payload in mine:
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY prediction ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(payload)
            conn.commit()

    try:
        with meter or contextlib.nullcontext():
            return len(bodies) * BATCH / concurrently(payloads, senders, send)
    finally:
        for conn in conns:
            conn.close()


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_cpu() -> float:
    """CPU seconds used so far by every postgres process on this machine (backends and
    background writers): what the database spends, whoever asked."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="ascii") as comm:
                    if comm.read().strip() != "postgres":
                        continue
            except OSError:
                continue
            total += _cpu(int(entry))
    return total


class CpuMeter:
    """CPU seconds the server process and PostgreSQL use while a block runs."""

    def __init__(self, server_pid: int | None = None):
        self.server_pid = server_pid
        self.server = self.database = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = (_cpu(self.server_pid) if self.server_pid else 0.0, postgres_cpu())
        return self

    def __exit__(self, *exc: object) -> None:
        self.server = (_cpu(self.server_pid) if self.server_pid else 0.0) - self._start[0]
        self.database = postgres_cpu() - self._start[1]


def clear(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        # the key table keeps one row per request id: empty it with the log
        conn.execute(text("DELETE FROM prediction_key"))
        conn.execute(text("DELETE FROM prediction"))
    engine.dispose()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args: argparse.Namespace, results: dict[str, list[float]], load: str, cpu: dict[str, list[float]]
) -> bool:
    """Print the medians and targets; True when every target is met."""
    med = {k: statistics.median(v) for k, v in results.items()}
    floor = med["copy"]
    print(
        f"ingest: median of {args.repeats} repeats x {args.batches * BATCH:,} rows, batches of "
        f"{BATCH:,}, {len(FEATURES)} features, {args.senders} concurrent senders"
    )
    print(f"  load average at start / end: {load}")
    print(f"  PostgreSQL binary COPY floor ({args.senders} conn) {floor:>9,.0f} rows/s")
    rows = [("pg", "HTTP -> PostgreSQL (1 process)"), ("sqlite", "HTTP -> SQLite (1 process)")]
    if "pg_workers" in med:
        rows.append(("pg_workers", f"HTTP -> PostgreSQL ({args.workers} workers)"))
    for key, label in rows:
        print(f"  {label:<32}  {med[key]:>9,.0f} rows/s   {med[key] / floor:.2f}x floor")
    small = med["pg_small"]
    print(f"  HTTP -> PostgreSQL, batches of {SMALL} (1 process) {small:>9,.0f} rows/s")
    print(f"  the same from {args.many_senders} senders (group commit)  {med['pg_small_many']:>9,.0f} rows/s")
    server_ms = statistics.median(cpu["pg_server"]) * 1000
    db_ms, floor_db_ms = statistics.median(cpu["pg_db"]) * 1000, statistics.median(cpu["copy_db"]) * 1000
    print(f"  CPU per {BATCH:,}-row batch: HTTP server {server_ms:.1f} ms + PostgreSQL {db_ms:.1f} ms"
          f" (the floor: PostgreSQL {floor_db_ms:.1f} ms); on {os.cpu_count()} cores shared by"
          f" both, that work bounds HTTP ingest at"
          f" {os.cpu_count() * BATCH / (server_ms + db_ms) * 1000:,.0f} rows/s")
    ok_ratio = med["pg"] >= TARGET_RATIO * floor
    ok_small = small >= TARGET_SMALL_RPS
    print(
        f"  target HTTP -> PostgreSQL (1 process) >= {TARGET_RATIO}x floor at {BATCH:,}-record "
        f"batches: {verdict(ok_ratio)}; >= {TARGET_SMALL_RPS:,} rows/s at {SMALL}-record "
        f"batches: {verdict(ok_small)}"
    )
    print(
        "  all repeats (rows/s): "
        + "; ".join(
            f"{k} " + ", ".join(f"{v:,.0f}" for v in values) for k, values in results.items()
        )
    )
    return ok_ratio and ok_small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--small-batches", type=int, default=400,
                        help=f"batches of {SMALL} records in the small-batch case")
    parser.add_argument("--many-senders", type=int, default=8,
                        help=f"concurrent senders of {SMALL}-record batches in the 'many clients' case")
    parser.add_argument("--workers", type=int, default=2,
                        help="also measure `monitor serve --workers N` into PostgreSQL (0: skip)")
    args = parser.parse_args()
    load_start = f"{os.getloadavg()[0]:.2f}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg_url = admin.url.set(database=name).render_as_string(hide_password=False)
    tmp = tempfile.TemporaryDirectory()
    sqlite_url = f"sqlite:///{tmp.name}/bench.db"
    servers: list[Server] = []
    try:
        for url in (pg_url, sqlite_url):
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        pg_server, sqlite_server = Server(pg_url), Server(sqlite_url)
        servers += [pg_server, sqlite_server]
        pg_server.warm_up(pg_url)
        sqlite_server.warm_up(sqlite_url)
        results: dict[str, list[float]] = {"copy": [], "pg": [], "sqlite": [], "pg_small": [],
                                           "pg_small_many": []}
        cpu: dict[str, list[float]] = {"copy_db": [], "pg_server": [], "pg_db": []}
        workers_server = None
        if args.workers > 1:
            workers_server = WorkersServer(pg_url, args.workers, tmp.name)
            servers.append(workers_server)
            workers_server.warm_up(pg_url)
            results["pg_workers"] = []
        for repeat in range(args.repeats):
            bodies = make_batches(args.batches, f"r{repeat}")
            meter = CpuMeter()
            results["copy"].append(copy_rate(pg_url, bodies, args.senders, meter))
            cpu["copy_db"].append(meter.database / len(bodies))
            clear(pg_url)
            with CpuMeter(pg_server.proc.pid) as meter:
                results["pg"].append(pg_server.rate(bodies, args.senders))
            cpu["pg_server"].append(meter.server / len(bodies))
            cpu["pg_db"].append(meter.database / len(bodies))
            clear(pg_url)
            results["sqlite"].append(sqlite_server.rate(bodies, args.senders))
            clear(sqlite_url)
            small = make_batches(args.small_batches, f"s{repeat}", SMALL)
            results["pg_small"].append(pg_server.rate(small, args.senders, SMALL))
            clear(pg_url)
            # many clients each sending a few records: batches share commits (group commit)
            many = make_batches(args.small_batches, f"m{repeat}", SMALL)
            results["pg_small_many"].append(pg_server.rate(many, args.many_senders, SMALL))
            clear(pg_url)
            if workers_server is not None:
                # one sender per worker and one more, so every process has work queued
                results["pg_workers"].append(workers_server.rate(bodies, args.workers + 1))
                clear(pg_url)
        ok = report(args, results, f"{load_start} / {os.getloadavg()[0]:.2f}", cpu)
    finally:
        for server in servers:
            server.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        tmp.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
