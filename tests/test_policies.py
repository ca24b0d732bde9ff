"""Feedback -> policies -> what the next run obeys; `monitor policy` and `monitor status`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.config import FeedbackConfig
from monitor.policies import PolicyError, active_policies, apply_feedback, revoke_policy
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Feedback, Outbox, Policy
from tests.factories import T0, make_alert

CONFIG = FeedbackConfig(
    mute_days=7, false_alarm_count=2, false_alarm_window_days=14, threshold_factor=1.5
)


def answer(engine, alert_id, verdict, *, now=T0, external_id=None, user="U1", comment=None):
    with transaction(engine) as session:
        return apply_feedback(
            session,
            session.get(Alert, alert_id),
            verdict,
            user_id=user,
            user_name=f"n-{user}",
            comment=comment,
            source="button",
            external_id=external_id,
            config=CONFIG,
            now=now,
        )


def policies_at(engine, now, model="cancer"):
    with transaction(engine) as session:
        return active_policies(session, model, now)


def test_no_policies_means_nothing_changes(engine):
    policies = policies_at(engine, T0)
    assert not policies.is_muted("feature_drift", "x")
    assert policies.factor("feature_drift", "x") == 1.0
    assert policies.retrain_requested is False


def test_expected_change_mutes_for_mute_days_and_can_be_revoked(engine):
    alert_id = make_alert(engine)
    outcome = answer(engine, alert_id, "expected_change", comment="new sensor")
    assert outcome.alert_status == "muted" and len(outcome.policy_ids) == 1
    assert outcome.rebaseline_run_id is not None
    assert policies_at(engine, T0 + timedelta(days=6)).is_muted("feature_drift", "mean radius")
    assert not policies_at(engine, T0 + timedelta(days=7, seconds=1)).is_muted(
        "feature_drift", "mean radius"
    )
    assert not policies_at(engine, T0, model="other").is_muted("feature_drift", "mean radius")
    with transaction(engine) as session:
        policy = session.get(Policy, outcome.policy_ids[0])
        assert policy.created_by == "n-U1" and "new sensor" in policy.reason
        revoke_policy(session, policy.id, by="lead", now=T0 + timedelta(hours=1))
    assert not policies_at(engine, T0 + timedelta(hours=2)).is_muted("feature_drift", "mean radius")
    with transaction(engine) as session, pytest.raises(PolicyError, match="already revoked"):
        revoke_policy(session, outcome.policy_ids[0], by="lead", now=T0)
    with transaction(engine) as session, pytest.raises(PolicyError, match="does not exist"):
        revoke_policy(session, 9999, by="lead", now=T0)


def test_dataset_level_mute_covers_every_feature(engine):
    alert_id = make_alert(engine, kind="dataset_drift", feature=None)
    answer(engine, alert_id, "expected_change")
    policies = policies_at(engine, T0)
    assert policies.is_muted("dataset_drift", None) and policies.is_muted("dataset_drift", "any")
    assert not policies.is_muted("feature_drift", None)


def test_false_alarms_raise_the_threshold_and_repeated_raises_multiply(engine):
    first = make_alert(engine)
    assert answer(engine, first, "false_alarm", now=T0).policy_ids == ()
    raised = answer(engine, first, "false_alarm", now=T0 + timedelta(days=1), user="U2")
    assert len(raised.policy_ids) == 1
    assert policies_at(engine, T0 + timedelta(days=1)).factor("feature_drift", "mean radius") == 1.5
    # the next raise needs two new false alarms, not the ones already counted
    assert answer(engine, first, "false_alarm", now=T0 + timedelta(days=2)).policy_ids == ()
    assert len(answer(engine, first, "false_alarm", now=T0 + timedelta(days=3)).policy_ids) == 1
    policies = policies_at(engine, T0 + timedelta(days=3))
    assert policies.factor("feature_drift", "mean radius") == pytest.approx(2.25)
    assert policies.factor("feature_drift", "mean texture") == 1.0


def test_false_alarms_outside_the_window_do_not_add_up(engine):
    alert_id = make_alert(engine)
    answer(engine, alert_id, "false_alarm", now=T0)
    assert answer(engine, alert_id, "false_alarm", now=T0 + timedelta(days=15)).policy_ids == ()
    assert (
        policies_at(engine, T0 + timedelta(days=15)).factor("feature_drift", "mean radius") == 1.0
    )


def test_retrain_needed_flags_the_model_and_acknowledge_changes_status(engine):
    alert_id = make_alert(engine)
    assert answer(engine, alert_id, "acknowledge").alert_status == "acknowledged"
    answer(engine, alert_id, "retrain_needed")
    assert policies_at(engine, T0).retrain_requested
    assert not policies_at(engine, T0, model="other").retrain_requested


def test_replayed_external_id_changes_nothing(engine):
    alert_id = make_alert(engine)
    first = answer(engine, alert_id, "expected_change", external_id="action:U1:x:1")
    again = answer(engine, alert_id, "expected_change", external_id="action:U1:x:1")
    assert again.duplicate and again.feedback_id == first.feedback_id
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 1
        assert session.scalar(select(func.count()).select_from(Policy)) == 1


def test_feedback_update_is_queued_only_for_alerts_posted_to_slack(engine):
    alert_id = make_alert(engine)
    answer(engine, alert_id, "acknowledge")
    with transaction(engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.event == "feedback_update")
            )
            == 0
        )
        session.get(Alert, alert_id).slack_channel, session.get(Alert, alert_id).slack_ts = (
            "C1",
            "1.2",
        )
    answer(engine, alert_id, "comment", comment="looking into it", user="U2")
    with transaction(engine) as session:
        row = session.scalars(select(Outbox).where(Outbox.event == "feedback_update")).one()
        assert row.channel == "slack" and row.payload["status"] == "acknowledged"
        assert [f["verdict"] for f in row.payload["feedback"]] == ["acknowledge", "comment"]


def test_unknown_verdict_is_refused(engine):
    alert_id = make_alert(engine)
    with pytest.raises(PolicyError, match="unknown verdict"):
        answer(engine, alert_id, "shrug")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_policy_and_status_commands(db_url, engine, write_config, run_monitor):
    alert_id = make_alert(engine)
    answer(engine, alert_id, "retrain_needed", now=T0)
    mute = answer(engine, alert_id, "expected_change", now=T0).policy_ids[0]
    # the CLI runs at the real "now": make the mute end far in the future
    with transaction(engine) as session:
        session.get(Policy, mute).until = T0 + timedelta(days=36500)
    config = write_config(f'[database]\nurl = "{db_url}"\n')
    listed = run_monitor("--config", str(config), "policy", "list", "--json", check=True)
    kinds = [json.loads(line)["kind"] for line in listed.stdout.splitlines()]
    assert kinds == ["retrain", "mute"]
    status = run_monitor("--config", str(config), "status", check=True)
    assert "cancer  RETRAIN REQUESTED" in status.stdout and "open alerts: 1" in status.stdout
    revoked = run_monitor(
        "--config", str(config), "policy", "revoke", str(mute), "--by", "lead", check=True
    )
    assert "revoked by lead" in revoked.stdout
    with transaction(engine) as session:
        assert session.get(Policy, mute).revoked_by == "lead"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_answers_go_through_the_policy_path_per_feature(db_url, engine, write_config, run_monitor):
    alert_id = make_alert(engine, feature=None)
    with transaction(engine) as session:
        alert = session.get(Alert, alert_id)
        alert.details = {"drifted_features": ["mean radius", "mean texture"], "lines": []}
    config = str(write_config(f'[database]\nurl = "{db_url}"\n'))
    for _ in range(2):
        said = run_monitor("--config", config, "alert", "false-alarm", str(alert_id),
                           "--feature", "mean radius", "--by", "ana", check=True)
    assert "false_alarm recorded" in said.stdout and "1 policy(ies) created" in said.stdout
    with transaction(engine) as session:
        answers = session.scalars(select(Feedback).order_by(Feedback.id)).all()
        assert [(f.source, f.user_name, f.feature) for f in answers] == [("cli", "ana", "mean radius")] * 2
        [threshold] = session.scalars(select(Policy)).all()
        assert (threshold.kind, threshold.feature) == ("threshold", "mean radius")
    wrong = run_monitor("--config", config, "alert", "expected", str(alert_id), "--feature", "nope")
    assert wrong.returncode == 2 and "not about feature 'nope'" in wrong.stderr
    missing = run_monitor("--config", config, "alert", "ack", "999999")
    assert missing.returncode == 4 and "does not exist" in missing.stderr
    whole = run_monitor("--config", config, "alert", "expected", str(alert_id), "--by", "ana", check=True)
    assert "2 policy(ies) created" in whole.stdout  # a mute for each listed feature
