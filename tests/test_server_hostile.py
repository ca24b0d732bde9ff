"""HTTP intake under hostile input (issue 11): every row of a batch ends stored or
quarantined with a reason whatever its neighbours contain; no answer is a bare 500."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from monitor.config import ModelConfig
from monitor.intake.ingest import ingest_predictions
from monitor.server import create_app
from monitor.store import make_engine
from monitor.store.predictions import count_predictions, quarantined
from monitor.store.tables import Label, Quarantine
from tests.intake.helpers import cancer_rows, model_config, settings

DEEP = "__nested_1000_levels__"
DEEP_JSON = b'{"a":' * 1000 + b"1" + b"}" * 1000


def _deep(depth: int) -> str:
    """A placeholder that `_body` replaces by JSON nested `depth` (1000) levels deep
    (orjson refuses to write more than 254 levels, the server's parser reads 1024)."""
    assert depth == 1000
    return DEEP


def _body(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(rows).replace(b'"' + DEEP.encode() + b'"', DEEP_JSON)


def regression_config() -> ModelConfig:
    return ModelConfig(name="price", path="m.keras", task="regression",
                       features={"numeric": ["x"]})


def _client(engine: Engine) -> TestClient:
    app = create_app(settings(model_config(), regression_config()), engine)
    return TestClient(app, raise_server_exceptions=False)


def _hostile(row: dict[str, Any], case: str) -> dict[str, Any]:
    """`row` poisoned one way (each is a case of the issue's black-box test)."""
    if case == "ts-overflow-low":
        row["timestamp"] = "0001-01-01T00:00:00+05:00"
    elif case == "ts-overflow-high":
        row["timestamp"] = "9999-12-31T23:30:00-05:00"
    elif case == "feature-1000-deep":
        row["features"]["clinic"] = _deep(1000)
    elif case == "label-1000-deep":
        row["label"] = _deep(1000)
    elif case == "label-object":
        row["label"] = {"a": 1}
    elif case == "label-out-of-range":
        row["label"] = 7
    elif case == "nul-request-id":
        row["request_id"] = "req\x00id"
    elif case == "nul-model":
        row["model"] = "can\x00cer"
    elif case == "long-unknown-model":
        row["model"] = "m" * 100
    elif case == "nul-long-unknown-model":
        row["model"] = "\x00" * 80
    return row


CASES = {
    "ts-overflow-low": "bad_timestamp",
    "ts-overflow-high": "bad_timestamp",
    "feature-1000-deep": "wrong_type",
    "label-1000-deep": "wrong_type",
    "label-object": "wrong_type",
    "label-out-of-range": "bad_label",
    "nul-request-id": "missing_request_id",
    "nul-model": "unknown_model",
    "long-unknown-model": "unknown_model",
    "nul-long-unknown-model": "unknown_model",
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_one_hostile_row_never_takes_its_neighbours(engine: Engine, case: str) -> None:
    rows = cancer_rows(20, prefix=f"{case}-")
    rows[7] = _hostile(rows[7], case)
    answer = _client(engine).post("/v1/predictions", content=_body(rows))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 19, "quarantined": 1, "reasons": {CASES[case]: 1}}
    assert count_predictions(engine, "cancer") == 19
    stored = quarantined(engine)
    assert [q.reason for q in stored] == [CASES[case]]
    assert "\x00" not in stored[0].raw and stored[0].raw  # sanitized, never empty
    assert stored[0].model in ("cancer", None)


def test_hostile_rows_all_in_one_batch(engine: Engine) -> None:
    rows = cancer_rows(len(CASES) * 2, prefix="mix-")
    for i, case in enumerate(CASES):
        rows[2 * i] = _hostile(rows[2 * i], case)
    answer = _client(engine).post("/v1/predictions", content=_body(rows))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == len(CASES) and body["quarantined"] == len(CASES)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Quarantine)).scalar_one() == len(CASES)


