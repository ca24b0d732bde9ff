"""One run per window, end to end on SQLite and PostgreSQL: real model, real intake,
real Evidently tests, real attributions, alerts and their outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from monitor.baseline import build_baseline
from monitor.cycle import RunFailed, Runtime, UnfinishedWindow, last_complete_window, run_once
from monitor.errors import NoBaselineError
from monitor.explain import explain_request
from monitor.store import transaction
from monitor.store.tables import Alert, Outbox, Policy, Quarantine, Run, SampleAttribution
from tests.models import FEATURES, SHIFTED, T0, WINDOW


def once(*args, **kwargs):
    """run_once announcing on the console channel (what `monitor once` does without Slack)."""
    return run_once(*args, channels=["console"], **kwargs)


KEYS = {
    "run_id",
    "model",
    "window",
    "rows",
    "sampled",
    "quarantined",
    "drift",
    "prediction_drift",
    "attribution",
    "performance",
    "alerts",
}


@pytest.fixture
def baselined(engine, settings):
    summary = build_baseline(settings, engine, "cancer", created_by="test")
    assert summary.version == 1 and summary.rows == 341
    assert set(summary.importance) == set(FEATURES)
    assert 0.5 < summary.performance["accuracy"] <= 1.0
    return summary


def test_clean_then_shifted_window(engine, settings, baselined, send_traffic):
    runtime = Runtime()
    send_traffic(engine, settings, T0, seed=1)
    send_traffic(engine, settings, T0 + WINDOW, seed=2, shift=True, bad=12)
    clean = once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=runtime)
    shifted = once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, runtime=runtime)

    assert set(shifted.summary) >= KEYS
    assert clean.summary["drift"]["dataset_drift"] is False
    flagged = {n for n, f in shifted.summary["drift"]["features"].items() if f["drifted"]}
    assert set(SHIFTED) <= flagged
    assert shifted.summary["quarantined"] == 12 and shifted.summary["rows"] == 200
    # 12 malformed rows of 212 against an expected 0.1%: the quarantine check flags them
    [check] = [c for c in shifted.summary["quality"]["checks"] if c["flagged"]]
    assert (check["test"], check["count"], check["reasons"]) == ("quarantine", 12, {"missing_feature": 12})
    assert shifted.summary["prediction_drift"]["drifted"] is True
    assert shifted.summary["performance"] is not None
    attribution = shifted.summary["attribution"]
    assert set(attribution["features"]) == set(FEATURES) and attribution["ndcg"] is not None
    kinds = {(a["kind"], tuple(a["features"])) for a in shifted.summary["alerts"]}
    assert ("feature_drift", tuple(sorted(SHIFTED))) in kinds and ("data_quality", ()) in kinds

    with transaction(engine) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Quarantine)
                .where(Quarantine.source == f"run:{shifted.run_id}")
            )
            == 0
        )  # validated at ingest
        explained = session.scalar(
            select(func.count())
            .select_from(SampleAttribution)
            .where(SampleAttribution.run_id == shifted.run_id)
        )
        assert explained == 60
        # one window, one message per channel (the console here) listing every finding
        rows = [r for r in session.scalars(select(Outbox)) if r.payload["run"]["id"] == shifted.run_id]
        assert len(rows) == 1 and len(rows[0].payload["alerts"]) == len(shifted.summary["alerts"])


def test_rerun_returns_the_stored_run_and_force_replaces_it(engine, settings, baselined, send_traffic):
    send_traffic(engine, settings, T0, seed=2, shift=True)
    first = once(settings, engine, "cancer", T0, T0 + WINDOW)
    again = once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert again.reused and again.run_id == first.run_id and again.summary == first.summary
    forced = once(settings, engine, "cancer", T0, T0 + WINDOW, force=True)
    assert not forced.reused and forced.run_id != first.run_id
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        keys = [a.dedup_key for a in session.scalars(select(Alert))]
        assert len(keys) == len(set(keys))  # the forced rerun followed up, it did not duplicate
        assert max(a.fire_count for a in session.scalars(select(Alert))) == 2


def test_why_answers_from_storage_and_on_demand(engine, settings, baselined, send_traffic):
    ids = send_traffic(engine, settings, T0, seed=3)
    outcome = once(settings, engine, "cancer", T0, T0 + WINDOW)
    with transaction(engine) as session:
        stored_id = session.scalars(
            select(SampleAttribution.request_id).where(SampleAttribution.run_id == outcome.run_id)
        ).first()
    answer = explain_request(settings, engine, "cancer", stored_id)
    assert answer["source"].startswith(f"run {outcome.run_id}")
    contributions = [abs(c) for _, c, _ in answer["contributions"]]
    assert contributions == sorted(contributions, reverse=True) and len(contributions) == len(FEATURES)
    # integrated gradients: contributions add up to output - baseline output
    total = sum(c for _, c, _ in answer["contributions"])
    assert total == pytest.approx(answer["output"] - answer["baseline_output"], abs=0.02)
    not_sampled = next(i for i in ids if i != stored_id and not _stored(engine, i))
    on_demand = explain_request(settings, engine, "cancer", not_sampled)
    assert on_demand["source"].startswith("computed on demand")


def _stored(engine, request_id):
    with transaction(engine) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(SampleAttribution)
                .where(SampleAttribution.request_id == request_id)
            )
            > 0
        )


def test_empty_window_is_insufficient_data_not_a_crash(engine, settings, baselined):
    outcome = once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert outcome.status == "insufficient_data"
    assert outcome.summary["insufficient_data"] == {"rows": 0, "min_rows": 30}
    assert outcome.summary["alerts"] == []


def test_once_before_baseline_is_a_usage_error_and_stores_nothing(engine, settings, send_traffic):
    send_traffic(engine, settings, T0, seed=4)
    with pytest.raises(NoBaselineError, match="run `monitor baseline cancer` first") as info:
        once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert info.value.exit_code == 2
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert session.scalar(select(func.count()).select_from(Alert)) == 0


def test_a_window_that_has_not_ended_is_refused_then_computed_once_it_has(
    engine, settings, baselined, send_traffic, frozen
):
    """A run stored mid-window would never judge the window's later rows."""
    send_traffic(engine, settings, T0, seed=5)
    frozen.now = T0 + WINDOW / 2
    with pytest.raises(UnfinishedWindow) as info:
        once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert info.value.exit_code == 2
    assert f"has not ended: it closes at {(T0 + WINDOW).isoformat()} (in 0:30:00)" in str(info.value)
    assert f"last complete window is {(T0 - WINDOW).isoformat()} .. {T0.isoformat()}" in str(info.value)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
    frozen.now = T0 + WINDOW
    assert once(settings, engine, "cancer", T0, T0 + WINDOW).summary["rows"] == 200


