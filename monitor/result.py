"""The typed result of one run: what a window produced, before and after it is stored.

`RunResult` is frozen and holds the engines' own records (`DriftReport`,
`FrameExplanation`, `AttributionDrift`, ...). Alert rules read its fields; only the
edges call `to_dict()`: `monitor once --json`, the stored `Run.summary` and the
notification payloads. A new kind of result plugs in as one more optional field whose
value has a `to_dict()`; `to_dict()` adds its key only when it is set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import pandas as pd

from monitor.drift.records import DataQuality, DriftReport, FeatureDrift, plain
from monitor.estimation import Realized
from monitor.intake.records import Rejection
from monitor.performance import EstimatedPerformance, performance_document
from monitor.vocab import RunStatus


class Section(Protocol):
    """Anything a run can carry as one more result: it knows its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class BaselineRef:
    """Which reference a window was compared with (id None: the previous window)."""

    id: int | None
    version: int | None
    mode: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "mode": self.mode}


class QualityTest(StrEnum):
    """What a data-quality check counts in a window."""

    #: rows whose feature value is missing, against the baseline's missing share
    MISSING = "missing"
    #: rows holding a value the baseline never had, against the share of baseline values
    #: seen only once (Good-Turing: how often a new row brings a value never seen)
    UNSEEN = "unseen"
    #: rows quarantined (malformed), against `QUARANTINE_RATE`
    QUARANTINE = "quarantine"


#: the quarantined share a window is judged against: a sender that works produces fewer
#: malformed rows than 1 in 1,000; a window with significantly more raises data_quality
QUARANTINE_RATE = 0.001


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality test of a window: `count` of `rows` against the rate `expected`
    (the baseline's own, estimated from `baseline_count` of `baseline_rows`), one-sided
    `p_value`, flagged below `alpha` (the data-quality share of the alert budget, split
    across the window's checks by Holm's correction)."""

    test: QualityTest
    feature: str | None
    count: int
    rows: int
    expected: float
    p_value: float
    alpha: float
    baseline_count: int | None = None
    baseline_rows: int | None = None
    #: unseen values (as text, at most 20) or quarantine reasons with their counts
    values: tuple[str, ...] = ()
    reasons: Mapping[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.count / self.rows if self.rows else 0.0

    @property
    def flagged(self) -> bool:
        return self.count > 0 and self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": str(self.test),
            "feature": self.feature,
            "count": int(self.count),
            "rows": int(self.rows),
            "share": plain(self.share),
            "expected": plain(self.expected),
            "baseline_count": self.baseline_count,
            "baseline_rows": self.baseline_rows,
            "p_value": plain(self.p_value),
            "alpha": plain(self.alpha),
            "flagged": self.flagged,
            "values": list(self.values),
            "reasons": dict(self.reasons),
        }


def exceeds_baseline(count: int, rows: int, baseline_count: int, baseline_rows: int) -> float:
    """One-sided p-value that a window with `count` of `rows` has a higher rate than a
    baseline with `baseline_count` of `baseline_rows`: Fisher's exact conditional test
    (the baseline's rate is itself an estimate, so it is not taken as exact)."""
    if count <= 0:
        return 1.0
    from scipy.stats import hypergeom

    total = rows + baseline_rows
    return float(min(1.0, hypergeom.sf(count - 1, total, count + baseline_count, rows)))


def exceeds_rate(count: int, rows: int, rate: float) -> float:
    """One-sided exact binomial p-value of `count` of `rows` against a known `rate`."""
    if count <= 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, binom.sf(count - 1, rows, rate)))


