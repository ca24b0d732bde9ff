"""Every text and Block Kit structure monitor shows in Slack, in one pure module.

Nothing here talks to Slack or the database: functions take outbox payloads (plain
dicts, see `monitor.alerts.queue`) and return text and blocks, so they are tested
without a network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: action_id -> verdict; the alert id travels in each button's `value`
VERDICT_ACTIONS = {
    "monitor_acknowledge": "acknowledge",
    "monitor_expected_change": "expected_change",
    "monitor_false_alarm": "false_alarm",
    "monitor_retrain_needed": "retrain_needed",
}
COMMENT_ACTION = "monitor_comment"
#: the "one feature" menu of an input-drift finding; value "alert_id|verdict|feature"
FEATURE_VERDICT_ACTION = "monitor_feature_verdict"
FEATURE_VERDICTS = ("expected_change", "false_alarm")
REBASELINE_ACTION = "monitor_rebaseline"
COMMENT_CALLBACK = "monitor_comment_modal"
COMMENT_BLOCK, COMMENT_INPUT = "comment_block", "comment_input"
METADATA_EVENT = "monitor_outbox"

BUTTON_LABELS = {
    "monitor_acknowledge": "Acknowledge",
    "monitor_expected_change": "Expected change",
    "monitor_false_alarm": "False alarm",
    "monitor_retrain_needed": "Retrain needed",
    COMMENT_ACTION: "Add comment",
}
VERDICT_WORDS = {
    "acknowledge": "acknowledged",
    "expected_change": "marked as expected change",
    "false_alarm": "marked as false alarm",
    "retrain_needed": "asked for a retrain",
    "comment": "commented",
}
SEVERITY_ICONS = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
EVENT_PREFIX = {
    "alert_opened": "",
    "alert_refired": "Fired again: ",
    "alert_resolved": "Resolved: ",
}
MAX_FEATURE_LINES = 8

# texts for people who may not give feedback, and for mistakes
REFUSED_USER = (
    "Sorry, you are not allowed to give feedback to monitor. "
    "Ask an admin to add you to `slack.allowed_users`."
)
REFUSED_CHANNEL = "monitor does not take feedback in this channel."
REFUSED_MESSAGE = (
    "This message was not posted by monitor for that alert, so the answer was not recorded."
)
UNKNOWN_ALERT = "monitor does not know alert {alert_id} (was the database reset?)."
EMPTY_COMMENT = "Please write a comment before submitting."
WHY_USAGE = "Ask `why <request_id>` to see why the model decided what it did for that request."
WHY_UNKNOWN = (
    "No attribution is stored for request `{request_id}` (only sampled requests are explained)."
)
REBASELINE_OFFER = (
    "Muted for {days} days. Should the window of run {run_id} become the new baseline "
    "for *{model}*?"
)
REBASELINE_DONE = (
    "Baseline {baseline_id} of *{model}* is now the window of run {run_id} (adopted by {user})."
)
REBASELINE_FAILED = "Could not adopt run {run_id} as the baseline: {error}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def headline(event: str, alert: Mapping[str, Any]) -> str:
    """One line naming the alert: used as the notification text and the message header."""
    icon = SEVERITY_ICONS.get(str(alert.get("severity")), ":white_circle:")
    prefix = EVENT_PREFIX.get(event, "")
    title = alert.get("title", alert.get("kind", "alert"))
    return f"{icon} {prefix}*{alert.get('model', '?')}*: {title}"


def window_line(run: Mapping[str, Any]) -> str:
    """Which window and how much data the alert is about."""
    if not run:
        return ""
    return (
        f"Window {run.get('window_start')} → {run.get('window_end')} · run {run.get('id')} · "
        f"{run.get('rows', 0)} rows, {run.get('sampled', 0)} sampled, "
        f"{run.get('quarantined', 0)} quarantined"
    )


def drift_lines(drift: Mapping[str, Any] | None) -> list[str]:
    """What drifted, with scores and thresholds, drifted features first."""
    if not drift:
        return []
    features = drift.get("features") or {}
    ordered = sorted(features.items(), key=lambda kv: (not kv[1].get("drifted"), kv[0]))
    lines = [
        f"Dataset drift: {'yes' if drift.get('dataset_drift') else 'no'} "
        f"({_num(float(drift.get('drift_share') or 0.0) * 100)}% of features drifted)"
    ]
    for name, f in ordered[:MAX_FEATURE_LINES]:
        mark = ":warning:" if f.get("drifted") else "·"
        lines.append(
            f"{mark} `{name}` {f.get('method')} score {_num(f.get('score'))} "
            f"(threshold {_num(f.get('threshold'))})"
        )
    if len(ordered) > MAX_FEATURE_LINES:
        lines.append(f"… and {len(ordered) - MAX_FEATURE_LINES} more features")
    return lines


def attribution_lines(attribution: Mapping[str, Any] | None) -> list[str]:
    """Which features gained or lost influence on the model's decisions."""
    if not attribution:
        return []
    lines = [
        f"Explanations ({attribution.get('method')}): nDCG {_num(attribution.get('ndcg'))} "
        f"(alert below {_num(attribution.get('threshold'))})"
    ]
    features = attribution.get("features") or {}
    moved = sorted(features.items(), key=lambda kv: -abs(float(kv[1].get("change") or 0.0)))
    for name, f in moved[:5]:
        change = float(f.get("change") or 0.0)
        verb = "gained" if change > 0 else "lost"
        lines.append(
            f"`{name}` {verb} influence: {_num(f.get('baseline'))} → {_num(f.get('current'))}"
        )
    return lines


