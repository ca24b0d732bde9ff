"""Confidence-based performance estimation (CBPE) for binary and multiclass classifiers.

NannyML's method: on the labelled baseline, decide per class whether isotonic
regression lowers the held-out calibration error and fit it; in a window without
labels, the calibrated probability of each row is the chance its label is each class,
which gives the expected confusion matrix and so the expected metrics.

The point estimates use NannyML's formulas (ratios of expected counts; ROC AUC from
the expected true- and false-positive curves). Two things differ:

- the isotonic calibrator is the average of the ten fits the cross-validation made on
  90% of the baseline each, instead of one fit on all of it: a smoother map, less
  tied to single baseline rows, which matters when a shifted window sits where the
  baseline had few rows (lower error in `make bench-estimation`);
- the sampling error. NannyML scales a spread measured on the baseline by
  sqrt(rows); we use the window's own predictions: under the same assumption (labels
  drawn from the calibrated probabilities) the metric a fully labelled window would
  realize has an exact distribution, which we simulate (accuracy and precision, sums
  of independent rows, in closed form). Its standard deviation follows the window's
  mix of confident and uncertain rows instead of the baseline's, which is what
  changes under covariate shift. Simulation is seeded: an estimate is reproducible.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator

import numpy as np

from monitor.estimation.calibration import Calibrator, choose_calibration
from monitor.estimation.records import (
    CalibrationChoice,
    Estimate,
    EstimationError,
    Method,
    MetricEstimate,
    Task,
)

log = logging.getLogger(__name__)

#: the metrics CBPE estimates (binary: at the decision threshold; multiclass: macro)
METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
#: simulated label sets per window, and the most random numbers held at once
MAX_DRAWS, MIN_DRAWS, MAX_CELLS = 1000, 100, 2_000_000


class CBPE:
    """Learns calibration on a labelled baseline, then estimates metrics per window."""

    def __init__(
        self,
        task: Task,
        decision_threshold: float = 0.5,
        band_sigmas: float = 3.0,
        seed: int = 0,
    ):
        if task is Task.REGRESSION:
            raise EstimationError("CBPE is for classification; regression uses DLE")
        self.task = task
        self.decision_threshold = float(decision_threshold)
        self.band_sigmas = float(band_sigmas)
        self.seed = seed
        self.classes = 2 if task is Task.BINARY else 0
        self._calibrators: list[Calibrator] = []
        self.calibration: tuple[CalibrationChoice, ...] = ()

    def fit(self, scores: np.ndarray, labels: np.ndarray, classes: int | None = None) -> CBPE:
        """Learn calibration from baseline scores and their labels (class indices)."""
        s, y = _check_scores(self.task, scores), np.asarray(labels, dtype=int)
        if self.task is Task.BINARY:
            calibrator, choice = choose_calibration(y, s)
            self._calibrators, self.calibration = [calibrator], (choice,)
        else:
            self.classes = classes or s.shape[1]
            if s.shape[1] != self.classes:
                raise EstimationError(
                    f"the baseline has {s.shape[1]} score columns for {self.classes} classes"
                )
            fitted = [choose_calibration(y == k, s[:, k]) for k in range(self.classes)]
            self._calibrators = [c for c, _ in fitted]
            self.calibration = tuple(choice for _, choice in fitted)
        log.debug("CBPE fitted on %d rows: isotonic %s", len(y), [c.isotonic for c in self.calibration])
        return self

    @property
    def calibrated(self) -> bool:
        """Whether any class's scores are recalibrated."""
        return any(c.isotonic for c in self.calibration)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: (n,) of class 1, or (n, k) rows summing to 1."""
        if not self._calibrators:
            raise EstimationError("CBPE.estimate called before fit")
        s = _check_scores(self.task, scores)
        if self.task is Task.BINARY:
            return self._calibrators[0](s)
        if s.shape[1] != self.classes:
            raise EstimationError(f"{s.shape[1]} score columns for {self.classes} classes")
        p = np.column_stack([cal(s[:, k]) for k, cal in enumerate(self._calibrators)])
        total = p.sum(axis=1, keepdims=True)
        # a row every calibrator put at 0 keeps its raw scores
        raw = np.clip(s, 0.0, None)
        p = np.where(
            total > 0, p / np.where(total > 0, total, 1.0), raw / raw.sum(1, keepdims=True).clip(1e-12)
        )
        return p

    def estimate(self, scores: np.ndarray) -> Estimate:
        """Expected metrics of a window from its scores alone, each with its band."""
        s = _check_scores(self.task, scores)
        p = self.probabilities(s)
        rng = np.random.default_rng(self.seed)
        if self.task is Task.BINARY:
            values = _binary(s, p, self.decision_threshold, rng)
        else:
            values = _multiclass(s, p, rng)
        metrics = {name: self._metric(name, *values[name]) for name in METRICS}
        return Estimate(
            self.task,
            Method.CBPE,
            len(s),
            metrics,
            calibrated=self.calibrated,
            decision_threshold=self.decision_threshold if self.task is Task.BINARY else None,
        )

    def _metric(self, name: str, value: float, sigma: float) -> MetricEstimate:
        if not math.isfinite(value):
            nan = float("nan")
            return MetricEstimate(name, nan, nan, nan, nan)
        width = self.band_sigmas * sigma if math.isfinite(sigma) else float("nan")
        return MetricEstimate(name, value, sigma, max(0.0, value - width), min(1.0, value + width))


def _check_scores(task: Task, scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if task is Task.BINARY:
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.ndim != 1:
            raise EstimationError(f"binary scores must be (rows,) P(class 1), got shape {s.shape}")
    elif s.ndim != 2 or s.shape[1] < 2:
        raise EstimationError(f"multiclass scores must be (rows, classes), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise EstimationError("scores contain NaN or infinite values: drop those rows first")
    return s


def _sigma(draws: np.ndarray) -> float:
    """Standard deviation of the simulated metric where it is defined."""
    ok = draws[np.isfinite(draws)]
    return float(ok.std(ddof=1)) if len(ok) > 1 else float("nan")


def _ratio(numerator: float, denominator: float, empty: float = float("nan")) -> float:
    return float(numerator / denominator) if denominator > 0 else empty


def _expected_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """NannyML's estimated ROC AUC: expected TPR against expected FPR, by descending score."""
    order = np.argsort(scores, kind="stable")[::-1]
    q = p[order]
    tps = np.r_[0.0, np.cumsum(q)]
    fps = np.r_[0.0, np.arange(1, len(q) + 1) - np.cumsum(q)]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _blocks(rows: int, width: int) -> Iterator[int]:
    """Sizes of blocks of simulated label sets, holding at most MAX_CELLS numbers each."""
    draws = min(MAX_DRAWS, max(MIN_DRAWS, MAX_CELLS // max(rows * width, 1)))
    per_block = max(1, MAX_CELLS // max(rows * width, 1))
    while draws > 0:
        size = min(per_block, draws)
        draws -= size
        yield size


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def _auc(hits: np.ndarray, ranks: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Mann-Whitney ROC AUC of each simulated label set (rows of `hits`); NaN if one class."""
    n = hits.shape[1]
    u = hits @ ranks - positives * (positives + 1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = u / (positives * (n - positives))
    return np.where((positives > 0) & (positives < n), auc, np.nan)


def _binary(s: np.ndarray, p: np.ndarray, threshold: float, rng) -> dict[str, tuple[float, float]]:
    n = len(s)
    nan = (float("nan"), float("nan"))
    if not n:
        return dict.fromkeys(METRICS, nan)
    predicted = s >= threshold
    correct = np.where(predicted, p, 1.0 - p)  # chance each row's prediction is right
    out = {"accuracy": (float(correct.mean()), float(math.sqrt((correct * (1 - correct)).sum()) / n))}
    npp = int(predicted.sum())
    pp = p[predicted]
    out["precision"] = (float(pp.mean()), float(math.sqrt((pp * (1 - pp)).sum()) / npp)) if npp else nan
    ranks = _ranks(s)
    recall, f1, auc = [], [], []
    for size in _blocks(n, 1):
        hits = (rng.random((size, n)) < p).astype(float)
        positives = hits.sum(axis=1)
        tp = hits[:, predicted].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall.append(np.where(positives > 0, tp / positives, np.nan))
            f1.append(np.where(npp + positives > 0, 2 * tp / (npp + positives), np.nan))
        auc.append(_auc(hits, ranks, positives))
    tp, fn = float(pp.sum()), float(p[~predicted].sum())
    out["recall"] = (_ratio(tp, tp + fn), _sigma(np.concatenate(recall)))
    out["f1"] = (_ratio(2 * tp, npp + tp + fn), _sigma(np.concatenate(f1)))
    out["roc_auc"] = (_expected_auc(s, p), _sigma(np.concatenate(auc)))
    return out


def _multiclass(s: np.ndarray, p: np.ndarray, rng) -> dict[str, tuple[float, float]]:
    n, k = s.shape
    nan = (float("nan"), float("nan"))
    if not n:
        return dict.fromkeys(METRICS, nan)
    predicted = s.argmax(axis=1)
    correct = p[np.arange(n), predicted]
    out = {"accuracy": (float(correct.mean()), float(math.sqrt((correct * (1 - correct)).sum()) / n))}
    npred = np.bincount(predicted, minlength=k).astype(float)
    ranks = np.column_stack([_ranks(s[:, c]) for c in range(k)])
    edges = np.cumsum(p, axis=1)[:, :-1]
    sims: dict[str, list[np.ndarray]] = {m: [] for m in ("roc_auc", "precision", "recall", "f1")}
    for size in _blocks(n, k):
        labels = (rng.random((size, n))[:, :, None] >= edges[None]).sum(axis=2)
        prec, rec, f1, auc = (np.zeros((size, k)) for _ in range(4))
        for c in range(k):
            hits = (labels == c).astype(float)
            positives = hits.sum(axis=1)
            tp = hits[:, predicted == c].sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                # scikit-learn's macro averages with zero_division=0
                prec[:, c] = tp / npred[c] if npred[c] else 0.0
                rec[:, c] = np.where(positives > 0, tp / positives, 0.0)
                f1[:, c] = np.where(npred[c] + positives > 0, 2 * tp / (npred[c] + positives), 0.0)
            auc[:, c] = _auc(hits, ranks[:, c], positives)
        sims["precision"].append(prec.mean(axis=1))
        sims["recall"].append(rec.mean(axis=1))
        sims["f1"].append(f1.mean(axis=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw with no defined class AUC
            sims["roc_auc"].append(np.nanmean(auc, axis=1))
    expected_tp = np.array([p[predicted == c, c].sum() for c in range(k)])
    expected_pos = p.sum(axis=0)
    values = {
        "precision": np.mean([_ratio(expected_tp[c], npred[c], 0.0) for c in range(k)]),
        "recall": np.mean([_ratio(expected_tp[c], expected_pos[c], 0.0) for c in range(k)]),
        "f1": np.mean([_ratio(2 * expected_tp[c], npred[c] + expected_pos[c], 0.0) for c in range(k)]),
    }
    aucs = [_expected_auc(s[:, c], p[:, c]) for c in range(k)]
    values["roc_auc"] = (
        np.mean([a for a in aucs if math.isfinite(a)]) if any(map(math.isfinite, aucs)) else math.nan
    )
    for name, parts in sims.items():
        out[name] = (float(values[name]), _sigma(np.concatenate(parts)))
    return out
