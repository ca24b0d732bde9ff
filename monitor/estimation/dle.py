"""Direct loss estimation (DLE) for regression models, NannyML's method.

On the labelled baseline, two models of the loss are trained on the inputs plus the
model's prediction: one predicts the absolute error, one the squared error (scikit-
learn's HistGradientBoostingRegressor, conditional means). In a window without
labels, MAE is the mean predicted absolute error and RMSE the root of the mean
predicted squared error.

Against overfitting (a loss model that memorised the baseline's errors would predict
the baseline's losses anywhere) boosting stops when a held-out fifth of the baseline
has not improved for 10 iterations; a baseline too small for a held-out split gets
the constant model (the baseline's mean loss). Boosting runs on one thread: on
windows of a few thousand rows OpenMP's start-up costs more than it saves, and many
times more on a busy machine.

The band is the window's own: the spread of the mean of independent per-row losses,
Var|e| = E[e²] − E[|e|]² per row from the two models; Var e² ≈ c·E[e²]², c learned from
the baseline's residuals; RMSE's by the delta method.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.estimation.records import Estimate, EstimationError, Method, MetricEstimate, Task

log = logging.getLogger(__name__)

METRICS = ("mae", "rmse")
MAX_ITER, HELD_OUT, PATIENCE = 100, 0.2, 10
_PARAMS = {"learning_rate": 0.1, "max_leaf_nodes": 15, "l2_regularization": 1.0}


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scanning the loaded libraries takes ~20 ms: once


def _one_thread():
    """A context in which OpenMP (scikit-learn's boosting) uses one thread."""
    return _controller().limit(limits=1, user_api="openmp")


class _Encoder:
    """Features -> a float matrix for the loss models; categories as ordinal codes."""

    def __init__(self, categorical: Sequence[str] | None):
        self.categorical = None if categorical is None else list(categorical)

    def fit(self, frame: pd.DataFrame) -> _Encoder:
        from sklearn.preprocessing import OrdinalEncoder

        self.columns = list(frame.columns)
        if self.categorical is None:
            self.categorical = [
                c
                for c in self.columns
                if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
            ]
        self.numeric = [c for c in self.columns if c not in self.categorical]
        self._ordinal = None
        if self.categorical:
            self._ordinal = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                max_categories=250,
            ).fit(frame[self.categorical].astype(str).where(frame[self.categorical].notna()))
        return self

    @property
    def categorical_mask(self) -> list[bool]:
        return [False] * len(self.numeric) + [True] * len(self.categorical) + [False]

    def transform(self, frame: pd.DataFrame, predictions: np.ndarray) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise EstimationError(f"the window lacks the baseline's feature columns {missing}")
        parts = [frame[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(float)]
        if self._ordinal is not None:
            cats = frame[self.categorical].astype(str).where(frame[self.categorical].notna())
            parts.append(self._ordinal.transform(cats).astype(float))
        parts.append(np.asarray(predictions, dtype=float).reshape(-1, 1))
        return np.hstack(parts)


def _model(iterations: int, categorical: list[bool], seed: int, leaf: int):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=iterations,
        min_samples_leaf=leaf,
        categorical_features=categorical if any(categorical) else None,
        early_stopping=True,
        validation_fraction=HELD_OUT,
        n_iter_no_change=PATIENCE,
        random_state=seed,
        **_PARAMS,
    )


class _LossModel:
    """E[loss | inputs, prediction]; boosting stops when a held-out fifth stops improving."""

    def __init__(self, categorical: list[bool], seed: int):
        self.categorical, self.seed = categorical, seed

    def fit(self, x: np.ndarray, target: np.ndarray) -> _LossModel:
        n = len(target)
        self.mean = float(target.mean())
        self._model = None
        self.iterations = 0
        leaf = max(5, min(20, n // 5))
        if n >= 4 * leaf:
            self._model = _model(MAX_ITER, self.categorical, self.seed, leaf).fit(x, target)
            self.iterations = int(self._model.n_iter_)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._model is None:
            return np.full(len(x), self.mean)
        return np.clip(self._model.predict(x), 0.0, None)


class DLE:
    """Learns the loss of a regression model on a labelled baseline; estimates per window."""

    def __init__(self, band_sigmas: float = 3.0, seed: int = 0, categorical: Sequence[str] | None = None):
        self.band_sigmas = float(band_sigmas)
        self.seed = seed
        self._categorical = categorical
        self._fitted = False

    def fit(self, features: pd.DataFrame, predictions: np.ndarray, labels: np.ndarray) -> DLE:
        """Train the absolute- and squared-error models on the labelled baseline rows."""
        with _one_thread():
            return self._fit(features, predictions, labels)

    def _fit(self, features: pd.DataFrame, predictions: np.ndarray, labels: np.ndarray) -> DLE:
        y = np.asarray(labels, dtype=float)
        pred = np.asarray(predictions, dtype=float).reshape(-1)
        if len(y) < 2:
            raise EstimationError(f"DLE needs at least 2 labelled baseline rows, got {len(y)}")
        self._encoder = _Encoder(self._categorical).fit(features)
        x = self._encoder.transform(features, pred)
        error = y - pred
        mask = self._encoder.categorical_mask
        self._abs, self._sq = _LossModel(mask, self.seed), _LossModel(mask, self.seed)
        self._abs.fit(x, np.abs(error))
        sq_fit = self._sq.fit(x, error**2).predict(x)
        # Var(e² | x) ≈ c · E[e² | x]²: c from the baseline's residuals
        denominator = float(np.mean(sq_fit**2))
        self.kurtosis = float(np.mean((error**2 - sq_fit) ** 2) / denominator) if denominator > 0 else 2.0
        self._fitted = True
        log.debug(
            "DLE fitted on %d rows: %d / %d boosting iterations (|e|, e²), c=%.2f",
            len(y),
            self._abs.iterations,
            self._sq.iterations,
            self.kurtosis,
        )
        return self

    @property
    def iterations(self) -> tuple[int, int]:
        """Boosting iterations chosen for the absolute- and squared-error models."""
        return self._abs.iterations, self._sq.iterations

    def estimate(self, features: pd.DataFrame, predictions: np.ndarray) -> Estimate:
        """Estimated MAE and RMSE of a window from its inputs and predictions alone."""
        if not self._fitted:
            raise EstimationError("DLE.estimate called before fit")
        pred = np.asarray(predictions, dtype=float).reshape(-1)
        n = len(pred)
        if not n:
            nan = float("nan")
            metrics = {m: MetricEstimate(m, nan, nan, nan, nan) for m in METRICS}
            return Estimate(Task.REGRESSION, Method.DLE, 0, metrics)
        x = self._encoder.transform(features, pred)
        with _one_thread():
            abs_err, sq_err = self._abs.predict(x), self._sq.predict(x)
        mae = float(abs_err.mean())
        mse = float(sq_err.mean())
        rmse = math.sqrt(mse)
        sigma_mae = math.sqrt(float(np.clip(sq_err - abs_err**2, 0.0, None).sum())) / n
        sigma_mse = math.sqrt(self.kurtosis * float((sq_err**2).sum())) / n
        sigma_rmse = sigma_mse / (2 * rmse) if rmse > 0 else 0.0
        metrics = {
            "mae": self._metric("mae", mae, sigma_mae),
            "rmse": self._metric("rmse", rmse, sigma_rmse),
        }
        return Estimate(Task.REGRESSION, Method.DLE, n, metrics)

    def _metric(self, name: str, value: float, sigma: float) -> MetricEstimate:
        width = self.band_sigmas * sigma
        return MetricEstimate(name, value, sigma, max(0.0, value - width), value + width)
