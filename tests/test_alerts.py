"""Alert rules and lifecycle: dedup, follow-ups, auto-resolve, mutes — on both backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor import alerts
from monitor.store import transaction
from monitor.store.tables import Alert, Outbox, Run

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class FakePolicies:
    muted: set = field(default_factory=set)

    def is_muted(self, kind, feature):
        return (kind, feature) in self.muted or (kind, None) in self.muted


def summary(drifted=("a",), ndcg=None, quarantined=0, rows=100):
    features = {
        n: {
            "method": "ks",
            "score": 0.001 if n in drifted else 0.5,
            "threshold": 0.05,
            "drifted": n in drifted,
        }
        for n in ("a", "b", "c")
    }
    doc = {
        "model": "m",
        "rows": rows,
        "quarantined": quarantined,
        "reasons": {"missing_feature": quarantined},
        "drift": {
            "dataset_drift": len(drifted) >= 2,
            "drift_share": len(drifted) / 3,
            "share_threshold": 0.5,
            "features": features,
        },
        "prediction_drift": None,
        "performance": None,
        "quality": {},
    }
    if ndcg is not None:
        doc["attribution"] = {
            "ndcg": ndcg,
            "threshold": 0.9,
            "drifted": ndcg < 0.9,
            "features": {"a": {"baseline": 0.5, "current": 0.1}, "b": {"baseline": 0.1, "current": 0.6}},
        }
    return doc


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
        return alerts.reconcile(
            session,
            run,
            found,
            policies=policies or FakePolicies(),
            resolve_after=resolve_after,
            channels=["console", "slack"],
            context={"run": {"id": run.id}},
            now=T0 + timedelta(hours=hour + 1),
        )


def test_findings_from_a_summary():
    kinds = [
        (f.kind, f.feature) for f in alerts.findings(summary(drifted=("a", "b"), ndcg=0.7, quarantined=5))
    ]
    assert kinds == [
        ("dataset_drift", None),
        ("feature_drift", "a"),
        ("feature_drift", "b"),
        ("attribution_drift", None),
        ("data_quality", None),
    ]
    assert alerts.findings(summary(drifted=(), ndcg=0.95)) == []


def test_attribution_finding_names_who_gained_and_lost():
    (finding,) = [f for f in alerts.findings(summary(drifted=(), ndcg=0.7)) if f.kind == "attribution_drift"]
    assert "b gained influence" in " ".join(finding.lines)
    assert "a lost influence" in " ".join(finding.lines)


def test_refire_updates_the_open_alert_and_resolves_after_clean_windows(engine):
    first = run_window(engine, 0, alerts.findings(summary()))
    assert len(first.opened) == 1
    again = run_window(engine, 1, alerts.findings(summary()))
    assert again.opened == () and again.refired == first.opened
    assert run_window(engine, 2, []).resolved == ()  # one clean window is not enough
    assert run_window(engine, 3, []).resolved == first.opened
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
    assert len(run_window(engine, 4, alerts.findings(summary())).opened) == 1


def test_muted_findings_raise_nothing(engine):
    done = run_window(
        engine,
        0,
        alerts.findings(summary(drifted=("a", "b"))),
        policies=FakePolicies({("feature_drift", "a")}),
    )
    with transaction(engine) as session:
        live = sorted((a.kind, a.feature) for a in session.scalars(select(Alert)))
    assert live == [("dataset_drift", None), ("feature_drift", "b")]
    assert done.muted == ("m|feature_drift|a",)


def test_insufficient_window_does_not_count_as_clean(engine):
    run_window(engine, 0, alerts.findings(summary()), resolve_after=1)
    with transaction(engine) as session:
        run = Run(
            model="m",
            window_start=T0 + timedelta(hours=5),
            window_end=T0 + timedelta(hours=6),
            status="insufficient_data",
        )
        session.add(run)
        session.flush()
        done = alerts.reconcile(
            session,
            run,
            [],
            policies=FakePolicies(),
            resolve_after=1,
            channels=["console"],
            context={},
            now=T0,
            count_clean=False,
        )
    assert done.resolved == ()


def test_only_one_live_alert_per_key_in_the_database(engine):
    run_window(engine, 0, alerts.findings(summary()))
    with pytest.raises(Exception, match="(?i)unique|duplicate"), transaction(engine) as session:
        session.add(
            Alert(
                model="m",
                kind="feature_drift",
                feature="a",
                dedup_key="m|feature_drift|a",
                severity="warning",
                status="open",
                title="dup",
            )
        )
        session.flush()


def test_payload_carries_context_alert_and_lines(engine):
    run_window(engine, 0, alerts.findings(summary()))
    with transaction(engine) as session:
        payload = session.scalars(select(Outbox)).first().payload
    assert payload["alert"]["kind"] == "feature_drift" and payload["alert"]["feature"] == "a"
    assert payload["lines"] == ["a: ks score 0.001 (threshold 0.05)"]
    assert payload["run"]["id"] >= 1 and payload["details"]["method"] == "ks"
