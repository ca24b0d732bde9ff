"""The "why and what-if" page: one request's contributions, edited inputs, a counterfactual."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.errors import MonitorError
from monitor.ui import plots
from monitor.ui.pages import e, figure, link, query, table


def why_page(settings: Settings, engine: Engine, model: str | None, request_id: str | None,
             changes: dict[str, str], counterfactual: bool) -> tuple[str, bool]:
    """(body, has charts) of /ui/why."""
    from monitor.explain import counterfactual as find_counterfactual
    from monitor.explain import explain_request, what_if

    names = [m.name for m in settings.models]
    options = "".join(f"<option{' selected' if n == model else ''}>{e(n)}</option>" for n in names)
    lookup = ("<form method='get' action='/ui/why' class='card'>model <select name='model'>"
              f"{options}</select> request id <input name='request_id' value='{e(request_id)}' size='30'> "
              "<button type='submit'>explain</button></form>")
    if not model or not request_id:
        return lookup + "<p class='muted'>look a request up by its id</p>", False
    try:
        if changes:
            result = what_if(settings, engine, model, request_id, changes)
            answer, original = result["answer"], result["original"]
        else:
            answer = original = explain_request(settings, engine, model, request_id)
            result = None
        found = find_counterfactual(settings, engine, model, request_id) if counterfactual else None
    except MonitorError as err:
        return lookup + f"<p class='bad'>{e(err)}</p>", False
    parts = [lookup, _summary(answer, original, result)]
    parts.append(figure("contributions", plots.contributions_figure(answer)))
    parts.append(table(["feature", "value", "contribution"],
                       [[e(f), e(v), e(c)] for f, c, v in answer["contributions"]]))
    parts.append(_edit_form(settings, model, request_id, original, changes))
    if found is not None:
        parts.append(_counterfactual(found, model, request_id))
    return "".join(parts), True


def _summary(answer: dict[str, Any], original: dict[str, Any], result: dict[str, Any] | None) -> str:
    lines = [f"<p><b>{e(answer['model'])}</b> request <b>{e(answer['request_id'])}</b>: "
             f"output <b>{e(answer['output'])}</b>"
             + (f" (baseline {e(answer['baseline_output'])})" if answer.get("baseline_output") is not None
                else "") + "</p>"]
    if answer.get("explained"):
        lines.append(f"<p>explains {e(answer['explained'])}</p>")
    if result is not None:
        moved = ", ".join(f"{k}: {e(old)} → {e(new)}" for k, (old, new) in result["changes"].items())
        lines.append(f"<p class='card'>what-if: {moved}; the output goes from <b>{e(original['output'])}</b> "
                     f"to <b>{e(answer['output'])}</b> (recomputed with the configured model)</p>")
    elif answer.get("logged_prediction") is not None:
        lines.append(f"<p>logged prediction {e(answer['logged_prediction'])}</p>")
    lines.append(f"<p class='muted'>explained by {e(answer['method'])} ({e(answer['source'])})</p>")
    lines += [f"<p class='warn'>warning: {e(w)}</p>" for w in answer.get("warnings", [])]
    return "".join(lines)


def _edit_form(settings: Settings, model: str, request_id: str, original: dict[str, Any],
               changes: dict[str, str]) -> str:
    cfg = settings.model(model)
    values = {f: v for f, _, v in original["contributions"]}
    rows = []
    for name in cfg.features.names:
        mark = " (actionable)" if name in cfg.features.actionable else ""
        rows.append([e(name) + f"<span class='muted'>{mark}</span>", e(values.get(name)),
                     f"<input name='set.{e(name)}' value='{e(changes.get(name, ''))}' size='14' "
                     "placeholder='unchanged'>"])
    cf = "" if not cfg.features.actionable else (
        " <button type='submit' name='counterfactual' value='1'>find the smallest favourable change</button>")
    return ("<h2>What if</h2><form method='get' action='/ui/why' class='card'>"
            f"<input type='hidden' name='model' value='{e(model)}'>"
            f"<input type='hidden' name='request_id' value='{e(request_id)}'>"
            + table(["feature", "value", "new value"], rows)
            + f"<button type='submit'>recompute</button>{cf}</form>")


def _counterfactual(found: dict[str, Any], model: str, request_id: str) -> str:
    head = "<h2>Counterfactual</h2>"
    if not found["changes"]:
        return head + f"<p>{e(found['note'] or 'no change needed')}</p>"
    rows = [[e(k), e(old), e(new)] for k, (old, new) in found["changes"].items()]
    verdict = (f"<p class='ok'>found: this change makes it favourable ({e(found['favourable'])})</p>"
               if found["found"] else f"<p class='bad'>{e(found['note'])}</p>")
    url = "/ui/why?" + query(model=model, request_id=request_id) + "&" + "&".join(
        query(**{f"set.{k}": new}) for k, (_, new) in found["changes"].items())
    return (head + verdict + table(["feature", "now", "change to"], rows)
            + f"<p>output {e(found['output_before'])} → {e(found['output_after'])} · cost "
            f"{e(found['cost'])} (sum of |change| / baseline range) · {link(url, 'see it explained')}</p>")
