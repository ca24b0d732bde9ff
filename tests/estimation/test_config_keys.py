"""Config keys for late labels and the decision threshold: defaults, examples, validation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.estimation import PerformanceEstimator

REPO = Path(__file__).resolve().parents[2]

MODEL = """
[scheduler]
{scheduler}
[[models]]
name = "m"
path = "model.keras"
task = "{task}"
{model}
[models.features]
numeric = ["a", "b"]
{labels}
"""


def _config(task="binary_classification", scheduler="", model="", labels="") -> str:
    return MODEL.format(task=task, scheduler=scheduler, model=model, labels=labels)


def test_defaults(write_config):
    settings = load_settings(write_config(_config()), env={})
    model = settings.models[0]
    assert settings.scheduler.label_refresh == timedelta(minutes=15)
    assert model.labels.horizon == timedelta(days=90)
    assert model.decision_threshold == 0.5


def test_repository_example_sets_every_key():
    settings = load_settings(REPO / "config.toml", env={})
    model = settings.model("diagnosis")
    assert settings.scheduler.label_refresh == timedelta(minutes=15)
    assert (model.labels.horizon, model.decision_threshold) == (timedelta(days=90), 0.5)
    estimator = PerformanceEstimator.for_model(model)
    assert estimator.decision_threshold == 0.5 and estimator.task.value == model.task


def test_values_are_read(write_config):
    body = _config(
        scheduler='label_refresh = "1h"',
        model="decision_threshold = 0.3",
        labels='[models.labels]\nhorizon = "2w"',
    )
    settings = load_settings(write_config(body), env={})
    assert settings.scheduler.label_refresh == timedelta(hours=1)
    assert settings.models[0].labels.horizon == timedelta(weeks=2)
    assert settings.models[0].decision_threshold == 0.3


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"model": "decision_threshold = 1.0"},
            "models[0].decision_threshold: must be < 1",
            id="threshold-1",
        ),
        pytest.param(
            {"model": "decision_threshold = 0"}, "models[0].decision_threshold: must be > 0", id="threshold-0"
        ),
        pytest.param(
            {"task": "regression", "model": "decision_threshold = 0.4"},
            "decision_threshold: only binary_classification models have one",
            id="threshold-on-regression",
        ),
        pytest.param(
            {"scheduler": 'label_refresh = "soon"'},
            "scheduler.label_refresh: must be a duration",
            id="refresh",
        ),
        pytest.param(
            {"labels": '[models.labels]\nhorizon = "-1d"'}, "models[0].labels.horizon: must be", id="horizon"
        ),
        pytest.param(
            {"labels": '[models.labels]\nhorison = "9d"'},
            "models[0].labels.horison: unknown key (did you mean 'horizon'?)",
            id="misspelled",
        ),
    ],
)
def test_invalid_values_name_the_key(write_config, kwargs, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(write_config(_config(**kwargs)), env={})
    assert expected in str(err.value)
