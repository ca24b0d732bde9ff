"""The configured features checked against the model's inputs (`check_features`), at
`config check` and at `baseline`: wrong types and wrong orders are caught before traffic."""

from __future__ import annotations

import logging

import pytest

from monitor.errors import ModelError
from monitor.model import _ORDER_WARNED, check_features, load_model


def test_string_input_declared_numeric_names_feature_and_both_types(string_model):
    loaded = load_model(string_model.keras_path)
    with pytest.raises(ModelError) as info:
        check_features(loaded, ["mean_radius", "mean_texture", "mean_perimeter", "band"], [])
    assert "'band' is declared numeric but the model takes it as a string tensor" in str(info.value)
    assert check_features(loaded, ["mean_radius", "mean_texture", "mean_perimeter"], ["band"]) == ()


def test_float_input_declared_categorical_is_an_error(dict_models):
    trained = dict_models["regression"]
    loaded = load_model(trained.keras_path)
    names = list(trained.features)
    with pytest.raises(ModelError, match=f"'{names[0]}' is declared categorical but the model takes "
                                         "it as a float tensor"):
        check_features(loaded, names[1:], names[:1])
    with pytest.raises(ModelError, match=r"takes input\(s\) \['" + names[-1]):
        check_features(loaded, names[:-1], [])


def test_single_tensor_width_and_unverifiable_order_warn_once(linear_regression, caplog):
    loaded = load_model(linear_regression.keras_path)
    names = list(linear_regression.features)
    with pytest.raises(ModelError, match=f"takes {len(names)} input columns, the configuration lists 3"):
        check_features(loaded, names[:3], [])
    _ORDER_WARNED.discard(str(loaded.path))
    with caplog.at_level(logging.WARNING, logger="monitor.model"):
        first = check_features(loaded, names, [])
        second = check_features(loaded, list(reversed(names)), [])
    assert len(first) == 1 and "cannot verify" in first[0] and second == ()
    assert sum("cannot verify" in r.getMessage() for r in caplog.records) == 1


def test_single_tensor_order_is_checked_against_declared_names(linear_regression, tmp_path):
    import tensorflow as tf

    names = list(linear_regression.features)
    width = len(names)

    class Named(tf.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.feature_names = tf.Variable(names)

        @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.net(x)}

    module = Named(linear_regression.model)
    tf.saved_model.save(module, str(tmp_path / "named"), signatures={"serving_default": module.serve})
    loaded = load_model(tmp_path / "named")
    assert loaded.declared_features == tuple(names)
    assert check_features(loaded, names, []) == ()
    swapped = [names[1], names[0], *names[2:]]
    with pytest.raises(ModelError) as info:
        check_features(loaded, swapped, [])
    assert "list them in the model's order" in str(info.value) and str(names) in str(info.value)


CONFIG = """
[[models]]
name = "s"
path = "{path}"
task = "binary_classification"
[models.features]
numeric = ["mean_radius", "mean_texture", "mean_perimeter", "band"]
"""


def test_config_check_rejects_a_string_input_declared_numeric(string_model, run_monitor, write_config):
    path = write_config(CONFIG.format(path=string_model.keras_path))
    proc = run_monitor("--config", str(path), "config", "check")
    assert proc.returncode == 2
    assert f"error: {path}: {string_model.keras_path}: models[0].features: 'band' is declared " \
           "numeric but the model takes it as a string tensor" in proc.stderr
    fast = run_monitor("--config", str(path), "config", "check", "--no-models")
    assert fast.returncode == 0, fast.stderr


BASELINE_CONFIG = """
[database]
url = "{url}"
[[models]]
name = "r"
path = "{path}"
task = "regression"
[models.features]
numeric = {numeric}
categorical = {categorical}
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_baseline_rejects_a_float_input_declared_categorical(dict_models, write_config, db_url, engine,
                                                             tmp_path):
    import json

    from monitor.baseline import build_baseline
    from monitor.config import load_settings
    from monitor.store import transaction
    from monitor.store.baselines import active_baseline

    trained = dict_models["regression"]
    names = list(trained.features)
    data = tmp_path / "train.parquet"
    trained.frame.to_parquet(data, index=False)
    settings = load_settings(write_config(BASELINE_CONFIG.format(
        url=db_url, path=trained.keras_path, numeric=json.dumps(names[1:]),
        categorical=json.dumps(names[:1]))), env={})
    with pytest.raises(ModelError, match=f"'{names[0]}' is declared categorical but the model takes it "
                                         "as a float tensor"):
        build_baseline(settings, engine, "r", data)
    with transaction(engine) as session:
        assert active_baseline(session, "r") is None