@dataclass(frozen=True)
class WindowQuality:
    """The window's data quality against the baseline, in the shape alert rules read."""

    missing: Mapping[str, float] = field(default_factory=dict)
    #: rise of each feature's missing share over the baseline's (only rises)
    missing_increase: Mapping[str, float] = field(default_factory=dict)
    out_of_range: Mapping[str, int] = field(default_factory=dict)
    unseen: Mapping[str, list[str]] = field(default_factory=dict)
    constant: tuple[str, ...] = ()
    all_missing: tuple[str, ...] = ()
    #: every test of the window (missing and unseen per feature, quarantine), decided
    checks: tuple[QualityCheck, ...] = ()
    #: the window's data-quality family rate (the checks share it by Holm's correction)
    alpha: float | None = None

    @property
    def flagged(self) -> tuple[QualityCheck, ...]:
        return tuple(c for c in self.checks if c.flagged)

    @classmethod
    def against(
        cls,
        quality: DataQuality | None,
        feature_stats: Mapping[str, Any] | None,
        *,
        sampled: int = 0,
        baseline_rows: int = 0,
        rows: int = 0,
        reasons: Mapping[str, int] | None = None,
        alpha: float = 0.0,
    ) -> WindowQuality:
        """Compare the window's quality with the baseline's per-feature statistics.

        `sampled` rows were judged for missing and unseen values; `rows` valid rows and
        `reasons` (quarantined rows by reason) are the whole window's. Each count is
        tested against the baseline's own rate (`baseline_rows`: the baseline's size, for
        statistics stored without their counts) and decided at Holm's level of `alpha`.
        """
        flat = quality.to_dict() if quality is not None else {}
        missing = flat.get("missing_share", {})
        stats = feature_stats or {}
        increase = {}
        for name, share in missing.items():
            before = (stats.get(name) or {}).get("missing_share") or 0.0
            if share is not None and share - before > 0:
                increase[name] = plain(share - before)
        checks = _checks(quality, stats, sampled, baseline_rows, rows, reasons or {})
        return cls(
            missing={n: v for n, v in missing.items() if v},
            missing_increase=increase,
            out_of_range=flat.get("out_of_range", {}),
            unseen=flat.get("unseen_categories", {}),
            constant=tuple(flat.get("constant", [])),
            all_missing=tuple(flat.get("all_missing", [])),
            checks=_decided(checks, alpha),
            alpha=alpha,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing": dict(self.missing),
            "missing_increase": dict(self.missing_increase),
            "out_of_range": dict(self.out_of_range),
            "unseen": {k: list(v) for k, v in self.unseen.items()},
            "constant": list(self.constant),
            "all_missing": list(self.all_missing),
            # the checks with something to count (the others have p = 1)
            "checks": [c.to_dict() for c in self.checks if c.count],
            "alpha": plain(self.alpha),
        }


def _checks(
    quality: DataQuality | None,
    stats: Mapping[str, Any],
    sampled: int,
    baseline_rows: int,
    rows: int,
    reasons: Mapping[str, int],
) -> list[QualityCheck]:
    """The window's undecided checks (alpha 0), one p-value each."""
    checks = []
    for name, q in (quality.features if quality is not None else {}).items():
        stat = stats.get(name) or {}
        m = int(stat.get("rows") or baseline_rows)
        b = int(stat["missing"]) if "missing" in stat else round((stat.get("missing_share") or 0.0) * m)
        if sampled and m:
            checks.append(QualityCheck(
                QualityTest.MISSING, name, int(q.missing), sampled, b / m,
                exceeds_baseline(int(q.missing), sampled, b, m), 0.0, b, m,
            ))
        present = sampled - int(q.missing)
        if q.reference_values and present > 0:
            s, v = int(q.reference_singletons), int(q.reference_values)
            checks.append(QualityCheck(
                QualityTest.UNSEEN, name, int(q.unseen_rows), present, s / v,
                exceeds_baseline(int(q.unseen_rows), present, s, v), 0.0, s, v,
                tuple(q.unseen_categories),
            ))
    bad = {r: n for r, n in reasons.items() if r != "duplicate" and n}
    quarantined = sum(bad.values())
    total = rows + quarantined
    if total:
        checks.append(QualityCheck(
            QualityTest.QUARANTINE, None, quarantined, total, QUARANTINE_RATE,
            exceeds_rate(quarantined, total, QUARANTINE_RATE), 0.0,
            reasons=dict(sorted(bad.items(), key=lambda kv: -kv[1])),
        ))
    return checks


