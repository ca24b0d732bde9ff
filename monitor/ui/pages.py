"""HTML of the dashboard pages: pure functions of plain values, every value escaped.

No inline script (the Content-Security-Policy forbids it): charts are `<div data-figure>`
elements whose figure JSON sits in a `<script type="application/json">` data block;
/ui/static/ui.js, loaded by every page, draws them with the bundled plotly.js and turns
a click on a point whose customdata is a run id (or a /ui/ URL) into navigation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from monitor.ui.auth import Session
from monitor.ui.markup import e, link, script_json

__all__ = ["CSS", "JS", "e", "feedback_form", "figure", "link", "page", "query", "severity_pills", "table"]

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#20232a;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center;
flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600} header .who{margin-left:auto;font-size:.9rem}
main{padding:1rem 1.2rem;max-width:1280px;margin:auto}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;background:#fff;width:100%}
td,th{padding:.3rem .6rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top;font-size:.92rem}
.bad{color:#b00020;font-weight:600} .ok{color:#1b7f3b} .muted{color:#777} .warn{color:#b36b00}
.chart{background:#fff;border:1px solid #e5e5e5;margin:.6rem 0;min-height:120px}
form.inline{display:inline} .card{background:#fff;border:1px solid #e5e5e5;padding:.8rem;margin:.6rem 0}
button,input,select,textarea{font:inherit;padding:.25rem .5rem}
.pill{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8rem;background:#eee}
.critical{background:#fbd5da} .warning{background:#fde8c8} .info{background:#dbe9f8}
iframe{width:100%;height:1400px;border:1px solid #ddd}
img{max-width:100%}
@media (max-width:900px){td,th{font-size:.82rem;padding:.2rem .3rem} main{padding:.5rem}}
@media print{header form,header .who,.actions,form{display:none} body{background:#fff}
.chart{break-inside:avoid;border:none} iframe{display:none} a{color:inherit;text-decoration:none}}
"""

JS = """
(function(){
  function draw(){
    window.monitorDrawMs = {};
    if (window.Plotly) document.querySelectorAll('div[data-figure]').forEach(function(div){
      var began = performance.now();
      var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
      Plotly.newPlot(div, fig.data, fig.layout, {responsive:true, displaylogo:false});
      window.monitorDrawMs[div.id] = Math.round(performance.now() - began);
      div.on('plotly_click', function(ev){
        var cd = ev.points && ev.points[0] && ev.points[0].customdata;
        if (typeof cd === 'number') { window.location.href = '/ui/runs/' + cd; }
        else if (typeof cd === 'string' && cd.indexOf('/ui/') === 0) { window.location.href = cd; }
      });
    });
    document.body.dataset.ready = '1';
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', draw); else draw();
})();
"""


def table(head: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "nothing") -> str:
    """An HTML table; cells are already escaped HTML."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f"<p class='muted'>{e(empty)}</p>"
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>"


def figure(name: str, fig: dict[str, Any]) -> str:
    """A chart placeholder and its figure JSON in a data block (never executed; `<`, `>`
    and `&` escaped so no value can end the element)."""
    return (f"<div class='chart' id='chart-{e(name)}' data-figure='fig-{e(name)}'></div>"
            f"<script type='application/json' id='fig-{e(name)}'>{script_json(fig)}</script>")


def page(title: str, body: str, session: Session | None, *, charts: bool = False,
         heading: bool = True) -> str:
    """A complete page: navigation, who is signed in, the body, ui.js, and plotly.js when needed."""
    if session is not None:
        who = (f"<span class='who'>signed in as <b>{e(session.name)}</b> · "
               f"<form class='inline' method='post' action='/ui/logout'>"
               f"<input type='hidden' name='csrf' value='{e(session.csrf)}'>"
               "<button type='submit'>sign out</button></form></span>")
    else:
        who = "<span class='who'><a href='/ui/login'>sign in</a></span>"
    plotly = "<script src='/ui/static/plotly.min.js'></script>" if charts else ""
    scripts = f"{plotly}<script src='/ui/static/ui.js'></script>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)} · monitor</title><link rel='stylesheet' href='/ui/static/ui.css'></head><body>"
        "<header><a href='/ui/'>monitor</a><a href='/ui/'>Overview</a><a href='/ui/alerts'>Alerts</a>"
        f"<a href='/ui/why'>Why &amp; what-if</a>{who}</header>"
        f"<main>{f'<h1>{e(title)}</h1>' if heading else ''}{body}</main>{scripts}</body></html>"
    )


def severity_pills(counts: dict[str, int]) -> str:
    if not counts:
        return "<span class='ok'>none</span>"
    order = ["critical", "warning", "info"]
    keys = sorted(counts, key=lambda k: order.index(k) if k in order else 9)
    return " ".join(f"<span class='pill {e(k)}'>{e(counts[k])} {e(k)}</span>" for k in keys)


def csrf_field(session: Session | None) -> str:
    return f"<input type='hidden' name='csrf' value='{e(session.csrf if session else '')}'>"


def feedback_form(alert_id: int, session: Session | None, read_only: bool, verdicts: Sequence[str]) -> str:
    """The Slack buttons as a form (or why they are not offered)."""
    if read_only:
        return "<p class='muted'>read-only dashboard: actions are disabled ([ui] read_only)</p>"
    if session is None:
        return ("<p class='warn'>sign in with your name to acknowledge or answer this alert: "
                f"{link('/ui/login?next=' + f'/ui/alerts/{alert_id}', 'sign in')}</p>")
    labels = {"acknowledge": "Acknowledge", "expected_change": "Expected change",
              "false_alarm": "False alarm", "retrain_needed": "Retrain needed", "comment": "Comment"}
    buttons = "".join(
        f"<button type='submit' name='verdict' value='{e(v)}'>{e(labels.get(v, v))}</button> "
        for v in verdicts
    )
    return (
        f"<form class='card actions' method='post' action='/ui/alerts/{alert_id}/feedback'>"
        f"{csrf_field(session)}<p>answer as <b>{e(session.name)}</b> (recorded with your name)</p>"
        "<p><textarea name='comment' rows='2' cols='60' placeholder='comment (optional; "
        f"required for Comment)'></textarea></p><p>{buttons}</p></form>"
    )


def query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
