"""Calibration of classifier scores: reliability bins, expected calibration error, Brier
score, and the isotonic recalibration CBPE applies when cross-validation says it helps.

Reliability bins use scikit-learn's `calibration_curve` binning (equal-width bins,
`strategy="uniform"`), so the chart of a window matches it bin for bin. The choice to
recalibrate follows NannyML's `needs_calibration`: ten stratified 90/10 splits of the
labelled baseline, isotonic regression fitted on each 90%, and the pooled held-out
expected calibration error (equal-count bins) compared with and without it.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from monitor.estimation.records import CalibrationChoice, ReliabilityBin

log = logging.getLogger(__name__)

#: NannyML's defaults for the cross-validated choice
CV_SPLITS, CV_TEST_SIZE, ECE_BINS = 10, 0.1, 10


def _bin_ids(probabilities: np.ndarray, bins: int) -> np.ndarray:
    # the same assignment as sklearn.calibration.calibration_curve(strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], probabilities)


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> tuple[ReliabilityBin, ...]:
    """The non-empty equal-width bins of a reliability chart, lowest scores first.

    `labels` are 0/1 outcomes, `probabilities` the predicted P(outcome = 1).
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if not len(y):
        return ()
    ids = _bin_ids(p, bins)
    counts = np.bincount(ids, minlength=bins)
    sum_p = np.bincount(ids, weights=p, minlength=bins)
    sum_y = np.bincount(ids, weights=y, minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return tuple(
        ReliabilityBin(
            float(edges[b]),
            float(edges[b + 1]),
            int(counts[b]),
            float(sum_p[b] / counts[b]),
            float(sum_y[b] / counts[b]),
        )
        for b in range(bins)
        if counts[b]
    )


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over equal-width bins of (share of rows) × |observed rate − mean probability|."""
    chart = reliability_bins(labels, probabilities, bins)
    rows = sum(b.rows for b in chart)
    if not rows:
        return float("nan")
    return float(sum(b.rows / rows * abs(b.observed - b.mean_predicted) for b in chart))


def equal_count_ece(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over bins holding equal numbers of rows (NannyML's).

    Used to decide on recalibration: equal-count bins are not dominated by the few
    rows a confident classifier puts in the middle bins.
    """
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    n = len(p)
    if n < 4:
        return float("nan")
    bins = min(bins, n // 2)
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    edges = np.linspace(0, n, bins + 1).astype(int)
    ece = 0.0
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        if right > left:
            ece += (right - left) / n * abs(p[left:right].mean() - y[left:right].mean())
    return float(ece)


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between outcomes and probabilities.

    Binary: `probabilities` (n,) of class 1; multiclass: (n, k) rows and `labels` class
    indices, summed over classes (scikit-learn's multiclass `brier_score_loss`).
    """
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels)
    if p.ndim == 1:
        return float(np.mean((p - y.astype(float)) ** 2))
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y.astype(int)] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


class Calibrator:
    """Maps raw scores to calibrated probabilities: isotonic regression, or identity."""

    def __init__(self, isotonic=()):
        self._isotonic = tuple(isotonic)

    @property
    def isotonic(self) -> bool:
        return bool(self._isotonic)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if not self._isotonic or not s.size:
            return np.clip(s, 0.0, 1.0)
        return np.mean([fit.predict(s) for fit in self._isotonic], axis=0)


def _isotonic(scores: np.ndarray, labels: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)


def choose_calibration(
    labels: np.ndarray, scores: np.ndarray, seed: int = 42
) -> tuple[Calibrator, CalibrationChoice]:
    """Fit isotonic recalibration on the baseline when it lowers held-out ECE.

    `labels` are 0/1 outcomes and `scores` the raw P(outcome = 1) for the same rows.
    Returns the calibrator to apply to windows and the evidence for the choice.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    nan = float("nan")
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        return Calibrator(), CalibrationChoice(False, nan, nan, "the baseline has one class")
    if roc_auc_score(y, s) > 0.999:
        return Calibrator(), CalibrationChoice(False, nan, nan, "the baseline is separated")
    if len(y) * CV_TEST_SIZE < 2:
        return Calibrator(), CalibrationChoice(False, nan, nan, "the baseline is too small")
    splitter = StratifiedShuffleSplit(CV_SPLITS, test_size=CV_TEST_SIZE, random_state=seed)
    raw, fitted, truth, fits = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny classes: sklearn warns about split sizes
        for train, test in splitter.split(s.reshape(-1, 1), y):
            fits.append(_isotonic(s[train], y[train]))
            raw.append(s[test])
            fitted.append(fits[-1].predict(s[test]))
            truth.append(y[test])
    ece_raw = equal_count_ece(np.concatenate(truth), np.concatenate(raw))
    ece_iso = equal_count_ece(np.concatenate(truth), np.concatenate(fitted))
    use = bool(ece_iso < ece_raw)
    log.debug("calibration: held-out ECE %.4f raw, %.4f isotonic", ece_raw, ece_iso)
    choice = CalibrationChoice(
        use, ece_raw, ece_iso, "isotonic lowers held-out ECE" if use else "raw scores are as calibrated"
    )
    # the average of the ten fits on 90% of the rows: smoother than one fit on all of
    # them, so a window's calibrated scores depend less on single baseline rows
    return (Calibrator(fits) if use else Calibrator()), choice
