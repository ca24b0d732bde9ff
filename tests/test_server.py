"""HTTP intake: batches, auth, body limit, health, the bind guard; one real uvicorn."""

from __future__ import annotations

import sqlite3

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from monitor.errors import ConfigError
from monitor.server import BackgroundServer, create_app
from monitor.store import make_engine
from monitor.store.predictions import count_predictions, quarantined
from tests.intake.helpers import REPLAY_SCHEDULER, cancer_rows, model_config, settings

TOKEN = "s3cret-token-for-tests"


def _client(engine: Engine, env: dict[str, str] | None = None, **sections) -> TestClient:
    return TestClient(create_app(settings(model_config(), env=env, **sections), engine))


def test_array_and_ndjson_batches_are_ingested(engine: Engine) -> None:
    client = _client(engine)
    rows = cancer_rows(10)
    rows[1]["model"] = "other"
    answer = client.post("/v1/predictions", content=orjson.dumps(rows))
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 9, "quarantined": 1, "reasons": {"unknown_model": 1}}
    ndjson = b"\n".join(orjson.dumps(r) for r in cancer_rows(12)) + b"\nnot json"
    answer = client.post(
        "/v1/predictions", content=ndjson, headers={"content-type": "application/x-ndjson"}
    )
    assert answer.json() == {
        "accepted": 3,
        "quarantined": 1,
        "reasons": {"invalid_json": 1, "duplicate": 9},
    }
    assert count_predictions(engine) == 12
    assert {q.reason for q in quarantined(engine)} == {"unknown_model", "invalid_json"}
    unknown = next(q for q in quarantined(engine) if q.reason == "unknown_model")
    assert unknown.model == "other" and unknown.source == "http"


def test_labels_endpoint(engine: Engine) -> None:
    client = _client(engine)
    body = [{"model": "cancer", "request_id": "a", "label": 1}, {"model": "cancer"}]
    answer = client.post("/v1/labels", content=orjson.dumps(body))
    assert answer.json() == {"accepted": 1, "quarantined": 1, "reasons": {"missing_request_id": 1}}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
    ids=["none", "wrong", "basic", "longer"],
)
def test_token_is_required_when_set(engine: Engine, header: str | None) -> None:
    client = _client(engine, env={"MONITOR_INGEST_TOKEN": TOKEN})
    headers = {"authorization": header} if header else {}
    for path in ("/v1/predictions", "/v1/labels"):
        assert client.post(path, content=b"[]", headers=headers).status_code == 401
    assert client.get("/healthz").status_code == 200
    ok = client.post(
        "/v1/predictions",
        content=orjson.dumps(cancer_rows(2)),
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 200 and ok.json()["accepted"] == 2


def test_body_limit_gives_413(engine: Engine) -> None:
    client = _client(engine, server={"max_body_mb": 0.001})
    big = orjson.dumps(cancer_rows(50))
    assert len(big) > 1100
    assert client.post("/v1/predictions", content=big).status_code == 413

    def chunks():
        yield big[:800]
        yield big[800:]

    assert client.post("/v1/predictions", content=chunks()).status_code == 413
    assert count_predictions(engine) == 0


def test_healthz_reports_database_and_extra_fields(engine: Engine, tmp_path) -> None:
    app = create_app(settings(model_config()), engine, health=lambda: {"scheduler": "running"})
    assert app.state.engine is engine and app.state.settings.models[0].name == "cancer"
    answer = TestClient(app).get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["scheduler"] == "running"
    broken = make_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    answer = TestClient(create_app(settings(model_config()), broken)).get("/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "error"


def test_refuses_to_listen_beyond_localhost_without_token(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="server.host.*MONITOR_INGEST_TOKEN"):
        create_app(settings(model_config(), server={"host": "0.0.0.0"}), engine)
    app = create_app(
        settings(model_config(), env={"MONITOR_INGEST_TOKEN": TOKEN}, server={"host": "0.0.0.0"}),
        engine,
    )
    assert app.state.settings.server.host == "0.0.0.0"


def test_real_uvicorn_round_trip(engine: Engine) -> None:
    app = create_app(settings(model_config(), env={"MONITOR_INGEST_TOKEN": TOKEN}), engine)
    with BackgroundServer(app) as server:
        assert server.port > 0
        denied = httpx.post(f"{server.url}/v1/predictions", content=b"[]")
        assert denied.status_code == 401
        answer = httpx.post(
            f"{server.url}/v1/predictions",
            content=orjson.dumps(cancer_rows(5)),
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        assert answer.json()["accepted"] == 5
    assert count_predictions(engine, "cancer") == 5


def test_serve_with_worker_processes(db_url, write_config, tmp_path):
    """`monitor serve --workers 2`: uvicorn's multi-process mode, each worker with its
    own engine from the same config, all writing to the one database."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(
        f'[database]\nurl = "{db_url}"\n[[models]]\nname = "cancer"\npath = "m.keras"\n'
        f'task = "binary_classification"\n[models.features]\n'
        f'numeric = {orjson.dumps(list(model_config().features.numeric)).decode()}\n'
        'categorical = ["clinic"]\n' + REPLAY_SCHEDULER
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "serve", "--workers", "2",
         "--port", str(port)], env={**os.environ}, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/v1/predictions",
                                    content=orjson.dumps(cancer_rows(20)), timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["accepted"] == 20
        engine = make_engine(db_url)
        assert count_predictions(engine, "cancer") == 20
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_database_down_answers_503_and_stores_nothing(tmp_path) -> None:
    """An unreachable database is a 503 with Retry-After (the sender retries), not a 500."""
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(settings(model_config()), engine))
    answer = client.post("/v1/predictions", content=orjson.dumps(cancer_rows(3)))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert "nothing was stored" in answer.json()["error"]
    assert client.get("/healthz").status_code == 503
    engine.dispose()


def _lock_writes(engine: Engine) -> sqlite3.Connection:
    """Another connection holding SQLite's write lock: reads go on, writes wait, then
    fail ("database is locked"), as when another process keeps a write transaction open."""
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("app_kind", ["server", "dashboard"])
def test_healthz_answers_503_while_sqlite_refuses_writes(engine: Engine, app_kind: str) -> None:
    from monitor.ui import create_ui_app

    build = create_app if app_kind == "server" else create_ui_app
    holder = _lock_writes(engine)
    try:
        answer = TestClient(build(settings(model_config()), engine)).get("/healthz")
    finally:
        holder.rollback()
        holder.close()
    assert answer.status_code == 503
    body = answer.json()
    assert (body["status"], body["database"]) == ("error", "read-only")
    assert body["database_error"] == "writes fail: database is locked"
    assert TestClient(build(settings(model_config()), engine)).get("/healthz").json()["database"] == "ok"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_healthz_answers_503_on_a_read_only_postgresql(engine: Engine, db_url: str) -> None:
    """What a failover to a standby looks like: every transaction is read-only."""
    admin = make_engine(db_url, isolation_level="AUTOCOMMIT")
    name = engine.url.database
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    engine.dispose()  # new connections pick the setting up
    try:
        answer = TestClient(create_app(settings(model_config()), engine)).get("/healthz")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        admin.dispose()
        engine.dispose()
    assert answer.status_code == 503 and answer.json()["database"] == "read-only"
    assert "read-only transaction" in answer.json()["database_error"]
