"""What-if and counterfactuals on the real Keras model, from Python and from the CLI."""

from __future__ import annotations

import json

import pytest

from monitor.config import load_settings
from monitor.explain import counterfactual, explain_request, what_if
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.store.runs import explained_requests
from tests.models import CONFIG, FEATURES

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ACTIONABLE = ["mean_radius", "mean_texture"]


@pytest.fixture
def cf_settings(db_url, model_dir, write_config):
    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    body = body.replace("[models.baseline]", f"actionable = {json.dumps(ACTIONABLE)}\n"
                        "[models.fairness]\nfavorable = 0\n[models.baseline]")
    return load_settings(write_config(body, "counterfactual.toml"), env={})


def _unfavourable(settings, engine, run_id) -> str:
    """A request the model scored malignant (>= 0.5): unfavourable when benign (0) is."""
    with transaction(engine) as session:
        ids = explained_requests(session, run_id, limit=60)
    for rid in ids:
        if explain_request(settings, engine, "cancer", rid)["output"] >= 0.5:
            return rid
    pytest.fail("no request of the run was scored malignant")


def test_counterfactual_flips_the_decision_within_the_baseline_range(engine, cf_settings, filled):
    rid = _unfavourable(cf_settings, engine, filled.clean)
    found = counterfactual(cf_settings, engine, "cancer", rid)
    assert found["found"], found
    assert found["output_before"][0] >= 0.5 > found["output_after"][0]
    assert found["changes"] and set(found["changes"]) <= set(ACTIONABLE)
    with transaction(engine) as session:
        sample = active_baseline(session, "cancer").sample
    for name, (_, new) in found["changes"].items():
        assert sample[name].min() <= new <= sample[name].max()
    # the what-if of the counterfactual's values gives the same output, recomputed
    changed = what_if(cf_settings, engine, "cancer", rid, {k: str(v[1]) for k, v in found["changes"].items()})
    assert changed["answer"]["output"] == pytest.approx(found["output_after"][0], abs=1e-4)
    assert changed["answer"]["recomputed"] is True
    # bisection: half of the found change does not flip it any more (for a one-feature change)
    if len(found["changes"]) == 1:
        (name, (old, new)), = found["changes"].items()
        half = what_if(cf_settings, engine, "cancer", rid, {name: str(old + (new - old) * 0.5)})
        assert half["answer"]["output"] >= 0.5


def test_what_if_refuses_unknown_features_and_text_in_numbers(engine, cf_settings, filled):
    from monitor.errors import NotFoundError

    rid = _unfavourable(cf_settings, engine, filled.clean)
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        what_if(cf_settings, engine, "cancer", rid, {"nope": "1"})
    with pytest.raises(NotFoundError, match="is numeric"):
        what_if(cf_settings, engine, "cancer", rid, {"mean_radius": "big"})


def test_cli_why_set_and_counterfactual(engine, cf_settings, filled, run_monitor):
    rid = _unfavourable(cf_settings, engine, filled.clean)
    config = str(cf_settings.source_path)
    done = run_monitor("--config", config, "why", "cancer", rid, "--set", "mean_radius=6.5",
                       "--counterfactual", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["what_if"]["changes"]["mean_radius"][1] == 6.5
    assert doc["recomputed"] is True and doc["output"] != doc["what_if"]["original_output"]
    assert doc["counterfactual"]["found"] is True
    text = run_monitor("--config", config, "why", "cancer", rid, "--counterfactual")
    assert text.returncode == 0, text.stderr
    assert "counterfactual (favourable: output < 0.5" in text.stdout
