"""Alert rules and lifecycle: dedup, follow-ups, auto-resolve, mutes — on both backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor import alerts
from monitor.cycle import reconcile_alerts
from monitor.store import transaction
from monitor.store.tables import Alert, Outbox, Run
from tests.factories import run_result

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class FakePolicies:
    muted: set = field(default_factory=set)

    def is_muted(self, kind, feature):
        return (kind, feature) in self.muted or (kind, None) in self.muted


def run_window(engine, hour, found, policies=None, resolve_after=2, status="succeeded"):
    with transaction(engine) as session:
        run = Run(
            model="m",
            window_start=T0 + timedelta(hours=hour),
            window_end=T0 + timedelta(hours=hour + 1),
            status=status,
        )
        session.add(run)
        session.flush()
        return reconcile_alerts(
            session,
            run,
            found,
            policies=policies or FakePolicies(),
            resolve_after=resolve_after,
            channels=["console", "slack"],
            context={"run": {"id": run.id}},
            now=T0 + timedelta(hours=hour + 1),
        )


def ids(alerts_):
    return tuple(a.id for a in alerts_)


def test_findings_from_a_typed_result():
    kinds = [
        (f.kind, f.feature) for f in alerts.findings(run_result(drifted=("a", "b"), ndcg=0.7, quarantined=5))
    ]
    assert kinds == [("feature_drift", None), ("attribution_drift", None), ("data_quality", None)]
    assert alerts.findings(run_result(drifted=(), ndcg=0.95)) == []


def test_input_drift_is_one_finding_listing_the_features_and_dataset_drift_its_severity():
    (two,) = [f for f in alerts.findings(run_result(drifted=("a", "b"))) if f.kind == "feature_drift"]
    assert two.features == ("a", "b") and two.severity == "critical"  # 2 of 3: dataset drift
    assert two.details["dataset_drift"] is True and two.title.startswith("dataset drift: 2 of 3")
    assert [line.split(":")[0] for line in two.lines] == ["a", "b"]
    (one,) = [f for f in alerts.findings(run_result(drifted=("a",))) if f.kind == "feature_drift"]
    assert one.features == ("a",) and one.severity == "warning"


def test_attribution_finding_names_who_gained_and_lost():
    found = alerts.findings(run_result(drifted=(), ndcg=0.7))
    (finding,) = [f for f in found if f.kind == "attribution_drift"]
    assert "b gained influence" in " ".join(finding.lines)
    assert "a lost influence" in " ".join(finding.lines)


def test_refire_updates_the_open_alert_and_resolves_after_clean_windows(engine):
    first = run_window(engine, 0, alerts.findings(run_result()))
    assert len(first.opened) == 1
    again = run_window(engine, 1, alerts.findings(run_result()))
    assert again.opened == () and ids(again.refired) == ids(first.opened)
    assert run_window(engine, 2, []).resolved == ()  # one clean window is not enough
    assert ids(run_window(engine, 3, []).resolved) == ids(first.opened)
    with transaction(engine) as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.status, alert.fire_count) == ("resolved", 2)
        events = [(o.event, o.channel) for o in session.scalars(select(Outbox).order_by(Outbox.id))]
    assert events == [
        ("alert_opened", "console"),
        ("alert_opened", "slack"),
        ("alert_refired", "console"),
        ("alert_refired", "slack"),
        ("alert_resolved", "console"),
        ("alert_resolved", "slack"),
    ]
    # after resolving, the same problem opens a new alert
    assert len(run_window(engine, 4, alerts.findings(run_result())).opened) == 1


def test_muted_findings_raise_nothing(engine):
    done = run_window(
        engine,
        0,
        alerts.findings(run_result(drifted=("a", "b"))),
        policies=FakePolicies({("feature_drift", "a")}),
    )
    with transaction(engine) as session:
        (alert,) = session.scalars(select(Alert))
    assert (alert.kind, alert.details["drifted_features"]) == ("feature_drift", ["b"])
    assert alert.severity == "warning"  # without the muted feature, no longer dataset drift
    assert done.muted == ("m|feature_drift|a",)
    only_a = alerts.findings(run_result(drifted=("a",)))
    everything = run_window(engine, 1, only_a, policies=FakePolicies({("feature_drift", "a")}))
    assert everything.opened == () and everything.refired == () and everything.muted == ("m|feature_drift|a",)


def test_insufficient_window_does_not_count_as_clean(engine):
    run_window(engine, 0, alerts.findings(run_result()), resolve_after=1)
    with transaction(engine) as session:
        run = Run(
            model="m",
            window_start=T0 + timedelta(hours=5),
            window_end=T0 + timedelta(hours=6),
            status="insufficient_data",
        )
        session.add(run)
        session.flush()
        done = reconcile_alerts(
            session,
            run,
            [],
            policies=FakePolicies(),
            resolve_after=1,
            channels=["console"],
            context={},
            now=T0,
        )
    assert done.resolved == ()


def test_only_one_live_alert_per_key_in_the_database(engine):
    run_window(engine, 0, alerts.findings(run_result()))
    with pytest.raises(Exception, match="(?i)unique|duplicate"), transaction(engine) as session:
        session.add(
            Alert(
                model="m",
                kind="feature_drift",
                feature=None,
                dedup_key="m|feature_drift|*",
                severity="warning",
                status="open",
                title="dup",
            )
        )
        session.flush()


def test_payload_carries_context_alert_and_lines(engine):
    run_window(engine, 0, alerts.findings(run_result()))
    with transaction(engine) as session:
        payload = session.scalars(select(Outbox)).first().payload
    assert payload["alert"]["kind"] == "feature_drift" and payload["alert"]["feature"] is None
    assert payload["lines"] == ["a: ks score 0.001 (threshold 0.05)"]
    assert payload["run"]["id"] >= 1 and payload["details"]["features"]["a"]["method"] == "ks"


def test_one_window_is_one_message_with_every_finding(engine):
    found = alerts.findings(run_result(drifted=("a", "b"), ndcg=0.7, quarantined=5))
    run_window(engine, 0, found)
    with transaction(engine) as session:
        rows = list(session.scalars(select(Outbox).order_by(Outbox.id)))
    assert [(r.event, r.channel) for r in rows] == [("alert_opened", "console"), ("alert_opened", "slack")]
    listed = rows[0].payload["alerts"]
    assert [f["kind"] for f in listed] == ["feature_drift", "attribution_drift", "data_quality"]
    assert {f["event"] for f in listed} == {"alert_opened"}
    # the next window of the same incident: one message too, a reply naming what fired again
    again = run_window(engine, 1, alerts.findings(run_result(drifted=("a",))))
    assert len(again.refired) == 1
    with transaction(engine) as session:
        later = list(session.scalars(select(Outbox).where(Outbox.id > rows[-1].id)))
    assert {r.event for r in later} == {"alert_refired"} and len(later) == 2


def test_plan_is_pure_and_counts_clean_windows_only_on_judged_runs():
    live = [alerts.LiveAlert(7, "m|feature_drift|a", "feature_drift", "open", 1)]
    clean = alerts.plan("m", live, [], policies=FakePolicies(), resolve_after=2, run_status="succeeded")
    assert clean.clean == ((7, 2, True),) and clean.open == () and clean.refire == ()
    for status in ("insufficient_data", "failed"):
        idle = alerts.plan("m", live, [], policies=FakePolicies(), resolve_after=2, run_status=status)
        assert idle.clean == ()


def test_a_failed_result_is_one_run_failed_finding():
    failed = alerts.findings(run_result(status="failed"))
    assert [f.kind for f in failed] == ["run_failed"] and failed[0].severity == "critical"


def test_a_feature_whose_influence_doubled_alerts_with_the_ranking_unchanged():
    (finding,) = [
        f for f in alerts.findings(run_result(drifted=(), ndcg=0.99, shifted=("b",)))
        if f.kind == "attribution_drift"
    ]
    assert "b changed influence" in finding.title
    assert finding.details["shifted_features"] == ["b"]
    assert any("b gained influence" in line and "beyond sampling error" in line for line in finding.lines)
    quiet = alerts.findings(run_result(drifted=(), ndcg=0.99))
    assert not [f for f in quiet if f.kind == "attribution_drift"]
