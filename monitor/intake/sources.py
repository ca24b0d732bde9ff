"""Sources a monitoring run reads its window from: the prediction log, files, or SQL.

Each source (`LogSource`, `FileSource`, `SqlSource`; `source_for` picks the model's)
streams record-shaped rows; `read_window` validates them, keeps the ones
whose timestamp falls in [start, end), and samples them into a bounded reservoir, so
memory does not grow with the window.

The log is read differently: the database counts the window and hands over only its
sample (the rows with the smallest seeded sampling key, per predicted class with
`stratify`), so a run costs about the same on a window of two thousand rows or a
million; with `[models.segments] stratify`, the attribute strata are counted and drawn
there too.
"""

from __future__ import annotations

import glob
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import DateTime, Engine, bindparam, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import ModelConfig, mask_url
from monitor.errors import IntakeError
from monitor.intake.files import Columns, Row, flat_to_record, iter_window_file
from monitor.intake.records import PredictionRecord, Rejection, WindowSample
from monitor.intake.sampling import Reservoir, StratifiedReservoir, proportional_slots
from monitor.intake.validate import Invalid, Validator, rejection
from monitor.store import predictions as store
from monitor.store.engine import normalize_url
from monitor.vocab import Task

log = logging.getLogger(__name__)

#: rejected rows kept per read (all are counted); protects memory on a broken feed
MAX_REJECTED = 10_000


class Source(Protocol):
    """Where a model's served predictions are read from, as record-shaped rows."""

    def rows(self, start: datetime, end: datetime) -> Iterator[Row]:
        """Rows that may fall in [start, end) (the caller filters on the validated ts)."""
        ...


class LogSource:
    """The daemon's own prediction log (HTTP ingest, files loaded with `monitor ingest`,
    the Python client), labels joined."""

    def __init__(self, model: ModelConfig, engine: Engine):
        self.model, self.engine = model, engine

    def rows(self, start: datetime, end: datetime) -> Iterator[Row]:
        with_attributes = bool(self.model.segments.attributes)
        for logged in store.iter_log_window(
            self.engine, self.model.name, start, end, attributes=with_attributes
        ):
            yield self._row(logged, with_attributes), None

    def sample(self, start: datetime, end: datetime, *, stratify: bool = False) -> tuple[int, list[Row]]:
        """(rows in the window, the window's sample), both from the database.

        The sample is the `sample_size` rows with the smallest seeded sampling key
        (`store.sample_log_window`): reading a window of a million rows moves
        `sample_size` rows out of the database, not a million. With `stratify`, each
        predicted class gets its share of the sample (`proportional_slots` of the
        classes' counts) and gives its rows with the smallest keys.
        """
        with_attributes = bool(self.model.segments.attributes)
        quotas = counts = None
        if stratify:
            counts = store.class_counts(self.engine, self.model.name, self.model.task, start, end)
            quotas = (self.model.task, proportional_slots(dict(sorted(counts.items())),
                                                          self.model.sample_size))
        count, picked = store.sample_log_window(
            self.engine, self.model.name, start, end, self.model.sample_size,
            seed=self.model.seed, attributes=with_attributes, quotas=quotas, counts=counts,
        )
        return count, [(self._row(logged, with_attributes), None) for logged in picked]

    @staticmethod
    def _row(logged: tuple[Any, ...], with_attributes: bool) -> dict[str, Any]:
        request_id, ts, features, prediction, label, attributes = logged
        row = {"request_id": request_id, "timestamp": ts, "features": features,
               "prediction": prediction, "label": label}
        if with_attributes:
            row["attributes"] = attributes
        return row


class FileSource:
    """Every file matching `files.glob` (sorted by name), each row with a timestamp."""

    def __init__(self, model: ModelConfig):
        if model.files is None:
            raise IntakeError(f"model {model.name}: source = 'files' needs a [models.files] table")
        self.model, self.cfg = model, model.files

    def rows(self, start: datetime, end: datetime) -> Iterator[Row]:
        paths = sorted(glob.glob(self.cfg.glob, recursive=True))
        if not paths:
            log.warning("model %s: no file matches %s", self.model.name, self.cfg.glob)
        cols = Columns.for_model(self.model, self.cfg)
        for path in paths:
            yield from iter_window_file(Path(path), self.model, start, end, self.cfg.format, cols)


class SqlSource:
    """The rows of the user's own query, with :start and :end bound to the window."""

    def __init__(self, model: ModelConfig):
        if model.sql is None:
            raise IntakeError(f"model {model.name}: source = 'sql' needs a [models.sql] table")
        self.model, self.cfg = model, model.sql

    def rows(self, start: datetime, end: datetime) -> Iterator[Row]:
        url = normalize_url(self.cfg.resolved_url())
        cols = Columns.for_model(self.model, self.cfg)
        query = text(self.cfg.query).bindparams(
            bindparam("start", type_=DateTime(timezone=True)),
            bindparam("end", type_=DateTime(timezone=True)),
        )
        user_engine = create_engine(url)
        try:
            with user_engine.connect() as conn:
                result = conn.execution_options(yield_per=5000).execute(query, {"start": start, "end": end})
                for row in result:
                    yield flat_to_record(dict(row._mapping), self.model, cols, require_timestamp=True), None
        except SQLAlchemyError as err:
            raise IntakeError(
                f"model {self.model.name}: the sql source query failed on {mask_url(url)}: "
                f"{str(err).splitlines()[0]}"
            ) from err
        finally:
            user_engine.dispose()


