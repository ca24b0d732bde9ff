"""`monitor why MODEL REQUEST_ID`: why the model decided what it did for one request."""

from __future__ import annotations

import click

from monitor.cli import AppContext
from monitor.commands._common import echo_json


@click.command()
@click.argument("model")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option("--top", default=10, show_default=True, help="Show this many features.")
@click.option("--set", "changes", multiple=True, metavar="NAME=VALUE",
              help="What-if: explain the request again with this feature value (repeatable).")
@click.option("--counterfactual", is_flag=True,
              help="Find the smallest change to the actionable features that makes the "
                   "decision favourable ([models.features] actionable, [models.fairness] favorable).")
@click.pass_obj
def why(app: AppContext, model: str, request_id: str, as_json: bool, top: int,
        changes: tuple[str, ...], counterfactual: bool) -> None:
    """Explain the decision for REQUEST_ID: each feature's signed contribution.

    Uses the attribution stored when the request was sampled by a run; a request
    that was not sampled is looked up in the model's source (prediction log, files
    or SQL) and explained on demand against the active baseline. Says which class a
    multiclass answer explains, shows the logged prediction beside the output, and
    warns when they differ.
    """
    from monitor.explain import counterfactual as find_counterfactual
    from monitor.explain import explain_request, what_if

    settings = app.settings()
    pairs = {}
    for item in changes:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--set")
        pairs[name.strip()] = value.strip()
    if pairs:
        result = what_if(settings, app.engine(), model, request_id, pairs)
        answer = result["answer"]
    else:
        result, answer = None, explain_request(settings, app.engine(), model, request_id)
    found = find_counterfactual(settings, app.engine(), model, request_id) if counterfactual else None
    if as_json:
        doc = dict(answer)
        if result is not None:
            doc = {**answer, "what_if": {"changes": result["changes"],
                                         "original_output": result["original"]["output"]}}
        if found is not None:
            doc["counterfactual"] = found
        echo_json(doc)
        return
    if result is not None:
        moved = ", ".join(f"{k}: {old} -> {new}" for k, (old, new) in result["changes"].items())
        click.echo(f"what-if ({moved}): output {result['original']['output']:.4g} -> {answer['output']:.4g}")
    for line in render(answer, top):
        click.echo(line)
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if found is not None:
        for line in render_counterfactual(found):
            click.echo(line)


def render_counterfactual(found: dict) -> list[str]:
    lines = ["", f"counterfactual (favourable: {found['favourable']}; actionable: "
             f"{', '.join(found['actionable'])})"]
    if found["note"]:
        lines.append(found["note"])
    for name, (old, new) in found["changes"].items():
        shown = f"{new:.4g}" if isinstance(new, float) else str(new)
        lines.append(f"  {name}: {old} -> {shown}")
    if found["changes"]:
        before = ", ".join(f"{v:.4g}" for v in found["output_before"])
        after = ", ".join(f"{v:.4g}" for v in found["output_after"])
        lines.append(f"output {before} -> {after} "
                     f"(cost {found['cost']:.3g}: sum of |change| / baseline range)")
    return lines


def render(answer: dict, top: int = 10) -> list[str]:
    lines = [
        f"{answer['model']} request {answer['request_id']}: output {answer['output']:.4g}"
        + (
            f" (baseline {answer['baseline_output']:.4g})"
            if answer.get("baseline_output") is not None
            else ""
        ),
    ]
    if answer.get("explained"):
        lines.append(f"explains {answer['explained']}")
    logged = answer.get("logged_prediction")
    what = "recomputed" if answer.get("recomputed") else "output"
    if logged is not None:
        lines.append(f"logged prediction {logged:.4g}, {what} {answer['output']:.4g}"
                     + ("  (they differ: see the warning)" if answer.get("warnings") else ""))
    elif answer.get("logged_class") is not None:
        lines.append(f"logged prediction: class {answer['logged_class']}")
    if answer.get("groups") is not None:
        lines.append("groups: " + (", ".join(answer["groups"]) or "none (no attribute logged)"))
    if answer.get("reasons_text"):
        verdict = "an unfavourable" if (answer.get("reasons") or {}).get("unfavourable") else "a favourable"
        lines.append(f"{verdict} decision, {answer['reasons_text']}")
    lines += [
        f"explained by {answer['method']} ({answer['source']})",
        "",
        f"{'feature':<28}{'value':>14}{'contribution':>16}",
    ]
    for feature, contribution, value in answer["contributions"][:top]:
        shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
        lines.append(f"{feature:<28}{shown:>14}{contribution:>+16.4g}")
    rest = len(answer["contributions"]) - top
    if rest > 0:
        lines.append(f"... and {rest} more (--top)")
    return lines