def performance_basis(details: Mapping[str, Any] | None) -> str:
    """What a performance alert rests on: labels, or an estimate without them."""
    basis = (details or {}).get("basis")
    if basis == "estimated":
        method = str((details or {}).get("method") or "").upper()
        return f"Basis: estimated ({method}), assuming no concept drift; labels arriving later revise it"
    if basis == "realized":
        return "Basis: realized on labelled rows"
    return ""


def quality_lines(quality: Mapping[str, Any] | None) -> list[str]:
    """Data-quality counts: quarantined rows by reason, missing shares, ranges, unseen values."""
    if not quality:
        return []
    lines = []
    reasons = quality.get("reasons") or {}
    if quality.get("quarantined"):
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"Quarantined {quality['quarantined']} rows" + (f" ({why})" if why else ""))
    missing = {k: v for k, v in (quality.get("missing") or {}).items() if v}
    if missing:
        lines.append(
            "Missing: " + ", ".join(f"`{k}` {_num(float(v) * 100)}%" for k, v in missing.items())
        )
    out = {k: v for k, v in (quality.get("out_of_range") or {}).items() if v}
    if out:
        lines.append("Out of range: " + ", ".join(f"`{k}` {v}" for k, v in out.items()))
    unseen = {k: v for k, v in (quality.get("unseen") or {}).items() if v}
    if unseen:
        lines.append(
            "Unseen values: "
            + "; ".join(f"`{k}` {', '.join(map(str, v[:5]))}" for k, v in unseen.items())
        )
    return lines


#: alert kinds whose details are a fairness finding (`monitor.bias_rules`)
FAIRNESS_KINDS = ("bias", "bias_drift", "explanation_disparity")


def fairness_lines(kind: str | None, details: Mapping[str, Any] | None) -> list[str]:
    """The groups compared and the numbers behind a bias, bias-drift or explanation
    disparity alert (its details), and what the verdict is measured against."""
    if kind not in FAIRNESS_KINDS or not details:
        return []
    attribute, group = details.get("attribute"), details.get("group")
    if kind == "bias":
        level = details.get("interval_level")
        lines = [
            f"*Fairness* `{attribute}={group}` against `{attribute}={details.get('compared_with')}` "
            f"({_num(float(level) * 100) if level is not None else '?'}% simultaneous intervals)"
        ]
        for metric, m in (details.get("metrics") or {}).items():
            ci, band = m.get("ci") or [None, None], m.get("band") or [None, None]
            lines.append(
                f":x: {metric} {_num(m.get('value'))} in [{_num(ci[0])}, {_num(ci[1])}], "
                f"allowed [{_num(band[0])}, {_num(band[1])}]"
            )
        return lines
    if kind == "bias_drift":
        lines = [f"*Fairness against the baseline* `{attribute}={group}`"]
        for d in details.get("drift") or []:
            lines.append(
                f":chart_with_downwards_trend: {d.get('metric')} {_num(d.get('baseline'))} → "
                f"{_num(d.get('value'))} (p {_num(d.get('p_value'))})"
            )
        return lines
    lines = [f"*Explanation disparity* `{attribute}={group}`"]
    for f in details.get("findings") or []:
        grew = " (more than in the baseline)" if f.get("judged") == "change" else ""
        if "feature" in f:
            lines.append(
                f"`{f['feature']}` weighs differently in this group{grew}: possible proxy for `{attribute}`"
            )
        else:
            shares = list((f.get("group_reasons") or {}).items())[:3]
            reasons = ", ".join(f"`{k}` {float(v) * 100:.0f}%" for k, v in shares)
            against = str(f.get("compared_with")).replace("_", " ")
            lines.append(f"denied for other reasons than {against}{grew}: {reasons}")
    return lines


