"""Every table monitor keeps, as SQLAlchemy 2.0 typed declarative classes.

The schema changes only through Alembic (`migrations/`); a test proves these classes
and the migrations agree. All timestamps are timezone-aware UTC; defaults are
callables evaluated at insert time, never values computed at import time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from monitor import clock

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Column default: now, from the one clock (looked up at insert time)."""
    return clock.utcnow()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as
    naive UTC and made aware again on the way out. Naive datetimes are refused on the
    way in: a naive time is a bug waiting for a daylight-saving change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: monitor stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger primary keys autoincrement on SQLite only as INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Model(Base):
    """A monitored model, registered the first time it is baselined or run."""

    __tablename__ = "model"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    task: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Baseline(Base):
    """A versioned reference: sample, statistics, predictions and attributions."""

    __tablename__ = "baseline"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    version: Mapped[int]
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    #: where the data came from: a file path, or "run:<id>" when adopted from a window
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int]
    #: the bounded reference sample with the model's predictions, as Parquet bytes
    sample: Mapped[bytes] = mapped_column(LargeBinary)
    #: per-feature statistics (mean, std, quantiles, min/max, categories, missing share)
    feature_stats: Mapped[dict[str, Any]]
    #: attributions of the reference sample, as Parquet bytes (one column per feature)
    attributions: Mapped[bytes | None] = mapped_column(LargeBinary)
    attribution_method: Mapped[str | None] = mapped_column(String(32))
    #: mean |attribution| per feature
    global_importance: Mapped[dict[str, Any] | None]
    #: metrics on the reference when labels exist, e.g. {"accuracy": 0.93}
    performance: Mapped[dict[str, Any] | None]


class BaselineFit(Base):
    """What a check fitted on one baseline (a calibrated null at a window size, the
    surrogate's bootstrap range), kept so that no later process fits it again.

    `fingerprint` digests every setting and datum the fit was built from: a changed
    setting looks for another fingerprint, finds none and builds the fit again. The
    payload is the check's own versioned bytes (NumPy arrays, never a pickle)."""

    __tablename__ = "baseline_fit"
    __table_args__ = (UniqueConstraint("baseline_id", "check_name", "key", "fingerprint"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    baseline_id: Mapped[int] = mapped_column(ForeignKey("baseline.id", ondelete="CASCADE"))
    #: the check that fitted it, e.g. "drift" or "surrogate"
    check_name: Mapped[str] = mapped_column(String(32))
    #: what the fit is of within the check, e.g. "age|ks|362" (column, method, bucket size)
    key: Mapped[str] = mapped_column(String(512))
    fingerprint: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


#: PostgreSQL: the prediction log is range-partitioned by `ts`, one partition per UTC
#: day named ``prediction_pYYYYMMDD``, plus ``prediction_default`` for rows outside
#: every created day (see `monitor.store.maintenance`). SQLite keeps one table.
PARTITION_PREFIX = "prediction_p"
DEFAULT_PARTITION = "prediction_default"


def is_partition(name: str) -> bool:
    """Whether `name` is one of the prediction log's partitions (not a model table)."""
    if name == DEFAULT_PARTITION:
        return True
    digits = name.removeprefix(PARTITION_PREFIX)
    return digits != name and len(digits) == 8 and digits.isdigit()


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic autogenerate hook: compare the partitioned parent, not its partitions."""
    return not (type_ == "table" and name is not None and is_partition(name))


class Prediction(Base):
    """The prediction log: one row per served request.

    On PostgreSQL the table is partitioned by `ts` and its primary key is (id, ts): a
    unique index there must hold the partition key, so "one row per (model,
    request_id)" is kept by `PredictionKey` instead, on both databases.
    """

    __tablename__ = "prediction"
    __table_args__ = (
        Index("ix_prediction_model_ts", "model", "ts"),
        # BRIN: a few pages per partition for time-only scans (retention, bounds);
        # SQLite builds it as an ordinary index
        Index("ix_prediction_ts", "ts", postgresql_using="brin"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(256))
    ts: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    features: Mapped[dict[str, Any]]
    #: a number, a list of class scores, or {name: number}
    prediction: Mapped[Any] = mapped_column(JSON)
    #: attributes that are not model inputs ({"sex": "F"}), those `[models.segments]
    #: attributes` declares; NULL when the row carries none
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: a deterministic uniform 64-bit key of (model, request_id): a window's sample is
    #: its rows with the smallest keys (`predictions.sample_key`, migration 0005)
    sample_key: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PredictionKey(Base):
    """Every (model, request_id) in the log, with the row's time: the duplicate check.

    Unpartitioned, so a request id is refused again whichever day it was first logged
    on; retention removes keys with their rows.
    """

    __tablename__ = "prediction_key"
    __table_args__ = (Index("ix_prediction_key_ts", "ts", postgresql_using="brin"),)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    ts: Mapped[datetime]


class Label(Base):
    """Ground truth, which may arrive before or long after its prediction."""

    __tablename__ = "label"
    __table_args__ = (UniqueConstraint("model", "request_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(256))
    label: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Quarantine(Base):
    """A row that failed validation, kept with its reason: never silently dropped."""

    __tablename__ = "quarantine"
    __table_args__ = (
        Index("ix_quarantine_model_received_at", "model", "received_at"),
        Index("ix_quarantine_model_ts", "model", "ts"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str | None] = mapped_column(String(64))
    #: the row's own timestamp when it could be read (runs count the rows of their window)
    ts: Mapped[datetime | None]
    #: http, file:<path>, sql, client, run:<id>
    source: Mapped[str] = mapped_column(String(512))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: a short machine-readable code, e.g. missing_feature
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    #: the row as received (JSON text, or the original line)
    raw: Mapped[str] = mapped_column(Text)


class Run(Base):
    """One monitoring run for one model and one window."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("model", "window_start", "window_end"),
        # a replaced run (--force) gets a new id: ids in alerts and reports stay unambiguous
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    #: running | succeeded | failed | insufficient_data
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("baseline.id", ondelete="SET NULL"))
    rows: Mapped[int] = mapped_column(default=0)
    sampled: Mapped[int] = mapped_column(default=0)
    quarantined: Mapped[int] = mapped_column(default=0)
    #: seconds per stage, e.g. {"read": 0.2, "drift": 0.5}
    timings: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    #: the document `monitor once --json` prints, kept so a rerun returns it as is
    summary: Mapped[dict[str, Any] | None]


