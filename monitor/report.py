"""`monitor report RUN_ID`: one self-contained HTML page for a run.

What the run found (drift per feature, prediction drift, attribution shift,
performance, data quality and the rows quarantined, with a few masked samples), charts
of baseline vs current importance and of drift scores (the same PNG charts Slack shows,
from `monitor.charts`), the alerts this run opened, re-fired or resolved with their
feedback, and Evidently's own interactive drift report for the window.
"""

from __future__ import annotations

import base64
import html
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.errors import NotFoundError
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.store.reports import QuarantinedRow, run_alerts, run_quarantine
from monitor.store.runs import get_run

log = logging.getLogger(__name__)

#: characters of a quarantined raw row shown in the report (the rest is cut)
RAW_CHARS = 300

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d1d1f;max-width:1200px}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.25rem .75rem;border-bottom:1px solid #eee;text-align:left}
.bad{color:#b00020;font-weight:600} .ok{color:#1b7f3b} .muted{color:#777}
img{max-width:100%;border:1px solid #eee}
iframe{width:100%;height:1400px;border:1px solid #ddd}
"""


def build_report(settings: Settings, engine: Engine, run_id: int, *, evidently: bool = True) -> str:
    """The HTML page for run `run_id`."""
    title, body = build_report_parts(settings, engine, run_id, evidently=evidently)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def build_report_parts(
    settings: Settings, engine: Engine, run_id: int, *, evidently: bool = True,
    alert_href: Callable[[int], str] | None = None,
) -> tuple[str, str]:
    """(title, body HTML) of the report of run `run_id` (the dashboard's run page wraps
    the body in its own layout; `alert_href` turns alert ids into links)."""
    with transaction(engine) as session:
        run = get_run(session, run_id)
        if run is None:
            raise NotFoundError(
                f"run {run_id} does not exist (see `monitor alerts` or the runs of `monitor once`)"
            )
        summary = dict(run.summary or {})
        fired = [a["id"] for a in summary.get("alerts") or [] if isinstance(a, dict) and "id" in a]
        fired += [int(i) for i in summary.get("resolved_alerts") or []]
        history = [(a, list(fb)) for a, fb in run_alerts(session, run, fired)]
        counts, samples = run_quarantine(session, run)
        baseline = active_baseline(session, run.model) if evidently else None
        model_name, start, end, status = run.model, run.window_start, run.window_end, run.status
    parts = [_header(model_name, run_id, start, end, status, summary)]
    # scipy and numpy warn on degenerate windows (constant columns, empty bins): the
    # numbers are still defined, and warnings would only litter the operator's console
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        parts.append(_drift_section(summary))
        parts.append(_attribution_section(summary))
        parts.append(_performance_section(summary))
        parts.append(_fairness_section(summary))
        parts.append(_segments_section(summary))
        parts.append(_quality_section(summary, counts, samples))
        parts.append(_history_section(history, alert_href))
        if evidently and baseline is not None and status != "failed":
            parts.append(_evidently_section(settings, engine, model_name, start, end, baseline))
    body = "\n".join(p for p in parts if p)
    return f"monitor report: {model_name} run {run_id}", body


def evidently_page(settings: Settings, engine: Engine, run_id: int) -> str:
    """Evidently's own HTML drift report of the window of run `run_id` (a whole page)."""
    with transaction(engine) as session:
        run = get_run(session, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist")
        baseline = active_baseline(session, run.model)
        model_name, start, end = run.model, run.window_start, run.window_end
    if baseline is None:
        raise NotFoundError(f"model {model_name!r} has no active baseline to compare with")
    from monitor.drift import render_html
    from monitor.intake import read_window

    cfg = settings.model(model_name)
    window = read_window(cfg, engine, start, end)
    if window.frame.empty:
        return "<p>the window has no rows any more (retention?)</p>"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return render_html(baseline.sample, window.frame.reset_index(drop=True),
                           numeric=cfg.features.numeric, categorical=cfg.features.categorical)


def _e(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _png(data: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _header(model: str, run_id: int, start: Any, end: Any, status: str, s: dict[str, Any]) -> str:
    cls = "bad" if status == "failed" else "ok"
    error = f"<p class='bad'>{_e(s.get('error'))}</p>" if s.get("error") else ""
    return (
        f"<h1>{_e(model)} — run {run_id}</h1><p>window {_e(start.isoformat())} .. {_e(end.isoformat())}"
        f" · status <span class='{cls}'>{_e(status)}</span> · {_e(s.get('rows', 0))} rows, "
        f"{_e(s.get('sampled', 0))} sampled, {_e(s.get('quarantined', 0))} quarantined</p>{error}"
    )


def _table(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are already escaped HTML."""
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _flag(bad: bool, words: tuple[str, str] = ("drifted", "ok")) -> str:
    return f"<span class='{'bad' if bad else 'ok'}'>{words[0] if bad else words[1]}</span>"


def _drift_section(s: dict[str, Any]) -> str:
    drift = s.get("drift")
    if not drift:
        return ""
    ordered = sorted(drift["features"].items(), key=lambda kv: not kv[1]["drifted"])
    rows = [
        [_e(n), _e(f["method"]), _e(f["score"]), _e(f["threshold"]), _flag(f["drifted"])] for n, f in ordered
    ]
    pred = s.get("prediction_drift")
    pred_line = ""
    if pred:
        pred_line = (
            f"<p>prediction drift: {_e(pred['method'])} score {_e(pred['score'])} "
            f"(threshold {_e(pred['threshold'])}) — {_flag(pred['drifted'])}</p>"
        )
    chart = _chart("drift_chart", drift["features"], "drift scores against thresholds")
    verdict = "dataset drift" if drift["dataset_drift"] else "no dataset drift"
    return (
        f"<h2>Drift</h2><p>{verdict}: {_e(drift['drift_share'])} of features drifted "
        f"(threshold {_e(drift['share_threshold'])})</p>{pred_line}{chart}"
        + _table(["feature", "test", "score", "threshold", ""], rows)
    )


def _attribution_section(s: dict[str, Any]) -> str:
    attribution = s.get("attribution")
    if not attribution:
        return ""
    ordered = sorted(attribution["features"].items(), key=lambda kv: -(kv[1].get("current") or 0))
    rows = [[_e(n), _e(f.get("baseline")), _e(f.get("current")), _e(f.get("change"))] for n, f in ordered]
    chart = _chart("importance_chart", attribution["features"], "baseline vs current importance")
    shifted = " — <span class=bad>the reasoning shifted</span>" if attribution.get("drifted") else ""
    return (
        f"<h2>Why the model decides (attributions: {_e(attribution['method'])})</h2>"
        f"<p>nDCG of the importance ranking against the baseline: {_e(attribution.get('ndcg'))}{shifted}</p>"
        + chart
        + _table(["feature", "baseline importance", "current", "relative change"], rows)
    )


def _performance_section(s: dict[str, Any]) -> str:
    perf = s.get("performance")
    if not perf:
        return ""
    parts = [
        f"<h2>Performance</h2><p>labelled rows: {_e(perf.get('labelled_rows'))}, "
        f"revision {_e(perf.get('revision'))}</p>"
    ]
    realized = perf.get("realized")
    if realized:
        rows = [
            [
                _e(m),
                _e(v.get("baseline")),
                _e(v.get("current")),
                _e(v.get("ci")),
                _flag(bool(v.get("degraded")), ("degraded", "ok")),
            ]
            for m, v in realized.items()
        ]
        parts.append("<h3>Realized</h3>" + _table(["metric", "baseline", "window", "interval", ""], rows))
    estimated = perf.get("estimated")
    if estimated:
        rows = [
            [
                _e(m),
                _e(v.get("baseline")),
                _e(v.get("value")),
                _e(f"{v.get('lower')} .. {v.get('upper')}"),
                _flag(bool(v.get("degraded")), ("degraded", "ok")),
            ]
            for m, v in (estimated.get("metrics") or {}).items()
        ]
        parts.append(
            f"<h3>Estimated ({_e(str(estimated.get('method', '')).upper())}, assuming no concept drift)</h3>"
            + _table(["metric", "baseline", "estimate", "band", ""], rows)
        )
    calibration = perf.get("calibration")
    if calibration:
        rows = [[_e(m), _e(v)] for m, v in (calibration.get("metrics") or {}).items()]
        parts.append("<h3>Calibration and decision threshold</h3>" + _table(["metric", "value"], rows))
        bins = [
            [
                _e(f"{b['lower']:.2f} .. {b['upper']:.2f}"),
                _e(b["rows"]),
                _e(b["mean_predicted"]),
                _e(b["observed"]),
            ]
            for b in calibration.get("reliability") or []
        ]
        if bins:
            parts.append(_table(["score bin", "rows", "mean predicted", "observed"], bins))
    return "".join(parts)


def _interval(m: dict[str, Any]) -> str:
    ci = m.get("ci") or [None, None]
    return f"{_e(ci[0])} .. {_e(ci[1])}"


def _fairness_section(s: dict[str, Any]) -> str:
    """Per protected attribute and group: rates, metrics with intervals and bands, verdicts."""
    fairness = s.get("fairness")
    if not fairness or not fairness.get("attributes"):
        return ""
    parts = [
        f"<h2>Fairness</h2><p>{_e(fairness.get('rows'))} rows, {_e(fairness.get('labelled_rows'))} "
        f"labelled; bootstrap intervals ({_e(fairness.get('resamples'))} resamples), bias when an "
        "interval lies wholly outside its band</p>"
    ]
    for name, attr in fairness["attributes"].items():
        level = attr.get("interval_level")
        note = f" — {_e(attr['note'])}" if attr.get("note") else ""
        parts.append(
            f"<h3>{_e(name)}</h3><p>reference group {_e(attr.get('reference_group'))} "
            f"({_e(attr.get('reference_source'))}); intervals at {_e(level)} simultaneous{note}</p>"
        )
        rows = []
        for group, g in attr["groups"].items():
            for metric, m in (g.get("metrics") or {}).items():
                band = m.get("band") or [None, None]
                rows.append([
                    _e(group), _e(g.get("rows")), _e(g.get("selection_rate")), _e(metric), _e(m.get("value")),
                    _interval(m), f"{_e(band[0])} .. {_e(band[1])}", _e(m.get("baseline")),
                    _flag(bool(m.get("bias")), ("bias", "ok")),
                    _flag(bool(m.get("drifted")), ("moved", "ok")),
                ])
        parts.append(_table(
            ["group", "rows", "selection rate", "metric", "value", "interval", "band", "baseline", "", ""],
            rows,
        ))
    disparity = fairness.get("explanation_disparity")
    if disparity:
        rows = [
            [_e(r["attribute"]), _e(r["group"]), _e(r["compared_with"]), _e(r["distance"]),
             _e(r["threshold"]), _e(r["p_value"]), _e(", ".join(list(r.get("group_reasons") or {})[:3])),
             _flag(bool(r["finding"]), ("differs", "ok"))]
            for r in disparity.get("reasons") or []
        ]
        rows += [
            [_e(i["attribute"]), _e(i["group"]), f"influence of {_e(i['feature'])}", _e(i["statistic"]),
             _e(i["threshold"]), _e(i["p_value"]), "", _flag(bool(i["finding"]), ("proxy?", "ok"))]
            for i in disparity.get("influence") or []
        ]
        parts.append(
            f"<h3>Explanation disparity</h3><p>{_e(disparity.get('unfavorable_rows'))} unfavorable "
            f"decisions with reasons; thresholds from {_e(disparity.get('permutations'))} permutations</p>"
            + _table(
                ["attribute", "group", "compared with", "distance / t", "threshold", "p", "top reasons", ""],
                rows,
            )
        )
    return "".join(parts)


def _segments_section(s: dict[str, Any]) -> str:
    """The window's segments: rows, share, prediction rate or mean, drift, realized performance."""
    segments = s.get("segments")
    if not segments or not segments.get("segments"):
        return ""
    rows = [
        [
            _e(g["name"]), _e(g["rows"]), _e(g["share"]),
            _e(g["prediction_rate"] if g.get("prediction_rate") is not None else g.get("prediction_mean")),
            _e(g.get("baseline_rate") if g.get("baseline_rate") is not None else g.get("baseline_mean")),
            _e(g.get("drift_p_value")), _flag(bool(g.get("drifted"))),
            _e(", ".join(f"{k} {v:.3g}" for k, v in (g.get("realized") or {}).items() if v is not None)),
        ]
        for g in segments["segments"]
    ]
    dropped = f", {_e(segments.get('dropped'))} more not shown" if segments.get("dropped") else ""
    weighted = " (weighted: stratified sample)" if segments.get("weighted") else ""
    return (
        f"<h2>Segments</h2><p>{len(segments['segments'])} segments of at least "
        f"{_e(segments.get('min_rows'))} rows{dropped}{weighted}; drift of the prediction per segment at "
        f"p &lt; {_e(segments.get('p_value'))} / {_e(segments.get('tested'))}</p>"
        + _table(
            ["segment", "rows", "share", "prediction rate / mean", "baseline", "drift p", "", "realized"],
            rows,
        )
    )


def _raw(text: str) -> str:
    """A quarantined raw row, secrets masked and cut to RAW_CHARS, escaped."""
    from monitor.logs import mask

    shown = mask(text)
    if len(shown) > RAW_CHARS:
        shown = f"{shown[:RAW_CHARS]}… ({len(text)} characters)"
    return f"<code>{html.escape(shown)}</code>"


def _quality_section(s: dict[str, Any], counts: dict[str, int], samples: list[QuarantinedRow]) -> str:
    """Rows quarantined for the window (by reason, with samples) and the data-quality findings."""
    reasons = {**counts, **(s.get("reasons") or {})}
    parts = ["<h2>Data quality and quarantine</h2>"]
    if reasons:
        total = sum(reasons.values())
        parts.append(f"<p>{total} row(s) of this window were quarantined (counted by reason; "
                     "rows are kept with their reason, never dropped silently)</p>")
        parts.append(_table(["reason", "rows"],
                            [[_e(r), _e(n)] for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]))
    else:
        parts.append("<p class='ok'>no row was quarantined for this window</p>")
    if samples:
        rows = [[_e(q.reason), _e(q.detail), _e(q.source), _raw(q.raw)] for q in samples]
        parts.append("<p class='muted'>a few quarantined rows as received "
                     "(secrets masked, long rows cut)</p>")
        parts.append(_table(["reason", "detail", "source", "raw row"], rows))
    quality = s.get("quality") or {}
    findings = []
    for name, share in (quality.get("missing_increase") or {}).items():
        findings.append([_e(name), "more missing values than the baseline", _e(share)])
    for name, share in (quality.get("out_of_range") or {}).items():
        findings.append([_e(name), "rows outside the baseline's range", _e(share)])
    for name, unseen in (quality.get("unseen") or {}).items():
        findings.append([_e(name), "categories the baseline never saw", _e(unseen)])
    for name in quality.get("constant") or []:
        findings.append([_e(name), "constant in the window", ""])
    for name in quality.get("all_missing") or []:
        findings.append([_e(name), "missing in every row", ""])
    if findings:
        parts.append(_table(["feature", "finding", "value"], findings))
    return "".join(parts)


def _history_section(
    history: list[tuple[Any, list[Any]]], alert_href: Callable[[int], str] | None = None
) -> str:
    if not history:
        return ("<h2>Alerts and feedback</h2>"
                "<p class='muted'>no alert was raised, re-fired or resolved by this run</p>")
    rows = []
    for alert, feedback in history:
        answers = [
            f"{_e(fb.user_name or fb.user_id)}: {_e(fb.verdict)}"
            + (f" — {_e(fb.comment)}" if fb.comment else "")
            for fb in feedback
        ]
        ident = (f"<a href='{html.escape(alert_href(alert.id), quote=True)}'>{alert.id}</a>"
                 if alert_href else str(alert.id))
        rows.append(
            [
                ident,
                _e(alert.last_fired_at.isoformat()),
                _e(alert.kind),
                _e(alert.title),
                _e(alert.status),
                "<br>".join(answers) or "<span class='muted'>no feedback</span>",
            ]
        )
    return "<h2>Alerts of this run and feedback</h2>" + _table(
        ["id", "last fired", "kind", "what", "status", "feedback"], rows
    )


def _chart(name: str, data: Any, alt: str) -> str:
    from monitor import charts

    try:
        return _png(getattr(charts, name)(data), alt)
    except Exception:  # noqa: BLE001 - a report without one chart is still a report
        log.exception("chart %s could not be drawn", name)
        return f"<p class='muted'>({html.escape(alt)}: chart unavailable)</p>"


def _evidently_section(
    settings: Settings, engine: Engine, model_name: str, start: Any, end: Any, baseline: Any
) -> str:
    from monitor.drift import render_html
    from monitor.intake import read_window

    cfg = settings.model(model_name)
    window = read_window(cfg, engine, start, end)
    if window.frame.empty:
        return (
            "<h2>Evidently drift report</h2><p class='muted'>the window has no rows any more (retention?)</p>"
        )
    page = render_html(
        baseline.sample,
        window.frame.reset_index(drop=True),
        numeric=cfg.features.numeric,
        categorical=cfg.features.categorical,
    )
    return (
        "<h2>Evidently drift report</h2>"
        # Evidently's script reads localStorage: without allow-same-origin the sandboxed
        # document has an opaque origin, the script throws and Chromium shows a blank frame
        "<iframe sandbox='allow-scripts allow-same-origin' "
        f"srcdoc=\"{html.escape(page, quote=True)}\"></iframe>"
    )
