"""The segments-and-fairness step of a run: the fairness engines fitted on the baseline,
applied to one window -> `GroupResults` (segments, fairness, explanation disparity).

Glue only: the engines (`monitor.fairness`) are pure and know nothing of runs; this
module builds their inputs from a `WindowSample` and a `BaselineData` (the segment
columns: declared attributes beside the inputs, plus inputs used as segments) and
from the run's attributions (aligned with the attributes by request id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import ModelConfig
from monitor.vocab import Task

log = logging.getLogger(__name__)


def configured(model: ModelConfig) -> bool:
    """True when the model declares segments ([models.segments] attributes or features)."""
    return bool(model.segments.names)


def fairness_configured(model: ModelConfig) -> bool:
    return configured(model) and bool(model.fairness.protected)


def segment_frame(
    model: ModelConfig, frame: pd.DataFrame, attributes: pd.DataFrame | None
) -> pd.DataFrame | None:
    """One column per segment name (attributes, then inputs used as segments), aligned
    with `frame`; None when a declared attribute has no column (no attributes kept)."""
    columns: dict[str, Any] = {}
    for name in model.segments.attributes:
        if attributes is None or name not in attributes.columns:
            return None
        columns[name] = attributes[name].to_numpy(dtype=object)
    for name in model.segments.features:
        columns[name] = frame[name].to_numpy()
    return pd.DataFrame(columns, index=frame.index)


def against_sign(model: ModelConfig, outcome: Any) -> float:
    """Sign of an attribution that pushes the decision away from the favorable outcome.

    Multiclass: the attributions explain `explain_class` (or the predicted class, which
    for an unfavorable decision is not the favorable one): against the person is
    towards that class, unless the explained class is the favorable one.
    """
    if model.task != Task.MULTICLASS:
        return outcome.against_sign()
    if model.explain_class is not None and model.explain_class == outcome.favorable_class:
        return -1.0
    return 1.0


@dataclass
class GroupAnalyzers:
    """The fairness engines of one model fitted on one baseline (cached per baseline)."""

    segments: Any
    fairness: Any | None
    disparity: Any | None
    outcome: Any | None
    #: False when the baseline kept no attributes: analyzed without a baseline
    fitted: bool


def fit_analyzers(model: ModelConfig, reference: Any) -> GroupAnalyzers:
    """Build the engines from the config and fit them on the baseline's reference rows
    (the attributes stored with the baseline sample); without them, unfitted."""
    from monitor.fairness import DisparityAnalyzer, FairnessAnalyzer, SegmentAnalyzer

    segments = SegmentAnalyzer.from_config(model)
    fairness = disparity = outcome = None
    if fairness_configured(model):
        fairness = FairnessAnalyzer.from_config(model)
        disparity = DisparityAnalyzer.from_config(model)
        outcome = fairness.outcome
    seg = segment_frame(model, reference.sample, reference.attributes)
    if seg is None:
        log.warning(
            "model %s: baseline v%s kept no column for the segment attributes %s: segments and "
            "fairness are analyzed without a baseline (no drift against it; reference groups "
            "from each window). Rebuild the baseline from data with those columns.",
            model.name,
            reference.version,
            list(model.segments.attributes),
        )
        return GroupAnalyzers(segments, fairness, disparity, outcome, fitted=False)
    segments.fit(seg, reference.predictions, reference.labels)
    if fairness is not None:
        fairness.fit(seg[list(model.fairness.protected)], reference.predictions, reference.labels)
    # the previous-window reference (negative id) has no attributions of its own rows
    if disparity is not None and reference.attributions is not None and getattr(reference, "id", 1) > 0:
        names = list(model.features.names)
        n = min(len(reference.attributions), len(seg))
        disparity.fit(
            seg[list(model.fairness.protected)].iloc[:n],
            reference.attributions[names].to_numpy(dtype=float)[:n],
            outcome.decisions(reference.predictions[:n]),
            against_sign(model, outcome),
        )
    log.info("model %s: segment and fairness analyzers fitted on baseline v%s", model.name, reference.version)
    return GroupAnalyzers(segments, fairness, disparity, outcome, fitted=True)


@dataclass(frozen=True)
class GroupResults:
    """What the step found in one window (None: not configured or nothing to analyze)."""

    segments: Any = None
    fairness: Any = None
    disparity: Any = None
    #: how the stratified sample was drawn (strata, weights), None for a uniform sample
    sampling: Any = None


def analyze_window(
    model: ModelConfig,
    window: Any,
    analyzers: GroupAnalyzers,
    attribution: Any = None,
    weights: np.ndarray | None = None,
) -> GroupResults:
    """Segments, fairness and explanation disparity of one window's sample.

    `attribution` is the run's `AttributionOutcome` (its values indexed by request id);
    `weights` (stratified samples) reweight rates so they estimate the whole window.
    """
    seg = segment_frame(model, window.frame, window.attributes)
    if seg is None or not len(seg):
        return GroupResults()
    # rates come from the attribute-stratified sample when there is one (weighted back)
    rated, rated_seg = window, seg
    stratified = getattr(window, "stratified", None)
    if stratified is not None and len(stratified.frame):
        rated, weights = stratified, stratified.weights
        rated_seg = segment_frame(model, stratified.frame, stratified.attributes)
    segments = analyzers.segments.analyze(rated_seg, rated.predictions, rated.labels, weights)
    fairness = disparity = None
    if analyzers.fairness is not None:
        protected = rated_seg[list(model.fairness.protected)]
        fairness = analyzers.fairness.analyze(protected, rated.predictions, rated.labels, weights)
        if analyzers.disparity is not None and attribution is not None:
            disparity = _disparity(model, window, seg[list(model.fairness.protected)], analyzers, attribution)
    return GroupResults(segments, fairness, disparity, getattr(window, "sampling", None))


def _disparity(
    model: ModelConfig, window: Any, protected: pd.DataFrame, analyzers: GroupAnalyzers, attribution: Any
) -> Any:
    values = attribution.explanation.values
    if not len(values):
        return None
    positions = window.frame.index.get_indexer(values.index)
    if (positions < 0).any():
        log.warning(
            "model %s: %d explained rows are not in the window sample", model.name, int((positions < 0).sum())
        )
        keep = positions >= 0
        values, positions = values[keep], positions[keep]
    names = list(model.features.names)
    favorable = analyzers.outcome.decisions(np.asarray(window.predictions)[positions])
    return analyzers.disparity.analyze(
        protected.iloc[positions],
        values[names].to_numpy(dtype=float),
        favorable,
        against_sign(model, analyzers.outcome),
    )


def request_groups(
    model: ModelConfig, baseline: Any, features: dict[str, Any], attributes: Any
) -> tuple[str, ...]:
    """The segments one request belongs to (``sex=F``, then crosses ``sex=F & age=...``),
    numeric segment inputs cut at the baseline's quantile bins: for `monitor why`."""
    from monitor.fairness import SegmentAnalyzer

    analyzer = SegmentAnalyzer.from_config(model)
    if baseline is not None and len(baseline.sample):
        attrs = baseline.attributes
        if attrs is None or any(a not in attrs.columns for a in model.segments.attributes):
            attrs = pd.DataFrame(index=baseline.sample.index, columns=list(model.segments.attributes))
        analyzer.keys.fit(segment_frame(model, baseline.sample, attrs))
    frame = pd.DataFrame([{name: features.get(name) for name in model.features.names}])
    given = dict(attributes or {})
    attrs = pd.DataFrame([{a: given.get(a) for a in model.segments.attributes}], dtype=object)
    seg = segment_frame(model, frame, attrs)
    return analyzer.membership(seg)[0] if seg is not None else ()