def _decided(checks: list[QualityCheck], alpha: float) -> tuple[QualityCheck, ...]:
    """The checks with their Holm level of the family rate `alpha`."""
    from monitor.drift.calibration import holm_levels

    keyed = {f"{c.test}:{c.feature or ''}": c for c in checks}
    levels = holm_levels({k: c.p_value for k, c in keyed.items()}, alpha, {})
    return tuple(replace(c, alpha=levels[k]) for k, c in keyed.items())


@dataclass(frozen=True)
class AttributionOutcome:
    """The explanation of a window's sample and how it compares with the baseline's.

    `explanation` is the attribution engine's `FrameExplanation` (values indexed by
    request id); `inputs` are the explained rows' feature values; `drift` is None when
    the baseline has no attributions.
    """

    explanation: Any
    inputs: pd.DataFrame
    drift: Any = None
    threshold: float | None = None

    @property
    def method(self) -> str:
        return str(self.explanation.method)

    @property
    def drifted(self) -> bool:
        """The importance ranking changed (nDCG below its threshold)."""
        return bool(self.drift.drifted) if self.drift is not None else False

    @property
    def shifted_features(self) -> tuple[str, ...]:
        """Features whose influence changed beyond sampling error (calibrated per feature)."""
        return tuple(self.drift.drifted_features) if self.drift is not None else ()

    @property
    def median_completeness_error(self) -> float | None:
        errors = self.explanation.completeness_error
        if errors is None or not len(errors):
            return None
        return plain(float(np.median(errors)))

    def feature_table(self) -> dict[str, dict[str, Any]]:
        """Per feature: baseline and current mean |attribution|, relative change, distance."""
        current = self.explanation.values.abs().mean()
        per_feature = {f.feature: f for f in self.drift.features} if self.drift is not None else {}
        table: dict[str, dict[str, Any]] = {}
        for name in self.explanation.values.columns:
            entry: dict[str, Any] = {"baseline": None, "current": plain(float(current[name])), "change": None}
            f = per_feature.get(name)
            if f is not None:
                entry.update(
                    baseline=plain(f.baseline_importance),
                    current=plain(f.current_importance),
                    change=plain(f.relative_change),
                    distance=plain(f.distance),
                    p_value=plain(f.p_value),
                    drifted=bool(f.drifted),
                    min_detectable_change=plain(f.min_detectable_change),
                )
            table[name] = entry
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "ndcg": plain(self.drift.ndcg) if self.drift is not None else None,
            "threshold": plain(self.threshold),
            "drifted": self.drifted,
            "shifted_features": list(self.shifted_features),
            "explained": int(len(self.explanation.values)),
            "median_completeness_error": self.median_completeness_error,
            "family_alpha": plain(self.drift.family_alpha) if self.drift is not None else None,
            "features": self.feature_table(),
        }


@dataclass(frozen=True)
class Traffic:
    """Whether the model's traffic stopped: consecutive windows, ending with this one,
    that had no valid row, and whether it ever had traffic before."""

    quiet_windows: int
    had_traffic: bool
    no_data_after: int

    @property
    def stopped(self) -> bool:
        return self.had_traffic and self.quiet_windows >= self.no_data_after

    def to_dict(self) -> dict[str, Any]:
        return {"quiet_windows": self.quiet_windows, "no_data": self.stopped}


