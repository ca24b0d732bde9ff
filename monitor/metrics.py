"""Prometheus metrics, served on /metrics by the daemon.

One registry for the process; the cycle, the ingest endpoints and the outbox report
into it. The outbox backlog is read from the database when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "monitor_runs_total", "Monitoring runs by model and status.", ["model", "status"], registry=REGISTRY
)
RUN_SECONDS = Histogram(
    "monitor_run_duration_seconds",
    "Duration of monitoring runs.",
    ["model"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
WINDOW_ROWS = Counter(
    "monitor_window_rows_total", "Valid rows read by monitoring runs.", ["model"], registry=REGISTRY
)
RUN_QUARANTINED = Counter(
    "monitor_run_quarantined_rows_total",
    "Rows quarantined while reading windows.",
    ["model"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "monitor_alerts_raised_total", "Alerts opened or re-fired, by kind.", ["model", "kind"], registry=REGISTRY
)
INGESTED = Counter("monitor_ingested_rows_total", "Rows accepted by ingest.", ["source"], registry=REGISTRY)
INGEST_QUARANTINED = Counter(
    "monitor_ingest_quarantined_rows_total",
    "Rows quarantined by ingest, by reason.",
    ["source", "reason"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "monitor_outbox_deliveries_total",
    "Outbox delivery attempts by result.",
    ["channel", "result"],
    registry=REGISTRY,
)


def observe_run(
    model: str,
    status: str,
    seconds: float,
    rows: int,
    quarantined: int,
    raised: Iterable[Mapping[str, Any]] = (),
) -> None:
    RUNS.labels(model, status).inc()
    RUN_SECONDS.labels(model).observe(seconds)
    WINDOW_ROWS.labels(model).inc(rows)
    RUN_QUARANTINED.labels(model).inc(quarantined)
    for alert in raised:
        ALERTS.labels(model, alert.get("kind", "?")).inc()


def observe_ingest(source: str, accepted: int, reasons: Mapping[str, int]) -> None:
    INGESTED.labels(source).inc(accepted)
    for reason, count in reasons.items():
        INGEST_QUARANTINED.labels(source, reason).inc(count)


class BacklogCollector:
    """Reads the outbox backlog at scrape time (a failing database reports -1)."""

    def __init__(self, count: Callable[[], int]):
        self.count = count

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            value = float(self.count())
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is down
            value = -1.0
        yield GaugeMetricFamily(
            "monitor_outbox_backlog", "Undelivered outbox rows (-1: unknown).", value=value
        )


_backlog: BacklogCollector | None = None


def watch_backlog(count: Callable[[], int]) -> None:
    """Report the outbox backlog from `count` (the daemon calls this once)."""
    global _backlog
    if _backlog is not None:
        REGISTRY.unregister(_backlog)
    _backlog = BacklogCollector(count)
    REGISTRY.register(_backlog)


def render() -> bytes:
    return generate_latest(REGISTRY)
