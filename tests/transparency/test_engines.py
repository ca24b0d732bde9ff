"""The surrogate and reasons engines on a real Keras model's outputs (no database)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.config import load_settings
from monitor.model import load_model, select_output
from monitor.reasons import decisions, in_words, reason_shift, top_reasons
from monitor.surrogate import surrogate_report
from monitor.vocab import AlertKind
from tests.models import CONFIG, FEATURES


@pytest.fixture(scope="module")
def outputs(model_dir, cancer):
    """The cancer model's P(malignant) on the training (baseline) and held-out rows."""
    train, held_out = cancer
    model = load_model(model_dir / "model.keras")
    ref = select_output(model.predict_frame(train[FEATURES]), "binary_classification")
    win = select_output(model.predict_frame(held_out[FEATURES]), "binary_classification")
    return train[FEATURES], ref, held_out[FEATURES], win


def test_surrogate_of_a_keras_model_is_faithful_and_readable(outputs):
    ref_x, ref_y, x, y = outputs
    report = surrogate_report(x.iloc[:150], y[:150], ref_x, ref_y, numeric=FEATURES, categorical=[],
                              max_depth=3, resamples=100, seed=1)
    assert 0.5 < report.tree.fidelity <= 1.0
    assert report.tree.depth <= 3
    assert any("<=" in rule for rule in report.tree.rules)
    assert report.lower_bound is not None and report.lower_bound < report.baseline_median
    assert report.tree.top_feature in FEATURES
    assert not report.flagged


def test_surrogate_flags_a_window_the_model_no_longer_explains(outputs):
    """Outputs that depend on the inputs through an interaction a depth-3 tree cannot
    summarise (a product of signs of four features) fall below the calibrated range."""
    ref_x, ref_y, x, _ = outputs
    window = x.iloc[:150]
    z = (window - ref_x.mean()) / ref_x.std()
    scrambled = 1 / (1 + np.exp(-3 * np.sign(z[FEATURES[:4]]).prod(axis=1).to_numpy()))
    report = surrogate_report(window, scrambled, ref_x, ref_y, numeric=FEATURES, categorical=[],
                              max_depth=3, resamples=100, seed=1)
    assert report.fidelity_low and report.flagged
    assert report.tree.fidelity < report.lower_bound


def test_surrogate_top_split_moves_only_when_the_window_says_so():
    rng = np.random.default_rng(2)
    cols = list("abcd")
    ref = pd.DataFrame(rng.normal(size=(400, 4)), columns=cols)
    y_ref = np.tanh(2 * ref["a"]) + 0.3 * ref["b"]
    same = pd.DataFrame(rng.normal(size=(150, 4)), columns=cols)
    clean = surrogate_report(same, np.tanh(2 * same["a"]) + 0.3 * same["b"], ref, y_ref.to_numpy(),
                             numeric=cols, categorical=[], resamples=50)
    assert clean.tree.top_feature == "a" and not clean.top_split_changed
    moved = surrogate_report(same, np.tanh(2 * same["c"]) + 0.3 * same["b"], ref, y_ref.to_numpy(),
                             numeric=cols, categorical=[], resamples=50)
    assert moved.tree.top_feature == "c" and moved.baseline_top_feature == "a"
    assert moved.top_split_changed and moved.top_split_p_value < 0.01


def test_surrogate_encodes_categoricals_as_indicators():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=400), "color": rng.choice(["red", "blue", "green"], 400)})
    y_ref = (ref["color"] == "red").to_numpy(float) + 0.1 * ref["x"].to_numpy()
    win = pd.DataFrame({"x": rng.normal(size=200), "color": rng.choice(["red", "blue", "green"], 200)})
    y = (win["color"] == "red").to_numpy(float) + 0.1 * win["x"].to_numpy()
    report = surrogate_report(win, y, ref, y_ref, numeric=["x"], categorical=["color"], resamples=50)
    assert report.tree.top_feature == "color" and report.baseline_top_feature == "color"
    assert any("color = red" in rule for rule in report.tree.rules)
    assert report.tree.fidelity > 0.9


def _binary(**reasons):
    body = CONFIG.format(url="sqlite://", model_dir="/tmp", features=str(FEATURES).replace("'", '"'))
    if reasons:
        body += "[models.reasons]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in reasons.items())
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "config.toml"
    path.write_text(body)
    return load_settings(path, env={}).model("cancer")


