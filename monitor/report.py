"""`monitor report RUN_ID`: one self-contained HTML page for a run.

What the run found (drift per feature, prediction drift, attribution shift,
performance, data quality and the rows quarantined, with a few masked samples), charts
of baseline vs current importance and of drift scores (the same PNG charts Slack shows,
from `monitor.charts`), the alerts this run opened, re-fired or resolved with their
feedback, and Evidently's own interactive drift report for the window. Every value is
escaped (`monitor.ui.markup`); Evidently's page sits in an opaque-origin sandboxed frame,
and the file's Content-Security-Policy allows no script but Evidently's own, by hash.
"""

from __future__ import annotations

import base64
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
from monitor.ui.markup import csp_meta, e, file_csp, link, script_hashes

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
    title, body, scripts = _report(settings, engine, run_id, evidently=evidently)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{csp_meta(file_csp(scripts))}"
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def build_report_parts(
    settings: Settings, engine: Engine, run_id: int, *, evidently: bool = True,
    alert_href: Callable[[int], str] | None = None,
) -> tuple[str, str]:
    """(title, body HTML) of the report of run `run_id` (the dashboard's run page wraps
    the body in its own layout; `alert_href` turns alert ids into links)."""
    title, body, _ = _report(settings, engine, run_id, evidently=evidently, alert_href=alert_href)
    return title, body


def _report(
    settings: Settings, engine: Engine, run_id: int, *, evidently: bool = True,
    alert_href: Callable[[int], str] | None = None,
) -> tuple[str, str, list[str]]:
    """(title, body HTML, CSP hashes of the scripts the body's Evidently frame runs)."""
    scripts: list[str] = []
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
            section, scripts = _evidently_section(settings, engine, model_name, start, end, baseline)
            parts.append(section)
    body = "\n".join(p for p in parts if p)
    return f"monitor report: {model_name} run {run_id}", body, scripts


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


