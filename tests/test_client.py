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
        # predictions and labels are counted apart (issue 13 item 7)
        assert (logger.sent, logger.quarantined) == (30, 1)
        assert (logger.sent_labels, logger.quarantined_labels) == (1, 0)
        assert logger.dropped == 0
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


def _deep(depth: int) -> dict:
    value: dict = {"leaf": 1.0}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_poisoned_row_never_drops_its_batch(engine: Engine) -> None:
    """A row the client cannot even serialize (nested 300 deep) is sent as text and
    quarantined by the server; the other 29 rows of its batch are stored."""
    app = create_app(settings(model_config()), engine)
    with BackgroundServer(app) as server:
        with PredictionLogger(server.url, model="cancer", batch_size=500) as logger:
            for i, row in enumerate(cancer_rows(30, prefix="p-")):
                features = row["features"]
                if i == 11:
                    features = {**features, "clinic": _deep(300)}
                logger.log(features, row["prediction"], request_id=row["request_id"])
        assert (logger.sent, logger.quarantined, logger.dropped) == (29, 1, 0)
    assert count_predictions(engine, "cancer") == 29


def test_a_batch_refused_as_too_large_is_split_not_dropped(engine: Engine) -> None:
    """413 for the batch: halves are sent until they fit; only a row that is too large
    on its own is dropped (and counted)."""
    app = create_app(settings(model_config(), server={"max_body_mb": 0.002}), engine)
    rows = cancer_rows(40, prefix="s-")
    with BackgroundServer(app) as server:
        with PredictionLogger(server.url, model="cancer", batch_size=500,
                              flush_interval=0.2) as logger:
            for i, row in enumerate(rows):
                features = row["features"]
                if i == 5:
                    features = {**features, "clinic": "x" * 5000}
                logger.log(features, row["prediction"], request_id=row["request_id"])
        assert (logger.sent, logger.dropped) == (39, 1)
    assert count_predictions(engine, "cancer") == 39