class DriftResult(Base):
    """A drift verdict: per feature, for the prediction, the dataset, quality, performance."""

    __tablename__ = "drift_result"
    __table_args__ = (Index("ix_drift_result_run_id", "run_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    #: feature | prediction | dataset | quality | performance | attribution
    scope: Mapped[str] = mapped_column(String(16))
    feature: Mapped[str | None] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any] | None]


class AttributionResult(Base):
    """Global importance of one feature in one run, against the baseline's."""

    __tablename__ = "attribution_result"
    __table_args__ = (Index("ix_attribution_result_run_id", "run_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    feature: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(32))
    baseline_importance: Mapped[float | None] = mapped_column(Float)
    current_importance: Mapped[float] = mapped_column(Float)
    relative_change: Mapped[float | None] = mapped_column(Float)
    #: distance between the baseline and current attribution distributions
    distance: Mapped[float | None] = mapped_column(Float)


class SampleAttribution(Base):
    """Why the model decided what it did for one sampled request."""

    __tablename__ = "sample_attribution"
    __table_args__ = (
        Index("ix_sample_attribution_model_request_id", "model", "request_id"),
        Index("ix_sample_attribution_run_id", "run_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(32))
    #: the explained output for this request, and for the attribution baseline
    output: Mapped[float] = mapped_column(Float)
    baseline_output: Mapped[float | None] = mapped_column(Float)
    #: {feature: signed contribution}
    values: Mapped[dict[str, Any]]
    #: {feature: input value} as the model saw it
    features: Mapped[dict[str, Any]]
    completeness_error: Mapped[float | None] = mapped_column(Float)
    #: {"unfavourable": bool, "top": [[feature, contribution], ...]} (monitor.reasons)
    reasons: Mapped[dict[str, Any] | None]


class SurrogateResult(Base):
    """The surrogate tree of one run: fidelity, its calibrated range, rules."""

    __tablename__ = "surrogate_result"
    __table_args__ = (Index("ix_surrogate_result_run_id", "run_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    fidelity: Mapped[float | None] = mapped_column(Float)
    lower_bound: Mapped[float | None] = mapped_column(Float)
    depth: Mapped[int]
    top_feature: Mapped[str | None] = mapped_column(String(256))
    baseline_top_feature: Mapped[str | None] = mapped_column(String(256))
    flagged: Mapped[bool] = mapped_column(Boolean)
    #: the rules as text lines
    rules: Mapped[list[Any]]
    #: the rest of the report (importance, shares, resamples)
    details: Mapped[dict[str, Any]]


class ModelCard(Base):
    """A version of a model's card, regenerated after each run."""

    __tablename__ = "model_card"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    document: Mapped[dict[str, Any]]


class Alert(Base):
    """An alert with a lifecycle: open -> acknowledged -> resolved, or muted."""

    __tablename__ = "alert"
    __table_args__ = (
        # one live alert per (model, kind, feature); resolved ones are history
        Index(
            "uq_alert_dedup_key_live",
            "dedup_key",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
            sqlite_where=text("status <> 'resolved'"),
        ),
        Index("ix_alert_model_status", "model", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    #: feature_drift | dataset_drift | prediction_drift | attribution_drift |
    #: performance_drop | data_quality | run_failed
    kind: Mapped[str] = mapped_column(String(32))
    feature: Mapped[str | None] = mapped_column(String(256))
    dedup_key: Mapped[str] = mapped_column(String(512))
    #: info | warning | critical
    severity: Mapped[str] = mapped_column(String(16))
    #: open | acknowledged | resolved | muted
    status: Mapped[str] = mapped_column(String(16), default="open")
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]
    first_run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    fire_count: Mapped[int] = mapped_column(default=1)
    clean_windows: Mapped[int] = mapped_column(default=0)
    resolved_at: Mapped[datetime | None]
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(64))


class Outbox(Base):
    """A notification to deliver; retried with backoff until delivered, never twice."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "channel", "delivered_at", "next_attempt_at"),
        Index("ix_outbox_alert_id", "alert_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    #: alert_opened | alert_refired | alert_resolved | feedback_update | why_answer
    event: Mapped[str] = mapped_column(String(32))
    #: which notifier delivers it: console | slack | webhook
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    #: what the channel returned, e.g. the Slack message ts
    external_id: Mapped[str | None] = mapped_column(String(128))


class Feedback(Base):
    """What a person said about an alert: a verdict, a comment, or both."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_alert_id", "alert_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(256))
    #: acknowledge | expected_change | false_alarm | retrain_needed | comment
    verdict: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    #: button | modal | thread | cli | ui
    source: Mapped[str] = mapped_column(String(16))
    #: the one feature of an input-drift alert the answer is about (None: the whole alert)
    feature: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the Slack event id or action key: a replayed request finds it and changes nothing
    external_id: Mapped[str | None] = mapped_column(String(256), unique=True)


class Policy(Base):
    """A change of behaviour decided from feedback: mute, threshold override, retrain flag."""

    __tablename__ = "policy"
    __table_args__ = (Index("ix_policy_model", "model"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    #: mute | threshold | retrain | rebaseline
    kind: Mapped[str] = mapped_column(String(16))
    alert_kind: Mapped[str | None] = mapped_column(String(32))
    feature: Mapped[str | None] = mapped_column(String(256))
    #: for threshold: the factor applied to the configured threshold
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="SET NULL"))


class ProcessedEvent(Base):
    """Keys of inbound requests already handled (Slack event ids, action keys)."""

    __tablename__ = "processed_event"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class PerformanceRevision(Base):
    """Realized performance of a run's window, revised as its labels arrive (revision 0:
    as the run computed it)."""

    __tablename__ = "performance_revision"
    __table_args__ = (UniqueConstraint("run_id", "revision"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    #: labelled rows of the whole window (what the next revision is compared with)
    labelled_rows: Mapped[int] = mapped_column(Integer)
    #: labelled share of the window's valid rows
    coverage: Mapped[float | None] = mapped_column(Float)
    #: {"realized": {metric: {...}} | None, "calibration": {...} | None}
    metrics: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelAudit(Base):
    """A label replaced by a corrected one (same request id, new value)."""

    __tablename__ = "label_audit"
    __table_args__ = (Index("ix_label_audit_model_request_id", "model", "request_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(256))
    old_label: Mapped[Any] = mapped_column(JSON)
    new_label: Mapped[Any] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Heartbeat(Base):
    """One row per writer that proves the database still takes writes (/healthz's
    write probe, `monitor.store.heartbeat`)."""

    __tablename__ = "heartbeat"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime]
