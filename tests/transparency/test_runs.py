"""Surrogate, reasons, faithfulness and the model card through real runs on SQLite and
PostgreSQL: a real Keras model, real intake, real migrations."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sqlalchemy import func, select

from monitor.baseline import build_baseline
from monitor.config import load_settings
from monitor.cycle import Runtime, run_once
from monitor.store import transaction
from monitor.store.tables import ModelCard, SampleAttribution, SurrogateResult
from monitor.vocab import AlertKind
from tests.cli import run_cli
from tests.models import CONFIG, FEATURES, T0, WINDOW

TRANSPARENCY = {AlertKind.SURROGATE_FIDELITY, AlertKind.REASON_SHIFT, AlertKind.FAITHFULNESS}
CARD = """
[models.card]
owners = ["Risk team <risk@example.org>"]
version = "1.2"
intended_use = "triage of biopsy reports"
limitations = ["trained on one hospital's data"]
ethical_considerations = ["a false negative delays treatment"]
"""


@pytest.fixture
def config_path(db_url, model_dir, write_config, tmp_path):
    """The shared cancer config with 150 explained rows per run, on a copy of the model
    (the swap test overwrites it)."""
    import shutil

    target = tmp_path / "model"
    target.mkdir()
    shutil.copy(model_dir / "model.keras", target / "model.keras")
    shutil.copy(model_dir / "train.parquet", target / "train.parquet")
    body = CONFIG.format(url=db_url, model_dir=target, features=str(FEATURES).replace("'", '"'))
    body = body.replace("max_samples = 60", "max_samples = 150") + CARD
    return write_config(body)


def once(settings, engine, start, runtime):
    return run_once(settings, engine, "cancer", start, start + WINDOW, runtime=runtime, channels=[])


def test_runs_store_surrogate_reasons_and_a_versioned_card(engine, config_path, send_traffic, tmp_path):
    settings = load_settings(config_path, env={})
    build_baseline(settings, engine, "cancer", created_by="test")
    runtime = Runtime()
    outcomes = []
    for i in range(3):
        send_traffic(engine, settings, T0 + i * WINDOW, seed=10 + i)
        outcomes.append(once(settings, engine, T0 + i * WINDOW, runtime))
    doc = outcomes[-1].summary
    assert 0.0 <= doc["surrogate"]["fidelity"] <= 1.0
    assert 1 <= doc["surrogate"]["depth"] <= 3 and doc["surrogate"]["rules"]
    assert doc["decision_reasons"]["explained"] == 150
    assert doc["faithfulness"]["method"] == "integrated_gradients"
    assert doc["faithfulness"]["steps"] >= 1
    with transaction(engine) as session:
        reasons = session.scalars(select(SampleAttribution.reasons)
                                  .where(SampleAttribution.run_id == outcomes[-1].run_id)).all()
        assert len(reasons) == 150 and all(r is not None and "unfavourable" in r for r in reasons)
        assert any(r["top"] for r in reasons)
        assert session.scalar(select(func.count()).select_from(SurrogateResult)) == 3
        versions = session.scalars(select(ModelCard.version).order_by(ModelCard.version)).all()
        assert versions == [1, 2, 3]

    _give_feedback(engine, settings)
    proc = run_cli("card", "cancer", "--json", config=config_path, check=True)
    card = json.loads(proc.stdout)
    assert set(card) >= {"model_details", "model_parameters", "quantitative_analysis", "considerations",
                         "monitoring"}
    assert card["model_details"]["owners"] == [{"name": "Risk team", "contact": "risk@example.org"}]
    assert card["considerations"]["use_cases"] == [{"description": "triage of biopsy reports"}]
    realized = [m for m in card["quantitative_analysis"]["performance_metrics"]
                if m["type"] == "accuracy" and m["slice"].startswith("production")]
    assert realized and realized[0]["confidence_interval"]["lower_bound"] <= realized[0]["value"]
    assert set(card["monitoring"]["importance"]["stability"]) == set(FEATURES)
    assert 0.0 <= card["monitoring"]["surrogate"]["latest"]["fidelity"] <= 1.0
    assert len(card["monitoring"]["surrogate"]["fidelity_history"]) == 3
    assert card["card_version"] == 3
    answered = [a for a in card["monitoring"]["alerts"] if a["feedback"]]
    assert answered and answered[0]["feedback"][0]["verdict"] == "expected_change"
    assert answered[0]["feedback"][0]["comment"] == "known seasonal change"
    assert any(p["kind"] == "mute" and p["created_by"] for p in card["monitoring"]["policies"])

    out = tmp_path / "card.html"
    run_cli("card", "cancer", "--out", str(out), config=config_path, check=True)
    page = out.read_text()
    assert "<h2>Monitoring</h2>" in page and "Surrogate tree" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: no CDN, no remote asset
    _render_in_chromium(out)

    why = run_cli("why", "cancer", reasons[0] and
                  _explained_request(engine, outcomes[-1].run_id), config=config_path, check=True)
    assert "because" in why.stdout


def test_card_versions_beyond_keep_are_deleted(engine, config_path, frozen):
    from monitor.store.cards import latest_card, save_card

    with transaction(engine) as session:
        for i in range(5):
            save_card(session, "cancer", {"n": i}, run_id=None, now=frozen(), keep=3)
        versions = session.scalars(select(ModelCard.version).order_by(ModelCard.version)).all()
        assert versions == [3, 4, 5]
        assert latest_card(session, "cancer").document == {"n": 4}


def _render_in_chromium(page_path):
    """The page renders in a real Chromium with every section (skipped without one)."""
    if not os.path.exists("/usr/bin/chromium"):
        return
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            headings = page.locator("h2").all_inner_texts()
            assert headings == ["Model details", "Model parameters", "Quantitative analysis",
                                "Considerations", "Monitoring"]
            assert page.locator("pre").first.inner_text().startswith("|---")
        finally:
            browser.close()


def _give_feedback(engine, settings):
    """Mute the first alert from the CLI's feedback path (a policy with an audit trail)."""
    from monitor import clock
    from monitor.policies import apply_feedback
    from monitor.store.tables import Alert

    with transaction(engine) as session:
        alert = session.scalars(select(Alert).order_by(Alert.id)).first()
        assert alert is not None, "three runs raised no alert to answer"
        apply_feedback(session, alert, "expected_change", user_id="U1", user_name="dana",
                       comment="known seasonal change", source="cli",
                       external_id=None, config=settings.feedback, now=clock.utcnow())