def report_line(payload: Mapping[str, Any], report_base_url: str | None = None) -> str:
    """How to open the full report: a link when one is known, else the command."""
    url = payload.get("report_url")
    run_id = (payload.get("run") or {}).get("id")
    if not url and report_base_url and run_id is not None:
        url = f"{report_base_url.rstrip('/')}/{run_id}"
    if url:
        return f":bar_chart: <{url}|Open the report>"
    if payload.get("report_hint"):
        return f":bar_chart: Report: `{payload['report_hint']}`"
    return ""


def card_line(payload: Mapping[str, Any], report_base_url: str | None = None) -> str:
    """Where the model's living card is: `<report_base_url>/cards/<model>` when a base URL
    is set, else the command that writes it."""
    model = (payload.get("alert") or {}).get("model") or (payload.get("run") or {}).get("model")
    if not model:
        return ""
    if report_base_url:
        # a base URL pointing at the dashboard's runs (`https://HOST/ui/runs`) links the
        # dashboard's card page (`/ui/cards/MODEL`)
        base = re.sub(r"/runs/?$", "", report_base_url.rstrip("/"))
        return f":page_facing_up: <{base}/cards/{model}|Model card>"
    return f":page_facing_up: Model card: `monitor card {model} --out card.html`"


def buttons(alert_id: int) -> dict[str, Any]:
    """The actions block: four verdicts and a comment button, each carrying the alert id."""
    elements = []
    for action_id, label in BUTTON_LABELS.items():
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "value": str(alert_id),
            "text": {"type": "plain_text", "text": label},
        }
        if action_id == "monitor_acknowledge":
            button["style"] = "primary"
        elements.append(button)
    return {"type": "actions", "block_id": f"monitor_feedback_{alert_id}", "elements": elements}