def test_labels_with_predictions_are_checked_like_labels(engine: Engine) -> None:
    client = _client(engine)
    good = {"model": "price", "request_id": "p1", "features": {"x": 1.5}, "prediction": 3.2,
            "label": 3.0}
    abc = {**good, "request_id": "p2", "label": "abc"}
    flag = {**good, "request_id": "p3", "label": True}
    answer = client.post("/v1/predictions", content=orjson.dumps([good, abc, flag]))
    assert answer.json() == {"accepted": 1, "quarantined": 2, "reasons": {"bad_label": 2}}
    labels = client.post("/v1/labels", content=orjson.dumps([
        {"model": "price", "request_id": "p4", "label": "abc"},
        {"model": "cancer", "request_id": "c1", "label": {"a": 1}},
        {"model": "cancer", "request_id": "c2", "label": 1},
    ]))
    assert labels.json() == {"accepted": 1, "quarantined": 2,
                             "reasons": {"bad_label": 1, "wrong_type": 1}}
    with engine.connect() as conn:
        stored = {r.request_id: r.label for r in conn.execute(select(Label))}
    assert stored == {"p1": 3.0, "c2": 1}


def test_nul_characters_in_raw_lines_are_quarantined_sanitized(engine: Engine) -> None:
    rows = cancer_rows(5, prefix="nul-")
    lines = [orjson.dumps(r) for r in rows]
    lines.insert(2, b'{"model": "cancer", "request_id": "x\x00y", broken')
    lines.insert(4, b'not json at all \x00\xff\xfe')
    answer = _client(engine).post("/v1/predictions", content=b"\n".join(lines))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 5, "quarantined": 2, "reasons": {"invalid_json": 2}}
    raws = [q.raw for q in quarantined(engine)]
    assert all("\x00" not in raw and "\\u0000" in raw for raw in raws)


def test_an_element_too_deep_for_the_parser_is_quarantined_alone(engine: Engine) -> None:
    rows = cancer_rows(6, prefix="deep-")
    body = b"[" + b",".join(orjson.dumps(r) for r in rows[:3]) + b"," + b"[" * 1200 \
        + b"]" * 1200 + b"," + b",".join(orjson.dumps(r) for r in rows[3:]) + b"]"
    answer = _client(engine).post("/v1/predictions", content=body)
    assert answer.json() == {"accepted": 6, "quarantined": 1, "reasons": {"invalid_json": 1}}


class _Exploding(dict):
    """A features mapping whose iteration fails: an unexpected error inside validation."""

    def __iter__(self):
        raise LookupError("boom")


def test_unexpected_error_on_one_row_quarantines_that_row(engine: Engine) -> None:
    rows = cancer_rows(4, prefix="boom-")
    rows[1]["features"] = _Exploding(rows[1]["features"])
    result = ingest_predictions(engine, [model_config()], [(r, None) for r in rows],
                                source="client")
    assert (result.accepted, result.quarantined) == (3, 1)
    assert result.reasons == {"internal_error": 1}
    (stored,) = quarantined(engine)
    assert stored.reason == "internal_error" and "LookupError" in stored.detail


def test_request_that_cannot_be_processed_answers_json_not_bare_500(tmp_path) -> None:
    """No tables at all (a programming error, not an outage): a JSON 503, logged once."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    client = TestClient(create_app(settings(model_config()), engine),
                        raise_server_exceptions=False)
    answer = client.post("/v1/predictions", content=orjson.dumps(cancer_rows(2)))
    assert answer.status_code == 503
    assert "internal error" in answer.json()["error"]
    engine.dispose()


def _refuse_request_id(engine: Engine, request_id: str) -> Any:
    """A trigger that makes the database itself refuse one row; returns its remover."""
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":
        create = [f"CREATE TRIGGER refuse_one BEFORE INSERT ON prediction WHEN "
                  f"NEW.request_id = '{request_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"]
        drop = ["DROP TRIGGER refuse_one"]
    else:
        create = [
            "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN IF NEW.request_id = "
            f"'{request_id}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_one BEFORE INSERT ON prediction FOR EACH ROW "
            "EXECUTE FUNCTION refuse_one()",
        ]
        drop = ["DROP TRIGGER refuse_one ON prediction", "DROP FUNCTION refuse_one()"]
    with engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))

    def remove() -> None:
        with engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))

    return remove


def test_a_row_the_database_refuses_is_quarantined_alone(engine: Engine) -> None:
    """The batch insert fails (a trigger refuses one row): the rows are stored one by one,
    the refused one quarantined as internal_error with the database's message."""
    rows = cancer_rows(12, prefix="db-")
    remove = _refuse_request_id(engine, "db-5")
    try:
        answer = _client(engine).post("/v1/predictions", content=orjson.dumps(rows))
    finally:
        remove()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 11, "quarantined": 1, "reasons": {"internal_error": 1}}
    assert count_predictions(engine, "cancer") == 11
    (stored,) = quarantined(engine)
    assert "refused" in stored.detail and '"db-5"' in stored.raw
