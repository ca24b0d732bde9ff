"""Property-based fuzz of the ingest path on SQLite and PostgreSQL (issue 11): whatever a
batch mixes of valid and hostile rows, every row is stored or quarantined with a reason
(accepted + quarantined == sent) and the database holds exactly that."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from monitor.config import ModelConfig
from monitor.server import create_app
from monitor.store.tables import Prediction, Quarantine
from tests.intake.helpers import cancer_rows, model_config
from tests.intake.helpers import settings as make_settings

_ids = itertools.count()

JSON_LEAF = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "m" * 300, "\x00" * 80, "cancer\x00", "9999-12-31T23:30:00-05:00",
    "0001-01-01T00:00:00+05:00", "yesterday", "NaN", "1e309", "\ud7ff", "\U0001f600" * 20,
]) | st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
#: a placeholder `_encode` replaces by JSON nested 1,000 levels deep
DEEP = "__deep__"
DEEP_JSON = b'{"a":' * 1000 + b"1" + b"}" * 1000
#: the poisons of the issue's black-box test, as (field or "features.NAME", value)
POISONS = [
    ("timestamp", "0001-01-01T00:00:00+05:00"), ("timestamp", "9999-12-31T23:30:00-05:00"),
    ("features.clinic", DEEP), ("features.mean_area", DEEP), ("label", DEEP),
    ("label", {"a": 1}), ("label", "abc"), ("request_id", "r\x00id"), ("model", "can\x00cer"),
    ("model", "m" * 65), ("model", "\x00" * 80), ("features.clinic", "no\x00rth"),
    ("timestamp", 1e300), ("prediction", [0.1] * 3), ("request_id", "x" * 257),
]
FIELDS = ("model", "request_id", "timestamp", "features", "prediction", "label")
FEATURES = ("mean_radius", "mean_texture", "mean_area", "mean_smoothness", "clinic")


@st.composite
def hostile_row(draw: Any, base: dict[str, Any]) -> Any:
    """A valid row with one to three fields (or features) replaced by hostile values,
    or something that is not a row at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUE)
    row = orjson.loads(orjson.dumps(base))
    if draw(st.booleans()):
        field, value = draw(st.sampled_from(POISONS))
        if field.startswith("features."):
            row["features"][field.removeprefix("features.")] = value
        else:
            row[field] = value
        return row
    for _ in range(draw(st.integers(1, 3))):
        value = draw(JSON_VALUE | NASTY_TEXT)
        if draw(st.booleans()) and isinstance(row.get("features"), dict):
            row["features"][draw(st.sampled_from(FEATURES))] = value
        else:
            field = draw(st.sampled_from(FIELDS))
            if draw(st.integers(0, 5)) == 0:
                row.pop(field, None)
            else:
                row[field] = value
    return row


@st.composite
def batch(draw: Any) -> list[Any]:
    size = draw(st.integers(1, 25))
    rows = cancer_rows(size, prefix=f"fz{next(_ids)}-")
    out: list[Any] = []
    for row in rows:
        out.append(draw(hostile_row(row)) if draw(st.integers(0, 2)) == 0 else row)
    return out


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
                conn.execute(select(func.count()).select_from(Quarantine)).scalar_one())


def _regression() -> ModelConfig:
    return ModelConfig(name="price", path="m.keras", task="regression",
                       features={"numeric": ["x"]})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=batch(), ndjson=st.booleans())
def test_every_row_is_stored_or_quarantined(engine: Engine, rows: list[Any], ndjson: bool) -> None:
    client = TestClient(create_app(make_settings(model_config(), _regression()), engine),
                        raise_server_exceptions=False)
    # request ids are unique here, so nothing may be a duplicate of an earlier batch
    if ndjson and all(isinstance(r, dict) for r in rows):  # a scalar line stays one row
        body = b"\n".join(orjson.dumps(r) for r in rows)
    else:
        body = orjson.dumps(rows)
    body = body.replace(b'"' + DEEP.encode() + b'"', DEEP_JSON)
    before = _counts(engine)
    answer = client.post("/v1/predictions", content=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    duplicates = result["reasons"].get("duplicate", 0)
    assert result["accepted"] + result["quarantined"] + duplicates == len(rows), result
    after = _counts(engine)
    assert after[0] - before[0] == result["accepted"]
    assert after[1] - before[1] == result["quarantined"]
    assert sum(v for k, v in result["reasons"].items() if k != "duplicate") == result["quarantined"]
