"""`monitor why` on requests no run sampled, read from a files or SQL source: which class
a multiclass answer explains, the logged prediction beside the recomputed output, and a
warning when they disagree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from monitor.baseline import build_baseline
from monitor.config import load_settings
from monitor.errors import AttributionError, IntakeError, NotFoundError
from monitor.explain import explain_request
from monitor.model import load_model

CLASSES = ["barolo", "grignolino", "barbera"]
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CONFIG = """
[database]
url = "{url}"
[[models]]
name = "m"
path = "{path}"
task = "{task}"
{extra}
[models.features]
numeric = {features}
[models.baseline]
data = "{data}"
max_rows = 200
[models.attribution]
max_samples = 20
"""


def _settings(write_config, db_url, trained, tmp_path, extra):
    data = tmp_path / "train.parquet"
    trained.frame.to_parquet(data, index=False)
    body = CONFIG.format(url=db_url, path=trained.keras_path, task=trained.task, data=data,
                         features=json.dumps(list(trained.features)), extra=extra)
    return load_settings(write_config(body), env={})


def _served(trained, rows):
    return np.asarray(load_model(trained.keras_path).predict_frame(rows), dtype=float)


@SQLITE
def test_multiclass_files_source_names_the_class_and_flags_a_mismatch(
    dict_models, write_config, db_url, engine, tmp_path
):
    trained = dict_models["multiclass"]
    rows = trained.frame.iloc[[3, 70, 140]].reset_index(drop=True)
    scores = _served(trained, rows)
    tampered = scores[2][::-1].copy()  # a different model served this one
    lines = []
    for i, row in rows.iterrows():
        served = tampered if i == 2 else scores[i]
        lines.append(json.dumps({"request_id": f"w{i}", "timestamp": "2026-11-02T08:00:00+00:00",
                                 "features": {f: float(row[f]) for f in trained.features},
                                 "prediction": served.tolist()}))
    (tmp_path / "served.jsonl").write_text("\n".join(lines) + "\n")
    extra = (f'class_names = {json.dumps(CLASSES)}\nsource = "files"\n'
             f'[models.files]\nglob = "{tmp_path}/*.jsonl"')
    settings = _settings(write_config, db_url, trained, tmp_path, extra)
    build_baseline(settings, engine, "m")

    clean = explain_request(settings, engine, "m", "w0")
    predicted = int(np.argmax(scores[0]))
    assert clean["class_index"] == predicted and clean["class_name"] == CLASSES[predicted]
    assert f"class {predicted} '{CLASSES[predicted]}'" in clean["explained"]
    assert clean["logged_prediction"] == pytest.approx(scores[0][predicted], abs=1e-6)
    assert clean["output"] == pytest.approx(scores[0][predicted], abs=1e-5)
    assert clean["warnings"] == [] and clean["source"].startswith("computed on demand")

    swapped = explain_request(settings, engine, "m", "w2")
    assert any("may not be the configured one" in w for w in swapped["warnings"])

    with pytest.raises(NotFoundError, match="nor in its files source"):
        explain_request(settings, engine, "m", "nope")


@SQLITE
def test_explain_class_is_named_and_the_cli_shows_both_numbers(
    dict_models, write_config, db_url, engine, tmp_path, run_monitor
):
    trained = dict_models["multiclass"]
    row = trained.frame.iloc[[10]].reset_index(drop=True)
    served = _served(trained, row)[0]
    (tmp_path / "one.jsonl").write_text(json.dumps({
        "request_id": "q", "timestamp": "2026-11-02T08:00:00Z",
        "features": {f: float(row.loc[0, f]) for f in trained.features},
        "prediction": [float(v) * 0.5 for v in served]}) + "\n")
    extra = (f'class_names = {json.dumps(CLASSES)}\nexplain_class = 2\nsource = "files"\n'
             f'[models.files]\nglob = "{tmp_path}/*.jsonl"')
    settings = _settings(write_config, db_url, trained, tmp_path, extra)
    build_baseline(settings, engine, "m")
    proc = run_monitor("--config", str(settings.source_path), "why", "m", "q")
    assert proc.returncode == 0, proc.stderr
    assert "explains the score of class 2 'barbera', explain_class in the configuration" in proc.stdout
    assert f"logged prediction {served[2] * 0.5:.4g}, recomputed {served[2]:.4g}" in proc.stdout
    assert "warning: the logged prediction" in proc.stderr


def test_regression_sql_source_lookup(linear_regression, write_config, db_url, engine, tmp_path):
    trained = linear_regression
    rows = trained.frame.iloc[:4].reset_index(drop=True)
    served = _served(trained, rows)[:, 0]
    user_db = f"sqlite:///{tmp_path / 'serving.db'}"
    user = create_engine(user_db)
    with user.begin() as conn:
        cols = ", ".join(f'"{f}" REAL' for f in trained.features)
        conn.execute(text(f"CREATE TABLE served (request_id TEXT, ts TEXT, prediction REAL, {cols})"))
        for i, row in rows.iterrows():
            value = served[i] * 1.06 + 0.05 if i == 1 else served[i]  # a different model served r1
            names = ", ".join(f'"{f}"' for f in trained.features)
            marks = ", ".join(f":{j}" for j in range(len(trained.features)))
            conn.execute(text(f"INSERT INTO served (request_id, ts, prediction, {names}) "
                              f"VALUES (:rid, '2026-11-02 08:00:00', :pred, {marks})"),
                         {"rid": f"r{i}", "pred": float(value),
                          **{str(j): float(row[f]) for j, f in enumerate(trained.features)}})
        conn.execute(text("INSERT INTO served (request_id, ts, prediction) VALUES ('broken', "
                          "'2026-11-02 08:00:00', NULL)"))
        # NULL inputs are missing values (valid data), which no contribution can be computed for
        conn.execute(text("INSERT INTO served (request_id, ts, prediction) VALUES ('holes', "
                          "'2026-11-02 08:00:00', 1.5)"))
    user.dispose()
    extra = ('source = "sql"\n[models.sql]\n'
             f'url = "{user_db}"\n'
             'query = "SELECT * FROM served WHERE ts >= :start AND ts < :end"\n'
             'timestamp_column = "ts"')
    settings = _settings(write_config, db_url, trained, tmp_path, extra)
    build_baseline(settings, engine, "m")

    same = explain_request(settings, engine, "m", "r0")
    assert same["explained"] == "the predicted value" and same["class_index"] is None
    assert same["logged_prediction"] == pytest.approx(same["output"], rel=1e-4) and not same["warnings"]
    off = explain_request(settings, engine, "m", "r1")
    assert off["logged_prediction"] == pytest.approx(served[1] * 1.06 + 0.05, rel=1e-6)
    assert off["output"] == pytest.approx(served[1], rel=1e-4)
    assert len(off["warnings"]) == 1 and "differs from the recomputed output" in off["warnings"][0]
    with pytest.raises(IntakeError, match="is in the sql source of model m but invalid"):
        explain_request(settings, engine, "m", "broken")
    with pytest.raises(AttributionError, match=r"'holes' of model 'm' has no value for age, sex, "
                       r".*no contribution can be computed .* logged prediction \(1\.5\)"):
        explain_request(settings, engine, "m", "holes")
    with pytest.raises(NotFoundError, match="nor in its sql source"):
        explain_request(settings, engine, "m", "r9")
