"""Group fairness of a model's decisions, per protected attribute, with bootstrap intervals.

Per group: selection rate (share of favorable decisions), disparate-impact ratio and
statistical-parity difference against a reference group (configured, else the
baseline's largest) and, on labelled rows, the true- and false-positive-rate
differences and the average-odds difference (their mean), "positive" meaning the
favorable outcome. Values equal fairlearn's (``MetricFrame`` with ``selection_rate``,
``true_positive_rate``, ``false_positive_rate``).

Intervals are percentile intervals of a Bayesian bootstrap stratified by group (seeded,
vectorised): the row-level Bayesian bootstrap only moves mass between a group's six
(decision, label) cells, so its draws are Dirichlet cell shares, here with a Jeffreys
prior of 1/2 per cell so that a rate of 0 or 1 in a small group still gets an interval
of honest width (the plain bootstrap collapses to a point there and flags at random).
Weights enter as each cell's mean weight. The intervals of an attribute's groups are
simultaneous (Bonferroni over the groups compared with the reference); where the
draws cannot place that level's tail, the interval is the normal one with the bootstrap
standard error (log scale for the ratio). The level and the drift p-value are the
fairness part of the model's alert budget unless configured. A metric is
``bias`` when its interval lies wholly outside the allowed band; bias drift is a z-test
of the window's value against the baseline's, with bootstrap standard errors (log
scale for the ratio).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from monitor.fairness.groups import GroupKeys
from monitor.fairness.outcome import Outcome
from monitor.fairness.records import MISSING, FairnessError, Metric, as_weights
from monitor.fairness.report import AttributeFairness, Bands, FairnessReport, GroupFairness, GroupMetric

if TYPE_CHECKING:
    from monitor.config import ModelConfig

log = logging.getLogger(__name__)

#: labelled rows of each outcome a group needs before its TPR / FPR metrics are computed
#: (or `min_rows` when larger)
MIN_CLASS_ROWS = 10
#: prior count of each cell in the Bayesian bootstrap (Jeffreys)
JEFFREYS = 0.5
#: percentile intervals need this many draws beyond each end; fewer: normal interval
TAIL_DRAWS = 5
# cell = decision (0/1) + 2 * label state (0 unfavorable, 1 favorable, 2 unknown)
_CELLS = 6


class _Cells:
    """One group's rows counted in the six (decision, label state) cells, with weights."""

    def __init__(self, cell: np.ndarray, weights: np.ndarray):
        self.rows = len(cell)
        self.labelled_counts = np.bincount(cell.astype(int), minlength=_CELLS)
        self.totals = np.bincount(cell.astype(int), weights=weights, minlength=_CELLS).astype(float)
        mean = float(weights.mean()) if len(weights) else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean_weight = np.where(self.labelled_counts > 0, self.totals / self.labelled_counts, mean)

    def draws(self, rng: np.random.Generator, resamples: int) -> np.ndarray:
        """(resamples, 6) weighted cell shares of the group's Bayesian-bootstrap draws."""
        shares = rng.dirichlet(self.labelled_counts + JEFFREYS, size=resamples)
        return shares * self.mean_weight


