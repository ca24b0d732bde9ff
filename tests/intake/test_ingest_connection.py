"""Ingest without a per-request connection check (issue 16): a pooled PostgreSQL connection
the server dropped costs one retry, not the request; a database that is down is a 503."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from monitor.server import create_app
from monitor.store import make_engine
from monitor.store.predictions import count_predictions
from tests.intake.helpers import cancer_rows, model_config, settings


def _drop_other_connections(engine: Engine) -> int:
    """Terminate every other backend of this database (as a server restart would)."""
    with engine.connect() as conn:
        dropped = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalar_one()
    return dropped


def test_a_dropped_pooled_connection_costs_a_retry_not_the_request(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("connections are dropped by the PostgreSQL server")
    assert engine.pool._pre_ping is False  # noqa: SLF001 - the point of the change
    client = TestClient(create_app(settings(model_config()), engine))
    first = client.post("/v1/predictions", content=orjson.dumps(cancer_rows(5)))
    assert first.status_code == 200 and first.json()["accepted"] == 5
    # a second engine, so the connection that drops the others is not the pooled one
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        assert _drop_other_connections(other) >= 1
    finally:
        other.dispose()
    again = client.post("/v1/predictions", content=orjson.dumps(cancer_rows(9, prefix="b")))
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == 9
    assert count_predictions(engine, "cancer") == 14
