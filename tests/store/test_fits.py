"""Per-baseline fits in the database, on SQLite and PostgreSQL through the migrations:
kept once, a concurrent duplicate is no error, a new fingerprint replaces the old, a
deleted baseline takes its fits along, and `monitor db upgrade` adds the table to a
database that already holds baselines."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, inspect, select, text

from monitor.store import make_engine, transaction, upgrade
from monitor.store.baselines import save_baseline
from monitor.store.fits import BaselineFits, count_fits, load_fit, save_fit
from monitor.store.tables import Baseline, BaselineFit


def _baseline(session, model="m") -> int:
    row = save_baseline(
        session, model=model, task="regression", source="test", created_by="test",
        sample=pd.DataFrame({"x": [1.0, 2.0, 3.0]}), predictions=np.array([0.1, 0.2, 0.3]),
        labels=None, feature_stats={}, attributions=None, attribution_method=None,
        importance=None, performance=None,
    )
    return row.id


def test_a_fit_is_kept_once_and_a_duplicate_save_does_nothing(engine):
    with transaction(engine) as session:
        baseline = _baseline(session)
    fits = BaselineFits(engine, baseline)
    assert fits.load("drift", "x|ks|256", "f1") is None
    fits.save("drift", "x|ks|256", "f1", b"first")
    fits.save("drift", "x|ks|256", "f1", b"second")  # a second process built it too
    assert fits.load("drift", "x|ks|256", "f1") == b"first"
    assert fits.load("drift", "x|ks|256", "f2") is None
    with transaction(engine) as session:
        assert count_fits(session, baseline) == 1


def test_concurrent_saves_of_the_same_fit_never_fail(engine):
    """Two daemons that built the same null at once: both inserts in open transactions,
    the second one waits for the first and then does nothing."""
    with transaction(engine) as session:
        baseline = _baseline(session)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def save(i: int) -> None:
        try:
            barrier.wait()
            with transaction(engine) as session:
                save_fit(session, baseline, "drift", "x|ks|256", "f1", f"p{i}".encode())
        except BaseException as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with transaction(engine) as session:
        assert count_fits(session, baseline) == 1


def test_a_new_fingerprint_replaces_the_key_and_leaves_others(engine):
    with transaction(engine) as session:
        baseline = _baseline(session)
        save_fit(session, baseline, "drift", "x|ks|256", "old", b"a")
        save_fit(session, baseline, "drift", "x|ks|362", "old", b"b")
        save_fit(session, baseline, "surrogate", "256", "old", b"c")
    with transaction(engine) as session:
        save_fit(session, baseline, "drift", "x|ks|256", "new", b"d")
    with transaction(engine) as session:
        assert load_fit(session, baseline, "drift", "x|ks|256", "old") is None
        assert load_fit(session, baseline, "drift", "x|ks|256", "new") == b"d"
        assert count_fits(session, baseline) == 3
        assert count_fits(session, baseline, "surrogate") == 1


def test_deleting_a_baseline_deletes_its_fits(engine):
    with transaction(engine) as session:
        first, second = _baseline(session), _baseline(session)
        save_fit(session, first, "drift", "k", "f", b"a")
        save_fit(session, second, "drift", "k", "f", b"b")
    with transaction(engine) as session:
        session.execute(delete(Baseline).where(Baseline.id == first))
    with transaction(engine) as session:
        assert session.scalars(select(BaselineFit.baseline_id)).all() == [second]


def test_an_unreachable_store_builds_instead_of_failing(engine, caplog):
    with transaction(engine) as session:
        baseline = _baseline(session)
    fits = BaselineFits(engine, baseline + 1000)  # no such baseline: the insert is refused
    fits.save("drift", "k", "f", b"a")
    assert "could not keep the drift fit k" in caplog.text
    with transaction(engine) as session:
        assert count_fits(session, baseline + 1000) == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_adds_fits_to_a_database_with_baselines(request, tmp_path, backend):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    engine = make_engine(url)
    try:
        assert upgrade(engine, "0005") == "0005"  # the head before baseline_fit
        assert "baseline_fit" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO model (id, name, task, created_at) "
                              "VALUES (1, 'm', 'regression', CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO baseline (id, model_id, version, active, created_at, source, rows, sample, "
                "feature_stats) VALUES (7, 1, 1, true, CURRENT_TIMESTAMP, 'old', 3, :sample, '{}')"
            ), {"sample": b"parquet"})
        upgrade(engine)
        assert "baseline_fit" in inspect(engine).get_table_names()
        fits = BaselineFits(engine, 7)
        fits.save("drift", "x|ks|256", "f", b"null")
        assert fits.load("drift", "x|ks|256", "f") == b"null"
        with transaction(engine) as session:
            assert session.scalar(select(Baseline.source).where(Baseline.id == 7)) == "old"
    finally:
        engine.dispose()
