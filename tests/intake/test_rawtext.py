"""What quarantine keeps of a row: the exact text that was sent (an array element, an
NDJSON or JSONL line), or a faithful JSON rendering at any depth, never a Python repr,
cut with a marker when huge."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from monitor.client import PredictionLogger
from monitor.intake.rawtext import MAX_RAW_CHARS, render_json
from monitor.intake.validate import raw_text
from monitor.server import BackgroundServer, create_app
from monitor.store.predictions import count_predictions, quarantined
from tests.intake.helpers import REPLAY_SCHEDULER, cancer_rows, model_config, settings

#: 300: orjson reads it but cannot write it back; 1,000: msgspec cannot read it either;
#: 5,000: orjson cannot read it
DEPTHS = [300, 1000, 5000]


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _deep_row_text(depth: int, request_id: str = "deep") -> str:
    """A row as a sender spells it (spaces after separators), its clinic nested `depth` deep."""
    row = cancer_rows(1, prefix="x")[0]
    row["request_id"] = request_id
    row["features"]["clinic"] = "__deep__"
    return json.dumps(row).replace('"__deep__"', _nested(depth))


def _good_lines(n: int) -> list[str]:
    return [json.dumps(r) for r in cancer_rows(n, prefix="ok-")]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("encoding", ["array", "ndjson"])
def test_http_quarantines_a_deep_row_as_the_text_sent(engine: Engine, depth: int,
                                                      encoding: str) -> None:
    sent = _deep_row_text(depth)
    lines = _good_lines(4)
    lines.insert(2, sent)
    body = "[" + ", ".join(lines) + "]" if encoding == "array" else "\n".join(lines)
    client = TestClient(create_app(settings(model_config()), engine))
    answer = client.post("/v1/predictions", content=body.encode())
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["quarantined"]) == (4, 1)
    (stored,) = quarantined(engine)
    assert stored.raw == sent


@pytest.mark.parametrize("depth", DEPTHS)
def test_ingest_command_quarantines_a_deep_jsonl_line_as_the_line(
    db_url: str, engine: Engine, tmp_path: Path, write_config, run_monitor, depth: int
) -> None:
    write_config(
        f'[database]\nurl = "{db_url}"\n[[models]]\nname = "cancer"\npath = "model.keras"\n'
        'task = "binary_classification"\n[models.features]\n'
        'numeric = ["mean_radius", "mean_texture", "mean_area", "mean_smoothness"]\n'
        'categorical = ["clinic"]\n' + REPLAY_SCHEDULER
    )
    sent = _deep_row_text(depth)
    (tmp_path / "traffic.jsonl").write_text("\n".join([*_good_lines(3), sent]) + "\n")
    proc = run_monitor("ingest", "cancer", "traffic.jsonl", "--no-progress", check=True)
    assert "cancer: 3 accepted, 1 quarantined" in proc.stdout, proc.stdout
    (stored,) = quarantined(engine)
    assert stored.raw == sent


@pytest.mark.parametrize("depth", DEPTHS)
def test_a_client_row_too_deep_to_serialize_is_quarantined_as_json(
    engine: Engine, depth: int
) -> None:
    """The client renders it as JSON (orjson stops at 255 levels), not as a repr: the
    server keeps what the serving code logged, as JSON text."""
    app = create_app(settings(model_config()), engine)
    with BackgroundServer(app) as server:
        with PredictionLogger(server.url, model="cancer", batch_size=500) as logger:
            for i, row in enumerate(cancer_rows(5, prefix="c-")):
                features = dict(row["features"])
                if i == 2:
                    features["clinic"] = json.loads(_nested(min(depth, 900)))
                    if depth > 900:  # deeper than json.loads builds: nest it by hand
                        for _ in range(depth - 900):
                            features["clinic"] = [features["clinic"]]
                logger.log(features, row["prediction"], request_id=row["request_id"],
                           timestamp=row["timestamp"])
        assert (logger.sent, logger.quarantined, logger.dropped) == (4, 1, 0)
    assert count_predictions(engine, "cancer") == 4
    (stored,) = quarantined(engine)
    assert stored.raw.startswith('{"model":"cancer","request_id":"c-2"')
    assert _nested(depth) in stored.raw and "'" not in stored.raw


def test_render_json_is_exact_at_any_depth_and_never_a_repr() -> None:
    value: object = 1
    for _ in range(5000):
        value = [value]
    row = {"features": {"clinic": value, "big": 2**70, "nan": float("nan")}, "k": (1, "a")}
    text = render_json(row)
    assert text == ('{"features":{"clinic":' + _nested(5000)
                    + ',"big":1180591620717411303424,"nan":null},"k":[1,"a"]}')
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        assert json.loads(text)["features"]["big"] == 2**70
    finally:
        sys.setrecursionlimit(limit)


def test_a_huge_row_is_cut_with_a_marker() -> None:
    huge = {"features": {"clinic": "x" * (MAX_RAW_CHARS + 500)}}
    for kept in (raw_text(huge), raw_text(orjson.dumps(huge).decode())):
        assert len(kept) < MAX_RAW_CHARS + 100
        assert kept.startswith('{"features":{"clinic":"xxx')
        assert kept.endswith(f"...[truncated by monitor: {len(orjson.dumps(huge)) - MAX_RAW_CHARS}"
                             " more characters]")
    cycle: list = []
    cycle.append(cycle)
    assert render_json(cycle, limit=20).startswith("[" * 20 + "...[truncated by monitor")
