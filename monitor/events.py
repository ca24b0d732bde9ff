"""Outbox events as types: the one module that owns event names and builds payloads.

An event is a small frozen record; `payload()` is its JSON form, stored in the outbox
row and read by the notifiers (console, webhook, Slack). The names are `EventName`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.result import RunResult
from monitor.vocab import EventName


@dataclass(frozen=True)
class AlertEvent:
    """An alert was opened, fired again or resolved by a run."""

    name: EventName
    alert: Mapping[str, Any]
    #: the run's context every notification of it carries (see `run_context`)
    context: Mapping[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            **self.context,
            "alert": dict(self.alert),
            "lines": list(self.lines),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class FeedbackUpdate:
    """Someone answered an alert: its Slack message is rewritten to say so."""

    alert: Mapping[str, Any]
    status: str
    feedback: Sequence[Mapping[str, Any]] = ()
    #: the alert's message announced other findings too (then it is not rewritten: the
    #: answer is said in its thread)
    shared: bool = False
    name: EventName = EventName.FEEDBACK_UPDATE

    def payload(self) -> dict[str, Any]:
        answers = [dict(f) for f in self.feedback]
        return {"alert": dict(self.alert), "status": self.status, "feedback": answers, "shared": self.shared}


@dataclass(frozen=True)
class WhyAnswer:
    """The answer to `why <request_id>` asked in Slack, posted in the asker's thread."""

    model: str
    request_id: str
    method: str
    output: float
    baseline_output: float | None
    #: [feature, contribution, value], largest |contribution| first
    contributions: Sequence[Sequence[Any]]
    channel: str | None = None
    thread_ts: str | None = None
    name: EventName = EventName.WHY_ANSWER

    def payload(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "request_id": self.request_id,
            "method": self.method,
            "output": self.output,
            "baseline_output": self.baseline_output,
            "contributions": [list(c) for c in self.contributions],
            "channel": self.channel,
            "thread_ts": self.thread_ts,
        }


OutboxEvent = AlertEvent | FeedbackUpdate | WhyAnswer


def run_context(run_id: int, result: RunResult, doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What every notification of a run carries besides its alert."""
    doc = doc if doc is not None else result.to_dict()
    return {
        "run": {
            "id": run_id,
            "window_start": doc["window"]["start"],
            "window_end": doc["window"]["end"],
            "rows": doc["rows"],
            "sampled": doc["sampled"],
            "quarantined": doc["quarantined"],
        },
        "drift": doc.get("drift"),
        "attribution": doc.get("attribution"),
        "quality": {
            **(doc.get("quality") or {}),
            "quarantined": doc["quarantined"],
            "reasons": doc.get("reasons", {}),
        },
        "report_hint": f"monitor report {run_id} --out report-{run_id}.html",
    }
