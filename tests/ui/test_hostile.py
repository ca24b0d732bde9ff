"""Nothing let in: script planted through every input that reaches a page never runs.

A categorical value, a segment and fairness attribute value, a feature name, a request
id, the model card's human-written text, alert comments (CLI and dashboard form) and a
quarantined raw row all carry the same payload; Chromium opens every dashboard page
(Evidently's frame included), `monitor report` and the model card from disk, and the
payload must show as text, never run (no dialog, no `window.__pwned`), while
Evidently's report still draws in its opaque-origin frame.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.config import load_settings
from monitor.server import BackgroundServer
from tests.cli import run_cli
from tests.models import T0, WINDOW

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

#: closes a script, an attribute (either quote) and a textarea, then runs script two ways
PAYLOAD = ("x'\"></textarea></script><script>window.__pwned=1;alert(1)</script>"
           "<img src=x onerror=\"window.__pwned=1;alert(1)\">")
#: a feature name (a Keras input name): no double quote, so it sits in TOML as is
HOSTILE_FEATURE = "r<img src=x onerror=window.__pwned=1;alert(1)>"
NUMERIC = ["a", HOSTILE_FEATURE]
BANDS = ["low", "high"]

CONFIG = """
[database]
url = "{url}"
[[models]]
name = "hostile"
path = "{model}"
task = "binary_classification"
label = "y"
window = "1h"
schedule = "interval:1h"
sample_size = 200
[models.features]
numeric = {numeric}
categorical = ["band"]
[models.baseline]
data = "{data}"
max_rows = 300
[models.drift]
calibration_resamples = 50
[models.attribution]
max_samples = 30
[models.segments]
attributes = ["grp"]
min_rows = 20
[models.fairness]
protected = ["grp"]
favorable = 0
resamples = 100
[models.surrogate]
resamples = 20
[models.reasons]
permutations = 100
min_decisions = 5
[models.card]
overview = {payload}
owners = [{payload}]
limitations = [{payload}]
references = ["javascript:window.__pwned=1"]
"""


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A dict-input Keras model with a hostile input name and a string input looked up
    inside the model (unknown strings are out of vocabulary), and its training frame."""
    import keras

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), HOSTILE_FEATURE: rng.normal(size=n),
                          "band": rng.choice(BANDS, n)})
    frame["y"] = ((frame["a"] + (frame["band"] == "high")) > 0.5).astype(int)
    frame["grp"] = rng.choice(["A", PAYLOAD], n)
    inputs = {name: keras.Input((1,), name=name) for name in NUMERIC}
    inputs["band"] = keras.Input((1,), name="band", dtype="string")
    one_hot = keras.layers.Reshape((3,))(
        keras.layers.StringLookup(vocabulary=BANDS, output_mode="one_hot")(inputs["band"]))
    merged = keras.layers.Concatenate()([inputs["a"], inputs[HOSTILE_FEATURE], one_hot])
    net = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8)(merged)))
    net.compile(optimizer="adam", loss="binary_crossentropy")
    import tensorflow as tf

    data = {name: frame[[name]].to_numpy("float32") for name in NUMERIC}
    data["band"] = tf.constant(frame[["band"]].to_numpy().astype(str))
    net.fit(data, frame["y"].to_numpy("float32"), epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("hostile")
    net.save(path / "model.keras")
    frame.to_parquet(path / "train.parquet", index=False)
    return path, frame


def _send(engine, settings, start, seed: int) -> None:
    """A shifted window whose categories, attributes and one request id carry the payload,
    and one row quarantined with the payload in its raw text."""
    from monitor.intake.ingest import ingest_predictions, parse_body

    rng = np.random.default_rng(seed)
    records = [
        {"model": "hostile", "request_id": PAYLOAD if (i, seed) == (0, 1) else f"{seed}-{i}",
         "timestamp": (start + timedelta(seconds=float(rng.uniform(0, 3599)))).isoformat(),
         "features": {"a": float(rng.normal(2.0)), HOSTILE_FEATURE: float(rng.normal(-2.0)),
                      "band": str(rng.choice([*BANDS, PAYLOAD]))},
         "prediction": float(rng.uniform()), "label": int(rng.integers(0, 2)),
         "attributes": {"grp": str(rng.choice(["A", PAYLOAD]))}}
        for i in range(120)
    ]
    records.append({"model": "hostile", "request_id": "bad-1", "timestamp": start.isoformat(),
                    "features": {"a": PAYLOAD, HOSTILE_FEATURE: 0.0, "band": "low"}, "prediction": 0.5})
    result = ingest_predictions(engine, settings.models, parse_body(json.dumps(records).encode()),
                                source="test")
    assert result.quarantined == 1


def _clean(page, where: str) -> None:
    """No planted script ran in the page or any of its frames (lazy frames loaded first)."""
    for element in page.locator("iframe").element_handles():
        element.scroll_into_view_if_needed()
        element.content_frame().wait_for_load_state("load", timeout=60_000)
    for frame in page.frames:
        assert frame.evaluate("window.__pwned") is None, f"script ran in {where} ({frame.url[:80]})"


def test_planted_script_never_runs(engine, db_url, hostile_model, write_config, frozen, browser, shots,
                                   tmp_path):
    from monitor.baseline import build_baseline
    from monitor.card import render_html
    from monitor.cycle import run_once
    from monitor.report import build_report
    from monitor.store import transaction
    from monitor.store.cards import latest_card
    from monitor.ui import create_ui_app

    model_dir, _ = hostile_model
    body = CONFIG.format(url=db_url, model=model_dir / "model.keras", data=model_dir / "train.parquet",
                         numeric=json.dumps(NUMERIC), payload=json.dumps(PAYLOAD))
    config_path = write_config(body)
    settings = load_settings(config_path, env={})
    build_baseline(settings, engine, "hostile", created_by="test")
    _send(engine, settings, T0, seed=1)
    _send(engine, settings, T0 + WINDOW, seed=2)
    frozen.now = T0 + WINDOW + timedelta(minutes=5)
    first = run_once(settings, engine, "hostile", T0, T0 + WINDOW, channels=["console"])
    alert_ids = [a["id"] for a in first.summary["alerts"]]
    assert alert_ids, "the shifted window should raise an alert"
    run_cli("alert", "comment", str(alert_ids[0]), "--comment", PAYLOAD, "--by", PAYLOAD,
            config=config_path, check=True)
    frozen.advance(hours=1)
    second = run_once(settings, engine, "hostile", T0 + WINDOW, T0 + 2 * WINDOW, channels=["console"])

    report = tmp_path / "report.html"
    report.write_text(build_report(settings, engine, second.run_id), encoding="utf-8")
    with transaction(engine) as session:
        document = dict(latest_card(session, "hostile").document)
    card = tmp_path / "card.html"
    card.write_text(render_html(document), encoding="utf-8")

    dialogs: list[str] = []
    blocked: list[str] = []
    server = BackgroundServer(create_ui_app(settings, engine, host="127.0.0.1")).start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        base = f"{server.url}/ui"
        response = page.goto(f"{base}/alerts/{alert_ids[0]}")
        assert "script-src 'self';" in response.headers["content-security-policy"]
        page.click("p.warn a")
        page.fill("input[name='name']", "Ann")
        page.click("button[type='submit']")
        page.wait_for_url(f"**/ui/alerts/{alert_ids[0]}")
        page.fill("textarea[name='comment']", PAYLOAD)
        page.click("button[value='comment']")
        page.wait_for_url("**done=comment")

        pages = {
            "overview": "/", "model": "/models/hostile", "alerts": "/alerts",
            "alert": f"/alerts/{alert_ids[0]}", "first run": f"/runs/{first.run_id}",
            "run": f"/runs/{second.run_id}", "card": "/cards/hostile",
            "why": f"/why?{_query(model='hostile', request_id=PAYLOAD)}",
            "what-if": f"/why?{_query(model='hostile', request_id=PAYLOAD, **{'set.band': PAYLOAD})}",
            "evidently alone": f"/runs/{second.run_id}/evidently",
        }
        for name, path in pages.items():
            response = page.goto(base + path)
            assert response.status == 200, (name, response.status)
            policy = response.headers["content-security-policy"]
            assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0], (name, policy)
            assert "object-src 'none'" in policy or "default-src 'none'" in policy, (name, policy)
            if name not in ("card", "evidently alone"):  # pages of their own, without ui.js
                page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            _clean(page, name)
        assert "sandbox allow-scripts" in policy and "allow-same-origin" not in policy

        texts = {}
        for name in ("alert", "run", "why", "card"):
            page.goto(base + pages[name])
            texts[name] = page.inner_text("body")
        assert texts["alert"].count(PAYLOAD) >= 3  # both comments and the CLI's name, shown as typed
        assert PAYLOAD in texts["why"] and HOSTILE_FEATURE in texts["why"]
        assert PAYLOAD in texts["run"] and HOSTILE_FEATURE in texts["run"]  # groups, raw row
        assert PAYLOAD in texts["card"]

        # Evidently's report draws in its sandboxed frame, with the payload among its categories
        page.goto(base + pages["run"])
        frame_element = page.locator("iframe[title='Evidently drift report']")
        assert frame_element.get_attribute("sandbox") == "allow-scripts"
        frame_element.scroll_into_view_if_needed()  # a lazy frame loads when seen
        evidently = page.frame_locator("iframe[title='Evidently drift report']")
        evidently.locator("text=Dataset Drift").first.wait_for(timeout=60_000)
        inner = next(f for f in page.frames if f.url.endswith("/evidently"))
        assert inner.evaluate("origin") == "null"  # opaque: cannot reach the dashboard
        assert "band" in inner.evaluate("document.body.innerText")
        page.screenshot(path=str(shots / "hostile-run.png"), full_page=True)
        _clean(page, "run with Evidently")

        for name, path in (("report file", report), ("card file", card)):
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            _clean(page, name)
            assert PAYLOAD in page.inner_text("body"), name
        evidently = page.frame_locator("iframe[title='Evidently drift report']")
        page.goto(report.as_uri())
        evidently.locator("text=Dataset Drift").first.wait_for(timeout=60_000)
        page.locator("iframe").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "hostile-report.png"))  # the frame, in view
        _clean(page, "report file with Evidently")
    finally:
        server.stop()
    assert not dialogs, dialogs
    assert not blocked, blocked  # the pages' own scripts (plotly, ui.js, Evidently's) need no more


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
