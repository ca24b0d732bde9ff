"""CBPE on a real Keras classifier: a shift towards the uncertain region is seen before labels."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.estimation import PerformanceEstimator, Task

FEATURES = ["mean radius", "mean texture", "mean smoothness"]


@pytest.fixture(scope="module")
def scored():
    """Scores of a small Keras MLP on rows it was not trained on, with their labels."""
    import keras
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    x = data.data[FEATURES].to_numpy("float32")
    y = (data.target == 0).to_numpy().astype("float32")  # 1 = malignant
    order = np.random.default_rng(0).permutation(len(x))
    train, rest = order[:200], order[200:]
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(x[train])
    net = keras.Sequential(
        [
            keras.Input((3,)),
            norm,
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    net.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    net.fit(x[train], y[train], epochs=30, batch_size=32, verbose=0)
    scores = net.predict(x[rest], verbose=0)[:, 0].astype(float)
    return x[rest], scores, y[rest].astype(int)


def test_estimate_moves_with_realized_accuracy_under_a_shift(scored):
    x, scores, labels = scored
    baseline = np.arange(len(x)) % 2 == 0  # every other row: a labelled baseline
    estimator = PerformanceEstimator(Task.BINARY).fit(None, scores[baseline], labels[baseline])
    rest_x, rest_s, rest_y = x[~baseline], scores[~baseline], labels[~baseline]
    # covariate shift on a model input: the middle of the radius range is where benign
    # and malignant overlap, the extremes are easy
    radius = rest_x[:, 0]
    q15, q35, q65, q85 = np.quantile(radius, [0.15, 0.35, 0.65, 0.85])
    windows = {"middle": (radius > q35) & (radius < q65), "extremes": (radius < q15) | (radius > q85)}
    estimated = {k: estimator.estimate(None, rest_s[w]) for k, w in windows.items()}
    realized = {k: estimator.realized(rest_y[w], rest_s[w]).metrics for k, w in windows.items()}
    real_drop = realized["extremes"]["accuracy"] - realized["middle"]["accuracy"]
    est_drop = estimated["extremes"]["accuracy"].value - estimated["middle"]["accuracy"].value
    assert real_drop > 0.08  # the shifted window is worse
    assert est_drop > 0.6 * real_drop  # and the estimate, without labels, says so
    for name in windows:
        for metric in ("accuracy", "f1"):
            assert estimated[name][metric].contains(realized[name][metric]), (name, metric)
