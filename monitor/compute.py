"""The compute step of a run: the engines on one sampled window -> a `RunResult`.

The cycle reads the window, the reference and the policies in force and hands them in;
nothing here touches the database. Drift (`monitor.drift`) and attributions
(`monitor.attribution`) know nothing about runs; this module only calls them in order
and assembles their typed records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.budget import AlertBudget, level_or
from monitor.config import ModelConfig
from monitor.drift.fitted import FitStore
from monitor.intake.records import WindowSample
from monitor.performance import labelled_count
from monitor.result import AttributionOutcome, BaselineRef, Faithfulness, RunResult, WindowQuality
from monitor.store.baselines import BaselineData
from monitor.vocab import PREDICTION_KEY, AlertKind, RunStatus

log = logging.getLogger(__name__)


def compute(
    model: ModelConfig,
    window: WindowSample,
    reference: BaselineData,
    *,
    start: Any,
    end: Any,
    policies: Any,
    runtime: Any,
    at_ingest: Mapping[str, int] | None = None,
    timings: Mapping[str, float] | None = None,
    estimation_reference: BaselineData | None = None,
    fits: FitStore | None = None,
) -> RunResult:
    """Drift, attributions and attribution drift of `window` against `reference`.

    `at_ingest` counts, by reason, rows of this window quarantined when they were
    ingested; `timings` are the cycle's own (reading the window); `fits` is where the
    reference's calibrated nulls and surrogate bootstraps are read and kept.
    """
    reasons = dict(window.reasons)
    for reason, count in (at_ingest or {}).items():
        reasons[reason] = reasons.get(reason, 0) + count
    timings = dict(timings or {})
    # the whole stream's false-alarm rate per window, shared by the checks below
    budget = AlertBudget.for_model(model)
    common = {
        "model": model.name,
        "start": start,
        "end": end,
        "baseline": BaselineRef(
            reference.id if reference.id > 0 else None, reference.version, model.baseline.mode
        ),
        "rows": int(window.rows),
        "sampled": int(len(window.frame)),
        "reasons": reasons,
        "rejected": tuple(window.rejected),
        "min_rows": model.drift.min_rows,
        "sections": {"budget": budget},
    }
    if len(window.frame) < model.drift.min_rows:
        # too few rows to compare, but quarantined rows are still judged
        quality = WindowQuality.against(None, None, rows=int(window.rows), reasons=reasons,
                                        alpha=budget.quality)
        return RunResult(status=RunStatus.INSUFFICIENT_DATA, timings=timings, quality=quality,
                         **common)

    tick = time.perf_counter()
    analyzer = runtime.analyzer(model, reference, fits)
    report = analyzer.analyze(
        window.frame, window.predictions, window.labels, threshold_factors=_threshold_factors(model, policies)
    )
    timings["drift"] = round(time.perf_counter() - tick, 4)

    tick = time.perf_counter()
    # previous_window mode: estimates still learn from the stored (labelled) baseline
    estimated, calibration = window_performance(model, window, estimation_reference or reference, runtime)
    timings["estimation"] = round(time.perf_counter() - tick, 4)

    tick = time.perf_counter()
    attribution = explain_window(model, window, reference, policies, runtime, budget)
    timings["attribution"] = round(time.perf_counter() - tick, 4)
    groups = _groups(model, window, reference, runtime, attribution, timings)

    tick = time.perf_counter()
    try:
        transparency = explain_decisions(model, window, reference, attribution, fits, budget)
    except Exception:
        # the surrogate and reasons must not cost the run its drift and attribution verdicts
        log.exception("model %s: surrogate/reasons/faithfulness failed; the run goes on without them",
                      model.name)
        transparency = {}
    timings["transparency"] = round(time.perf_counter() - tick, 4)
    return RunResult(
        status=RunStatus.SUCCEEDED,
        drift=report,
        attribution=attribution,
        **transparency,
        quality=WindowQuality.against(
            report.quality,
            reference.feature_stats,
            sampled=len(window.frame),
            baseline_rows=len(reference.sample),
            rows=int(window.rows),
            reasons=reasons,
            alpha=budget.quality,
        ),
        timings=timings,
        estimated=estimated,
        calibration=calibration,
        labelled_rows=labelled_count(window.labels),
        segments=groups.segments,
        fairness=groups.fairness,
        disparity=groups.disparity,
        sampling=groups.sampling,
        **common,
    )


def window_performance(
    model: ModelConfig, window: WindowSample, reference: BaselineData, runtime: Any
) -> tuple[Any, Any]:
    """The window's estimated performance (None when the baseline has no labels) and
    the calibration of its labelled rows (None with fewer than `drift.min_rows`)."""
    from monitor.performance import estimate_window, label_scale, realized_calibration

    estimator = runtime.estimator(model, reference)
    estimated = None
    if estimator is not None:
        estimated = estimate_window(
            model, estimator, window.frame, window.predictions, label_scale(reference.labels)
        )
    return estimated, realized_calibration(model, estimator, window.labels, window.predictions)


def _groups(
    model: ModelConfig,
    window: WindowSample,
    reference: BaselineData,
    runtime: Any,
    attribution: AttributionOutcome,
    timings: dict[str, float],
) -> Any:
    """Segments, fairness and explanation disparity when `[models.segments]` is set."""
    from monitor.fairness import FairnessError
    from monitor.fairness_step import GroupResults, analyze_window, configured

    if not configured(model):
        return GroupResults()
    tick = time.perf_counter()
    try:
        groups = analyze_window(model, window, runtime.groups(model, reference), attribution)
    except FairnessError as err:
        # the data cannot be cut into groups (e.g. a baseline without a declared column):
        # drift and attributions of the window still stand
        log.warning(
            "model %s: segments and fairness not computed for this window: %s", model.name, err
        )
        return GroupResults()
    timings["fairness"] = round(time.perf_counter() - tick, 4)
    return groups


def _threshold_factors(model: ModelConfig, policies: Any) -> dict[str, float]:
    """Feedback policies that made a feature's (or the prediction's) test less sensitive."""
    factors = {
        name: policies.factor(AlertKind.FEATURE_DRIFT, name)
        for name in model.features.names
        if policies.factor(AlertKind.FEATURE_DRIFT, name) != 1.0
    }
    if policies.factor(AlertKind.PREDICTION_DRIFT, None) != 1.0:
        factors[PREDICTION_KEY] = policies.factor(AlertKind.PREDICTION_DRIFT, None)
    return factors


def explain_window(
    model: ModelConfig,
    window: WindowSample,
    reference: BaselineData,
    policies: Any,
    runtime: Any,
    budget: AlertBudget | None = None,
) -> AttributionOutcome:
    """Attributions of up to `attribution.max_samples` sampled rows, and their drift.

    Rows with a missing value are left out: the model cannot be run on them (their
    logged prediction, the serving system's, still counts in prediction drift and
    performance)."""
    from monitor.attribution import attribution_drift, explain_for_model

    loaded = runtime.model(model)
    complete = window.frame.notna().all(axis=1).to_numpy()
    subset = window.frame[complete].iloc[: model.attribution.max_samples]
    explanation = explain_for_model(model, loaded, subset, reference.sample)
    names = list(model.features.names)
    drift = threshold = None
    if reference.attributions is not None and len(subset):
        threshold = 1 - (1 - model.attribution.ndcg_threshold) * policies.factor(
            AlertKind.ATTRIBUTION_DRIFT, None
        )
        drift = attribution_drift(
            reference.attributions[names].to_numpy(dtype=float),
            explanation.values[names].to_numpy(dtype=float),
            names,
            threshold=threshold,
            family_alpha=(budget or AlertBudget.for_model(model)).attribution,
            seed=model.seed,
        )
    inputs = subset.loc[explanation.values.index]
    return AttributionOutcome(explanation, inputs, drift, threshold)


#: fewer explained rows than this: no surrogate is fitted (its fidelity would be noise)
MIN_SURROGATE_ROWS = 20


def explain_decisions(
    model: ModelConfig,
    window: WindowSample,
    reference: BaselineData,
    attribution: AttributionOutcome,
    fits: FitStore | None = None,
    budget: AlertBudget | None = None,
) -> dict[str, Any]:
    """The surrogate tree, the reasons of each explained decision and the faithfulness of
    the attributions: `RunResult` fields (`surrogate`, `decision_reasons`, `faithfulness`).
    The surrogate's bootstrap ranges are read from and kept in `fits`; each check's level
    is its part of `budget` (the model's) unless its config sets one."""
    from monitor.model import select_output
    from monitor.reasons import window_reasons
    from monitor.surrogate import surrogate_report

    explanation = attribution.explanation
    n = len(explanation.values)
    budget = budget or AlertBudget.for_model(model)
    out: dict[str, Any] = {}
    if n == 0:
        return out
    ref_output = select_output(reference.predictions, model.task, model.explain_class)
    # the explained rows are the window's complete ones: their logged scores by position
    positions = window.frame.index.get_indexer(explanation.values.index)
    scores = np.asarray(window.predictions)[positions] if (positions >= 0).all() else None
    if n >= MIN_SURROGATE_ROWS and len(reference.sample) >= MIN_SURROGATE_ROWS:
        cfg = model.surrogate
        out["surrogate"] = surrogate_report(
            attribution.inputs,
            np.asarray(explanation.output, dtype=float),
            reference.sample,
            ref_output,
            numeric=model.features.numeric,
            categorical=model.features.categorical,
            max_depth=cfg.max_depth,
            holdout=cfg.holdout,
            resamples=cfg.resamples,
            alpha=level_or(cfg.alpha, budget.surrogate),
            seed=model.seed,
            fits=fits,
            min_fidelity=cfg.min_fidelity,
        )
    ref_values = None
    # previous_window mode swaps the sample for the last window but keeps the stored
    # baseline's attributions: their rows have no decisions to pair with, so no shift test
    if reference.attributions is not None and reference.id > 0:
        ref_values = reference.attributions[list(model.features.names)]
    k = len(ref_values) if ref_values is not None else 0
    out["decision_reasons"] = window_reasons(
        model,
        explanation.values[list(model.features.names)],
        np.asarray(explanation.output, dtype=float),
        scores,
        explanation.baseline_output,
        ref_values,
        ref_output[:k] if k else None,
        np.asarray(reference.predictions)[:k] if k else None,
        alpha=level_or(model.reasons.p_value, budget.reasons),
        seed=model.seed,
    )
    median = attribution.median_completeness_error
    if median is not None:
        from scipy.stats import binomtest

        errors = np.asarray(explanation.completeness_error, dtype=float)
        tolerance = model.attribution.tolerance
        above = int(np.sum(errors > tolerance))
        p = float(binomtest(above, len(errors), 0.5, alternative="greater").pvalue)
        out["faithfulness"] = Faithfulness(
            attribution.method, median, tolerance, explanation.steps, n, above, p,
            alpha=budget.faithfulness,
        )
    return out
