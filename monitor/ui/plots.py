"""Plotly figures (plain dicts) for the dashboard: built here, drawn by plotly.js in the page.

No Python plotly import: a figure is `{"data": [...], "layout": {...}}` serialized with
orjson. Times are UTC, written without an offset (plotly.js ignores offsets). A point
whose `customdata` is a run id opens that run when clicked (a /ui/ URL opens that page).
Plotly reads tags in text as its own markup: text from data (titles, comments, group and
category values) is escaped with `e`, which plotly shows back as the characters typed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.charts import drift_strength, is_p_value
from monitor.store.dashboard import FeedbackPoint, ImportancePoint, RunPoint, ScorePoint
from monitor.ui.markup import e

#: drift strength is clipped here on the heatmap so one huge value does not wash out the rest
STRENGTH_CAP = 3.0
#: lines drawn at first on the importance chart (the others are in the legend)
SHOWN_LINES = 8
#: above this many points per line, markers are left out (thousands of SVG nodes are slow)
MARKERS_UP_TO = 200
SEVERITY_COLORS = {"critical": "#b00020", "warning": "#e67e22", "info": "#1f77b4"}


def t(moment: datetime) -> str:
    """A UTC time as plotly.js reads it."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _layout(title: str, since: datetime, until: datetime, height: int, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "height": height,
        "margin": {"l": 150, "r": 60, "t": 40, "b": 40},
        "xaxis": {"range": [t(since), t(until)], "type": "date", "title": {"text": "window end (UTC)"}},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.25},
    }
    layout.update(extra)
    return layout


def event_shapes(alerts: Sequence[Any], feedback: Sequence[FeedbackPoint]) -> list[dict[str, Any]]:
    """Vertical lines at each alert's opening (colored by severity) and each answer (dotted)."""
    shapes = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": t(a.opened_at), "x1": t(a.opened_at),
         "y0": 0, "y1": 1, "line": {"color": SEVERITY_COLORS.get(a.severity, "#888"), "width": 1}}
        for a in alerts
    ]
    shapes += [
        {"type": "line", "xref": "x", "yref": "paper", "x0": t(f.at), "x1": t(f.at), "y0": 0, "y1": 1,
         "line": {"color": "#2ca02c", "width": 1, "dash": "dot"}}
        for f in feedback
    ]
    return shapes


def events_figure(alerts: Sequence[Any], feedback: Sequence[FeedbackPoint], since: datetime,
                  until: datetime) -> dict[str, Any]:
    """Alerts (by severity) and feedback as markers on the time axis; click opens the alert."""
    data: list[dict[str, Any]] = []
    by_severity: dict[str, list[Any]] = defaultdict(list)
    for alert in alerts:
        by_severity[alert.severity].append(alert)
    for severity, group in sorted(by_severity.items()):
        data.append({
            "type": "scatter", "mode": "markers", "name": f"alert ({severity})",
            "x": [t(a.opened_at) for a in group], "y": ["alerts"] * len(group),
            "marker": {"symbol": "triangle-up", "size": 13, "color": SEVERITY_COLORS.get(severity, "#888")},
            "text": [e(f"alert {a.id}: {a.title} [{a.status}]") for a in group],
            "customdata": [f"/ui/alerts/{a.id}" for a in group],
            "hovertemplate": "%{x}<br>%{text}<extra></extra>",
        })
    if feedback:
        data.append({
            "type": "scatter", "mode": "markers", "name": "feedback",
            "x": [t(f.at) for f in feedback], "y": ["feedback"] * len(feedback),
            "marker": {"symbol": "circle", "size": 10, "color": "#2ca02c"},
            "text": [e(f"{f.who}: {f.verdict} on alert {f.alert_id}"
                       + (f" — {f.comment}" if f.comment else "")) for f in feedback],
            "customdata": [f"/ui/alerts/{f.alert_id}" for f in feedback],
            "hovertemplate": "%{x}<br>%{text}<extra></extra>",
        })
    layout = _layout("Alerts and feedback (click one to open it)", since, until, 170,
                     yaxis={"categoryorder": "array", "categoryarray": ["feedback", "alerts"]})
    return {"data": data, "layout": layout}


