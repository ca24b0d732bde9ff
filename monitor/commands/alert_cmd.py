"""`monitor alert VERDICT ALERT_ID`: answer an alert from the command line, through the
same policy path (and audit trail) as the Slack buttons."""

from __future__ import annotations

import getpass

import click

from monitor.cli import AppContext

#: command word -> the verdict the policy path knows
VERDICTS = {
    "ack": "acknowledge",
    "expected": "expected_change",
    "false-alarm": "false_alarm",
    "retrain": "retrain_needed",
    "comment": "comment",
}


@click.command()
@click.argument("verdict", type=click.Choice(list(VERDICTS)))
@click.argument("alert_id", type=int)
@click.option("--feature", help="Answer for one feature of an input-drift alert only.")
@click.option("--comment", "comment", help="Why (kept with the answer and shown in Slack).")
@click.option("--by", "by", help="Who answers (default: your login name).")
@click.pass_obj
def alert(app: AppContext, verdict: str, alert_id: int, feature: str | None, comment: str | None,
          by: str | None) -> None:
    """Answer alert ALERT_ID: ack, expected (mutes it, or --feature, for
    `feedback.mute_days`), false-alarm (two within `feedback.false_alarm_window_days` make
    its test less sensitive), retrain (flags the model), or comment.

    Recorded like a Slack answer (source "cli"), with policies, audit trail and the Slack
    message updated when the alert was posted there. Exits 4 for an unknown alert, 2 for
    a feature the alert is not about.
    """
    from monitor import clock
    from monitor.commands._common import deliver
    from monitor.errors import ConfigError, NotFoundError
    from monitor.policies import PolicyError, apply_feedback
    from monitor.store.alerts import get_alert
    from monitor.store.engine import transaction

    if verdict == "comment" and not comment:
        raise ConfigError(["monitor alert comment: --comment TEXT is required"])
    settings = app.settings()
    engine = app.engine()
    who = by or getpass.getuser()
    with transaction(engine) as session:
        found = get_alert(session, alert_id)
        if found is None:
            raise NotFoundError(f"alert {alert_id} does not exist: see `monitor alerts`")
        try:
            outcome = apply_feedback(
                session,
                found,
                VERDICTS[verdict],
                user_id=who,
                user_name=who,
                comment=comment,
                source="cli",
                external_id=None,
                config=settings.feedback,
                now=clock.utcnow(),
                feature=feature,
            )
        except PolicyError as err:
            raise ConfigError([str(err)]) from err
        status, kind, model = found.status, found.kind, found.model
    deliver(settings, engine, json_on_stdout=False)
    target = f" for feature {feature}" if feature else ""
    click.echo(
        f"alert {alert_id} ({model} {kind}){target}: {VERDICTS[verdict]} recorded as feedback "
        f"{outcome.feedback_id} by {who}; status {status}; {len(outcome.policy_ids)} policy(ies) created"
    )
    if outcome.policy_ids:
        click.echo("see them with `monitor policy list`; revoke with `monitor policy revoke ID`")
