"""The dashboard's store queries on both databases, against runs of the real model."""

from __future__ import annotations

from datetime import timedelta

from monitor.store import dashboard as dash
from monitor.store import transaction
from tests.models import FEATURES, SHIFTED, T0, WINDOW


def test_timelines_of_a_model_come_from_its_runs(engine, filled):
    with transaction(engine) as session:
        runs = dash.runs_between(session, "cancer", T0, T0 + 3 * WINDOW)
        scores = dash.scores_between(session, "cancer", T0, T0 + 3 * WINDOW)
        importance = dash.importance_between(session, "cancer", T0, T0 + 3 * WINDOW)
        later = dash.runs_between(session, "cancer", T0 + WINDOW, T0 + 3 * WINDOW)
        other = dash.runs_between(session, "other", T0, T0 + 3 * WINDOW)
        counts = dash.open_alert_counts(session)
        alerts = dash.alerts_between(session, "cancer", T0, T0 + timedelta(days=1))
    assert [r.id for r in runs] == [filled.clean, filled.shifted, filled.again]
    assert [r.id for r in later] == [filled.shifted, filled.again]  # the range is on window_start
    assert other == []
    assert runs[1].quarantined >= 4  # the 4 malformed rows of the shifted window
    drifted = {(s.run_id, s.feature) for s in scores if s.scope == "feature" and s.drifted}
    assert {(filled.shifted, f) for f in SHIFTED} <= drifted
    assert not {f for r, f in drifted if r == filled.clean}
    features = {s.feature for s in scores if s.scope == "feature"}
    assert features == set(FEATURES)
    assert {p.feature for p in importance} == set(FEATURES)
    assert {p.run_id for p in importance} == {filled.clean, filled.shifted, filled.again}
    assert sum(counts["cancer"].values()) == len([a for a in alerts if a.status != "resolved"]) > 0
    assert {a.id for a in alerts} == set(filled.alert_ids)


def test_estimated_performance_is_a_timeline_with_its_band(engine, filled):
    with transaction(engine) as session:
        scores = dash.scores_between(session, "cancer", T0, T0 + 3 * WINDOW)
        bands = dash.estimate_bands(session, "cancer", T0, T0 + 3 * WINDOW)
    estimated = [s for s in scores if s.scope == "estimated"]
    assert {s.run_id for s in estimated} == {filled.clean, filled.shifted, filled.again}
    assert "accuracy" in {s.method for s in estimated}
    for s in estimated:  # the band holds its estimate: lower (threshold) <= value <= upper
        assert s.threshold <= s.score <= bands[(s.run_id, s.method)]


def test_feedback_and_alert_history(engine, settings, filled, frozen):
    from monitor.policies import apply_feedback
    from monitor.store.alerts import get_alert

    alert_id = filled.alert_ids[0]
    with transaction(engine) as session:
        apply_feedback(session, get_alert(session, alert_id), "comment", user_id="ui:Ann", user_name="Ann",
                       comment="looking", source="ui", external_id=None, config=settings.feedback,
                       now=frozen())
    with transaction(engine) as session:
        points = dash.feedback_between(session, "cancer", T0, frozen() + WINDOW)
        none_yet = dash.feedback_between(session, "cancer", T0, T0 + WINDOW)
        alert, history = dash.alert_feedback(session, alert_id)
        assert dash.alert_feedback(session, 10_000) is None
    assert [(p.alert_id, p.who, p.verdict, p.source) for p in points] == [(alert_id, "Ann", "comment", "ui")]
    assert none_yet == []
    assert [f.comment for f in history] == ["looking"]


def test_the_performance_timeline_shows_each_windows_latest_revision(engine, filled, frozen):
    from monitor.store.revisions import save_revision
    from monitor.ui.plots import performance_figure

    revised = {"realized": {"accuracy": {"current": 0.42, "baseline": 0.9, "degraded": True}}}
    with transaction(engine) as session:
        save_revision(session, filled.clean, 1, 150, 0.75, revised, frozen.now)
        runs = dash.runs_between(session, "cancer", T0, T0 + 3 * WINDOW)
        scores = dash.scores_between(session, "cancer", T0, T0 + 3 * WINDOW)
        revisions = dash.latest_revisions(session, "cancer", T0, T0 + 3 * WINDOW)
    assert revisions == {filled.clean: (1, revised["realized"])}
    ends = {r.id: r.end for r in runs}
    figure = performance_figure(scores, ends, T0, T0 + 3 * WINDOW, [], revisions)
    [accuracy] = [d for d in figure["data"] if d["name"] == "accuracy"]
    first = accuracy["customdata"].index(filled.clean)
    assert accuracy["y"][first] == 0.42 and accuracy["text"][first] == "revision 1"