@dataclass(frozen=True)
class Gaps:
    """Windows before this one that were never computed (the daemon was down longer
    than its catch-up): `monitor backfill` computes them."""

    windows: tuple[tuple[datetime, datetime], ...]

    @property
    def start(self) -> datetime:
        return self.windows[0][0]

    @property
    def end(self) -> datetime:
        return self.windows[-1][1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "missed_windows": len(self.windows),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass(frozen=True)
class Faithfulness:
    """How well the window's attributions add up (integrated gradients' completeness):
    the median error on the production rows explained, against `attribution.tolerance`."""

    method: str
    median_error: float
    tolerance: float
    #: integration steps used (chosen per run when `attribution.steps` is unset)
    steps: int | None
    rows: int
    #: rows whose error exceeds the tolerance, and the one-sided sign test's p-value that
    #: the median error exceeds it (more than half the rows above, beyond chance)
    above: int = 0
    p_value: float = 1.0
    #: the finding needs p_value below this (a median just over the tolerance is noise):
    #: faithfulness's part of the model's alert budget
    alpha: float = 0.01

    @property
    def exceeded(self) -> bool:
        return self.median_error > self.tolerance and self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "median_completeness_error": plain(self.median_error),
            "tolerance": self.tolerance,
            "steps": self.steps,
            "rows": self.rows,
            "rows_above_tolerance": self.above,
            "p_value": plain(self.p_value),
            "alpha": plain(self.alpha),
            "exceeded": self.exceeded,
        }


def verdict(fd: FeatureDrift) -> dict[str, Any]:
    """One stat test's verdict as `once --json` shows it: with calibrated thresholds, the
    calibrated p-value, the level it was held to and the smallest shift the window size
    detects with 90% power (in reference standard deviations, or share of category mass)."""
    return {
        "method": fd.method,
        "score": plain(fd.score),
        "threshold": plain(fd.threshold),
        "drifted": bool(fd.drifted),
        "p_value": plain(fd.p_value),
        "alpha": plain(fd.alpha),
        "min_detectable_shift": plain(fd.min_detectable_shift),
        "shift_unit": fd.shift_unit,
        "decided_by": fd.decided_by,
    }