def _rates(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Selection rate, TPR, FPR from weighted cell totals (..., 6); NaN where undefined."""
    t = np.asarray(totals, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sel = (t[..., 1] + t[..., 3] + t[..., 5]) / t.sum(axis=-1)
        tpr = t[..., 3] / (t[..., 2] + t[..., 3])
        fpr = t[..., 1] / (t[..., 0] + t[..., 1])
    return {"sel": sel, "tpr": tpr, "fpr": fpr}


def _compare(group: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[Metric, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = group["tpr"] - ref["tpr"]
        fpr = group["fpr"] - ref["fpr"]
        return {
            Metric.DISPARATE_IMPACT: group["sel"] / ref["sel"],
            Metric.PARITY_DIFFERENCE: group["sel"] - ref["sel"],
            Metric.TPR_DIFFERENCE: tpr,
            Metric.FPR_DIFFERENCE: fpr,
            Metric.AVERAGE_ODDS: (tpr + fpr) / 2,
        }


@dataclass(frozen=True)
class _Estimate:
    value: float
    ci_low: float
    ci_high: float
    #: bootstrap standard error (of the log for the ratio), NaN when undefined
    se: float


def _estimate(metric: Metric, value: float, draws: np.ndarray, confidence: float) -> _Estimate:
    # a ratio resample whose reference rate is 0 is +inf (kept: it sorts last); 0/0 is dropped
    kept = draws[~np.isnan(draws)]
    if not np.isfinite(value) or len(kept) < 0.5 * len(draws):
        return _Estimate(value, np.nan, np.nan, np.nan)
    tail = (1 - confidence) / 2
    low, high = np.quantile(kept, [tail, 1 - tail])
    finite = kept[np.isfinite(kept)]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.log(finite[finite > 0]) if metric.is_ratio else finite
    se = float(np.std(spread, ddof=1)) if len(spread) > 1 else np.nan
    if tail * len(kept) < TAIL_DRAWS and np.isfinite(se):
        # the draws cannot place a budget's small tail (1e-5 of 2,000 draws is the
        # extreme one): the normal interval with the bootstrap's standard error, on the
        # log scale for the ratio, widened to the draws' range where that is wider
        z = float(norm.isf(tail))
        if metric.is_ratio and value > 0:
            low, high = min(low, value * np.exp(-z * se)), max(high, value * np.exp(z * se))
        elif not metric.is_ratio:
            low, high = min(low, value - z * se), max(high, value + z * se)
    return _Estimate(float(value), float(low), float(high), se)


class FairnessAnalyzer:
    """Fairness of windows against one baseline: ``fit(baseline)`` then ``analyze(window)``.

    ``attributes`` frames hold one column per protected attribute (text or numeric; a
    numeric model input is cut into the baseline's quantile bins), aligned by row with
    the predictions (as the prediction log keeps them) and labels (NaN where unknown).
    ``analyze`` works without ``fit`` too (no bias drift then; the reference group is
    the window's largest unless configured).
    """

    def __init__(
        self,
        protected: Sequence[str],
        outcome: Outcome,
        *,
        numeric: Sequence[str] = (),
        reference_groups: Mapping[str, str] | None = None,
        bands: Bands | None = None,
        confidence: float = 0.95,
        resamples: int = 2000,
        drift_p_value: float = 0.01,
        min_rows: int = 30,
        bins: int = 4,
        seed: int = 0,
    ):
        if not protected:
            raise FairnessError("no protected attribute to analyze")
        if not 0.5 < confidence <= 1:
            raise FairnessError(f"confidence must be in (0.5, 1], got {confidence}")
        self.protected = tuple(protected)
        self.outcome = outcome
        self.keys = GroupKeys(self.protected, numeric, bins)
        self.reference_groups = dict(reference_groups or {})
        self.bands = bands or Bands()
        self.confidence, self.resamples = confidence, int(resamples)
        self.drift_p_value, self.min_rows, self.seed = drift_p_value, int(min_rows), seed
        self._baseline: dict[str, AttributeFairness] = {}
        self._baseline_se: dict[tuple[str, str, Metric], float] = {}
        self._baseline_report: FairnessReport | None = None

    @classmethod
    def from_config(cls, model: ModelConfig) -> FairnessAnalyzer:
        """Build from a `ModelConfig` (its fairness, segments, task, class names, seed);
        the interval level and drift p-value are the fairness part of the model's alert
        budget (half each, per protected attribute) unless the config sets them."""
        from monitor.budget import AlertBudget, level_or

        budget = AlertBudget.for_model(model)
        fair, seg = model.fairness, model.segments
        outcome = Outcome.resolve(model.task, fair.favorable, fair.threshold, model.class_names)
        numeric = [n for n in fair.protected if n in set(model.features.numeric)]
        return cls(
            fair.protected,
            outcome,
            numeric=numeric,
            reference_groups=fair.reference_group,
            bands=Bands(fair.bands.ratio_low, fair.bands.ratio_high, fair.bands.difference),
            confidence=level_or(fair.confidence, 1 - budget.bias),
            resamples=fair.resamples,
            drift_p_value=level_or(fair.drift_p_value, budget.bias_drift),
            min_rows=seg.min_rows,
            bins=seg.bins,
            seed=model.seed,
        )

    def fit(
        self, attributes: pd.DataFrame, predictions: Any, labels: Any = None, weights: Any = None
    ) -> FairnessAnalyzer:
        """Learn the baseline: bin edges, reference groups, each group's metrics. Returns self."""
        self.keys.fit(attributes)
        self._baseline, self._baseline_se = {}, {}
        report, ses = self._measure(attributes, predictions, labels, weights, self.seed, baseline=True)
        self._baseline = dict(report.attributes)
        self._baseline_se = ses
        return self

    @property
    def baseline(self) -> FairnessReport | None:
        """The baseline's own report (None before ``fit``)."""
        return self._baseline_report

    def analyze(
        self,
        attributes: pd.DataFrame,
        predictions: Any,
        labels: Any = None,
        weights: Any = None,
        *,
        seed: int | None = None,
    ) -> FairnessReport:
        """Score one window. `weights` (e.g. `StratifiedSample.weights`) reweight every
        rate; `seed` (default the analyzer's) seeds the bootstrap."""
        report, _ = self._measure(
            attributes, predictions, labels, weights, self.seed if seed is None else seed, baseline=False
        )
        log.debug(
            "fairness of %d rows: %d bias, %d drift findings",
            report.rows,
            len(report.bias),
            len(report.drift),
        )
        return report

    def _measure(
        self, attributes: pd.DataFrame, predictions: Any, labels: Any, weights: Any, seed: int, baseline: bool
    ) -> tuple[FairnessReport, dict[tuple[str, str, Metric], float]]:
        decisions = self.outcome.decisions(predictions)
        n = len(decisions)
        if len(attributes) != n:
            raise FairnessError(f"{len(attributes)} attribute rows for {n} predictions")
        y = self.outcome.label_outcomes(labels, n)
        w = as_weights(weights, n)
        state = np.where(np.isnan(y), 2, y).astype(int)
        cell = decisions.astype(int) + 2 * state
        keyed = self.keys.transform(attributes)
        ses: dict[tuple[str, str, Metric], float] = {}
        results = {}
        for name in self.protected:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            results[name] = self._attribute(name, keyed[name], cell, w, rng, ses)
        report = FairnessReport(
            results,
            n,
            int(np.sum(state < 2)),
            self.confidence,
            self.resamples,
            self.bands,
            self.drift_p_value,
        )
        if baseline:
            self._baseline_report = report
        return report, ses

    def _reference(self, name: str, cells: Mapping[str, _Cells]) -> tuple[str | None, str]:
        if name in self.reference_groups:
            return self.reference_groups[name], "configured"
        if name in self._baseline and self._baseline[name].reference_group is not None:
            return self._baseline[name].reference_group, "baseline_largest"
        sizes = {g: c.totals.sum() for g, c in cells.items()}
        return (max(sorted(sizes), key=sizes.__getitem__), "largest") if sizes else (None, "largest")

    def _attribute(
        self,
        name: str,
        keys: np.ndarray,
        cell: np.ndarray,
        w: np.ndarray,
        rng: np.random.Generator,
        ses: dict[tuple[str, str, Metric], float],
    ) -> AttributeFairness:
        cells = {g: _Cells(cell[keys == g], w[keys == g]) for g in sorted(set(keys.tolist()) - {MISSING})}
        ref, source = self._reference(name, cells)
        note = None
        if ref not in cells or cells[ref].rows < self.min_rows:
            note = f"reference group {ref!r} has fewer than {self.min_rows} rows: no comparisons"
        rates = {g: _rates(c.totals) for g, c in cells.items()}
        draws = {g: _rates(c.draws(rng, self.resamples)) for g, c in cells.items()}
        compared = ref if note is None else None
        # simultaneous intervals (Bonferroni) across the groups compared with the reference
        # and the metric families judged (selection; with labels also TPR and FPR, the
        # average odds being their mean): clean windows stay clean as groups multiply
        judged = [g for g, c in cells.items() if compared and g != ref and c.rows >= self.min_rows]
        families = 3 if compared and any(_labelled_enough(cells[g], self.min_rows) for g in judged) else 1
        families = families if compared and _labelled_enough(cells[ref], self.min_rows) else 1
        level = 1 - (1 - self.confidence) / max(len(judged) * families, 1)
        groups = {
            g: self._group_metrics(name, g, c, compared, rates, draws, cells, ses, level)
            for g, c in cells.items()
        }
        tests = sum(r.drift_p_value is not None for m in groups.values() for r in m.values())
        groups_out = self._with_drift(groups, tests, rates, cells, ref)
        summary = _summaries({g: rates[g] for g, c in cells.items() if c.rows >= self.min_rows})
        return AttributeFairness(
            name,
            ref,
            source,
            groups_out,
            int(np.sum(keys == MISSING)),
            *summary,
            note=note,
            interval_level=level,
        )

    def _group_metrics(
        self,
        name: str,
        g: str,
        c: _Cells,
        ref: str | None,
        rates: Mapping[str, dict[str, np.ndarray]],
        draws: Mapping[str, dict[str, np.ndarray]],
        cells: Mapping[str, _Cells],
        ses: dict[tuple[str, str, Metric], float],
        level: float,
    ) -> dict[Metric, GroupMetric]:
        """The metrics of one group (none below `min_rows`; only the rate without `ref`)."""
        metrics: dict[Metric, GroupMetric] = {}
        if c.rows < self.min_rows:
            return metrics
        values = {Metric.SELECTION_RATE: rates[g]["sel"]}
        samples = {Metric.SELECTION_RATE: draws[g]["sel"]}
        if ref is not None and g != ref:
            values.update(_compare(rates[g], rates[ref]))
            samples.update(_compare(draws[g], draws[ref]))
        labelled = _labelled_enough(c, self.min_rows) and (
            ref is None or _labelled_enough(cells[ref], self.min_rows)
        )
        for metric, value in values.items():
            if metric.needs_labels and not labelled:
                continue
            est = _estimate(metric, float(value), samples[metric], level)
            band = self.bands.of(metric)
            bias = (
                band is not None
                and np.isfinite(est.ci_low)
                and (est.ci_high < band[0] or est.ci_low > band[1])
            )
            ses[(name, g, metric)] = est.se
            base, p = self._drift_test(name, g, metric, est)
            gm = GroupMetric(metric, est.value, est.ci_low, est.ci_high, band, bool(bias), base, p)
            metrics[metric] = gm
        return metrics

    def _drift_test(
        self, name: str, g: str, metric: Metric, est: _Estimate
    ) -> tuple[float | None, float | None]:
        """The baseline's value of the metric and the p-value of the window's change."""
        base_attr = self._baseline.get(name)
        if base_attr is None or g not in base_attr.groups:
            return None, None
        base = base_attr.groups[g].metrics.get(metric)
        base_se = self._baseline_se.get((name, g, metric), np.nan)
        if base is None or not np.isfinite(base.value):
            return None, None
        if metric.is_ratio:
            if not (est.value > 0 and base.value > 0):
                return base.value, None
            delta = np.log(est.value) - np.log(base.value)
        else:
            delta = est.value - base.value
        se = float(np.hypot(est.se, base_se))
        if not np.isfinite(se) or not np.isfinite(delta):
            return base.value, None
        if se == 0:
            return base.value, 1.0 if delta == 0 else 0.0
        return base.value, float(2 * norm.sf(abs(delta) / se))

    def _with_drift(
        self,
        groups: Mapping[str, dict[Metric, GroupMetric]],
        tests: int,
        rates: Mapping[str, dict[str, np.ndarray]],
        cells: Mapping[str, _Cells],
        ref: str | None,
    ) -> dict[str, GroupFairness]:
        """Group results, each drift p-value judged at the Bonferroni level of the attribute."""
        level = self.drift_p_value / max(tests, 1)
        out = {}
        for g, metrics in groups.items():
            c = cells[g]
            metrics = {
                m: (
                    GroupMetric(
                        r.metric,
                        r.value,
                        r.ci_low,
                        r.ci_high,
                        r.band,
                        r.bias,
                        r.baseline,
                        r.drift_p_value,
                        bool(r.drift_p_value < level),
                    )
                    if r.drift_p_value is not None
                    else r
                )
                for m, r in metrics.items()
            }
            sr = rates[g]
            out[g] = GroupFairness(
                g,
                c.rows,
                float(c.totals.sum()),
                int(c.labelled_counts[:4].sum()),
                int(c.labelled_counts[2:4].sum()),
                g == ref,
                c.rows >= self.min_rows,
                float(sr["sel"]),
                float(sr["tpr"]),
                float(sr["fpr"]),
                metrics,
            )
        return out


def _labelled_enough(c: _Cells, min_rows: int) -> bool:
    """Enough labelled rows of each outcome (max(MIN_CLASS_ROWS, min_rows)) for TPR / FPR."""
    need = max(MIN_CLASS_ROWS, min_rows)
    counts = c.labelled_counts
    return counts[0] + counts[1] >= need and counts[2] + counts[3] >= need


def _summaries(rates: Mapping[str, dict[str, np.ndarray]]) -> tuple[float, ...]:
    """fairlearn's between-groups summaries over the given groups (NaN when undefined)."""

    def spread(key: str) -> float:
        vals = np.array([float(r[key]) for r in rates.values()])
        vals = vals[np.isfinite(vals)]
        return float(vals.max() - vals.min()) if len(vals) else np.nan

    sel = np.array([float(r["sel"]) for r in rates.values()])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(sel.min() / sel.max()) if len(sel) else np.nan
    tpr, fpr = spread("tpr"), spread("fpr")
    odds = float(np.nanmax([tpr, fpr])) if np.isfinite([tpr, fpr]).any() else np.nan
    return spread("sel"), ratio, tpr, odds
