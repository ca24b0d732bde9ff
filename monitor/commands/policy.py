"""`monitor policy list|revoke`: the policies feedback created, who set them, and undo."""

from __future__ import annotations

import getpass
import json

import click

from monitor.cli import AppContext


def _state(policy, now) -> str:  # noqa: ANN001 - a Policy row and a datetime
    if policy.revoked_at is not None:
        return f"revoked by {policy.revoked_by} {policy.revoked_at:%Y-%m-%d %H:%M}"
    if policy.until is not None and policy.until <= now:
        return f"expired {policy.until:%Y-%m-%d %H:%M}"
    return "active" + (f" until {policy.until:%Y-%m-%d %H:%M}" if policy.until else "")


@click.group()
def policy() -> None:
    """List and revoke the policies Slack feedback created (mutes, thresholds, retrain flags)."""


@policy.command("list")
@click.option("--model", default=None, help="Only this model's policies.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired policies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_obj
def list_policies(app: AppContext, model: str | None, show_all: bool, as_json: bool) -> None:
    """Policies in force (with --all: every policy ever set), newest last."""
    from monitor import clock
    from monitor.store import feedback as repo
    from monitor.store.engine import transaction

    now = clock.utcnow()
    with transaction(app.engine()) as session:
        rows = (
            repo.all_policies(session, model)
            if show_all
            else repo.live_policies(session, model, now)
        )
    if not rows:
        click.echo("no policies" if show_all else "no active policies")
        return
    for p in rows:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": p.id,
                        "model": p.model,
                        "kind": p.kind,
                        "alert_kind": p.alert_kind,
                        "feature": p.feature,
                        "value": p.value,
                        "reason": p.reason,
                        "created_by": p.created_by,
                        "created_at": p.created_at.isoformat(),
                        "until": p.until.isoformat() if p.until else None,
                        "state": _state(p, now),
                    }
                )
            )
            continue
        target = "/".join(x for x in (p.alert_kind, p.feature) if x) or "model"
        value = f" x{p.value:g}" if p.kind == "threshold" and p.value else ""
        click.echo(
            f"{p.id:>4}  {p.model}  {p.kind}{value}  {target}  [{_state(p, now)}]  "
            f"by {p.created_by} {p.created_at:%Y-%m-%d %H:%M}: {p.reason}"
        )


@policy.command("revoke")
@click.argument("policy_id", type=int)
@click.option("--by", default=None, help="Who revokes it [default: the current OS user].")
@click.pass_obj
def revoke(app: AppContext, policy_id: int, by: str | None) -> None:
    """Revoke policy POLICY_ID: the next run ignores it."""
    from monitor import clock
    from monitor.policies import revoke_policy
    from monitor.store.engine import transaction

    who = by or getpass.getuser()
    with transaction(app.engine()) as session:
        p = revoke_policy(session, policy_id, by=who, now=clock.utcnow())
        click.echo(
            f"policy {p.id} ({p.kind} {p.alert_kind or ''} {p.feature or ''} on {p.model}) "
            f"revoked by {who}"
        )