def test_failed_run_raises_run_failed_then_resolves(engine, settings, baselined, send_traffic, tmp_path):
    send_traffic(engine, settings, T0, seed=4)
    broken = settings.model_copy(
        update={"models": (settings.models[0].model_copy(update={"path": tmp_path / "gone.keras"}),)}
    )
    with pytest.raises(RunFailed, match="gone.keras") as info:
        once(broken, engine, "cancer", T0, T0 + WINDOW)
    failed = info.value.outcome
    assert failed.status == "failed" and failed.summary["alerts"][0]["kind"] == "run_failed"
    assert set(failed.summary) == {
        "run_id", "model", "window", "status", "error", "rows", "sampled", "quarantined", "alerts"
    }
    retried = once(settings, engine, "cancer", T0, T0 + WINDOW)  # a failed run is computed again
    assert retried.status == "succeeded"
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        alert = session.scalars(select(Alert).where(Alert.kind == "run_failed")).one()
        assert alert.status == "resolved"


def test_no_data_alert_after_quiet_windows(engine, settings, baselined, send_traffic):
    send_traffic(engine, settings, T0, seed=6)
    assert once(settings, engine, "cancer", T0, T0 + WINDOW).status == "succeeded"
    quiet = [once(settings, engine, "cancer", T0 + i * WINDOW, T0 + (i + 1) * WINDOW) for i in (1, 2, 3)]
    kinds = [[a["kind"] for a in q.summary["alerts"]] for q in quiet]
    assert kinds[:2] == [[], []]  # one and two quiet windows: not yet (no_data_after = 3)
    assert kinds[2] == ["no_data"]
    assert quiet[2].summary["traffic"] == {"quiet_windows": 3, "no_data": True}


def test_empty_windows_of_a_model_that_never_had_traffic_raise_nothing(engine, settings, baselined):
    outcomes = [once(settings, engine, "cancer", T0 + i * WINDOW, T0 + (i + 1) * WINDOW) for i in range(4)]
    assert all(o.summary["alerts"] == [] for o in outcomes)
    assert outcomes[-1].summary["traffic"] == {"quiet_windows": 3, "no_data": False}  # counted up to 3


def test_mute_policy_is_obeyed(engine, settings, baselined, send_traffic):
    with transaction(engine) as session:
        session.add(
            Policy(
                model="cancer",
                kind="mute",
                alert_kind="feature_drift",
                feature="mean_radius",
                reason="expected",
                created_by="U1",
                until=T0 + 3650 * 24 * WINDOW,
            )
        )
    send_traffic(engine, settings, T0, seed=5, shift=True)
    outcome = once(settings, engine, "cancer", T0, T0 + WINDOW)
    raised = {(a["kind"], tuple(a["features"])) for a in outcome.summary["alerts"]}
    assert ("feature_drift", ("mean_texture",)) in raised
    assert ("feature_drift", ("mean_radius",)) not in raised


def test_last_complete_window_is_aligned():
    start, end = last_complete_window(WINDOW, T0 + 1.5 * WINDOW)
    assert (start, end) == (T0, T0 + WINDOW)


def test_failed_recomputation_keeps_the_stored_run(engine, settings, baselined, send_traffic, tmp_path):
    from monitor.errors import RunError

    send_traffic(engine, settings, T0, seed=9)
    good = once(settings, engine, "cancer", T0, T0 + WINDOW)
    broken = settings.model_copy(
        update={"models": (settings.models[0].model_copy(update={"path": tmp_path / "gone.keras"}),)}
    )
    with pytest.raises(RunError, match="the stored run is kept"):
        once(broken, engine, "cancer", T0, T0 + WINDOW, force=True)
    again = once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert again.reused and again.run_id == good.run_id and again.status == "succeeded"
