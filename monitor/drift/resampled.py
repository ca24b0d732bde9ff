"""Evidently's drift statistics, vectorised over resampled counts, as s² = n_eff · d².

Rows are resamples, columns the baseline's categories (count tests) or its distinct
values, "atoms" (numeric tests). The formulas follow `monitor.drift.stattests` (and
so Evidently's); only their shape differs: one call scores hundreds of resampled
(pseudo-baseline, pseudo-window) pairs.
"""

from __future__ import annotations

import numpy as np


def effective_rows(n: int, m: int) -> float:
    """n·m/(n+m): the rows a two-sample statistic effectively rests on."""
    return n * m / (n + m)


def count_statistic(method: str, ref: np.ndarray, win: np.ndarray, m: int, n: int) -> np.ndarray:
    """s² of each row pair of counts (rows: resamples; columns: categories, in order)."""
    neff = effective_rows(n, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "chisquare":
            expected = ref * (n / m)
            terms = np.where(expected > 0, (win - expected) ** 2 / expected,
                             np.where(win > 0, np.inf, 0.0))
            return terms.sum(axis=1) * m / (n + m)
        if method == "z":
            p1, p2 = (m - ref[:, 0]) / m, (n - win[:, 0]) / n
            pooled = (p1 * m + p2 * n) / (m + n)
            z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / m + 1.0 / n))
            return np.nan_to_num(z**2, nan=0.0)
        return _share_statistic(method, ref / m, win / n, np.ones(ref.shape, bool), neff)


def atom_statistic(method: str, atoms: np.ndarray, ref: np.ndarray, win: np.ndarray, m: int,
                   n: int, shift: float, integer: bool) -> np.ndarray:
    """s² of each row pair: `ref` and `win` count the baseline's atoms; the window's
    atoms are moved by `shift` (in the column's units)."""
    neff = effective_rows(n, m)
    if method in ("ks", "wasserstein"):
        cdf_ref, cdf_win = np.cumsum(ref, axis=1) / m, np.cumsum(win, axis=1) / n
        return ecdf_statistic(method, atoms, cdf_ref, cdf_win, atom_std(atoms, ref, m),
                               neff, shift)
    return _binned_statistic(method, atoms, ref, win, m, n, shift, integer, neff)


def atom_std(atoms: np.ndarray, ref: np.ndarray, m: int) -> np.ndarray:
    """Standard deviation (ddof=0) of each resampled baseline."""
    mean = ref @ atoms / m
    return np.sqrt(np.maximum(ref @ atoms**2 / m - mean**2, 0.0))


def ecdf_statistic(method, atoms, cdf_ref, cdf_win, std, neff, shift) -> np.ndarray:
    """K-S gap or normed Wasserstein distance between the ECDFs, as s²."""
    if shift:
        moved = atoms + shift
        grid = np.sort(np.concatenate((atoms, moved)), kind="stable")
        f_ref = _gather_cdf(cdf_ref, np.searchsorted(atoms, grid, "right") - 1)
        f_win = _gather_cdf(cdf_win, np.searchsorted(moved, grid, "right") - 1)
    else:
        grid, f_ref, f_win = atoms, cdf_ref, cdf_win
    gap = np.abs(f_ref - f_win)
    if method == "ks":
        return neff * gap.max(axis=1) ** 2
    raw = (gap[:, :-1] * np.diff(grid)).sum(axis=1)
    return neff * (raw / np.maximum(std, 0.001)) ** 2


def _gather_cdf(cdf: np.ndarray, index: np.ndarray) -> np.ndarray:
    padded = np.concatenate((np.zeros((len(cdf), 1)), cdf), axis=1)
    return padded[:, index + 1]


def _binned_statistic(method, atoms, ref, win, m, n, shift, integer, neff) -> np.ndarray:
    """JS or PSI over Sturges bins spanning each pair's own min and max (Evidently's)."""
    from monitor.drift.stattests import sturges_edges

    moved = atoms + shift
    rows = len(ref)
    first_r, last_r = np.argmax(ref > 0, axis=1), atoms.size - 1 - np.argmax(ref[:, ::-1] > 0, 1)
    first_w, last_w = np.argmax(win > 0, axis=1), atoms.size - 1 - np.argmax(win[:, ::-1] > 0, 1)
    low = np.minimum(atoms[first_r], moved[first_w])
    high = np.maximum(atoms[last_r], moved[last_w])
    nbins = np.array([len(sturges_edges(lo, hi, m + n, integer)) - 1
                      for lo, hi in zip(low, high, strict=True)])
    width = np.where(high > low, (high - low) / np.maximum(nbins, 1), 1.0)
    most = int(nbins.max())
    offsets = (np.arange(rows) * most)[:, None]

    def histogram(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        index = np.floor((values[None, :] - low[:, None]) / width[:, None]).astype(int)
        index = np.clip(index, 0, nbins[:, None] - 1) + offsets
        return np.bincount(index.ravel(), counts.ravel(), rows * most).reshape(rows, most)

    used = np.arange(most)[None, :] < nbins[:, None]
    return _share_statistic(method, histogram(atoms, ref) / m, histogram(moved, win) / n,
                            used, neff)


def _share_statistic(method, p, q, used, neff) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "jensenshannon":
            p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
            mid = (p + q) / 2
            terms = np.where(p > 0, p * np.log(p / mid), 0.0) + np.where(
                q > 0, q * np.log(q / mid), 0.0)
            js = np.sqrt(np.maximum(terms.sum(axis=1) / 2, 0.0))
            return neff * js**2
        p, q = _fill_zeroes(p, used), _fill_zeroes(q, used)
        terms = np.where(used, (p - q) * np.log(p / q), 0.0)
        return neff * terms.sum(axis=1)


def _fill_zeroes(shares: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Evidently's `_fill_zeroes`, row by row, on the bins in use."""
    positive = np.where(used & (shares > 0), shares, np.inf).min(axis=1, keepdims=True)
    fill = np.where(positive <= 0.0001, positive / 10**6, 0.0001)
    return np.where(used & (shares == 0), fill, shares)
