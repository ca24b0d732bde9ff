"""The body of each dashboard page: reads the store (through named functions) and renders.

Each view opens one transaction, copies what it needs into plain values, and renders
with `monitor.ui.pages` and `monitor.ui.plots` outside it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine

from monitor import clock
from monitor.config import Settings
from monitor.errors import NotFoundError
from monitor.store import dashboard as dash
from monitor.store import transaction
from monitor.store.runs import latest_run, list_alerts
from monitor.ui import plots
from monitor.ui.auth import Session
from monitor.ui.pages import e, feedback_form, figure, link, query, severity_pills, table

log = logging.getLogger(__name__)

#: how far back the overview looks for missed windows
GAP_HORIZON = timedelta(days=7)


def overview(settings: Settings, engine: Engine) -> str:
    """Every configured model: last run, open alerts, drift, performance, retrain, policies, gaps."""
    from monitor.policies import active_policies
    from monitor.store.feedback import live_policies
    from monitor.windows import gap_report

    now = clock.utcnow()
    rows = []
    with transaction(engine) as session:
        counts = dash.open_alert_counts(session)
        for cfg in settings.models:
            run = latest_run(session, cfg.name)
            scores = dash.run_scores(session, run.id) if run is not None else []
            policies = live_policies(session, cfg.name, now)
            retrain = active_policies(session, cfg.name, now).retrain_requested
            try:
                gaps = gap_report(session, cfg, GAP_HORIZON)
            except Exception:  # noqa: BLE001 - an overview without the gap column is still useful
                log.exception("gap report of %s failed", cfg.name)
                gaps = None
            if run is None:
                last = "<span class='muted'>no run yet</span>"
            else:
                cls = "bad" if run.status == "failed" else "ok" if run.status == "succeeded" else "warn"
                last = (f"{link(f'/ui/runs/{run.id}', f'run {run.id}')} <span class='{cls}'>{e(run.status)}"
                        f"</span><br><span class='muted'>{e(run.window_start.isoformat())} .. "
                        f"{e(run.window_end.isoformat())}</span>")
            drifted = [s.feature for s in scores if s.scope == "feature" and s.drifted]
            perf = [f"{e(s.feature)} {e(s.score)} <span class='muted'>(baseline {e(s.threshold)})</span>"
                    + (" <span class='bad'>degraded</span>" if s.drifted else "")
                    for s in scores if s.scope == "performance"]
            rows.append([
                link(f"/ui/models/{cfg.name}", cfg.name), last,
                severity_pills(counts.get(cfg.name, {})),
                ("<span class='bad'>" + e(", ".join(str(d) for d in drifted)) + "</span>") if drifted
                else "<span class='ok'>none</span>" if run is not None else "",
                "<br>".join(perf) or "<span class='muted'>no labels</span>",
                "<span class='bad'>retrain requested</span>" if retrain else "no",
                "<br>".join(e(f"{p.kind} {p.alert_kind or ''}/{p.feature or '*'} by {p.created_by}")
                            for p in policies) or "<span class='muted'>none</span>",
                (f"<span class='warn'>{e(gaps['missed_windows'])} missed window(s)</span><br>"
                 f"<code>{e(gaps['backfill'])}</code>") if gaps else "<span class='ok'>none</span>",
            ])
    return table(["model", "last run", "open alerts", "drifted features (last run)",
                  "performance (last run)", "retrain", "active policies", "gaps (7 days)"], rows,
                 empty="no model is configured")


def model_page(settings: Settings, engine: Engine, name: str, days: int) -> str:
    """Timelines of one model over the last `days` days."""
    settings.model(name)  # ConfigError (404) for an unknown model
    until = clock.utcnow()
    since = until - timedelta(days=days)
    with transaction(engine) as session:
        runs = dash.runs_between(session, name, since, until)
        scores = dash.scores_between(session, name, since, until)
        importance = dash.importance_between(session, name, since, until)
        alerts = dash.alerts_between(session, name, since, until)
        feedback = dash.feedback_between(session, name, since, until)
        bands = dash.estimate_bands(session, name, since, until)
        revisions = dash.latest_revisions(session, name, since, until)
        alert_rows = [[link(f"/ui/alerts/{a.id}", a.id), e(a.opened_at.isoformat()),
                       f"<span class='pill {e(a.severity)}'>{e(a.severity)}</span>", e(a.kind),
                       e(a.title), e(a.status)] for a in alerts[::-1][:50]]
        if runs:  # the axis starts where the history starts (a young model fills the width)
            since = max(since, runs[0].start - (runs[0].end - runs[0].start))
        shapes = plots.event_shapes(alerts, feedback)
        events = plots.events_figure(alerts, feedback, since, until)
    ends = {r.id: r.end for r in runs}
    ranges = " · ".join(link(f"/ui/models/{name}?{query(days=d)}", f"{d} days") for d in (1, 7, 30, 90, 365))
    head = (f"<p>{len(runs)} window(s) in the last {days} day(s) · {ranges} · "
            "click a window in any chart to open its run · "
            f"{link(f'/ui/cards/{name}', 'model card')}</p>")
    if not runs:
        return head + "<p class='muted'>no run in this range</p>"
    return (
        head
        + figure("events", events)
        + figure("drift", plots.drift_figure(scores, ends, since, until, shapes))
        + (figure("importance", plots.importance_figure(importance, ends, since, until, shapes))
           if importance else "<p class='muted'>no attributions in this range</p>")
        + (figure("performance", plots.performance_figure(scores, ends, since, until, shapes, revisions))
           if any(s.scope == "performance" for s in scores) or revisions
           else "<p class='muted'>no realized performance in this range (no labels)</p>")
        + (figure("estimated", plots.estimated_figure(scores, bands, ends, since, until, shapes))
           if any(s.scope == "estimated" for s in scores) else "")
        + (figure("fairness", plots.fairness_figure(scores, ends, since, until, shapes))
           if any(s.scope == "fairness" for s in scores) else "")
        + figure("volume", plots.volume_figure(runs, since, until, shapes))
        + "<h2>Alerts in this range</h2>"
        + table(["id", "opened", "severity", "kind", "what", "status"], alert_rows, "no alert in this range")
    )


def run_page(settings: Settings, engine: Engine, run_id: int) -> tuple[str, str]:
    """(title, body) of one run: the report of monitor/report.py, alerts linked to their pages."""
    from monitor.report import build_report_parts

    title, body = build_report_parts(settings, engine, run_id, evidently=False,
                                     alert_href=lambda i: f"/ui/alerts/{i}")
    evidently = (
        "<h2>Evidently drift report</h2><p class='muted'>Evidently's own interactive report of "
        f"the window (computed when opened): {link(f'/ui/runs/{run_id}/evidently', 'open it alone')}</p>"
        # no allow-same-origin: an opaque origin, so nothing in Evidently's page (which
        # carries the window's raw values) can read this page, its cookies or its CSRF token
        "<iframe sandbox='allow-scripts' loading='lazy' "
        f"src='/ui/runs/{run_id}/evidently' title='Evidently drift report'></iframe>"
    )
    return title, body + evidently


def alerts_page(engine: Engine, model: str | None, status: str | None) -> str:
    with transaction(engine) as session:
        alerts = list_alerts(session, model or None, status or None, limit=500)
        rows = [[link(f"/ui/alerts/{a.id}", a.id), link(f"/ui/models/{a.model}", a.model),
                 f"<span class='pill {e(a.severity)}'>{e(a.severity)}</span>", e(a.kind), e(a.feature),
                 e(a.title), e(a.status), e(a.last_fired_at.isoformat()), e(a.fire_count)] for a in alerts]
    form = (
        "<form method='get' action='/ui/alerts' class='card'>model <input name='model' value='"
        f"{e(model)}'> status <select name='status'>"
        + "".join(f"<option value='{v}'{' selected' if v == (status or '') else ''}>{v or 'any'}</option>"
                  for v in ("", "live", "open", "acknowledged", "muted", "resolved"))
        + "</select> <button type='submit'>filter</button></form>"
    )
    return form + table(["id", "model", "severity", "kind", "feature", "what", "status", "last fired",
                         "fired"], rows, "no alert matches")


def alert_page(settings: Settings, engine: Engine, alert_id: int, session_: Session | None,
               flash: str | None) -> tuple[str, str]:
    from monitor.policies import VERDICTS

    with transaction(engine) as session:
        found = dash.alert_feedback(session, alert_id)
        if found is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        alert, history = found
        facts = [
            ["model", link(f"/ui/models/{alert.model}", alert.model)], ["kind", e(alert.kind)],
            ["feature", e(alert.feature)], ["severity", e(alert.severity)], ["status", e(alert.status)],
            ["opened", e(alert.opened_at.isoformat())], ["last fired", e(alert.last_fired_at.isoformat())],
            ["times fired", e(alert.fire_count)],
            ["runs", " ".join(link(f"/ui/runs/{r}", f"run {r}") for r in
                              dict.fromkeys(x for x in (alert.first_run_id, alert.last_run_id) if x))],
        ]
        answers = [[e(f.created_at.isoformat()), e(f.user_name or f.user_id), e(f.verdict), e(f.comment),
                    e(f.source)] for f in history]
        title = f"Alert {alert.id}: {alert.title}"
    note = f"<p class='card ok'>{e(flash)}</p>" if flash else ""
    body = (note + table(["", ""], facts) + "<h2>Feedback history</h2>"
            + table(["when", "who", "verdict", "comment", "via"], answers, "no feedback yet")
            + "<h2>Answer</h2>" + feedback_form(alert_id, session_, settings.ui.read_only, VERDICTS))
    return title, body


def card_page(settings: Settings, engine: Engine, name: str) -> str:
    """The model's latest stored model card (regenerated after each run)."""
    from monitor.card import render_html
    from monitor.store.cards import latest_card

    settings.model(name)  # ConfigError (404) for an unknown model
    with transaction(engine) as session:
        card = latest_card(session, name)
        document = dict(card.document) if card is not None else None
    if document is None:
        raise NotFoundError(f"model {name!r} has no model card yet: it is written after each run")
    return render_html(document)