def source_for(model: ModelConfig, engine: Engine) -> Source:
    """The configured source of `model` (`source = "log" | "files" | "sql"`)."""
    if model.source == "files":
        return FileSource(model)
    if model.source == "sql":
        return SqlSource(model)
    return LogSource(model, engine)


def _stratum(task: str, prediction: Any) -> int:
    if task == Task.BINARY:
        return int(prediction >= 0.5)
    if isinstance(prediction, int):
        return prediction
    return int(np.argmax(prediction))


def read_window(model: ModelConfig, engine: Engine, start: datetime, end: datetime) -> WindowSample:
    """A seeded sample of at most `model.sample_size` valid rows with ts in [start, end).

    Rows that fail validation are returned in `rejected` (for the caller to quarantine
    in its own transaction), counted by reason in `reasons`.
    """
    validator = Validator(model)
    stratify = model.stratify and model.task != Task.REGRESSION
    source = source_for(model, engine)
    if isinstance(source, LogSource):
        sample = _sampled_in_database(model, source, validator, start, end, stratify)
        if _strata(model) is None:
            return sample
        drawn = _attribute_strata_in_database(model, engine, validator, start, end)
        return _with_stratified(model, validator.k, sample, drawn)
    reservoir: Any = (StratifiedReservoir if stratify else Reservoir)(model.sample_size, model.seed)
    rejected: list[Rejection] = []
    reasons: Counter[str] = Counter()
    rows = 0
    strata = _strata(model)
    for obj, raw in source.rows(start, end):
        try:
            record = validator.check(obj)
        except Invalid as bad:
            reasons[bad.reason] += 1
            if len(rejected) < MAX_REJECTED:
                rejected.append(rejection(obj, raw, bad, model.source, model.name))
            continue
        if not start <= record.ts < end:
            continue
        rows += 1
        if stratify:
            reservoir.offer(_stratum(model.task, record.prediction), record)
        else:
            reservoir.offer(record)
        if strata is not None:
            strata.offer(record)
    if sum(reasons.values()) > len(rejected):
        log.warning(
            "model %s: %d rejected rows in the window, only the first %d are kept",
            model.name,
            sum(reasons.values()),
            len(rejected),
        )
    sample = build_sample(model, validator.k, reservoir.items(), rows, rejected, reasons)
    if strata is None:
        return sample
    return _with_stratified(model, validator.k, sample, strata.draw())


def _sampled_in_database(
    model: ModelConfig, source: LogSource, validator: Validator, start: datetime, end: datetime,
    stratify: bool,
) -> WindowSample:
    """The log's window: rows counted and sampled by the database (`LogSource.sample`).

    The log holds rows validated at ingest, so the window's other rows are never read
    again. The sampled ones are checked against today's schema (a constant cost): a row
    that no longer fits (a feature removed from the config since) is quarantined by the
    run with its reason and left out of the sample and of the count.
    """
    count, picked = source.sample(start, end, stratify=stratify)
    records: list[PredictionRecord] = []
    rejected: list[Rejection] = []
    reasons: Counter[str] = Counter()
    for obj, raw in picked:
        try:
            records.append(validator.check(obj))
        except Invalid as bad:
            reasons[bad.reason] += 1
            rejected.append(rejection(obj, raw, bad, model.source, model.name))
    if rejected:
        log.warning(
            "model %s: %d of %d sampled log rows no longer fit the model's schema (%s)",
            model.name, len(rejected), len(picked), ", ".join(sorted(reasons)),
        )
    return build_sample(model, validator.k, records, count - len(rejected), rejected, reasons)


def _strata(model: ModelConfig) -> Any:
    """`[models.segments] stratify`: reservoirs per attribute cross, else None."""
    if not (model.segments.stratify and model.segments.attributes):
        return None
    from monitor.intake.strata import AttributeStrata

    return AttributeStrata(model.segments.attributes, model.sample_size, model.segments.min_rows, model.seed)


