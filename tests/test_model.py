"""monitor.model: loading .keras and SavedModel files, batching, the explained output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from monitor.errors import ModelError
from monitor.model import load_model, output_target, select_output

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory):
    """A single-tensor softmax model on iris, saved as .keras and as a SavedModel."""
    import keras

    keras.utils.set_random_seed(3)
    data = load_iris()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, data.target, epochs=3, verbose=0)
    where = tmp_path_factory.mktemp("iris")
    model.save(where / "iris.keras")
    model.export(where / "iris_saved", verbose=False)
    return model, pd.DataFrame(x, columns=names), where


def test_importing_monitor_model_does_not_import_tensorflow() -> None:
    code = ("import sys, monitor.model, monitor.attribution; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.parametrize("fmt", ["iris.keras", "iris_saved"])
def test_predict_frame_matches_keras_in_any_batch_size(iris_model, fmt: str) -> None:
    model, frame, where = iris_model
    # columns in a different order: a single-tensor model follows `features`
    shuffled = frame[frame.columns[::-1]]
    loaded = load_model(where / fmt, features=list(frame.columns), batch_size=7)
    assert loaded.format == ("keras" if fmt.endswith(".keras") else "saved_model")
    expected = model(frame.to_numpy()).numpy()
    np.testing.assert_allclose(loaded.predict_frame(shuffled), expected, atol=1e-6)
    scores = loaded.score(shuffled, "multiclass_classification")
    np.testing.assert_allclose(scores, expected.max(axis=1), atol=1e-6)
    chosen = loaded.score(shuffled, "multiclass_classification", explain_class=2)
    np.testing.assert_allclose(chosen, expected[:, 2], atol=1e-6)


def test_missing_feature_and_bad_paths_are_model_errors(iris_model, tmp_path: Path) -> None:
    _, frame, where = iris_model
    loaded = load_model(where / "iris.keras", features=list(frame.columns))
    with pytest.raises(ModelError, match="petal_width"):
        loaded.predict_frame(frame.drop(columns=["petal_width"]))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.keras")
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(ModelError, match=".keras file or a SavedModel"):
        load_model(tmp_path / "model.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        load_model(tmp_path / "empty_dir")


@pytest.mark.parametrize(
    ("task", "raw", "explain_class", "expected"),
    [
        ("binary_classification", [[0.2], [0.9]], None, [0.2, 0.9]),
        ("binary_classification", [[0.8, 0.2], [0.1, 0.9]], None, [0.2, 0.9]),
        ("multiclass_classification", [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], None, [0.7, 0.5]),
        ("multiclass_classification", [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], 2, [0.2, 0.2]),
        ("regression", [[3.5], [-1.0]], None, [3.5, -1.0]),
    ],
    ids=["binary-1col", "binary-2col", "multiclass-predicted", "multiclass-configured",
         "regression"],
)
def test_explained_output(task, raw, explain_class, expected) -> None:
    np.testing.assert_allclose(select_output(np.array(raw), task, explain_class), expected)


def test_explain_class_out_of_range_and_unknown_task() -> None:
    with pytest.raises(ModelError, match="explain_class 3"):
        output_target(np.zeros((2, 3)), "multiclass_classification", 3)
    with pytest.raises(ModelError, match="unknown task"):
        output_target(np.zeros((2, 1)), "ranking")
