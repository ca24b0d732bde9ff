"""Small real Keras models trained once per session on scikit-learn's bundled data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine


@dataclass(frozen=True)
class Trained:
    """A trained model, its training frame (standardized features) and where it is saved."""

    model: Any
    frame: pd.DataFrame
    features: tuple[str, ...]
    task: str
    keras_path: Path
    saved_model_path: Path | None


def _standardized(data: Any, columns: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    x = np.asarray(data.data, dtype=np.float32)[:, :columns]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    names = [n.replace(" ", "_") for n in data.feature_names][:columns]
    return pd.DataFrame(x, columns=names), np.asarray(data.target)


def _fit(model: Any, x: Any, y: np.ndarray, loss: str, epochs: int = 5) -> None:
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=False)


@pytest.fixture(scope="session")
def keras_mod() -> Any:
    import keras

    keras.utils.set_random_seed(7)
    return keras


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def linear_regression(keras_mod: Any, models_dir: Path) -> Trained:
    """A single-tensor linear model on the diabetes data."""
    frame, y = _standardized(load_diabetes())
    model = keras_mod.Sequential([keras_mod.Input((frame.shape[1],)), keras_mod.layers.Dense(1)])
    _fit(model, frame.to_numpy(), (y - y.mean()) / y.std(), "mse", epochs=3)
    path = models_dir / "linear.keras"
    model.save(path)
    return Trained(model, frame, tuple(frame.columns), "regression", path, None)


@pytest.fixture(scope="session")
def mlp_binary(keras_mod: Any, models_dir: Path) -> Trained:
    """A single-tensor MLP on the 30 breast-cancer features, saved both ways."""
    layers = keras_mod.layers
    frame, y = _standardized(load_breast_cancer())
    model = keras_mod.Sequential([
        keras_mod.Input((frame.shape[1],)),
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="tanh"),
        layers.Dense(1, activation="sigmoid"),
    ])
    _fit(model, frame.to_numpy(), y, "binary_crossentropy", epochs=10)
    path = models_dir / "mlp.keras"
    model.save(path)
    saved = models_dir / "mlp_saved_model"
    model.export(saved, verbose=False)
    return Trained(model, frame, tuple(frame.columns), "binary_classification", path, saved)


def _dict_model(keras_mod: Any, names: list[str], units: int, activation: str | None) -> Any:
    layers = keras_mod.layers
    inputs = {name: keras_mod.Input((1,), name=name) for name in names}
    hidden = layers.Dense(32, activation="tanh")(layers.Concatenate()(list(inputs.values())))
    return keras_mod.Model(inputs, layers.Dense(units, activation=activation)(hidden))


@pytest.fixture(scope="session")
def dict_models(keras_mod: Any, models_dir: Path) -> dict[str, Trained]:
    """Dict-input models (one named input per feature) by task, saved as .keras and SavedModel."""
    return {kind: _train_dict(keras_mod, models_dir, kind)
            for kind in ("binary", "multiclass", "regression")}


@pytest.fixture(params=["binary", "multiclass", "regression"])
def dict_model(request: pytest.FixtureRequest, dict_models: dict[str, Trained]) -> Trained:
    return dict_models[request.param]


def _train_dict(keras_mod: Any, models_dir: Path, kind: str) -> Trained:
    if kind == "binary":
        frame, y = _standardized(load_breast_cancer(), 5)
        units, activation, loss, task = 1, "sigmoid", "binary_crossentropy", \
            "binary_classification"
    elif kind == "multiclass":
        frame, y = _standardized(load_wine(), 6)
        units, activation, loss, task = 3, "softmax", "sparse_categorical_crossentropy", \
            "multiclass_classification"
    else:
        frame, y = _standardized(load_diabetes(), 6)
        y = (y - y.mean()) / y.std()
        units, activation, loss, task = 1, None, "mse", "regression"
    model = _dict_model(keras_mod, list(frame.columns), units, activation)
    _fit(model, {c: frame[[c]].to_numpy() for c in frame.columns}, y, loss, epochs=5)
    path = models_dir / f"dict_{kind}.keras"
    model.save(path)
    saved = models_dir / f"dict_{kind}_saved_model"
    model.export(saved, verbose=False)
    return Trained(model, frame, tuple(frame.columns), task, path, saved)


@pytest.fixture(scope="session")
def string_model(keras_mod: Any, models_dir: Path) -> Trained:
    """Binary model with a string categorical input looked up inside the model."""
    layers = keras_mod.layers
    frame, y = _standardized(load_breast_cancer(), 3)
    bands = np.array(["low", "mid", "high"])
    # a categorical feature that carries signal: the band of 'worst' radius
    worst = np.asarray(load_breast_cancer().data[:, 20])
    frame["band"] = bands[np.digitize(worst, np.quantile(worst, [1 / 3, 2 / 3]))]
    numeric = ["mean_radius", "mean_texture", "mean_perimeter"]
    inputs = {n: keras_mod.Input((1,), name=n) for n in numeric}
    inputs["band"] = keras_mod.Input((1,), name="band", dtype="string")
    lookup = layers.StringLookup(vocabulary=list(bands), output_mode="one_hot")
    one_hot = layers.Reshape((4,))(lookup(inputs["band"]))
    merged = layers.Concatenate()([*(inputs[n] for n in numeric), one_hot])
    out = layers.Dense(1, activation="sigmoid")(layers.Dense(16, activation="relu")(merged))
    model = keras_mod.Model(inputs, out)
    data = {n: frame[[n]].to_numpy() for n in numeric}
    import tensorflow as tf

    data["band"] = tf.constant(frame[["band"]].to_numpy().astype(str))
    _fit(model, data, y, "binary_crossentropy", epochs=8)
    path = models_dir / "string.keras"
    model.save(path)
    return Trained(model, frame, (*numeric, "band"), "binary_classification", path, None)
