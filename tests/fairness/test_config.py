"""[models.segments] and [models.fairness]: defaults, validation naming the key, from_config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.config import load_settings, settings_from_dict
from monitor.errors import ConfigError
from monitor.fairness import DisparityAnalyzer, FairnessAnalyzer, SegmentAnalyzer

REPO = Path(__file__).resolve().parents[2]


def _model(task: str = "binary_classification", **tables) -> dict:
    model = {
        "name": "credit",
        "path": "model.keras",
        "task": task,
        "features": {"numeric": ["income", "age"], "categorical": ["region"]},
        **tables,
    }
    return {"models": [model]}


FAIR = {
    "segments": {"attributes": ["sex"], "features": ["age", "region"]},
    "fairness": {"protected": ["sex", "age"], "favorable": 1, "reference_group": {"sex": "M"}},
}


def test_defaults_and_a_valid_fairness_table() -> None:
    plain = settings_from_dict(_model(), env={}).models[0]
    assert plain.segments.attributes == () and plain.segments.max_segments == 50
    assert plain.segments.min_rows == 30 and plain.fairness.protected == ()
    bands = plain.fairness.bands
    assert (bands.ratio_low, bands.ratio_high, bands.difference) == (0.8, 1.25, 0.1)
    model = settings_from_dict(_model(**FAIR), env={}).models[0]
    assert model.fairness.reference_group == {"sex": "M"}
    analyzer = FairnessAnalyzer.from_config(model)
    assert analyzer.keys.numeric == ("age",) and analyzer.outcome.favorable_class == 1
    assert SegmentAnalyzer.from_config(model).columns == ("sex", "age", "region")
    assert DisparityAnalyzer.from_config(model).features == ("income", "age", "region")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], 300), "age": rng.normal(40, 9, 300)})
    report = analyzer.fit(frame, rng.uniform(size=300)).analyze(frame, rng.uniform(size=300))
    assert report.attributes["sex"].reference_group == "M"
    assert len(report.attributes["age"].groups) == 4  # the baseline's quartiles


@pytest.mark.parametrize(
    ("tables", "task", "expected"),
    [
        pytest.param(
            {"fairness": {"protected": ["sex"], "favorable": 1}},
            "binary_classification",
            "fairness.protected: ['sex'] must be listed in segments",
            id="protected-not-a-segment",
        ),
        pytest.param(
            {"segments": {"attributes": ["sex"]}, "fairness": {"protected": ["sex"]}},
            "binary_classification",
            "fairness.favorable: required",
            id="no-favorable",
        ),
        pytest.param(
            {"segments": {"attributes": ["income"]}},
            "binary_classification",
            "segments.attributes: ['income'] are model inputs",
            id="attribute-is-an-input",
        ),
        pytest.param(
            {"segments": {"features": ["zip"]}},
            "binary_classification",
            "segments.features: not a configured feature: ['zip']",
            id="unknown-feature",
        ),
        pytest.param(
            {"segments": {"attributes": ["sex"]}, "fairness": {"protected": ["sex"], "favorable": "above"}},
            "regression",
            "fairness.threshold: required for regression",
            id="regression-threshold",
        ),
        pytest.param(
            {
                "segments": {"attributes": ["sex"]},
                "fairness": {"protected": ["sex"], "favorable": 1, "threshold": 2.0},
            },
            "regression",
            "must be 'above' or 'below' for regression",
            id="regression-class",
        ),
        pytest.param(
            {"segments": {"attributes": ["sex"]}, "fairness": {"protected": ["sex"], "favorable": 3}},
            "binary_classification",
            "class index 3 is out of range",
            id="binary-class-3",
        ),
        pytest.param(
            {
                "segments": {"attributes": ["sex"]},
                "fairness": {"protected": ["sex"], "favorable": "approved"},
            },
            "multiclass_classification",
            "'approved' is not a class name",
            id="unknown-class-name",
        ),
        pytest.param(
            {
                "segments": {"attributes": ["sex"]},
                "fairness": {"protected": ["sex"], "favorable": 1, "reference_group": {"age": "x"}},
            },
            "binary_classification",
            "reference_group: not a protected attribute: ['age']",
            id="reference-not-protected",
        ),
        pytest.param(
            {
                "segments": {"attributes": ["sex"]},
                "fairness": {"protected": ["sex"], "favorable": 1, "bands": {"ratio_low": 1.2}},
            },
            "binary_classification",
            "fairness.bands.ratio_low: must be < 1",
            id="band-low",
        ),
        pytest.param(
            {"segments": {"attributes": ["sex"], "min_row": 5}},
            "binary_classification",
            "segments.min_row: unknown key (did you mean 'min_rows'?)",
            id="typo",
        ),
    ],
)
def test_mistakes_name_the_key(tables: dict, task: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(_model(task, **tables), env={})
    assert expected in str(err.value)


def test_the_commented_example_in_config_toml_is_valid() -> None:
    """Uncommenting the fairness example of config.toml gives a valid configuration."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    start = text.index("# [models.segments]")
    block = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines() if line.startswith("# "))
    example = tomllib.loads(text[:start] + block)
    model = settings_from_dict(example, env={}).models[0]
    assert model.fairness.protected and set(model.fairness.protected) <= set(model.segments.names)
    assert load_settings(REPO / "config.toml", env={}).models[0].segments.attributes == ()
