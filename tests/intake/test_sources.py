"""Store functions and the three window sources, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import DateTime, Engine, bindparam, text

from monitor.intake import read_window
from monitor.intake.ingest import ingest_labels, ingest_predictions, parse_body
from monitor.store import transaction
from monitor.store.predictions import count_predictions, quarantine_rows, quarantined
from tests.intake.helpers import (
    NUMERIC,
    T0,
    cancer_rows,
    iris_config,
    iris_rows,
    model_config,
)

WINDOW = (T0, T0 + timedelta(seconds=100))


def _ingest(engine: Engine, rows, config=None):
    config = config or model_config(sample_size=40)
    return ingest_predictions(engine, [config], parse_body(orjson.dumps(rows)), source="http")


def test_ingest_stores_quarantines_and_skips_duplicates(engine: Engine) -> None:
    rows = cancer_rows(20)
    rows[3]["features"]["mean_area"] = "huge"
    first = _ingest(engine, rows)
    assert (first.accepted, first.quarantined) == (19, 1)
    assert first.reasons == {"wrong_type": 1}
    again = _ingest(engine, rows[:5])
    assert again.accepted == 0 and again.reasons == {"duplicate": 4, "wrong_type": 1}
    assert count_predictions(engine, "cancer") == 19
    kept = quarantined(engine, "cancer")
    assert len(kept) == 2 and kept[0].reason == "wrong_type"
    assert orjson.loads(kept[0].raw)["features"]["mean_area"] == "huge"


def test_log_window_joins_labels_even_when_they_came_first(engine: Engine) -> None:
    config = model_config(sample_size=500)
    rows = cancer_rows(150)
    for row in rows:
        row.pop("label")
    early = [{"model": "cancer", "request_id": "r5", "label": 1}]
    assert ingest_labels(engine, [config], [(r, None) for r in early], source="http").accepted == 1
    _ingest(engine, rows, config)
    ingest_labels(
        engine,
        [config],
        [({"model": "cancer", "request_id": "r7", "label": 0}, None)],
        source="http",
    )
    window = read_window(config, engine, *WINDOW)
    assert window.rows == 100 and len(window.frame) == 100
    assert list(window.frame.columns) == [*NUMERIC, "clinic"]
    assert window.frame.index[0] == "r0" and window.predictions.dtype == float
    labels = pd.Series(window.labels, index=window.frame.index)
    assert labels["r5"] == 1 and labels["r7"] == 0 and labels.isna().sum() == 98
    assert window.timestamps[0] == np.datetime64("2026-03-01T12:00:00")


def test_log_window_sample_is_seeded_and_bounded(engine: Engine) -> None:
    config = model_config(sample_size=30, seed=4)
    _ingest(engine, cancer_rows(150), config)
    a = read_window(config, engine, *WINDOW)
    b = read_window(config, engine, *WINDOW)
    assert a.rows == 100 and len(a.frame) == 30
    assert list(a.frame.index) == list(b.frame.index)
    assert a.labels is not None and not np.isnan(a.labels).any()


def test_stratified_multiclass_window(engine: Engine) -> None:
    config = iris_config(sample_size=30, stratify=True)
    result = ingest_predictions(engine, [config], [(r, None) for r in iris_rows(90)], source="http")
    assert result.accepted == 90
    window = read_window(config, engine, T0, T0 + timedelta(hours=1))
    assert window.predictions.shape == (30, 3)
    assert np.allclose(window.predictions.sum(axis=1)[window.predictions.max(axis=1) == 1.0], 1.0)
    assert window.labels is None
    counts = np.bincount(window.predictions.argmax(axis=1), minlength=3)
    assert counts.tolist() == [17, 13, 0]  # the first 90 iris rows: 50 setosa, 40 versicolor


def test_rejected_rows_of_a_window_go_to_quarantine(engine: Engine, tmp_path: Path) -> None:
    rows = pd.DataFrame(
        [
            {
                **r["features"],
                "request_id": r["request_id"],
                "timestamp": r["timestamp"],
                "prediction": r["prediction"],
            }
            for r in cancer_rows(50)
        ]
    )
    rows["mean_area"] = rows["mean_area"].astype(object)
    rows.loc[2, "mean_area"] = np.nan  # an empty cell: a missing value, kept
    rows.loc[3, "mean_area"] = "oops"  # text in a numeric column: quarantined
    rows.loc[4, "timestamp"] = "not a time"
    rows.to_csv(tmp_path / "part-1.csv", index=False)
    # a row whose time cannot be read belongs to the window of the file's modification
    # time (it is quarantined by that window only, not by every window)
    stamp = (WINDOW[0] + (WINDOW[1] - WINDOW[0]) / 2).timestamp()
    os.utime(tmp_path / "part-1.csv", (stamp, stamp))
    config = model_config(source="files", files={"glob": str(tmp_path / "*.csv")})
    window = read_window(config, engine, *WINDOW)
    assert window.rows == 48
    assert window.reasons == {"wrong_type": 1, "bad_timestamp": 1}
    empty_cell = cancer_rows(50)[2]["request_id"]
    assert np.isnan(window.frame.loc[empty_cell, "mean_area"])
    later = read_window(config, engine, WINDOW[1], WINDOW[1] + (WINDOW[1] - WINDOW[0]))
    assert later.rows == 0 and not later.rejected
    with transaction(engine) as session:
        assert quarantine_rows(session, window.rejected, source="run:1") == 2
    stored = quarantined(engine, "cancer")
    assert {q.source for q in stored} == {"run:1"} and all(q.raw for q in stored)


def test_files_source_reads_parquet_and_jsonl(engine: Engine, tmp_path: Path) -> None:
    rows = cancer_rows(60)
    flat = pd.DataFrame(
        [
            {
                **r["features"],
                "request_id": r["request_id"],
                "ts": pd.Timestamp(r["timestamp"]),
                "prediction": r["prediction"],
                "label": r["label"],
            }
            for r in rows[:30]
        ]
    )
    (tmp_path / "in").mkdir()
    flat.to_parquet(tmp_path / "in" / "a.parquet")
    (tmp_path / "in" / "b.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows[30:]))
    config = model_config(
        source="files",
        files={
            "glob": str(tmp_path / "in" / "*"),
            "timestamp_column": "ts",
            "label_column": "label",
        },
    )
    window = read_window(config, engine, T0, T0 + timedelta(seconds=45))
    assert window.rows == 45 and not window.rejected
    assert window.labels is not None and not np.isnan(window.labels).any()


def test_sql_source_reads_the_users_table(db_url: str, engine: Engine) -> None:
    rows = cancer_rows(80)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE user_preds (rid VARCHAR(50), created TIMESTAMP, "
                "mean_radius FLOAT, mean_texture FLOAT, mean_area FLOAT, "
                "mean_smoothness FLOAT, clinic VARCHAR(10), score FLOAT)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO user_preds VALUES (:rid, :created, :mean_radius, :mean_texture, "
                ":mean_area, :mean_smoothness, :clinic, :score)"
            ).bindparams(bindparam("created", type_=DateTime())),
            [
                {
                    "rid": r["request_id"],
                    "created": pd.Timestamp(r["timestamp"]).tz_localize(None).to_pydatetime(),
                    **r["features"],
                    "score": r["prediction"],
                }
                for r in rows
            ],
        )
    try:
        config = model_config(
            source="sql",
            sample_size=20,
            sql={
                "url": db_url,
                "timestamp_column": "created",
                "request_id_column": "rid",
                "prediction_column": "score",
                "query": "SELECT * FROM user_preds WHERE created >= :start AND created < :end",
            },
        )
        window = read_window(config, engine, *WINDOW)
        assert window.rows == 80 and len(window.frame) == 20 and not window.rejected
        assert window.frame.index.str.startswith("r").all()
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE user_preds"))


def test_sql_source_error_names_the_model(engine: Engine) -> None:
    from monitor.errors import IntakeError

    config = model_config(
        source="sql",
        sql={"url": "sqlite://", "query": "SELECT * FROM missing WHERE t >= :start AND t < :end"},
    )
    with pytest.raises(IntakeError, match="cancer"):
        read_window(config, engine, *WINDOW)
