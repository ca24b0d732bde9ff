"""The words monitor uses everywhere, defined once: tasks, run statuses, alert kinds,
severities and statuses, outbox events, and the column name of the model's prediction.

They are `StrEnum`s, so a value compares equal to (and is stored and serialised as) its
plain string: the database, `once --json` and Slack payloads keep the same text.
"""

from __future__ import annotations

from enum import StrEnum

#: the name the model's prediction goes by next to the features (drift, baselines)
PREDICTION_KEY = "__prediction__"


class Task(StrEnum):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    #: fewer rows than `drift.min_rows`: nothing judged, alerts left as they are
    INSUFFICIENT_DATA = "insufficient_data"
    FAILED = "failed"


class AlertKind(StrEnum):
    FEATURE_DRIFT = "feature_drift"
    DATASET_DRIFT = "dataset_drift"
    PREDICTION_DRIFT = "prediction_drift"
    ATTRIBUTION_DRIFT = "attribution_drift"
    PERFORMANCE_DROP = "performance_drop"
    DATA_QUALITY = "data_quality"
    RUN_FAILED = "run_failed"
    #: a model that had traffic received none for `alerts.no_data_after` windows
    NO_DATA = "no_data"
    #: windows the daemon missed (down longer than its catch-up) were never computed
    DATA_GAP = "data_gap"
    #: a protected group's fairness metric is outside its band, with confidence
    BIAS = "bias"
    #: a protected group's fairness metric moved against the baseline's value
    BIAS_DRIFT = "bias_drift"
    #: groups are denied for different reasons, or a feature's influence differs by group
    EXPLANATION_DISPARITY = "explanation_disparity"
    #: the window's surrogate tree summarises the model worse than the baseline's range,
    #: or splits first on a feature the baseline's windows (almost) never did
    SURROGATE_FIDELITY = "surrogate_fidelity"
    #: the mix of top reasons behind unfavourable decisions moved from the baseline's
    REASON_SHIFT = "reason_shift"
    #: integrated gradients' median completeness error exceeds attribution.tolerance
    FAITHFULNESS = "faithfulness"


class BudgetFamily(StrEnum):
    """The checks that share a model's alert budget (`models.alerts.shares`). Operational
    kinds (no_data, data_gap, run_failed) are not statistical and stay outside it."""

    #: feature_drift, dataset_drift, prediction_drift
    DRIFT = "drift"
    ATTRIBUTION = "attribution"
    QUALITY = "quality"
    #: performance_drop (realized or estimated)
    PERFORMANCE = "performance"
    #: bias and bias_drift
    FAIRNESS = "fairness"
    #: explanation_disparity
    DISPARITY = "disparity"
    #: surrogate_fidelity, reason_shift, faithfulness
    TRANSPARENCY = "transparency"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: dict[AlertKind, Severity] = {
    AlertKind.FEATURE_DRIFT: Severity.WARNING,
    AlertKind.DATASET_DRIFT: Severity.CRITICAL,
    AlertKind.PREDICTION_DRIFT: Severity.WARNING,
    AlertKind.ATTRIBUTION_DRIFT: Severity.WARNING,
    AlertKind.PERFORMANCE_DROP: Severity.CRITICAL,
    AlertKind.DATA_QUALITY: Severity.WARNING,
    AlertKind.RUN_FAILED: Severity.CRITICAL,
    AlertKind.NO_DATA: Severity.WARNING,
    AlertKind.DATA_GAP: Severity.WARNING,
    AlertKind.BIAS: Severity.CRITICAL,
    AlertKind.BIAS_DRIFT: Severity.WARNING,
    AlertKind.EXPLANATION_DISPARITY: Severity.WARNING,
    AlertKind.SURROGATE_FIDELITY: Severity.WARNING,
    AlertKind.REASON_SHIFT: Severity.WARNING,
    AlertKind.FAITHFULNESS: Severity.WARNING,
}


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MUTED = "muted"
    RESOLVED = "resolved"


class EventName(StrEnum):
    """What an outbox row announces (its `event` column)."""

    ALERT_OPENED = "alert_opened"
    ALERT_REFIRED = "alert_refired"
    ALERT_RESOLVED = "alert_resolved"
    FEEDBACK_UPDATE = "feedback_update"
    WHY_ANSWER = "why_answer"
