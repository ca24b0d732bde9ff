"""The log's window sampled in the database: uniform, reproducible, seeded, counted by
aggregate, and without reading (or validating again) the rows it does not keep."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, text

from monitor.intake import read_window
from monitor.intake.ingest import ingest_predictions, parse_body
from monitor.intake.sampling import proportional_slots
from monitor.intake.validate import Validator
from monitor.store import predictions
from monitor.store.predictions import class_counts, key_bound, sample_key, sample_statement
from tests.intake.helpers import NUMERIC, T0, cancer_rows, iris_config, iris_rows, model_config

HOUR = timedelta(hours=1)


def _log(engine: Engine, n: int, **kw) -> list[dict]:
    rows = cancer_rows(n, step=timedelta(seconds=3600 / n), **kw)
    for i in range(0, n, 1000):
        ingest_predictions(engine, [model_config()], parse_body(json.dumps(rows[i:i + 1000]).encode()),
                           source="http")
    return rows


def _count_validations(monkeypatch) -> list[str]:
    """The request ids `Validator.check` is called on from now (a spy: the checks run)."""
    checked: list[str] = []
    original = Validator.check

    def counting(self, obj):
        checked.append(obj["request_id"])
        return original(self, obj)

    monkeypatch.setattr(Validator, "check", counting)
    return checked


def test_the_sample_is_the_rows_with_the_smallest_keys_and_the_count_is_the_window(engine):
    rows = _log(engine, 3000)
    window = read_window(model_config(sample_size=200), engine, T0, T0 + HOUR)
    assert window.rows == 3000 and len(window.frame) == 200
    keys = sorted((sample_key("cancer", r["request_id"]), r["request_id"]) for r in rows)
    assert set(window.frame.index) == {rid for _, rid in keys[:200]}
    # log order, labels joined, every value as sent
    stamps = window.timestamps.astype("datetime64[us]")
    assert np.all(stamps[1:] >= stamps[:-1])
    by_id = {r["request_id"]: r for r in rows}
    for rid, label in zip(window.frame.index, window.labels, strict=True):
        assert label == by_id[rid]["label"]
        assert window.frame.loc[rid, "mean_radius"] == by_id[rid]["features"]["mean_radius"]


def test_rows_logged_before_the_key_existed_are_sampled_as_if_they_had_one(engine):
    """Migration 0005 leaves old rows without a stored key: the database computes it."""
    _log(engine, 1500)
    configs = [model_config(sample_size=150, seed=seed) for seed in (0, 5)]
    keyed = [list(read_window(c, engine, T0, T0 + HOUR).frame.index) for c in configs]
    assert keyed[0] != keyed[1]
    for stale in ("id % 2 = 0", "1 = 1"):  # half the rows, then all of them
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE prediction SET sample_key = NULL WHERE {stale}"))
        assert [list(read_window(c, engine, T0, T0 + HOUR).frame.index) for c in configs] == keyed


def test_the_sample_is_reproducible_and_another_seed_draws_another(engine):
    _log(engine, 2000)
    first = read_window(model_config(sample_size=300), engine, T0, T0 + HOUR)
    again = read_window(model_config(sample_size=300), engine, T0, T0 + HOUR)
    other = read_window(model_config(sample_size=300, seed=7), engine, T0, T0 + HOUR)
    assert list(first.frame.index) == list(again.frame.index)
    overlap = len(set(first.frame.index) & set(other.frame.index))
    # independent draws of 300 of 2,000 share 45 rows on average (sd ~6)
    assert 15 < overlap < 90


def test_the_sample_is_uniform_over_the_window(engine):
    """Every part of the window is drawn at its share: by time (quarters of the hour)
    and by value (the feature's mean within its sampling error)."""
    rows = _log(engine, 4000)
    window = read_window(model_config(sample_size=800), engine, T0, T0 + HOUR)
    minutes = (window.timestamps - np.datetime64(T0.replace(tzinfo=None), "us")) / np.timedelta64(1, "m")
    counts = np.histogram(minutes, bins=4, range=(0, 60))[0]
    expected = 800 / 4
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.3  # p = 0.001 for 3 degrees of freedom
    values = np.array([r["features"][NUMERIC[0]] for r in rows])
    se = values.std() / np.sqrt(800) * np.sqrt(1 - 800 / 4000)
    assert abs(window.frame[NUMERIC[0]].mean() - values.mean()) < 4 * se


def test_rows_not_sampled_are_neither_read_nor_validated_again(engine, monkeypatch):
    _log(engine, 3000)
    checked = _count_validations(monkeypatch)
    window = read_window(model_config(sample_size=250), engine, T0, T0 + HOUR)
    assert window.rows == 3000
    assert sorted(checked) == sorted(window.frame.index)


def test_a_sampled_row_that_no_longer_fits_the_schema_is_quarantined_not_sampled(engine):
    _log(engine, 300)
    # the config gained a feature after these rows were logged
    grown = model_config(
        sample_size=50,
        features={"numeric": [*NUMERIC, "mean_perimeter"], "categorical": ["clinic"]},
    )
    window = read_window(grown, engine, T0, T0 + HOUR)
    assert len(window.frame) == 0 and len(window.rejected) == 50
    assert set(window.reasons) == {"missing_feature"}
    assert window.rows == 300 - 50


def test_a_class_stratified_sample_is_drawn_in_the_database_per_predicted_class(engine):
    """`stratify`: each predicted class gets its proportional share, filled with its rows
    of smallest key, exactly what the reservoir path's allocation gives."""
    rows = _log(engine, 1200)
    config = model_config(sample_size=100, stratify=True)
    window = read_window(config, engine, T0, T0 + HOUR)
    by_class: dict[int, list] = {0: [], 1: []}
    for r in rows:
        by_class[int(r["prediction"] >= 0.5)].append((sample_key("cancer", r["request_id"]), r["request_id"]))
    slots = proportional_slots({k: len(v) for k, v in by_class.items()}, 100)
    expected = {rid for k, keyed in by_class.items() for _, rid in sorted(keyed)[: slots[k]]}
    assert window.rows == 1200 and set(window.frame.index) == expected
    assert sorted(slots.values()) != [50, 50]  # the classes are not balanced: shares matter


def test_attribute_strata_are_counted_and_drawn_in_the_database(engine, monkeypatch):
    """`[models.segments] stratify`: strata by attribute value (40 and 40.0 are one
    value, a missing one its own), each filled with its rows of smallest key, weighted
    by rows / drawn, and no row of the window validated beyond the two samples."""
    model = model_config(segments={"attributes": ["band"], "stratify": True, "min_rows": 30},
                         sample_size=120)
    rows = cancer_rows(1500, step=timedelta(seconds=2))
    for i, row in enumerate(rows):
        band = 40 if i % 3 else 40.0
        row["attributes"] = {"band": "rare" if i % 50 == 0 else band}
    for i in range(0, 1500, 500):
        ingest_predictions(engine, [model], parse_body(json.dumps(rows[i:i + 500]).encode()), source="http")
    checked = _count_validations(monkeypatch)
    window = read_window(model, engine, T0, T0 + HOUR)
    assert len(checked) <= 2 * 120
    strat = window.stratified
    bands = strat.attributes["band"].map(str).to_numpy()
    assert (bands == "rare").sum() == 30 and len(strat.frame) == 120
    described = {s["values"]["band"]: (s["rows"], s["sampled"]) for s in window.sampling.to_dict()["strata"]}
    assert described == {"40": (1470, 90), "rare": (30, 30)}
    assert strat.weights.sum() == pytest.approx(1500)
    common = sorted((sample_key("cancer", r["request_id"]), r["request_id"])
                    for r in rows if r["attributes"]["band"] != "rare")
    assert {rid for rid, band in zip(strat.frame.index, bands, strict=True) if band != "rare"} == \
        {rid for _, rid in common[:90]}


@pytest.mark.parametrize(("count", "wanted"), [(1_000, 10), (100_000, 90), (20_000, 2_000), (500, 1)])
def test_a_key_bound_holds_the_wanted_keys_of_a_uniform_stratum(count, wanted):
    """Uniform 64-bit keys: in 400 strata each, every one holds at least `wanted` keys up
    to its bound, and the keys ranked are a few times `wanted`, not the stratum."""
    rng = np.random.default_rng(count + wanted)
    bound = key_bound(count, wanted)
    below = [int((rng.integers(-(2**63), 2**63 - 1, size=count, endpoint=True) <= bound).sum())
             for _ in range(400)]
    assert min(below) >= wanted
    expected = count * (bound + 2**63 + 1) / 2**64  # the binomial's mean
    assert expected <= wanted + 5 * wanted**0.5 + 11 and expected <= 0.5 * count
    assert abs(np.mean(below) - expected) < 5 * (expected / 400) ** 0.5 + 0.5


def test_a_key_bound_is_none_when_the_stratum_must_be_ranked_whole():
    assert key_bound(100, 90) is None and key_bound(30, 30) is None and key_bound(0, 5) is None
    assert key_bound(1_000, 0) == -(2**63)


@pytest.mark.parametrize("seed", [0, 4])
def test_a_stratum_short_of_its_bound_is_drawn_again_whole(engine, monkeypatch, caplog, seed):
    """Bounds that keep too few keys (here: almost none) give the same stratified samples
    as ranking every row: the shortfall is seen and the stratum ranked whole."""
    model = model_config(segments={"attributes": ["band"], "stratify": True, "min_rows": 20},
                         sample_size=100, stratify=True, seed=seed)
    rows = cancer_rows(1200, step=timedelta(seconds=2))
    for i, row in enumerate(rows):
        row["attributes"] = {"band": "rare" if i % 40 == 0 else "common"}
    ingest_predictions(engine, [model], parse_body(json.dumps(rows).encode()), source="http")
    honest = read_window(model, engine, T0, T0 + HOUR)
    ranked: list[int] = []

    def stingy(count: int, wanted: int) -> int:
        ranked.append(count)
        return -(2**63) + 2**52  # about count / 4096 keys: short of any quota here

    monkeypatch.setattr(predictions, "key_bound", stingy)
    with caplog.at_level("INFO", logger="monitor.store.predictions"):
        short = read_window(model, engine, T0, T0 + HOUR)
    said = [r.getMessage() for r in caplog.records if "came up short" in r.getMessage()]
    assert len(said) == 2 and all("(same sample, slower)" in m for m in said)
    assert ranked  # the bounds were asked for, and fell short
    assert list(short.frame.index) == list(honest.frame.index)
    assert list(short.stratified.frame.index) == list(honest.stratified.frame.index)
    assert len(short.frame) == 100 and len(short.stratified.frame) == 100


def test_the_predicted_class_in_sql_is_the_validated_predictions_class(engine):
    """Class indices and score lists (ties to the first highest, as numpy's argmax)."""
    config = iris_config()
    rows = iris_rows(12)
    rows[1]["prediction"] = [0.4, 0.4, 0.2]
    rows[3]["prediction"] = [0.2, 0.4, 0.4]
    rows[5]["prediction"] = [0.0, 0.0, 1.0]
    ingest_predictions(engine, [config], [(r, None) for r in rows], source="http")
    expected: dict[int, int] = {}
    for r in rows:
        p = r["prediction"]
        cls = p if isinstance(p, int) else int(np.argmax(p))
        expected[cls] = expected.get(cls, 0) + 1
    assert class_counts(engine, "iris", config.task, T0, T0 + HOUR) == expected


@pytest.mark.postgres
def test_postgres_keeps_the_window_in_the_database(engine):
    """The product's statement: a top-N sort over the window, the label join after it
    on the sampled rows only."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL plan")
    _log(engine, 2000)
    for seed in (0, 3):
        stmt = sample_statement(engine, "cancer", T0, T0 + HOUR, 100, seed=seed)
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN ANALYZE " + sql)))
        assert "top-N heapsort" in plan
        join = plan.index("Join")
        assert "Limit" in plan[join:]  # the limit is below (inside) the label join
