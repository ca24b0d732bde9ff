"""Read side of the dashboard: timelines of runs, drift, attributions, alerts, feedback.

Each function answers one page's question with one or two queries over a model and a
time range. The range is matched on `run.window_start` through the unique index
(model, window_start, window_end); result rows are reached through
`ix_drift_result_run_id` and `ix_attribution_result_run_id` (a nested loop from the
runs of the range), alerts through `ix_alert_model_status`, feedback through
`ix_feedback_alert_id`. No new index is needed (see README "Dashboard").
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.tables import Alert, AttributionResult, DriftResult, Feedback, Run


@dataclass(frozen=True)
class RunPoint:
    """One window's run as the timelines draw it."""

    id: int
    start: datetime
    end: datetime
    status: str
    rows: int
    sampled: int
    quarantined: int


class ScorePoint(NamedTuple):
    """One stored verdict (drift_result row) of one run (a named tuple: tens of
    thousands are built per page, and a frozen dataclass costs 4x more to build)."""

    run_id: int
    #: the window's end (None from the range queries: take it from the run)
    end: datetime | None
    scope: str
    feature: str | None
    method: str
    score: float | None
    threshold: float | None
    drifted: bool


class ImportancePoint(NamedTuple):
    """One feature's global importance in one run (attribution_result row)."""

    run_id: int
    end: datetime | None
    feature: str
    current: float
    baseline: float | None


@dataclass(frozen=True)
class FeedbackPoint:
    """One answer on an alert of the model."""

    id: int
    alert_id: int
    at: datetime
    verdict: str
    who: str
    comment: str | None
    source: str


#: scopes of drift_result the model page draws
TIMELINE_SCOPES = ("feature", "prediction", "performance", "attribution", "estimated", "fairness")


def runs_between(session: Session, model: str, since: datetime, until: datetime) -> list[RunPoint]:
    """The runs of `model` whose window starts in [since, until), oldest first."""
    rows = session.execute(
        select(Run.id, Run.window_start, Run.window_end, Run.status, Run.rows, Run.sampled,
               Run.quarantined)
        .where(Run.model == model, Run.window_start >= since, Run.window_start < until)
        .order_by(Run.window_start)
    ).all()
    return [RunPoint(int(i), s, e, str(st), int(r or 0), int(sa or 0), int(q or 0))
            for i, s, e, st, r, sa, q in rows]


def _plain_rows(session: Session, query: Any) -> list[tuple[Any, ...]]:
    """The driver's own tuples of a query of plain columns (ints, floats, text, booleans).

    A page reads tens of thousands of result rows: building a SQLAlchemy Row (or an ORM
    row) for each costs about 10x the query itself, so the rows are taken from the DBAPI
    cursor. Only for columns without result processing (no dates, no JSON)."""
    result = session.connection().execute(query)
    try:
        with _no_collection():
            return result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()


@contextmanager
def _no_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while tens of thousands of tuples are built:
    it would otherwise rescan them again and again (3-5x the building time). The pause
    lasts the fetch of one page's rows; reference counting still frees memory."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _runs_of_range(model: str, since: datetime, until: datetime):  # noqa: ANN202 - a subquery
    """Ids of the runs of `model` whose window starts in [since, until) (unique index)."""
    return (
        select(Run.id)
        .where(Run.model == model, Run.window_start >= since, Run.window_start < until)
        .scalar_subquery()
    )


def scores_between(
    session: Session, model: str, since: datetime, until: datetime,
    scopes: tuple[str, ...] = TIMELINE_SCOPES,
) -> list[ScorePoint]:
    """Drift, prediction, performance and attribution verdicts of the runs of the range.

    `end` is left None: the caller has the runs (`runs_between`) and their ends, and
    converting a timestamp per result row would cost more than the query itself."""
    rows = _plain_rows(session,
        select(DriftResult.run_id, DriftResult.scope, DriftResult.feature, DriftResult.method,
               DriftResult.score, DriftResult.threshold, DriftResult.drifted)
        .where(DriftResult.run_id.in_(_runs_of_range(model, since, until)), DriftResult.scope.in_(scopes))
        .order_by(DriftResult.run_id)
    )
    make = ScorePoint._make  # the class call parses keywords: 5x slower on 20k+ rows
    with _no_collection():
        return [make((r, None, sc, f, m, s, t, bool(d))) for r, sc, f, m, s, t, d in rows]


