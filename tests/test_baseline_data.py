"""Baseline data as new users hand it over: empty cells, empty files, text in a numeric
column, no label column. Each ends in a stored baseline or a clear error naming the file."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.baseline import build_baseline
from monitor.errors import ConfigError
from monitor.store import make_engine, transaction
from monitor.store.baselines import active_baseline
from tests.models import FEATURES

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _stored(engine, name="cancer"):
    with transaction(engine) as session:
        return active_baseline(session, name)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("with_label", [True, False], ids=["label", "no-label"])
def test_an_empty_cell_leaves_its_row_out_and_says_so(settings, engine, cancer, tmp_path, with_label,
                                                      suffix):
    train, _ = cancer
    frame = train.head(120).copy()
    frame.loc[4, "mean_texture"] = None
    if not with_label:
        frame = frame.drop(columns=["malignant"])
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)

    summary = build_baseline(settings, engine, "cancer", path)

    assert summary.rows == 119
    where = "row 5 (line 6))" if suffix == ".csv" else "row 5)"
    assert any("1 of 120 baseline rows have missing values" in n and "mean_texture (1)" in n
               and where in n for n in summary.notes), summary.notes
    stored = _stored(engine)
    # the importance shown is the importance stored, and none of it is null
    assert summary.importance == dict(stored.importance)
    assert all(v is not None and v > 0 for v in stored.importance.values())
    assert stored.feature_stats["mean_texture"]["missing_share"] == pytest.approx(1 / 120)
    assert not stored.sample.isna().any().any()
    if with_label:
        assert 0.5 < summary.performance["accuracy"] <= 1.0
    else:
        assert summary.performance is None
        assert any("no label column 'malignant'" in n for n in summary.notes)


@SQLITE
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_empty_file_is_an_error_naming_it(settings, engine, tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        build_baseline(settings, engine, "cancer", path)
    assert f"baseline data {path}: the file is empty (0 bytes)" in str(info.value)
    assert _stored(engine) is None


@SQLITE
def test_a_header_only_or_corrupt_file_is_an_error_naming_it(settings, engine, tmp_path):
    header = tmp_path / "header.csv"
    header.write_text(",".join(FEATURES) + "\n")
    with pytest.raises(ConfigError, match=f"baseline data {header}: has no rows"):
        build_baseline(settings, engine, "cancer", header)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match=f"baseline data {corrupt}: cannot be read"):
        build_baseline(settings, engine, "cancer", corrupt)


@SQLITE
def test_text_in_a_numeric_feature_names_feature_and_row(settings, engine, cancer, tmp_path):
    train, _ = cancer
    frame = train.head(50).copy()
    frame["mean_radius"] = frame["mean_radius"].astype(str)  # a text column, as a string input gives
    frame.loc[7, "mean_radius"] = "abc"
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(ConfigError) as info:
        build_baseline(settings, engine, "cancer", path)
    message = str(info.value)
    assert f"baseline data {path}: feature 'mean_radius' is declared numeric" in message
    assert "row 8" in message and "'abc'" in message


@SQLITE
def test_cli_warns_and_prints_only_stored_importance(settings, cancer, tmp_path, run_monitor):
    train, _ = cancer
    frame = train.head(80).drop(columns=["malignant"])
    frame.loc[0, "mean_smoothness"] = None
    path = tmp_path / "nolabel.csv"
    frame.to_csv(path, index=False)
    proc = run_monitor("--config", str(settings.source_path), "baseline", "cancer", "--data", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "warning: 1 of 80 baseline rows have missing values" in proc.stderr
    assert "no label column 'malignant'" in proc.stderr
    engine = make_engine(settings.database.url)
    stored = _stored(engine)
    engine.dispose()
    top = sorted(stored.importance.items(), key=lambda kv: -kv[1])[:5]
    assert "most important features: " + ", ".join(f"{k} ({v:.3g})" for k, v in top) in proc.stdout
    assert "Traceback" not in proc.stderr
    assert isinstance(pd.read_csv(path), pd.DataFrame)


def test_incomplete_rows_are_named_by_their_position_in_the_file():
    from monitor.baseline import complete_rows

    # the max_rows subsample keeps the file's row positions as the index
    frame = pd.DataFrame({"a": [1.0, None, 3.0, None], "b": ["x", "y", None, "z"]}, index=[0, 41, 97, 250])
    mask, note = complete_rows(frame, "data.csv")
    assert mask.tolist() == [True, False, False, False]
    assert "3 of 4 baseline rows" in note and "a (2), b (1)" in note
    assert "rows 42 (line 43), 98 (line 99), 251 (line 252)" in note
    whole, none = complete_rows(frame.dropna(), "data.parquet")
    assert whole.tolist() == [True] and none is None