@dataclass(frozen=True)
class RunResult:
    """Everything one run found in one window of one model."""

    model: str
    start: datetime
    end: datetime
    status: RunStatus
    baseline: BaselineRef | None = None
    #: valid rows in the window before sampling, and how many were sampled
    rows: int = 0
    sampled: int = 0
    #: quarantined rows of the window by reason (at ingest and by this run)
    reasons: Mapping[str, int] = field(default_factory=dict)
    #: rows this run itself rejected (stored in quarantine with the run)
    rejected: tuple[Rejection, ...] = ()
    min_rows: int = 0
    drift: DriftReport | None = None
    attribution: AttributionOutcome | None = None
    quality: WindowQuality | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    #: why the run failed (status failed)
    error: str | None = None
    #: set when the window had no valid row: is the model's traffic gone?
    traffic: Traffic | None = None
    #: windows before this one the daemon never computed
    gaps: Gaps | None = None
    #: performance estimated without labels (None: the baseline has no labels)
    estimated: EstimatedPerformance | None = None
    #: calibration and threshold rates of the labelled rows (None: too few labels)
    calibration: Realized | None = None
    #: labelled rows of the window, and the revision of its realized performance
    #: (0: as computed by the run; `monitor labels refresh` stores later ones)
    labelled_rows: int = 0
    revision: int = 0
    #: `[models.segments]`: the window cut by attribute values (`monitor.fairness.SegmentReport`)
    segments: Any = None
    #: `[models.fairness]`: per protected group, with intervals (`monitor.fairness.FairnessReport`)
    fairness: Any = None
    #: explanation disparity across protected groups (`monitor.fairness.DisparityReport`)
    disparity: Any = None
    #: `[models.segments] stratify`: the strata and weights of the sample segments and
    #: fairness were computed on (`monitor.fairness.StratifiedSample`)
    sampling: Any = None
    #: the window's surrogate tree against the baseline's range (`monitor.surrogate`)
    surrogate: Any = None
    #: per-request reasons and the shift of their mix (`monitor.reasons`)
    decision_reasons: Any = None
    #: completeness of the window's integrated gradients against the tolerance
    faithfulness: Faithfulness | None = None
    # Room for the results later issues add (estimated performance, fairness, segments,
    # surrogate, ...): optional sections serialised under their own key when present.
    sections: Mapping[str, Section] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", _frozen(self.reasons))
        object.__setattr__(self, "timings", _frozen(self.timings))
        object.__setattr__(self, "sections", _frozen(self.sections))

    @classmethod
    def failed(cls, model: str, start: datetime, end: datetime, error: str) -> RunResult:
        return cls(model, start, end, RunStatus.FAILED, error=error)

    @property
    def quarantined(self) -> int:
        """Rows of the window that were quarantined (duplicates are not counted)."""
        return sum(n for reason, n in self.reasons.items() if reason != "duplicate")

    @property
    def judged(self) -> bool:
        """True when the window had enough rows to be compared with its baseline."""
        return self.status == RunStatus.SUCCEEDED

    @property
    def performance(self) -> Any:
        return self.drift.performance if self.drift is not None else None

    def window_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def to_dict(self) -> dict[str, Any]:
        """The run's document: what `monitor once --json` prints (the cycle adds
        `run_id`, `alerts` and `resolved_alerts` when the run is stored)."""
        if self.status == RunStatus.FAILED:
            return {
                "model": self.model,
                "window": self.window_dict(),
                "status": str(self.status),
                "error": self.error,
                "rows": 0,
                "sampled": 0,
                "quarantined": 0,
            }
        doc: dict[str, Any] = {
            "model": self.model,
            "window": self.window_dict(),
            "status": str(self.status),
            "rows": int(self.rows),
            "sampled": int(self.sampled),
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "drift": None,
            "prediction_drift": None,
            "attribution": None,
            "performance": None,
            "quality": {},
            "timings": dict(self.timings),
        }
        if self.traffic is not None:
            doc["traffic"] = self.traffic.to_dict()
        if self.gaps is not None:
            doc["gaps"] = self.gaps.to_dict()
        if self.status == RunStatus.INSUFFICIENT_DATA:
            doc["insufficient_data"] = {"rows": int(self.sampled), "min_rows": int(self.min_rows)}
            return doc
        report = self.drift
        if report is not None:
            doc["drift"] = {
                "dataset_drift": bool(report.dataset_drift),
                "drift_share": plain(report.drift_share),
                "share_threshold": plain(report.share_threshold),
                "threshold_mode": report.threshold_mode,
                "family_alpha": plain(report.family_alpha),
                "features": {name: verdict(fd) for name, fd in report.features.items()},
            }
            if report.prediction is not None:
                doc["prediction_drift"] = verdict(report.prediction)
        doc["performance"] = performance_document(
            report.performance if report is not None else None,
            self.estimated,
            self.calibration,
            self.labelled_rows,
            self.revision,
        )
        if self.attribution is not None:
            doc["attribution"] = self.attribution.to_dict()
        if self.quality is not None:
            doc["quality"] = self.quality.to_dict()
        if self.segments is not None:
            doc["segments"] = self.segments.to_dict()
            if self.sampling is not None:
                doc["segments"]["sampling"] = self.sampling.to_dict()
        if self.fairness is not None or self.disparity is not None:
            doc["fairness"] = self.fairness.to_dict() if self.fairness is not None else {}
            if self.disparity is not None:
                doc["fairness"]["explanation_disparity"] = self.disparity.to_dict()
        if self.surrogate is not None:
            doc["surrogate"] = self.surrogate.to_dict()
        if self.decision_reasons is not None:
            doc["decision_reasons"] = self.decision_reasons.to_dict()
        if self.faithfulness is not None:
            doc["faithfulness"] = self.faithfulness.to_dict()
        for key, section in self.sections.items():
            doc[key] = section.to_dict()
        return doc


def json_safe(value: Any) -> Any:
    """A stored cell as plain JSON: numpy scalars to Python, NaN/NA to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value