def test_binary_decisions_and_reasons_point_toward_the_decision():
    model = _binary()
    output = np.array([0.9, 0.2])
    decided = decisions(model, output)
    assert decided.unfavourable.tolist() == [True, False]  # default: positive class unfavourable
    values = pd.DataFrame({"a": [0.3, 0.2], "b": [-0.1, -0.4], "c": [0.05, 0.0]})
    reasons = top_reasons(values, decided.toward, 2)
    assert [name for name, _ in reasons[0]] == ["a", "c"]
    assert [name for name, _ in reasons[1]] == ["b"]
    flipped = decisions(_binary(favorable=1), output)
    assert flipped.unfavourable.tolist() == [False, True]


def test_reason_shift_needs_a_real_change():
    rng = np.random.default_rng(0)
    same = reason_shift(list(rng.choice(["a", "b", "c"], 80)), list(rng.choice(["a", "b", "c"], 80)),
                        alpha=0.01, permutations=500, min_decisions=20)
    assert same is not None and not same.shifted
    moved = reason_shift(["c"] * 60 + ["a"] * 20, list(rng.choice(["a", "b"], 80)),
                         alpha=0.01, permutations=500, min_decisions=20)
    assert moved.shifted and moved.p_value < 0.01 and moved.distance > moved.threshold
    assert reason_shift(["a"] * 5, ["a"] * 80, alpha=0.01, permutations=100, min_decisions=20) is None


def test_reason_shift_reaches_the_budgets_small_levels():
    """At an hourly budget's share (~5e-5) the test must be able to fire: 1,000 plain
    permutations could never give a p-value below 1e-3."""
    rng = np.random.default_rng(3)
    moved = reason_shift(["c"] * 60 + ["a"] * 20, list(rng.choice(["a", "b"], 80)),
                         alpha=5e-5, permutations=1000, min_decisions=20)
    assert moved.shifted and moved.p_value < 5e-5 and moved.permutations > 20_000
    assert moved.threshold is not None and moved.distance > moved.threshold
    clean = reason_shift(list(rng.choice(["a", "b", "c"], 80)), list(rng.choice(["a", "b", "c"], 300)),
                         alpha=5e-5, permutations=1000, min_decisions=20)
    # a clean window stops after the first draws: no threshold it could place
    assert not clean.shifted and clean.permutations == 1000 and clean.threshold is None


def test_reasons_in_plain_words():
    stats = {"mean_radius": {"p50": 14.1, "mean": 14.2}, "mean_texture": {"p50": 19.0}}
    inputs = {"mean_radius": 23.1, "mean_texture": 12.0}
    text = in_words([["mean_radius", 0.3], ["mean_texture", 0.1]], inputs, stats)
    assert text == ("mostly because mean_radius is high (23.1, typical 14.1), "
                    "then mean_texture is low (12, typical 19)")


def test_faithfulness_fires_only_when_most_rows_miss_the_tolerance():
    from monitor.alerts import transparency_findings
    from monitor.result import Faithfulness
    from tests.factories import run_result

    noisy = Faithfulness("integrated_gradients", 0.0102, 0.01, 32, 150, above=76, p_value=0.47)
    broken = Faithfulness("integrated_gradients", 0.08, 0.01, 32, 150, above=140, p_value=1e-30)
    assert not noisy.exceeded and broken.exceeded
    from dataclasses import replace

    found = transparency_findings(replace(run_result(), faithfulness=broken))
    assert [f.kind for f in found] == [AlertKind.FAITHFULNESS]
    assert "32 steps" in found[0].lines[0]
    assert transparency_findings(replace(run_result(), faithfulness=noisy)) == []


def test_alert_messages_link_the_model_card():
    from monitor.notify.console import render_text
    from monitor.slack.messages import alert_message

    payload = {"alert": {"id": 3, "model": "cancer", "kind": "reason_shift", "severity": "warning",
                         "title": "the reasons behind unfavourable decisions changed"}, "lines": []}
    _, blocks = alert_message("alert_opened", payload, report_base_url="https://mon.example/reports/")
    text = json.dumps(blocks)
    assert "https://mon.example/reports/cards/cancer|Model card" in text
    _, blocks = alert_message("alert_opened", payload)
    assert "monitor card cancer --out card.html" in json.dumps(blocks)
    assert "model card: monitor card cancer" in render_text("alert_opened", payload)


def _model(task, **extra):
    from monitor.config import ModelConfig

    return ModelConfig.model_validate({"name": "m", "path": "m.keras", "task": task,
                                       "features": {"numeric": ["a", "b"]}, **extra})