def drift_figure(scores: Sequence[ScorePoint], ends: dict[int, datetime], since: datetime,
                 until: datetime, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """Heatmap feature x window of drift strength (1 = threshold; p-value tests on a
    -log10 scale); hover shows the test, its score or p-value and the threshold."""
    cells: dict[str, dict[int, ScorePoint]] = defaultdict(dict)
    seen: set[int] = set()
    for s in scores:
        if s.scope not in ("feature", "prediction") or s.run_id not in ends:
            continue
        key = s.feature if s.scope == "feature" and s.feature else "(prediction)"
        cells[key][s.run_id] = s
        seen.add(s.run_id)
    runs = sorted(seen, key=lambda r: ends[r])
    p_tests = {m: is_p_value({"method": m}) for m in {s.method for s in scores}}
    names = sorted(n for n in cells if n != "(prediction)")[::-1]
    if "(prediction)" in cells:
        names.append("(prediction)")
    z, text = [], []
    for name in names:
        row, hover = [], []
        for run in runs:
            s = cells[name].get(run)
            if s is None:
                row.append(None)
                hover.append("")
                continue
            p = p_tests[s.method]
            strength = drift_strength(s.score, s.threshold, p)
            row.append(None if strength is None else round(min(strength, STRENGTH_CAP), 3))
            hover.append(f"{s.method} {'p' if p else 'score'} {_g(s.score)} / {_g(s.threshold)}"
                         + (" drifted" if s.drifted else ""))
        z.append(row)
        text.append(hover)
    urls = [runs for _ in names]  # run ids: a click opens /ui/runs/ID
    data = [{
        "type": "heatmap", "x": [t(ends[r]) for r in runs], "y": names, "z": z, "text": text,
        "customdata": urls, "zmin": 0, "zmax": STRENGTH_CAP, "xgap": 0, "ygap": 1,
        "colorscale": [[0, "#f7fbff"], [0.3, "#c6dbef"], [1 / STRENGTH_CAP, "#fdd49e"],
                       [0.6, "#fc8d59"], [1, "#b30000"]],
        "colorbar": {"title": {"text": "score /<br>threshold"}, "tickvals": [0, 1, 2, 3],
                     "ticktext": ["0", "1 = threshold", "2", "≥3"]},
        "hovertemplate": "%{y} @ %{x}<br>%{text}<br>strength %{z}<extra>click: run</extra>",
    }]
    height = max(220, 22 * len(names) + 110)
    title = "Feature drift against its threshold (≥ 1 = drifted; p-values as log10 p / log10 threshold)"
    layout = _layout(title, since, until, height, shapes=shapes)
    return {"data": data, "layout": layout}


def importance_figure(points: Sequence[ImportancePoint], ends: dict[int, datetime], since: datetime,
                      until: datetime, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """One line per feature: its mean |attribution| per window (click: the run)."""
    series: dict[str, list[ImportancePoint]] = defaultdict(list)
    for p in points:
        if p.run_id in ends:
            series[p.feature].append(p)
    times = {r: t(end) for r, end in ends.items()}
    # the most important features are drawn; the others are one legend click away
    ranked = sorted(series, key=lambda n: -sum(p.current for p in series[n]) / len(series[n]))
    shown = set(ranked[:SHOWN_LINES])
    data = [
        {"type": "scatter", "mode": _mode(len(ps)), "name": e(name), "marker": {"size": 4},
         "visible": True if name in shown else "legendonly",
         "x": [times[p.run_id] for p in ps], "y": [round(p.current, 5) for p in ps],
         "customdata": [p.run_id for p in ps],
         "hovertemplate": f"{e(name)}<br>%{{x}}<br>importance %{{y:.4g}}<extra>click: run</extra>"}
        for name, ps in sorted(series.items(), key=lambda kv: ranked.index(kv[0]))
    ]
    hidden = f" (top {SHOWN_LINES} drawn; click a name to add it)" if len(ranked) > SHOWN_LINES else ""
    layout = _layout(f"Attribution importance per feature (mean |attribution| of the window){hidden}",
                     since, until, 320, shapes=shapes, yaxis={"title": {"text": "mean |attribution|"}})
    return {"data": data, "layout": layout}


def performance_figure(scores: Sequence[ScorePoint], ends: dict[int, datetime], since: datetime,
                       until: datetime, shapes: list[dict[str, Any]],
                       revisions: dict[int, tuple[int, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Realized metrics per window (solid) against the baseline's value (dashed): each
    window's latest revision (labels that arrived later revise it)."""
    # metric -> run id -> (value, baseline, degraded, revision)
    series: dict[str, dict[int, tuple[Any, Any, bool, int]]] = defaultdict(dict)
    for s in scores:
        if s.scope == "performance" and s.score is not None and s.run_id in ends:
            series[s.feature or s.method][s.run_id] = (s.score, s.threshold, s.drifted, 0)
    for run_id, (revision, realized) in (revisions or {}).items():
        if run_id not in ends:
            continue
        for name, m in realized.items():
            if isinstance(m, dict) and m.get("current") is not None:
                series[name][run_id] = (m["current"], m.get("baseline"), bool(m.get("degraded")), revision)
    times = {r: t(end) for r, end in ends.items()}
    data: list[dict[str, Any]] = []
    for name, points in sorted(series.items()):
        ids = sorted(points, key=lambda r: times[r])
        x = [times[r] for r in ids]
        data.append({"type": "scatter", "mode": _mode(len(ids)), "name": name, "legendgroup": name,
                     "x": x, "y": [points[r][0] for r in ids], "marker": {"size": 4,
                     "color": ["#d62728" if points[r][2] else "#1f77b4" for r in ids]},
                     "customdata": ids, "text": [f"revision {points[r][3]}" for r in ids],
                     "hovertemplate": f"{name}<br>%{{x}}<br>window %{{y:.4g}} (%{{text}})"
                                      "<extra>click: run</extra>"})
        data.append({"type": "scatter", "mode": "lines", "name": f"{name} (baseline)", "legendgroup": name,
                     "x": x, "y": [points[r][1] for r in ids],
                     "line": {"dash": "dash", "width": 1}, "hoverinfo": "skip"})
    layout = _layout("Performance per window (realized, latest revision; red = degraded) "
                     "against the baseline (dashed)", since, until, 300, shapes=shapes)
    return {"data": data, "layout": layout}


def estimated_figure(scores: Sequence[ScorePoint], upper: dict[tuple[int, str], float],
                     ends: dict[int, datetime], since: datetime, until: datetime,
                     shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """Performance estimated without labels per window, with its band (shaded), red where
    the whole band is beyond the allowed change."""
    series: dict[str, list[ScorePoint]] = defaultdict(list)
    for s in scores:
        if s.scope == "estimated" and s.score is not None and s.run_id in ends:
            series[s.method].append(s)
    times = {r: t(end) for r, end in ends.items()}
    data: list[dict[str, Any]] = []
    for name, ps in sorted(series.items()):
        x = [times[p.run_id] for p in ps]
        data.append({"type": "scatter", "mode": "lines", "x": x, "legendgroup": name, "showlegend": False,
                     "y": [upper.get((p.run_id, name), p.score) for p in ps], "line": {"width": 0},
                     "hoverinfo": "skip"})
        data.append({"type": "scatter", "mode": "lines", "x": x, "legendgroup": name, "showlegend": False,
                     "y": [p.threshold if p.threshold is not None else p.score for p in ps],
                     "fill": "tonexty", "line": {"width": 0}, "hoverinfo": "skip",
                     "fillcolor": "rgba(31,119,180,0.15)"})
        data.append({"type": "scatter", "mode": _mode(len(ps)), "name": f"{name} (estimated)",
                     "legendgroup": name, "x": x, "y": [p.score for p in ps],
                     "customdata": [p.run_id for p in ps],
                     "marker": {"size": 4, "color": ["#d62728" if p.drifted else "#1f77b4" for p in ps]},
                     "hovertemplate": f"{name}<br>%{{x}}<br>estimated %{{y:.4g}}<extra>click: run</extra>"})
    layout = _layout("Performance estimated without labels (band shaded; assumes no concept drift)",
                     since, until, 300, shapes=shapes)
    return {"data": data, "layout": layout}


def fairness_figure(scores: Sequence[ScorePoint], ends: dict[int, datetime], since: datetime,
                    until: datetime, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each protected group's fairness metrics per window, red where the interval lay
    wholly outside the allowed band (bias)."""
    series: dict[str, list[ScorePoint]] = defaultdict(list)
    for s in scores:
        if s.scope == "fairness" and s.score is not None and s.run_id in ends:
            series[f"{s.feature} · {s.method}"].append(s)
    times = {r: t(end) for r, end in ends.items()}
    data = [{"type": "scatter", "mode": _mode(len(ps)), "name": e(name), "x": [times[p.run_id] for p in ps],
             "y": [p.score for p in ps], "customdata": [p.run_id for p in ps],
             "marker": {"size": 4, "color": ["#d62728" if p.drifted else "#1f77b4" for p in ps]},
             "hovertemplate": f"{e(name)}<br>%{{x}}<br>%{{y:.4g}}<extra>click: run</extra>"}
            for name, ps in sorted(series.items())]
    layout = _layout("Fairness per protected group (red = bias: interval outside the band)",
                     since, until, 320, shapes=shapes)
    return {"data": data, "layout": layout}


def volume_figure(runs: Sequence[RunPoint], since: datetime, until: datetime,
                  shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows per window (bars, colored by run status) and the quarantine rate (line, right axis)."""
    colors = {"succeeded": "#7f7f7f", "failed": "#d62728", "insufficient_data": "#e6b800"}
    rate = [r.quarantined / (r.rows + r.quarantined) if (r.rows + r.quarantined) else 0.0 for r in runs]
    x = [t(r.end) for r in runs]
    ids = [r.id for r in runs]
    if len(runs) <= MARKERS_UP_TO:
        rows: dict[str, Any] = {
            "type": "bar", "marker": {"color": [colors.get(r.status, "#1f77b4") for r in runs]},
            "text": [r.status for r in runs]}
    else:  # hundreds of bars are hundreds of SVG nodes: a filled step line draws at once
        rows = {"type": "scatter", "mode": "lines", "fill": "tozeroy",
                "line": {"shape": "hv", "color": "#7f7f7f"}}
    data = [
        {**rows, "name": "valid rows", "x": x, "y": [r.rows for r in runs], "customdata": ids,
         "hovertemplate": "%{x}<br>%{y} rows<extra>click: run</extra>"},
        {"type": "scatter", "mode": "lines", "name": "quarantine rate", "yaxis": "y2",
         "x": x, "y": [round(v, 5) for v in rate], "line": {"color": "#b00020"}, "customdata": ids,
         "hovertemplate": "%{x}<br>%{y:.1%} quarantined<extra>click: run</extra>"},
    ]
    bad = [r for r in runs if r.status != "succeeded"]
    if bad and len(runs) > MARKERS_UP_TO:
        data.append({"type": "scatter", "mode": "markers", "name": "not succeeded",
                     "x": [t(r.end) for r in bad], "y": [r.rows for r in bad],
                     "customdata": [r.id for r in bad],
                     "marker": {"color": [colors.get(r.status, "#1f77b4") for r in bad], "size": 7},
                     "text": [r.status for r in bad],
                     "hovertemplate": "%{x}<br>%{text}: %{y} rows<extra>click: run</extra>"})
    layout = _layout("Rows per window (grey ok, red failed, yellow too few) and quarantine rate",
                     since, until, 280, shapes=shapes, bargap=0.1,
                     yaxis={"title": {"text": "rows"}},
                     yaxis2={"title": {"text": "quarantined"}, "overlaying": "y", "side": "right",
                             "tickformat": ".0%", "rangemode": "tozero"})
    return {"data": data, "layout": layout}


def contributions_figure(answer: dict[str, Any], top: int = 20) -> dict[str, Any]:
    """One request's signed contributions (green pushes the output up, red down)."""
    rows = list(answer["contributions"])[:top][::-1]
    labels = [e(f"{f} = {_g(v) if isinstance(v, int | float) else v}") for f, _, v in rows]
    values = [float(c) for _, c, _ in rows]
    base = answer.get("baseline_output")
    start = "?" if base is None else f"{base:.4g}"
    return {
        "data": [{"type": "bar", "orientation": "h", "x": values, "y": labels,
                  "marker": {"color": ["#2ca02c" if v > 0 else "#d62728" for v in values]},
                  "hovertemplate": "%{y}<br>contribution %{x:.4g}<extra></extra>"}],
        "layout": {"title": {"text": f"Contributions: baseline {start} → output {answer['output']:.4g}",
                             "x": 0.01, "font": {"size": 15}},
                   "height": max(220, 26 * len(rows) + 90), "margin": {"l": 220, "r": 30, "t": 40, "b": 40},
                   "xaxis": {"title": {"text": "contribution to the explained output"}, "zeroline": True}},
    }


def _mode(points: int) -> str:
    return "lines+markers" if points <= MARKERS_UP_TO else "lines"


def _g(value: Any) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return "n/a"