def _attribute_strata_in_database(
    model: ModelConfig, engine: Engine, validator: Validator, start: datetime, end: datetime
) -> tuple[list[PredictionRecord], np.ndarray, Any]:
    """The log's attribute-stratified sample, drawn in the database: the strata counted
    by the attributes' values, `fairness.allocate` giving each its rows, each stratum's
    rows of smallest key taken. (records in log order, weights, the StratifiedSample),
    as `AttributeStrata.draw` gives them for the files and SQL sources."""
    from monitor.fairness import StratifiedSample, Stratum, allocate
    from monitor.fairness.records import group_keys

    names = list(model.segments.attributes)
    size, min_rows = model.sample_size, model.segments.min_rows

    def key_of(texts: tuple[str | None, ...]) -> tuple[str, ...]:
        values = [None if t is None else orjson.loads(t) for t in texts]
        return tuple(group_keys(np.array(values, dtype=object)).tolist())

    counts: Counter[tuple[str, ...]] = Counter()
    by_texts = store.attribute_counts(engine, model.name, names, start, end)
    for texts, rows in by_texts:
        counts[key_of(texts)] += rows
    if not counts:
        empty = StratifiedSample(tuple(names), np.empty(0, int), np.empty(0), (), size, min_rows)
        return [], np.empty(0), empty
    quotas = allocate(dict(counts), size, min_rows, model.seed)
    candidates = store.attribute_candidates(
        engine, model.name, names, start, end, max(quotas.values()), seed=model.seed,
        counts=by_texts,
    )
    by_key: dict[tuple[str, ...], list[tuple[int, int, tuple[Any, ...]]]] = {}
    for seq, candidate in enumerate(candidates):
        by_key.setdefault(key_of(candidate[6]), []).append((candidate[7], seq, candidate))
    chosen: list[tuple[int, PredictionRecord, float]] = []
    strata = []
    for key in sorted(counts):
        picked = sorted(by_key.get(key, []), key=lambda c: (c[0], c[1]))[: quotas.get(key, 0)]
        weight = counts[key] / len(picked) if picked else 0.0
        for _key, seq, candidate in picked:
            try:
                record = validator.check(LogSource._row(candidate[:6], True))
            except Invalid:  # no longer fits the schema: the uniform sample reports such rows
                continue
            chosen.append((seq, record, weight))
        strata.append(Stratum(key, int(counts[key]), len(picked), float(weight)))
    chosen.sort(key=lambda item: item[0])
    weights = np.array([w for _, _, w in chosen], dtype=float)
    described = StratifiedSample(tuple(names), np.arange(len(chosen)), weights, tuple(strata), size, min_rows)
    return [record for _, record, _ in chosen], weights, described


def _with_stratified(
    model: ModelConfig, k: int | None, sample: WindowSample,
    drawn: tuple[list[PredictionRecord], np.ndarray, Any],
) -> WindowSample:
    """`sample` carrying the window's attribute-stratified sample and its weights."""
    from dataclasses import replace

    records, weights, described = drawn
    by_id = {}
    for record, weight in zip(records, weights, strict=True):
        by_id.setdefault(record.request_id, weight)
    stratified = build_sample(model, k, records, sample.rows, [], Counter())
    weights = np.array([by_id[i] for i in stratified.frame.index], dtype=float)
    stratified = replace(stratified, weights=weights)
    return replace(sample, stratified=stratified, sampling=described)


def build_sample(
    model: ModelConfig,
    k: int | None,
    records: list[PredictionRecord],
    rows: int,
    rejected: list[Rejection],
    reasons: Counter[str],
) -> WindowSample:
    """The WindowSample of sampled records (first row per request id kept)."""
    unique: dict[str, PredictionRecord] = {}
    for record in records:
        unique.setdefault(record.request_id, record)
    records = list(unique.values())
    names = list(model.features.names)
    frame = pd.DataFrame(
        [r.features for r in records],
        columns=names,
        index=pd.Index([r.request_id for r in records], name="request_id", dtype=object),
    )
    for name in model.features.numeric:
        frame[name] = frame[name].astype(float)
    for name in model.features.categorical:
        frame[name] = frame[name].astype(object)
    timestamps = np.array(
        [r.ts.astimezone(UTC).replace(tzinfo=None) for r in records], dtype="datetime64[us]"
    )
    return WindowSample(
        frame=frame,
        timestamps=timestamps,
        predictions=_predictions(model, k, records),
        labels=_labels(records),
        rows=rows,
        rejected=tuple(rejected),
        reasons=dict(reasons),
        attributes=_attributes(model, records, frame.index),
    )


def _attributes(model: ModelConfig, records: list[PredictionRecord], index: pd.Index) -> pd.DataFrame | None:
    """The records' declared attributes, one column each, aligned with the frame."""
    names = list(model.segments.attributes)
    if not names:
        return None
    return pd.DataFrame(
        [dict(r.attributes or {}) for r in records], columns=names, index=index, dtype=object
    )


def _predictions(model: ModelConfig, k: int | None, records: list[PredictionRecord]) -> np.ndarray:
    if model.task != Task.MULTICLASS:
        return np.array([r.prediction for r in records], dtype=float)
    indices = [r.prediction for r in records if isinstance(r.prediction, int)]
    k = k or (max(indices) + 1 if indices else 0)
    out = np.zeros((len(records), k), dtype=float)
    for i, r in enumerate(records):
        if isinstance(r.prediction, int):
            out[i, r.prediction] = 1.0
        else:
            out[i] = r.prediction
    return out


def _labels(records: list[PredictionRecord]) -> np.ndarray | None:
    values = [r.label for r in records]
    if all(v is None for v in values):
        return None
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, str)) for v in values):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return np.array([np.nan if v is None else v for v in values], dtype=object)