def importance_between(
    session: Session, model: str, since: datetime, until: datetime
) -> list[ImportancePoint]:
    """Per run and feature, the current (and baseline) mean |attribution| in the range
    (`end` None, as in `scores_between`)."""
    rows = _plain_rows(
        session,
        select(AttributionResult.run_id, AttributionResult.feature,
               AttributionResult.current_importance, AttributionResult.baseline_importance)
        .where(AttributionResult.run_id.in_(_runs_of_range(model, since, until)))
        .order_by(AttributionResult.run_id)
    )
    make = ImportancePoint._make
    with _no_collection():
        return [make((r, None, f, c or 0.0, b)) for r, f, c, b in rows]


def alerts_between(session: Session, model: str, since: datetime, until: datetime) -> list[Alert]:
    """Alerts of `model` opened or fired again within [since, until)."""
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.model == model, Alert.last_fired_at >= since, Alert.opened_at < until)
            .order_by(Alert.opened_at)
        )
    )


def feedback_between(
    session: Session, model: str, since: datetime, until: datetime
) -> list[FeedbackPoint]:
    """Answers given on alerts of `model` within [since, until), oldest first."""
    rows = session.scalars(
        select(Feedback)
        .join(Alert, Alert.id == Feedback.alert_id)
        .where(Alert.model == model, Feedback.created_at >= since, Feedback.created_at < until)
        .order_by(Feedback.created_at)
    )
    return [FeedbackPoint(f.id, f.alert_id, f.created_at, f.verdict, f.user_name or f.user_id,
                          f.comment, f.source) for f in rows]


def open_alert_counts(session: Session) -> dict[str, dict[str, int]]:
    """Per model, the number of live (not resolved) alerts by severity."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for model, severity, n in session.execute(
        select(Alert.model, Alert.severity, func.count())
        .where(Alert.status != "resolved")
        .group_by(Alert.model, Alert.severity)
    ):
        counts[model][severity] = int(n)
    return dict(counts)


def run_scores(session: Session, run_id: int) -> list[ScorePoint]:
    """Every stored verdict of one run (the overview's drifted features and metrics)."""
    rows = session.execute(
        select(DriftResult.run_id, Run.window_end, DriftResult.scope, DriftResult.feature,
               DriftResult.method, DriftResult.score, DriftResult.threshold, DriftResult.drifted)
        .join(Run, Run.id == DriftResult.run_id)
        .where(DriftResult.run_id == run_id)
        .order_by(DriftResult.id)
    ).all()
    return [ScorePoint(int(r), e, str(sc), f, str(m), s, t, bool(d)) for r, e, sc, f, m, s, t, d in rows]


def alert_feedback(session: Session, alert_id: int) -> tuple[Alert, list[Feedback]] | None:
    """One alert with its full feedback history (oldest first), or None."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    history = list(
        session.scalars(
            select(Feedback).where(Feedback.alert_id == alert_id).order_by(Feedback.created_at, Feedback.id)
        )
    )
    return alert, history


def add_history(
    session: Session, runs: list[dict[str, object]], scores: list[dict[str, object]],
    importance: list[dict[str, object]],
) -> None:
    """Insert prepared rows of run, drift_result and attribution_result in bulk (the
    dashboard benchmark fills a year of history with it; runs carry their own ids)."""
    from sqlalchemy import insert

    for table, rows in ((Run, runs), (DriftResult, scores), (AttributionResult, importance)):
        for start in range(0, len(rows), 5000):
            session.execute(insert(table), rows[start:start + 5000])


def estimate_bands(
    session: Session, model: str, since: datetime, until: datetime
) -> dict[tuple[int, str], float]:
    """(run id, metric) -> the upper end of the estimate's band, for the `estimated` rows
    of the range (their score is the estimate, their threshold the band's lower end)."""
    rows = session.execute(
        select(DriftResult.run_id, DriftResult.method, DriftResult.details)
        .where(
            DriftResult.run_id.in_(_runs_of_range(model, since, until)),
            DriftResult.scope == "estimated",
        )
    ).all()
    return {(int(r), str(m)): float(d["upper"]) for r, m, d in rows if d and d.get("upper") is not None}


def latest_revisions(
    session: Session, model: str, since: datetime, until: datetime
) -> dict[int, tuple[int, dict[str, Any]]]:
    """run id -> (revision, realized metrics) of the latest revision (> 0) of each run of
    the range whose performance was revised as labels arrived."""
    from monitor.store.tables import PerformanceRevision

    rows = session.execute(
        select(PerformanceRevision.run_id, PerformanceRevision.revision, PerformanceRevision.metrics)
        .where(
            PerformanceRevision.run_id.in_(_runs_of_range(model, since, until)),
            PerformanceRevision.revision > 0,
        )
        .order_by(PerformanceRevision.run_id, PerformanceRevision.revision)
    ).all()
    return {int(r): (int(k), dict((m or {}).get("realized") or {})) for r, k, m in rows}