def _png(data: bytes, alt: str) -> str:
    return f"<img alt='{e(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _header(model: str, run_id: int, start: Any, end: Any, status: str, s: dict[str, Any]) -> str:
    cls = "bad" if status == "failed" else "ok"
    error = f"<p class='bad'>{e(s.get('error'))}</p>" if s.get("error") else ""
    return (
        f"<h1>{e(model)} — run {run_id}</h1><p>window {e(start.isoformat())} .. {e(end.isoformat())}"
        f" · status <span class='{cls}'>{e(status)}</span> · {e(s.get('rows', 0))} rows, "
        f"{e(s.get('sampled', 0))} sampled, {e(s.get('quarantined', 0))} quarantined</p>{error}"
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
    calibrated = any(f.get("p_value") is not None for _, f in ordered)
    rows = [
        [e(n), e(f["method"]), e(f["score"]), e(f["threshold"]),
         *([_sure(f)] if calibrated else []), _flag(f["drifted"])]
        for n, f in ordered
    ]
    pred = s.get("prediction_drift")
    pred_line = ""
    if pred:
        pred_line = (
            f"<p>prediction drift: {e(pred['method'])} score {e(pred['score'])} "
            f"(threshold {e(pred['threshold'])}"
            + (f"; {_sure(pred)}" if pred.get("p_value") is not None else "")
            + f") — {_flag(pred['drifted'])}</p>"
        )
    chart = _chart("drift_chart", drift["features"], "drift scores against thresholds")
    verdict = "dataset drift" if drift["dataset_drift"] else "no dataset drift"
    how = ("<p class='muted'>A feature drifted when its p-value is below its level (its share of the "
           "alert budget) and its score reaches the threshold; a continuous feature's p-value is "
           "the K-S test's, a discrete one's an exact permutation test's.</p>") if calibrated else ""
    return (
        f"<h2>Drift</h2><p>{verdict}: {e(drift['drift_share'])} of features drifted "
        f"(threshold {e(drift['share_threshold'])})</p>{pred_line}{chart}{how}"
        + _table(["feature", "test", "score", "threshold", *(["how sure"] if calibrated else []), ""],
                 rows)
    )


def _sure(f: dict[str, Any]) -> str:
    """A calibrated verdict's evidence: p-value against its level, which test decided, and
    the smallest shift the window would have caught."""
    if f.get("p_value") is None:
        return "<span class='muted'>not calibrated</span>"
    text = f"p = {f['p_value']:.2g} (level {f['alpha']:.2g}"
    if f.get("decided_by") and f.get("decided_by") != f.get("method"):
        text += f", by {f['decided_by']}"
    text += ")"
    if f.get("min_detectable_shift") is not None:
        text += f"; catches {f['min_detectable_shift']:.2g} {f.get('shift_unit') or ''}".rstrip()
    return e(text)


def _attribution_section(s: dict[str, Any]) -> str:
    attribution = s.get("attribution")
    if not attribution:
        return ""
    ordered = sorted(attribution["features"].items(), key=lambda kv: -(kv[1].get("current") or 0))
    rows = [[e(n), e(f.get("baseline")), e(f.get("current")), e(f.get("change"))] for n, f in ordered]
    chart = _chart("importance_chart", attribution["features"], "baseline vs current importance")
    shifted = " — <span class=bad>the reasoning shifted</span>" if attribution.get("drifted") else ""
    return (
        f"<h2>Why the model decides (attributions: {e(attribution['method'])})</h2>"
        f"<p>nDCG of the importance ranking against the baseline: {e(attribution.get('ndcg'))}{shifted}</p>"
        + chart
        + _table(["feature", "baseline importance", "current", "relative change"], rows)
    )


def _performance_section(s: dict[str, Any]) -> str:
    perf = s.get("performance")
    if not perf:
        return ""
    parts = [
        f"<h2>Performance</h2><p>labelled rows: {e(perf.get('labelled_rows'))}, "
        f"revision {e(perf.get('revision'))}</p>"
    ]
    realized = perf.get("realized")
    if realized:
        rows = [
            [
                e(m),
                e(v.get("baseline")),
                e(v.get("current")),
                e(v.get("ci")),
                _flag(bool(v.get("degraded")), ("degraded", "ok")),
            ]
            for m, v in realized.items()
        ]
        parts.append("<h3>Realized</h3>" + _table(["metric", "baseline", "window", "interval", ""], rows))
    estimated = perf.get("estimated")
    if estimated:
        rows = [
            [
                e(m),
                e(v.get("baseline")),
                e(v.get("value")),
                e(f"{v.get('lower')} .. {v.get('upper')}"),
                _flag(bool(v.get("degraded")), ("degraded", "ok")),
            ]
            for m, v in (estimated.get("metrics") or {}).items()
        ]
        parts.append(
            f"<h3>Estimated ({e(str(estimated.get('method', '')).upper())}, assuming no concept drift)</h3>"
            + _table(["metric", "baseline", "estimate", "band", ""], rows)
        )
    calibration = perf.get("calibration")
    if calibration:
        rows = [[e(m), e(v)] for m, v in (calibration.get("metrics") or {}).items()]
        parts.append("<h3>Calibration and decision threshold</h3>" + _table(["metric", "value"], rows))
        bins = [
            [
                e(f"{b['lower']:.2f} .. {b['upper']:.2f}"),
                e(b["rows"]),
                e(b["mean_predicted"]),
                e(b["observed"]),
            ]
            for b in calibration.get("reliability") or []
        ]
        if bins:
            parts.append(_table(["score bin", "rows", "mean predicted", "observed"], bins))
    return "".join(parts)


def _interval(m: dict[str, Any]) -> str:
    ci = m.get("ci") or [None, None]
    return f"{e(ci[0])} .. {e(ci[1])}"


def _fairness_section(s: dict[str, Any]) -> str:
    """Per protected attribute and group: rates, metrics with intervals and bands, verdicts."""
    fairness = s.get("fairness")
    if not fairness or not fairness.get("attributes"):
        return ""
    parts = [
        f"<h2>Fairness</h2><p>{e(fairness.get('rows'))} rows, {e(fairness.get('labelled_rows'))} "
        f"labelled; bootstrap intervals ({e(fairness.get('resamples'))} resamples), bias when an "
        "interval lies wholly outside its band</p>"
    ]
    for name, attr in fairness["attributes"].items():
        level = attr.get("interval_level")
        note = f" — {e(attr['note'])}" if attr.get("note") else ""
        parts.append(
            f"<h3>{e(name)}</h3><p>reference group {e(attr.get('reference_group'))} "
            f"({e(attr.get('reference_source'))}); intervals at {e(level)} simultaneous{note}</p>"
        )
        rows = []
        for group, g in attr["groups"].items():
            for metric, m in (g.get("metrics") or {}).items():
                band = m.get("band") or [None, None]
                rows.append([
                    e(group), e(g.get("rows")), e(g.get("selection_rate")), e(metric), e(m.get("value")),
                    _interval(m), f"{e(band[0])} .. {e(band[1])}", e(m.get("baseline")),
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
            [e(r["attribute"]), e(r["group"]), e(r["compared_with"]), e(r["distance"]),
             _then(r.get("baseline_distance")), e(r["threshold"]), e(r["p_value"]),
             e(", ".join(list(r.get("group_reasons") or {})[:3])),
             _flag(bool(r["finding"]), ("differs", "ok"))]
            for r in disparity.get("reasons") or []
        ]
        rows += [
            [e(i["attribute"]), e(i["group"]), f"influence of {e(i['feature'])}",
             f"{e(i['group_mean_abs'])} vs {e(i['other_mean_abs'])}",
             _then(i.get("baseline_group_mean_abs"), i.get("baseline_other_mean_abs")),
             e(i["threshold"]), e(i["p_value"]), f"statistic {e(i['statistic'])}",
             _flag(bool(i["finding"]), ("proxy?", "ok"))]
            for i in disparity.get("influence") or []
        ]
        parts.append(
            f"<h3>Explanation disparity</h3><p>{e(disparity.get('unfavorable_rows'))} unfavorable "
            f"decisions with reasons; thresholds from {e(disparity.get('permutations'))} permutations. "
            "Where the baseline has both sides, a gap between groups is judged by how much it grew "
            "since the baseline (threshold and p are about the growth)</p>"
            + _table(
                ["attribute", "group", "compared with", "gap now", "gap in the baseline", "threshold",
                 "p", "top reasons", ""],
                rows,
            )
        )
    return "".join(parts)


def _then(*values: Any) -> str:
    """The baseline's side of a gap ("-": judged on the gap itself, no baseline)."""
    if all(v is None for v in values):
        return "<span class='muted'>-</span>"
    return " vs ".join(e(v) for v in values)


def _segments_section(s: dict[str, Any]) -> str:
    """The window's segments: rows, share, prediction rate or mean, drift, realized performance."""
    segments = s.get("segments")
    if not segments or not segments.get("segments"):
        return ""
    rows = [
        [
            e(g["name"]), e(g["rows"]), e(g["share"]),
            e(g["prediction_rate"] if g.get("prediction_rate") is not None else g.get("prediction_mean")),
            e(g.get("baseline_rate") if g.get("baseline_rate") is not None else g.get("baseline_mean")),
            e(g.get("drift_p_value")), _flag(bool(g.get("drifted"))),
            e(", ".join(f"{k} {v:.3g}" for k, v in (g.get("realized") or {}).items() if v is not None)),
        ]
        for g in segments["segments"]
    ]
    dropped = f", {e(segments.get('dropped'))} more not shown" if segments.get("dropped") else ""
    weighted = " (weighted: stratified sample)" if segments.get("weighted") else ""
    return (
        f"<h2>Segments</h2><p>{len(segments['segments'])} segments of at least "
        f"{e(segments.get('min_rows'))} rows{dropped}{weighted}; drift of the prediction per segment at "
        f"p &lt; {e(segments.get('p_value'))} / {e(segments.get('tested'))}</p>"
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
    return f"<code>{e(shown)}</code>"


def _quality_section(s: dict[str, Any], counts: dict[str, int], samples: list[QuarantinedRow]) -> str:
    """Rows quarantined for the window (by reason, with samples) and the data-quality findings."""
    reasons = {**counts, **(s.get("reasons") or {})}
    parts = ["<h2>Data quality and quarantine</h2>"]
    if reasons:
        total = sum(reasons.values())
        parts.append(f"<p>{total} row(s) of this window were quarantined (counted by reason; "
                     "rows are kept with their reason, never dropped silently)</p>")
        parts.append(_table(["reason", "rows"],
                            [[e(r), e(n)] for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]))
    else:
        parts.append("<p class='ok'>no row was quarantined for this window</p>")
    if samples:
        rows = [[e(q.reason), e(q.detail), e(q.source), _raw(q.raw)] for q in samples]
        parts.append("<p class='muted'>a few quarantined rows as received "
                     "(secrets masked, long rows cut)</p>")
        parts.append(_table(["reason", "detail", "source", "raw row"], rows))
    quality = s.get("quality") or {}
    findings = []
    for name, share in (quality.get("missing_increase") or {}).items():
        findings.append([e(name), "more missing values than the baseline", e(share)])
    for name, share in (quality.get("out_of_range") or {}).items():
        findings.append([e(name), "rows outside the baseline's range", e(share)])
    for name, unseen in (quality.get("unseen") or {}).items():
        findings.append([e(name), "categories the baseline never saw", e(unseen)])
    for name in quality.get("constant") or []:
        findings.append([e(name), "constant in the window", ""])
    for name in quality.get("all_missing") or []:
        findings.append([e(name), "missing in every row", ""])
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
            f"{e(fb.user_name or fb.user_id)}: {e(fb.verdict)}"
            + (f" — {e(fb.comment)}" if fb.comment else "")
            for fb in feedback
        ]
        ident = link(alert_href(alert.id), alert.id) if alert_href else e(alert.id)
        rows.append(
            [
                ident,
                e(alert.last_fired_at.isoformat()),
                e(alert.kind),
                e(alert.title),
                e(alert.status),
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
        return f"<p class='muted'>({e(alt)}: chart unavailable)</p>"


def _evidently_section(
    settings: Settings, engine: Engine, model_name: str, start: Any, end: Any, baseline: Any
) -> tuple[str, list[str]]:
    """(the section, CSP hashes of the scripts of Evidently's page): the page sits in a
    sandboxed srcdoc frame without allow-same-origin, an opaque origin that cannot reach
    the report (nor, opened from the dashboard's origin, the dashboard)."""
    from monitor.drift import render_html
    from monitor.intake import read_window

    cfg = settings.model(model_name)
    window = read_window(cfg, engine, start, end)
    if window.frame.empty:
        return ("<h2>Evidently drift report</h2>"
                "<p class='muted'>the window has no rows any more (retention?)</p>", [])
    page = render_html(
        baseline.sample,
        window.frame.reset_index(drop=True),
        numeric=cfg.features.numeric,
        categorical=cfg.features.categorical,
    )
    # a srcdoc document inherits the report's policy: its scripts are allowed by hash
    section = ("<h2>Evidently drift report</h2><iframe sandbox='allow-scripts' "
               f"title='Evidently drift report' srcdoc=\"{e(page)}\"></iframe>")
    return section, script_hashes(page)
