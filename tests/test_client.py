"""PredictionLogger: batches over real HTTP, database mode, a dead server, cheap import."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from sqlalchemy import Engine

from monitor.client import PredictionLogger
from monitor.server import BackgroundServer, create_app
from monitor.store.predictions import count_predictions
from tests.intake.helpers import cancer_rows, model_config, settings


def test_logs_batches_over_http_and_flushes_on_close(engine: Engine) -> None:
    app = create_app(settings(model_config(), env={"MONITOR_INGEST_TOKEN": "tok-123"}), engine)
    with BackgroundServer(app) as server:
        with PredictionLogger(server.url, model="cancer", token="tok-123", batch_size=7) as logger:
            for row in cancer_rows(30):
                assert logger.log(
                    row["features"],
                    row["prediction"],
                    request_id=row["request_id"],
                    timestamp=row["timestamp"],
                )
            logger.log_label("r3", 1)
            logger.log({"mean_radius": 1.0}, 0.5, request_id="bad")
        assert (
            logger.sent == 31 and logger.quarantined == 1
        )  # 30 predictions + 1 label and logger.dropped == 0
    assert count_predictions(engine, "cancer") == 30


def test_database_mode(engine: Engine) -> None:
    logger = PredictionLogger(engine=engine, settings=settings(model_config()), model="cancer")
    for row in cancer_rows(12):
        logger.log(row["features"], row["prediction"], request_id=row["request_id"])
    assert logger.flush(timeout=10)
    assert count_predictions(engine, "cancer") == 12
    logger.close()
    assert not logger.log({}, 0.1)  # closed: dropped, counted, no exception
    assert logger.dropped == 1


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_stopped_server_never_raises_and_counts_drops() -> None:
    logger = PredictionLogger(
        f"http://127.0.0.1:{_dead_port()}",
        model="cancer",
        max_queue=20,
        batch_size=10,
        retries=1,
        timeout=0.5,
    )
    started = time.perf_counter()
    accepted = sum(logger.log({"x": float(i)}, 0.5) for i in range(200))
    assert time.perf_counter() - started < 1.0  # never blocks the caller
    logger.close(timeout=10)
    assert accepted < 200
    assert logger.dropped == 200 and logger.sent == 0


def test_import_is_cheap() -> None:
    code = (
        "import sys, monitor.client; "
        "print(sorted(m for m in ('tensorflow', 'fastapi', 'sqlalchemy', 'httpx', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