def test_regression_and_multiclass_decisions():
    reg = decisions(_model("regression", reasons={"favorable": "below", "threshold": 10.0}),
                    np.array([12.0, 8.0]))
    assert reg.toward.tolist() == [1.0, -1.0] and reg.unfavourable.tolist() == [True, False]
    free = decisions(_model("regression"), np.array([12.0, 8.0]), baseline_output=np.array([9.0, 9.0]))
    assert free.toward.tolist() == [1.0, -1.0] and free.unfavourable.all()
    multi = _model("multiclass_classification", class_names=["ok", "review", "reject"],
                   reasons={"favorable": "ok"})
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    decided = decisions(multi, scores.max(axis=1), scores)
    assert decided.toward.tolist() == [1.0, 1.0] and decided.unfavourable.tolist() == [False, True]


def test_reasons_favorable_is_checked_against_the_task():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reasons.favorable"):
        _model("regression", reasons={"favorable": 1})
    with pytest.raises(ValidationError, match="not a class name"):
        _model("multiclass_classification", class_names=["x", "y"], reasons={"favorable": "z"})


def test_slack_why_answer_says_the_reasons():
    from monitor.slack.messages import why_message

    text = why_message({"model": "cancer", "request_id": "r1", "output": 0.9,
                        "method": "integrated_gradients", "baseline_output": 0.3,
                        "contributions": [["mean_radius", 0.4, 23.1]],
                        "reasons_text": "mostly because mean_radius is high (23.1, typical 14.1)"})
    assert "_mostly because mean_radius is high (23.1, typical 14.1)_" in text


def test_a_surrogate_that_never_fitted_the_baseline_raises_nothing(outputs, caplog):
    """A model a depth-1 tree cannot summarise on its own baseline (median R² low): the
    window's even lower fidelity is noise, not news; the report says why, once."""
    import logging

    ref_x, _, x, _ = outputs
    rng = np.random.default_rng(4)
    z = (ref_x - ref_x.mean()) / ref_x.std()
    # an output a one-split tree cannot follow: a sum of interactions
    ref_y = np.tanh(z[FEATURES[0]] * z[FEATURES[1]] + z[FEATURES[2]] * z[FEATURES[3]]).to_numpy()
    window = x.iloc[:150]
    scrambled = rng.normal(size=150)  # unrelated to the inputs: fidelity collapses
    args = dict(numeric=FEATURES, categorical=[], max_depth=1, resamples=100, seed=1)
    with caplog.at_level(logging.WARNING, logger="monitor.surrogate"):
        quiet = surrogate_report(window, scrambled, ref_x, ref_y, min_fidelity=0.5, **args)
        surrogate_report(window, scrambled, ref_x, ref_y, min_fidelity=0.5, **args)
    assert quiet.baseline_median < 0.5 and not quiet.usable
    assert not quiet.fidelity_low and not quiet.top_split_changed and not quiet.flagged
    assert "cannot summarise this model" in quiet.to_dict()["note"]
    assert sum("cannot summarise" in r.getMessage() for r in caplog.records) == 1
    # the case seen on a credit model: a surrogate that never fitted (baseline median R²
    # 0.23) "lost fidelity" at R² -0.169 against a bound of -0.166
    from dataclasses import replace

    seen = replace(quiet, tree=replace(quiet.tree, fidelity=-0.169), lower_bound=-0.166,
                   baseline_median=0.23)
    assert not seen.flagged and "explains 23%" in seen.note
    assert replace(seen, min_fidelity=0.2).flagged  # a surrogate that did fit: news


def test_the_surrogate_bound_reaches_beyond_its_bootstrap_draws():
    """200 bootstrap fidelities cannot place the 1e-5 quantile a budget's share asks for:
    the bound is then a normal tail, below every draw, not the smallest draw."""
    from monitor.surrogate import lower_bound

    rng = np.random.default_rng(5)
    fidelities = rng.normal(0.8, 0.02, 200)
    bound = lower_bound(fidelities, 1e-5)
    assert bound < fidelities.min() - 0.01
    assert bound == pytest.approx(fidelities.mean() - 4.265 * fidelities.std(ddof=1), abs=1e-3)
    # where the draws reach the level, the empirical quantile as before
    assert lower_bound(fidelities, 0.05) == pytest.approx(np.quantile(fidelities, 0.05))