def findings_of(event: str, payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The findings one message announces: a run's message lists all of them
    (`payload["alerts"]`); an older single-alert payload is its own one finding."""
    listed = payload.get("alerts")
    if listed:
        return list(listed)
    alert = payload.get("alert") or {}
    lines, details = payload.get("lines") or [], payload.get("details") or {}
    return [{**alert, "event": event, "lines": lines, "details": details}]


def _finding_blocks(finding: Mapping[str, Any], with_buttons: bool) -> list[dict[str, Any]]:
    icon = SEVERITY_ICONS.get(str(finding.get("severity")), ":white_circle:")
    prefix = EVENT_PREFIX.get(str(finding.get("event")), "")
    text = f"{icon} {prefix}*{finding.get('title', finding.get('kind', 'alert'))}*"
    lines = [f"• {line}" for line in (finding.get("lines") or [])[:MAX_FEATURE_LINES]]
    if finding.get("kind") == "run_failed":
        lines.append(f"• Error: `{(finding.get('details') or {}).get('error', 'unknown')}`")
    if finding.get("kind") == "performance_drop":
        basis = performance_basis(finding.get("details"))
        if basis:
            lines.append(basis)
    blocks = [_section("\n".join([text, *lines]))]
    if with_buttons and finding.get("id") is not None and finding.get("event") == "alert_opened":
        actions = buttons(int(finding["id"]))
        features = (finding.get("details") or {}).get("drifted_features") or []
        if finding.get("kind") == "feature_drift" and not finding.get("feature") and features:
            actions["elements"].append(feature_menu(int(finding["id"]), features))
        blocks.append(actions)
    return blocks


def feature_menu(alert_id: int, features: Sequence[str]) -> dict[str, Any]:
    """A menu to answer for ONE feature of an input-drift alert (expected change or false
    alarm); the buttons answer for all of its features."""
    options = [
        {
            "text": {"type": "plain_text", "text": f"{VERDICT_WORDS[v].capitalize()}: {name}"[:75]},
            "value": f"{alert_id}|{v}|{name}"[:150],
        }
        for name in list(features)[:50]
        for v in FEATURE_VERDICTS
    ]
    return {
        "type": "static_select",
        "action_id": FEATURE_VERDICT_ACTION,
        "placeholder": {"type": "plain_text", "text": "One feature only…"},
        "options": options,
    }


def alert_message(
    event: str,
    payload: Mapping[str, Any],
    *,
    report_base_url: str | None = None,
    with_buttons: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """The (fallback text, blocks) of a run's alert message: model, window, every finding
    of the window with its own feedback buttons, drift, attribution, data quality, the
    report."""
    alert = payload.get("alert") or {}
    findings = findings_of(event, payload)
    if len(findings) == 1:
        title = headline(event, {**alert, **findings[0]})
    else:
        worst = "critical" if any(f.get("severity") == "critical" for f in findings) else "warning"
        summary = {**alert, "severity": worst, "title": f"{len(findings)} findings in one window"}
        title = headline(event, summary)
    blocks: list[dict[str, Any]] = [_section(title)]
    window = window_line(payload.get("run") or {})
    if window:
        blocks.append(_context(window))
    for finding in findings:
        blocks.extend(_finding_blocks(finding, with_buttons))
    for part in (
        drift_lines(payload.get("drift")),
        attribution_lines(payload.get("attribution")),
        quality_lines(payload.get("quality")),
        fairness_lines(alert.get("kind"), payload.get("details")),
    ):
        if part:
            blocks.append(_section("\n".join(part)))
    link = report_line(payload, report_base_url)
    if link:
        blocks.append(_context(link))
    card = card_line(payload, report_base_url)
    if card:
        blocks.append(_context(card))
    return plain_text(title), blocks


def thread_reply_blocks(event: str, payload: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A later window of the same incident, as a reply in its thread: what is new (with
    buttons), what fired again, what resolved."""
    text = thread_reply(event, payload)
    blocks: list[dict[str, Any]] = [_section(text.split("\n", 1)[0])]
    for finding in findings_of(event, payload):
        blocks.extend(_finding_blocks(finding, with_buttons=True))
    return plain_text(text), blocks


def plain_text(mrkdwn: str) -> str:
    """Notification text without emoji codes and bold markers."""
    words = [w for w in mrkdwn.split(" ") if not (w.startswith(":") and w.endswith(":"))]
    return " ".join(words).replace("*", "")


def thread_reply(event: str, payload: Mapping[str, Any]) -> str:
    """The text of a reply in the incident's thread: a later window's findings."""
    run = payload.get("run") or {}
    findings = findings_of(event, payload)
    if all(f.get("event") == "alert_resolved" for f in findings):
        names = "; ".join(str(f.get("title")) for f in findings)
        return f":white_check_mark: Resolved after run {run.get('id')} ({window_line(run)}): {names}."
    head = f":repeat: Run {run.get('id')}: {window_line(run)}"
    lines = []
    for f in findings:
        event_of = str(f.get("event"))
        if event_of == "alert_refired":
            word = f"Fired again ({f.get('fire_count', '?')} times)"
        else:
            word = "New" if event_of == "alert_opened" else "Resolved"
        lines.append(f"• {word}: {f.get('title')}")
        lines.extend(f"   {line}" for line in (f.get("lines") or [])[:3])
    return "\n".join([head, *lines]).strip()


def feedback_reply(payload: Mapping[str, Any]) -> str:
    """A reply in the incident's thread saying who answered what on one of its findings
    (the message lists several findings, so it is not rewritten)."""
    alert = payload.get("alert") or {}
    answers = payload.get("feedback") or []
    last = answers[-1] if answers else {}
    who = last.get("user_name") or last.get("user_id") or "someone"
    said = VERDICT_WORDS.get(last.get("verdict"), last.get("verdict") or "answered")
    text = f":speech_balloon: <@{last.get('user_id')}> ({who}) {said} *{alert.get('title')}*"
    if last.get("feature"):
        text += f" for `{last['feature']}`"
    if last.get("comment"):
        text += f": “{last['comment']}”"
    return text + f" — status *{payload.get('status', alert.get('status'))}*"


def feedback_message(payload: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The alert message after feedback: the buttons replaced by who answered what."""
    alert = payload.get("alert") or {}
    title = headline("alert_opened", alert)
    status = payload.get("status", alert.get("status"))
    answers = []
    for item in payload.get("feedback") or []:
        who = item.get("user_name") or item.get("user_id")
        said = VERDICT_WORDS.get(item.get("verdict"), item.get("verdict"))
        text = f"• <@{item.get('user_id')}> ({who}) {said}"
        if item.get("comment"):
            text += f": “{item['comment']}”"
        answers.append(text)
    blocks = [_section(title), _context(f"Status: *{status}*")]
    if answers:
        blocks.append(_section("\n".join(answers)))
    if status not in ("resolved",) and alert.get("id") is not None:
        blocks.append(_comment_only(int(alert["id"])))
    return plain_text(f"{title} ({status})"), blocks


def _comment_only(alert_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": f"monitor_comment_{alert_id}",
        "elements": [
            {
                "type": "button",
                "action_id": COMMENT_ACTION,
                "value": str(alert_id),
                "text": {"type": "plain_text", "text": BUTTON_LABELS[COMMENT_ACTION]},
            }
        ],
    }


def comment_modal(alert_id: int, channel: str | None, ts: str | None) -> dict[str, Any]:
    """The "Add comment" modal; private_metadata carries the alert id, channel and ts."""
    meta = json.dumps({"alert_id": alert_id, "channel": channel, "ts": ts})
    return {
        "type": "modal",
        "callback_id": COMMENT_CALLBACK,
        "private_metadata": meta,
        "title": {"type": "plain_text", "text": "Comment on alert"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "label": {"type": "plain_text", "text": f"Your comment on alert {alert_id}"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            }
        ],
    }


def rebaseline_offer(
    model: str, run_id: int, alert_id: int, days: int
) -> tuple[str, list[dict[str, Any]]]:
    """The ephemeral question after "Expected change": adopt this window as the baseline?"""
    text = REBASELINE_OFFER.format(days=days, run_id=run_id, model=model)
    return plain_text(text), [
        _section(text),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": REBASELINE_ACTION,
                    "value": f"{alert_id}:{run_id}",
                    "text": {"type": "plain_text", "text": "Adopt as new baseline"},
                }
            ],
        },
    ]


def why_message(payload: Mapping[str, Any], top: int = 10) -> str:
    """The answer to `why <request_id>`: output, baseline output, the largest contributions."""
    rows: Sequence[Sequence[Any]] = payload.get("contributions") or []
    lines = [
        f"*Why did {payload.get('model')} decide {_num(payload.get('output'))} for "
        f"`{payload.get('request_id')}`?* ({payload.get('method')}, baseline output "
        f"{_num(payload.get('baseline_output'))})"
    ]
    if payload.get("reasons_text"):
        lines.append(f"_{payload['reasons_text']}_")
    for feature, value, given in list(rows)[:top]:
        arrow = ":arrow_up:" if float(value) > 0 else ":arrow_down:"
        lines.append(f"{arrow} `{feature}` = {_num(given)} contributed {float(value):+.3g}")
    if len(rows) > top:
        lines.append(f"… {len(rows) - top} smaller contributions not shown")
    return "\n".join(lines)


def webhook_body(
    event: str, payload: Mapping[str, Any], report_base_url: str | None = None
) -> dict[str, Any]:
    """An incoming-webhook body: the alert blocks without buttons (webhooks take no answers)."""
    if event == "feedback_update":
        text, blocks = feedback_message(payload)
        blocks = [b for b in blocks if b.get("type") != "actions"]
    else:
        text, blocks = alert_message(
            event, payload, report_base_url=report_base_url, with_buttons=False
        )
    return {"text": text, "blocks": blocks}
