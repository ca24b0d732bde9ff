"""The console notifier: readable alert text on a stream, the channel when Slack is off."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from monitor.notify import Delivered, OutboxMessage
from monitor.vocab import EventName


class ConsoleNotifier:
    """Readable alert text on a stream (stdout by default): the notifier when Slack is off."""

    name = "console"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def deliver(self, message: OutboxMessage) -> Delivered:
        stream = self.stream or sys.stdout
        stream.write(render_text(message.event, message.payload) + "\n")
        stream.flush()
        return Delivered(external_id=f"console:{message.id}")


_EVENT_WORDS = {
    EventName.ALERT_OPENED: "ALERT",
    EventName.ALERT_REFIRED: "ALERT (again)",
    EventName.ALERT_RESOLVED: "RESOLVED",
    EventName.FEEDBACK_UPDATE: "FEEDBACK",
    EventName.WHY_ANSWER: "WHY",
}


def render_text(event: str, payload: Mapping[str, Any]) -> str:
    """A plain-text rendering of an outbox payload, for the console and logs: a run's
    message lists each of its findings (new, again, resolved) under one header."""
    alert = payload.get("alert", {})
    run = payload.get("run", {})
    findings = payload.get("alerts") or []
    if len(findings) > 1:
        worst = "CRITICAL" if any(f.get("severity") == "critical" for f in findings) else "WARNING"
        head = f"[{_EVENT_WORDS.get(event, event)}] {worst} {alert.get('model', '?')}: "
        head += f"{len(findings)} findings in one window"
    else:
        one = findings[0] if findings else alert
        head = f"[{_EVENT_WORDS.get(event, event)}] {str(one.get('severity', '')).upper()} "
        head += f"{alert.get('model', '?')}: {one.get('title', '')}".strip()
    lines = [head.strip()]
    if run:
        lines.append(
            f"  window {run.get('window_start')} .. {run.get('window_end')} "
            f"(run {run.get('id')}, {run.get('rows')} rows, {run.get('quarantined', 0)} quarantined)"
        )
    if len(findings) > 1:
        for f in findings:
            word = _FINDING_WORDS.get(str(f.get("event")), "")
            lines.append(f"  * {word}{str(f.get('severity', '')).upper()} {f.get('title', '')}")
            lines.extend(f"    - {line}" for line in f.get("lines", []))
    else:
        source = findings[0].get("lines", []) if findings else payload.get("lines", [])
        lines.extend(f"  - {line}" for line in source)
    if payload.get("report_hint"):
        lines.append(f"  report: {payload['report_hint']}")
    if alert.get("model") and event in (EventName.ALERT_OPENED, EventName.ALERT_REFIRED):
        lines.append(f"  model card: monitor card {alert['model']} --out card.html")
    return "\n".join(lines)


_FINDING_WORDS = {
    EventName.ALERT_OPENED: "",
    EventName.ALERT_REFIRED: "(again) ",
    EventName.ALERT_RESOLVED: "(resolved) ",
}