def _explained_request(engine, run_id):
    with transaction(engine) as session:
        return session.scalars(select(SampleAttribution.request_id)
                               .where(SampleAttribution.run_id == run_id)).first()


def _texture_model(path, cancer):
    """A model with the same inputs whose decision rests on mean_texture alone."""
    import keras

    train, _ = cancer
    keras.utils.set_random_seed(5)
    inputs = {n: keras.Input(shape=(1,), name=n) for n in FEATURES}
    norm = keras.layers.Normalization()
    norm.adapt(train[["mean_texture"]].to_numpy("float32"))
    x = keras.layers.Dense(8, activation="relu")(norm(inputs["mean_texture"]))
    others = keras.layers.Concatenate()([inputs[n] for n in FEATURES if n != "mean_texture"])
    zero = keras.layers.Dense(1, kernel_initializer="zeros", trainable=False, use_bias=False)(others)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([x, zero]))
    net = keras.Model(inputs, out)
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    y = (train["mean_texture"] > train["mean_texture"].median()).to_numpy("float32")
    net.fit({n: train[[n]].to_numpy("float32") for n in FEATURES}, y, epochs=30, verbose=0)
    net.save(path)
    stat = os.stat(path)
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))


@pytest.mark.slow
def test_clean_windows_stay_quiet_and_a_swapped_model_shifts_the_reasons(
    engine, config_path, send_traffic, cancer, db_url
):
    settings = load_settings(config_path, env={})
    build_baseline(settings, engine, "cancer", created_by="test")
    runtime = Runtime()
    # MONITOR_TEST_CLEAN_WINDOWS=20 measures the false-alarm rate over more windows
    clean = int(os.environ.get("MONITOR_TEST_CLEAN_WINDOWS", 6 if db_url.startswith("sqlite") else 3))
    raised, seconds = [], []
    for i in range(clean):
        send_traffic(engine, settings, T0 + i * WINDOW, seed=100 + i)
        outcome = once(settings, engine, T0 + i * WINDOW, runtime)
        raised.append({a["kind"] for a in outcome.summary["alerts"]} & TRANSPARENCY)
        if raised[-1]:
            sur = outcome.summary["surrogate"]
            print({k: sur[k] for k in ("fidelity", "lower_bound", "top_feature", "baseline_top_feature",
                                       "top_feature_share", "fidelity_low", "top_split_changed")})
        seconds.append(outcome.summary["timings"]["transparency"])
    rate = np.mean([bool(kinds) for kinds in raised])
    print(f"clean windows with a surrogate/reason/faithfulness finding: {rate:.0%} of {clean}: "
          f"{[sorted(k) for k in raised if k]}; transparency step median {np.median(seconds):.2f} s")
    assert rate <= 1 / 3

    _texture_model(settings.model("cancer").path, cancer)
    start = T0 + clean * WINDOW
    send_traffic(engine, settings, start, seed=999)
    swapped = once(settings, engine, start, runtime)
    kinds = {a["kind"] for a in swapped.summary["alerts"]}
    shift = swapped.summary["decision_reasons"]["shift"]
    assert AlertKind.REASON_SHIFT in kinds, shift
    assert shift["p_value"] < 0.01
    assert max(shift["window"], key=shift["window"].get) == "mean_texture"
