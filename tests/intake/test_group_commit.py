"""Group commit: batches posted at the same time share one transaction, and each gets
the answer it would have had alone (its new rows, its duplicates, its quarantine)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from monitor.intake.ingest import group_commit, ingest_body
from monitor.store import transaction
from monitor.store.tables import Prediction, PredictionKey, Quarantine
from tests.intake.helpers import T0, cancer_rows, model_config

MODELS = [model_config()]


def _body(rows: list[dict]) -> bytes:
    return json.dumps(rows).encode()


def _held_writer(engine: Engine):
    """A connection holding the log's write lock until released: the first batch's
    transaction waits on it while the others queue up behind that batch."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("LOCK TABLE prediction_key IN EXCLUSIVE MODE")
    else:
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
    return conn


def _release(conn) -> None:
    if conn.engine.dialect.name == "postgresql":
        conn.exec_driver_sql("COMMIT")
    else:
        conn.connection.driver_connection.execute("COMMIT")
    conn.close()


def test_batches_waiting_behind_a_transaction_share_the_next_one(engine):
    group = group_commit(engine, "http")
    rows = cancer_rows(60, step=timedelta(seconds=1))
    # batch 0 alone first; then 1..5 queue while it waits; 3 repeats an id of 2;
    # 4 carries a bad row
    bodies = [rows[i * 10:(i + 1) * 10] for i in range(6)]
    bodies[3] = bodies[3][:9] + [dict(bodies[2][0])]
    bodies[4] = bodies[4][:9] + [{"request_id": "bad", "features": {}, "prediction": 0.5}]
    answers: dict[int, object] = {}

    def send(i: int) -> None:
        answers[i] = ingest_body(engine, MODELS, _body(bodies[i]), source="http", group=group)

    held = _held_writer(engine)
    first = threading.Thread(target=send, args=(0,))
    first.start()
    while not group._writing:  # batch 0's thread is writing (and waiting on the lock)
        time.sleep(0.01)
    others = [threading.Thread(target=send, args=(i,)) for i in range(1, 6)]
    for thread in others:
        thread.start()
    while len(group._queue) < 5:
        time.sleep(0.01)
    _release(held)
    for thread in [first, *others]:
        thread.join(30)

    assert (group.groups, group.batches) == (2, 6)
    assert [answers[i].accepted for i in range(6)] == [10, 10, 10, 9, 9, 10]
    assert answers[3].reasons == {"duplicate": 1}
    assert answers[4].quarantined == 1 and sum(answers[4].reasons.values()) == 1
    assert all(answers[i].quarantined == 0 for i in (0, 1, 2, 3, 5))
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 58
        assert session.scalar(select(func.count()).select_from(PredictionKey)) == 58
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 1
        # the repeated id kept the row of the batch that came first (batch 2)
        repeated = bodies[2][0]["request_id"]
        kept = session.scalar(select(Prediction.ts).where(Prediction.request_id == repeated))
    assert kept.isoformat() == bodies[2][0]["timestamp"]


def test_a_busy_server_stores_every_row_once_with_fewer_commits(engine):
    """Eight senders of ten-record batches, a fifth of the ids sent twice by two senders:
    every row stored once, the answers add up, and batches shared transactions."""
    group = group_commit(engine, "http")
    rows = cancer_rows(800, start=T0, step=timedelta(seconds=1))
    batches = [rows[i:i + 10] for i in range(0, 800, 10)]
    resent = [rows[i:i + 10] for i in range(0, 160, 10)]
    work = batches + resent
    answers = []
    lock = threading.Lock()

    def sender(mine: list[list[dict]]) -> None:
        for batch in mine:
            answer = ingest_body(engine, MODELS, _body(batch), source="http", group=group)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=sender, args=(work[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == len(work) == group.batches
    assert sum(a.accepted for a in answers) == 800
    assert sum(a.reasons.get("duplicate", 0) for a in answers) == 160
    assert group.groups < group.batches
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 800


def test_a_large_batch_takes_its_own_transaction_beside_the_group(engine):
    group = group_commit(engine, "http")
    rows = cancer_rows(group.alone_from + 10, prefix="big")
    answer = ingest_body(engine, MODELS, _body(rows), source="http", group=group)
    assert answer.accepted == len(rows)
    assert (group.groups, group.batches) == (0, 0)  # never queued
    small = ingest_body(engine, MODELS, _body(cancer_rows(5, prefix="small")), source="http", group=group)
    assert small.accepted == 5 and (group.groups, group.batches) == (1, 1)


def test_label_lookups_are_never_prepared_statements(engine):
    """A prepared statement keeps a generic plan made while `label` was small (a scan of
    the whole table, seconds per batch later): the lookup is planned each time."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL prepared statements")
    from sqlalchemy.pool import StaticPool

    from monitor.intake.ingest import ingest_labels, parse_body
    from monitor.store import make_engine

    one = make_engine(engine.url.render_as_string(hide_password=False), poolclass=StaticPool)
    try:
        for i in range(8):  # psycopg prepares a query on its 5th run
            body = json.dumps([{"model": "cancer", "request_id": f"r{j}", "label": (i + j) % 2}
                               for j in range(20)]).encode()
            assert ingest_labels(one, MODELS, parse_body(body), source="http").accepted == 20
        with one.connect() as conn:
            prepared = [s for (s,) in conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")]
    finally:
        one.dispose()
    assert not [s for s in prepared if "FROM label" in s and "request_id" in s]


@pytest.mark.parametrize("general_path", [False, True])
def test_a_small_batch_stores_a_nul_escape_as_a_large_one_does(engine, general_path):
    """PostgreSQL's one-statement path cannot read \\u0000: such a batch takes COPY, and
    the row is stored (not quarantined), whichever decode path it came through."""
    rows = cancer_rows(6, prefix="nul")
    rows[1]["features"]["clinic"] = "nul\u0000inside"
    if general_path:  # a lone surrogate sends the body to the detailed (memoryview) path
        rows[4]["request_id"] = "bad\ud800"
    group = group_commit(engine, "http")
    answer = ingest_body(engine, MODELS, json.dumps(rows).encode(), source="http", group=group)
    assert answer.accepted == (5 if general_path else 6)
    with transaction(engine) as session:
        stored = session.scalar(select(Prediction.features).where(Prediction.request_id == "nul1"))
    assert stored["clinic"] == "nul\u0000inside"
