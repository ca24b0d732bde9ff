"""The clock-skew policy of ingest: a row stamped beyond the server's clock plus
`server.max_future_skew` is quarantined as future_timestamp, one older than what
`scheduler.retention_days` keeps as too_old, whichever way it came in (HTTP array or
NDJSON, `monitor ingest FILE`, the Python client), and the fast and detailed paths agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from monitor import clock
from monitor.client import PredictionLogger
from monitor.intake.decode import decode_predictions
from monitor.intake.ingest import parse_body
from monitor.intake.prepare import prepare_predictions
from monitor.intake.timebounds import TimePolicy
from monitor.intake.validate import Validator, check_predictions
from monitor.server import create_app
from monitor.store.predictions import count_predictions, quarantined
from tests.factories import MovableClock
from tests.intake.helpers import cancer_rows, model_config, settings

#: the server's clock in these tests; 90 days of retention keep rows from 2025-12-01 00:00 on
NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
EARLIEST = datetime(2025, 12, 1, tzinfo=UTC)
#: request id -> the verdict its timestamp gets under the default policy
EXPECTED = {"now": None, "year-ahead": "future_timestamp", "at-skew": None,
            "past-skew": "future_timestamp", "epoch-ahead": "future_timestamp",
            "at-earliest": None, "before-earliest": "too_old", "missing": None}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    fake = MovableClock(NOW)
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


def _rows() -> list[dict]:
    """One row per case of EXPECTED, at the bounds and beyond them."""
    stamps = {
        "now": NOW.isoformat(),
        "year-ahead": (NOW + timedelta(days=365)).isoformat(),
        "at-skew": (NOW + timedelta(minutes=5)).isoformat(),
        "past-skew": (NOW + timedelta(minutes=5, seconds=1)).isoformat(),
        "epoch-ahead": (NOW + timedelta(hours=1)).timestamp(),
        "at-earliest": EARLIEST.isoformat(),
        "before-earliest": (EARLIEST - timedelta(microseconds=1)).isoformat(),
        "missing": None,
    }
    rows = cancer_rows(len(stamps))
    for row, (name, stamp) in zip(rows, stamps.items(), strict=True):
        row["request_id"] = name
        row["timestamp"] = stamp
    return rows


def _policy_settings(**server):
    return settings(model_config(), server=server, scheduler={"retention_days": 90})


def test_every_validation_path_quarantines_the_same_rows_with_the_same_words(now) -> None:
    body = orjson.dumps(_rows())
    bounds = TimePolicy().bounds()
    assert (bounds.earliest, bounds.latest) == (EARLIEST, NOW + timedelta(minutes=5))
    slow = check_predictions(parse_body(body), {"cancer": Validator(model_config())},
                             source="t", bounds=bounds)
    fast = prepare_predictions(parse_body(body), {"cancer": Validator(model_config())},
                               source="t", bounds=bounds)
    decoded = decode_predictions(body, {"cancer": Validator(model_config())}, source="t",
                                 bounds=bounds)
    assert decoded is not None
    accepted = sorted(k for k, v in EXPECTED.items() if v is None)
    assert sorted(r.request_id for r in slow.records) == accepted
    assert sorted(r[1] for r in fast.rows) == sorted(r[1] for r in decoded.rows) == accepted
    verdicts = [(orjson.loads(r.raw)["request_id"], r.reason, r.detail, r.ts)
                for r in slow.rejected]
    assert sorted((name, reason) for name, reason, _, _ in verdicts) == sorted(
        (k, v) for k, v in EXPECTED.items() if v is not None)
    for path in (fast, decoded):
        assert [(orjson.loads(r.raw)["request_id"], r.reason, r.detail, r.ts)
                for r in path.rejected] == verdicts
    details = {name: detail for name, _, detail, _ in verdicts}
    assert "365d ahead of the server's clock" in details["year-ahead"]
    assert "server.max_future_skew allows 5m" in details["year-ahead"]
    assert "scheduler.retention_days = 90" in details["before-earliest"]
    assert "2025-12-01T00:00:00+00:00" in details["before-earliest"]


@pytest.mark.parametrize("encoding", ["array", "ndjson"])
def test_http_quarantines_future_and_too_old_rows_and_stores_the_rest(
    engine: Engine, now, encoding: str
) -> None:
    rows = _rows()
    body = orjson.dumps(rows) if encoding == "array" else b"\n".join(map(orjson.dumps, rows))
    client = TestClient(create_app(_policy_settings(), engine))
    answer = client.post("/v1/predictions", content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 4, "quarantined": 4,
                             "reasons": {"future_timestamp": 3, "too_old": 1}}
    assert count_predictions(engine, "cancer") == 4
    stored = {orjson.loads(q.raw)["request_id"]: q for q in quarantined(engine)}
    assert {name: q.reason for name, q in stored.items()} == {
        k: v for k, v in EXPECTED.items() if v is not None}
    # the row's own time is kept with it (what the sender's clock said)
    assert stored["year-ahead"].ts == NOW + timedelta(days=365)


def test_the_skew_and_the_retention_are_settings(engine: Engine, now) -> None:
    """A wider skew admits a sender a day ahead; a longer retention admits older rows."""
    rows = cancer_rows(2)
    rows[0]["timestamp"] = (NOW + timedelta(hours=20)).isoformat()
    rows[1]["timestamp"] = (NOW - timedelta(days=200)).isoformat()
    strict = TestClient(create_app(_policy_settings(), engine))
    assert strict.post("/v1/predictions", content=orjson.dumps(rows)).json()["reasons"] == {
        "future_timestamp": 1, "too_old": 1}
    lenient = TestClient(create_app(
        settings(model_config(), server={"max_future_skew": "1d"},
                 scheduler={"retention_days": 365}), engine))
    for row in rows:
        row["request_id"] += "-again"
    assert lenient.post("/v1/predictions", content=orjson.dumps(rows)).json() == {
        "accepted": 2, "quarantined": 0, "reasons": {}}


def test_the_client_writing_to_the_database_applies_the_policy(engine: Engine, now) -> None:
    with PredictionLogger(engine=engine, settings=_policy_settings(), model="cancer") as logger:
        for row in cancer_rows(3):
            ahead = row["request_id"] == "r1"
            logger.log(row["features"], row["prediction"], request_id=row["request_id"],
                       timestamp=NOW + timedelta(days=30 if ahead else 0))
    assert (logger.sent, logger.quarantined) == (2, 1)
    assert [q.reason for q in quarantined(engine)] == ["future_timestamp"]


def test_ingest_command_quarantines_rows_outside_the_bounds(
    db_url: str, engine: Engine, tmp_path: Path, write_config, run_monitor
) -> None:
    """`monitor ingest` runs in its own process: the rows are stamped from the real clock."""
    write_config(
        f'[database]\nurl = "{db_url}"\n[server]\nmax_future_skew = "10m"\n'
        '[scheduler]\nretention_days = 30\n[[models]]\nname = "cancer"\npath = "model.keras"\n'
        'task = "binary_classification"\n[models.features]\n'
        'numeric = ["mean_radius", "mean_texture", "mean_area", "mean_smoothness"]\n'
        'categorical = ["clinic"]\n'
    )
    real_now = datetime.now(UTC)
    offsets = {"recent": -timedelta(hours=1), "soon": timedelta(minutes=2),
               "next-year": timedelta(days=365), "last-quarter": -timedelta(days=95)}
    rows = cancer_rows(len(offsets))
    for row, (name, offset) in zip(rows, offsets.items(), strict=True):
        row["request_id"], row["timestamp"] = name, (real_now + offset).isoformat()
    (tmp_path / "traffic.jsonl").write_bytes(b"\n".join(map(orjson.dumps, rows)))
    proc = run_monitor("ingest", "cancer", "traffic.jsonl", "--no-progress", check=True)
    assert "cancer: 2 accepted, 2 quarantined" in proc.stdout, proc.stdout
    assert "future_timestamp: 1" in proc.stdout and "too_old: 1" in proc.stdout
    assert {orjson.loads(q.raw)["request_id"]: q.reason for q in quarantined(engine)} == {
        "next-year": "future_timestamp", "last-quarter": "too_old"}
