"""`monitor card MODEL`: the model's living card (Model Card Toolkit schema + monitoring)."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli import AppContext
from monitor.commands._common import echo_json


@click.command()
@click.argument("model")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the card as one self-contained HTML page (or JSON for a .json name).")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
@click.pass_obj
def card(app: AppContext, model: str, out: Path | None, as_json: bool) -> None:
    """Build MODEL's card from the configuration ([models.card]) and the database:
    baseline data, realized performance with intervals, importance and its stability,
    the surrogate tree and its fidelity, reasons, drift incidents, alerts with their
    feedback, policies with their audit trail. Runs store a new version after each run."""
    import json

    from monitor import clock
    from monitor.card import build_card, render_html
    from monitor.store import transaction
    from monitor.store.cards import card_evidence

    settings = app.settings()
    cfg = settings.model(model)
    with transaction(app.engine()) as session:
        evidence = card_evidence(session, cfg.name, cfg.card.recent_runs)
    document = build_card(cfg, evidence, generated_at=clock.utcnow().isoformat())
    document["card_version"] = evidence.latest_version
    if out is not None:
        text = json.dumps(document, indent=2) if out.suffix == ".json" else render_html(document)
        out.write_text(text, encoding="utf-8")
        click.echo(f"model card of {cfg.name} written to {out}")
    if as_json:
        echo_json(document)
    elif out is None:
        m = document["monitoring"]
        click.echo(f"model card of {cfg.name}: {m['runs']['recent']} recent run(s), "
                   f"{len(m['alerts'])} alert(s), {len(m['policies'])} policy(ies); "
                   "use --json or --out card.html")
