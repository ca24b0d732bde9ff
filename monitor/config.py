"""config.toml -> frozen, validated settings.

Settings are read once, here, into frozen pydantic objects that reject unknown keys,
so a typo in config.toml is an error that names the file and the key. Secrets (bot
tokens, signing secret, ingest token) and the database URL may come from the
environment; secrets never come from the file and are never printed unmasked.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError
from monitor.vocab import Task

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "MONITOR_CONFIG"

#: environment variable -> what it sets. Documented in the README.
ENV_VARS = {
    "MONITOR_CONFIG": "path of the configuration file (default ./config.toml)",
    "MONITOR_DATABASE_URL": "overrides [database] url",
    "MONITOR_INGEST_TOKEN": "bearer token required on /v1/* (required to listen beyond localhost)",
    "MONITOR_UI_TOKEN": "one shared token to sign in to the dashboard (the person types a name)",
    "MONITOR_UI_USERS": "named dashboard users with their own tokens: 'alice:tok1,bob:tok2'",
    "SLACK_BOT_TOKEN": "xoxb- bot token used to post alerts",
    "SLACK_APP_TOKEN": "xapp- app-level token for Socket Mode",
    "SLACK_SIGNING_SECRET": "signing secret for the HTTP endpoint /slack/events",
    "SLACK_WEBHOOK_URL": "incoming-webhook URL: alerts only, without a Slack app",
}

# Evidently 0.7 stat tests by their registry name (evidently.legacy.calculations.stattests).
# Kept as a static list so that loading the config never imports Evidently.
DRIFT_METHODS = frozenset(
    {
        "anderson", "chisquare", "cramer_von_mises", "ed", "empirical_mmd", "es",
        "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div", "ks",
        "mannw", "perc_text_content_drift", "psi", "t_test", "TVD", "wasserstein", "z",
    }
)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def parse_duration(value: Any) -> timedelta:
    """Parse ``"15m"``, ``"1h"``, ``"2d"`` (or a number of seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"must be a duration like '30s', '15m', '1h', '7d', got {value!r}")
        seconds = timedelta(**{_UNITS[match[2]]: int(match[1])}).total_seconds()
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """Base of every settings object: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Strict):
    url: str = "sqlite:///monitor.db"
    echo: bool = False


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    #: request bodies above this size get 413
    max_body_mb: float = Field(32.0, gt=0)
    #: predictions stamped further ahead of the server's clock are quarantined
    #: (future_timestamp): a sender whose clock runs ahead must not open future windows
    max_future_skew: Duration = timedelta(minutes=5)


class UIConfig(Strict):
    """The dashboard (/ui/) served by the daemon and by `monitor ui`."""

    #: hide feedback actions and refuse them (403): a dashboard to look, not to act
    read_only: bool = False
    #: days of history the model page shows by default
    default_days: int = Field(30, ge=1, le=3660)
    #: hours a signed-in session lasts
    session_hours: float = Field(12.0, gt=0, le=24 * 30)


class SlackConfig(Strict):
    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"
    channel: str | None = None
    api_url: str = "https://slack.com/api/"
    allowed_users: tuple[str, ...] = ()
    #: channels whose messages may give feedback; empty means only `channel`
    allowed_channels: tuple[str, ...] = ()
    #: when set, payloads from other workspaces / apps are refused
    team_id: str | None = None
    app_id: str | None = None
    #: where people can open reports (a link is put into alerts when set)
    report_base_url: str | None = None

    @model_validator(mode="after")
    def _channel_when_enabled(self) -> SlackConfig:
        if self.enabled and not self.channel:
            raise ValueError("channel: required when slack.enabled = true")
        return self


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class SchedulerConfig(Strict):
    #: a run that starts later than this after its due time is skipped (and coalesced)
    misfire_grace: Duration = timedelta(minutes=5)
    #: how often the outbox is delivered
    outbox_interval: Duration = timedelta(seconds=30)
    #: predictions, quarantined rows and runs older than this are deleted
    retention_days: int = Field(90, gt=0)
    #: how often past windows whose labelled rows changed get their performance revised
    label_refresh: Duration = timedelta(minutes=15)


class FeedbackConfig(Strict):
    """How Slack feedback turns into policies."""

    mute_days: int = Field(7, gt=0)
    false_alarm_count: int = Field(2, ge=1)
    false_alarm_window_days: int = Field(14, gt=0)
    threshold_factor: float = Field(1.5, gt=1.0)


class FeaturesConfig(Strict):
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    #: features a person can change (counterfactuals of `monitor why --counterfactual`
    #: and the dashboard's what-if search only change these)
    actionable: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _non_empty_and_disjoint(self) -> FeaturesConfig:
        if not self.numeric and not self.categorical:
            raise ValueError("at least one numeric or categorical feature is required")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"features listed as both numeric and categorical: {sorted(both)}")
        names = self.numeric + self.categorical
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        unknown = sorted(set(self.actionable) - set(names))
        if unknown:
            raise ValueError(f"actionable: not a configured feature: {unknown}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


class BaselineConfig(Strict):
    #: CSV or Parquet with the feature columns (and the label column if any)
    data: Path | None = None
    #: training: compare each window with the stored baseline;
    #: previous_window: compare each window with the one before it
    mode: Literal["training", "previous_window"] = "training"
    #: the stored reference sample is capped at this many rows
    max_rows: int = Field(5000, gt=0)


class FeatureDriftOverride(Strict):
    method: str | None = None
    threshold: float | None = Field(None, gt=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        return _check_method(value)


class DriftConfig(Strict):
    #: None: the stat test Evidently's DataDriftPreset would choose for the column
    method: str | None = None
    threshold: float | None = Field(None, gt=0)
    #: dataset drift when at least this share of features drifted
    drift_share: float = Field(0.5, gt=0, le=1)
    prediction_method: str | None = None
    prediction_threshold: float | None = Field(None, gt=0)
    #: windows with fewer rows are reported as insufficient data
    min_rows: int = Field(30, ge=1)
    features: dict[str, FeatureDriftOverride] = Field(default_factory=dict)
    #: "calibrated": each test's threshold comes from its resampled null at the window's
    #: row count, within the false-alarm budget (alerts.false_alarms_per_month);
    #: "fixed": Evidently's thresholds whatever the row count (the old behaviour)
    threshold_mode: Literal["calibrated", "fixed"] = "calibrated"
    #: resamples of each test's null per window-size bucket (calibrated mode)
    calibration_resamples: int = Field(300, ge=50, le=5000)

    @field_validator("method", "prediction_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        return _check_method(value)


class AttributionConfig(Strict):
    method: Literal[
        "auto", "integrated_gradients", "gradient_x_input", "smoothgrad", "sampled_shapley"
    ] = "auto"
    baseline: Literal["zeros", "mean", "median", "expected"] = "mean"
    #: None: the fewest steps that reach `tolerance` median completeness error
    steps: int | None = Field(None, gt=0)
    tolerance: float = Field(0.01, gt=0)
    #: sampled rows explained per run (a subset of the sample when smaller)
    max_samples: int = Field(500, gt=0)
    permutations: int = Field(16, gt=0)
    #: attribution drift when the importance ranking's nDCG falls below this
    ndcg_threshold: float = Field(0.9, gt=0, le=1)


class PerformanceConfig(Strict):
    #: alert when accuracy or ROC AUC falls below the baseline's by more than this (absolute)
    max_drop: float = Field(0.05, gt=0)
    #: alert when log loss, RMSE or MAE rises above the baseline's by more than this
    #: fraction of it (errors on a few hundred labels are noisy: keep this wider)
    max_error_increase: float = Field(0.25, gt=0)
    #: ...and by more than this absolute amount: nats for log loss, baseline label
    #: standard deviations for RMSE and MAE (a near-zero baseline error doubling is noise)
    max_error_increase_abs: float = Field(0.02, ge=0)
    #: level of the interval of each window metric; a metric is degraded only when its
    #: whole interval lies beyond the allowed change. None: from the alert budget's
    #: performance share; a value here is honoured and lies outside the budget
    ci_level: float | None = Field(None, gt=0, lt=1)


class LabelsConfig(Strict):
    """Labels that arrive after the predictions they belong to."""

    #: windows older than this are no longer revised when labels arrive
    horizon: Duration = timedelta(days=90)


class AlertShares(Strict):
    """Relative weights of the checks in the alert budget (`monitor.vocab.BudgetFamily`),
    normalised to sum 1 over the checks configured for the model."""

    #: feature, dataset and prediction drift (Holm across the features and the prediction;
    #: above 0: the calibrated thresholds need a rate). A weight of 0 elsewhere silences
    #: that check's statistical findings
    drift: float = Field(0.4, gt=0)
    #: attribution drift (Holm across the features' influence tests)
    attribution: float = Field(0.1, ge=0)
    #: data quality: missing and unseen values per feature, quarantined rows (Holm)
    quality: float = Field(0.1, ge=0)
    #: performance_drop (Bonferroni across the window's metrics)
    performance: float = Field(0.1, ge=0)
    #: bias and bias_drift (half each; Bonferroni across protected attributes)
    fairness: float = Field(0.15, ge=0)
    #: explanation_disparity
    disparity: float = Field(0.05, ge=0)
    #: surrogate_fidelity, reason_shift and faithfulness (a third each)
    transparency: float = Field(0.1, ge=0)


class AlertsConfig(Strict):
    #: an open alert resolves itself after this many clean windows in a row
    resolve_after: int = Field(3, ge=1)
    #: a `no_data` alert when a model that had traffic gets none for this many windows
    no_data_after: int = Field(3, ge=1)
    #: false alarms per month the whole alert stream may raise on clean windows (every
    #: statistical kind; from the model's window length, 30-day months), shared between
    #: the checks by `shares` (see `monitor.budget`)
    false_alarms_per_month: float = Field(1.0, gt=0)
    shares: AlertShares = AlertShares()


class SegmentsConfig(Strict):
    """Groups watched separately: attributes carried beside the inputs, and inputs."""

    #: names of record attributes that are not model inputs (never fed to the model)
    attributes: tuple[str, ...] = ()
    #: model inputs also used as segments (numeric ones are cut into `bins` quantile bins)
    features: tuple[str, ...] = ()
    #: segments reported per window: single values first, then pairwise crosses, largest first
    max_segments: int = Field(50, gt=0)
    #: a segment with fewer sampled rows is not reported (and each group is sampled to at
    #: least this many rows when the sample is stratified)
    min_rows: int = Field(30, ge=1)
    #: quantile bins of a numeric segment feature (edges learned from the baseline)
    bins: int = Field(4, ge=2, le=20)
    #: a segment's prediction drifted when its test's p-value is below this (Bonferroni
    #: across the segments of the window)
    p_value: float = Field(0.01, gt=0, lt=1)
    #: draw a second sample of each window, stratified by the declared attributes so every
    #: value reaches `min_rows`, for segments and fairness (rates weighted back; drift and
    #: attributions keep the uniform sample)
    stratify: bool = False

    @model_validator(mode="after")
    def _no_repeats(self) -> SegmentsConfig:
        names = self.attributes + self.features
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"listed twice (attributes and features together): {dupes}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return self.attributes + self.features


class FairnessBands(Strict):
    """The allowed band of each fairness metric; outside it (with confidence) is bias."""

    #: disparate-impact ratio: the four-fifths rule and its inverse
    ratio_low: float = Field(0.8, gt=0, lt=1)
    ratio_high: float = Field(1.25, gt=1)
    #: statistical-parity, TPR, FPR and average-odds differences: within ±difference
    difference: float = Field(0.1, gt=0, lt=1)


class FairnessConfig(Strict):
    """Per-group fairness of the model's decisions (needs [models.segments])."""

    #: segment attributes or segment features whose groups are compared
    protected: tuple[str, ...] = ()
    #: the outcome that benefits the person: a class (index or name) or "above" / "below"
    #: the decision threshold (binary scores and regression)
    favorable: int | str | None = None
    #: decision threshold for "above" / "below" and binary scores (default 0.5 for
    #: binary classification; required for regression)
    threshold: float | None = None
    #: attribute -> the group the others are compared with (default: the baseline's largest)
    reference_group: dict[str, str] = Field(default_factory=dict)
    bands: FairnessBands = FairnessBands()
    #: level of the bootstrap confidence intervals (made simultaneous across the groups of
    #: an attribute: see README). None: from the alert budget's fairness share; a value
    #: here is honoured and lies outside the budget
    confidence: float | None = Field(None, gt=0.5, lt=1)
    #: bootstrap resamples per window
    resamples: int = Field(2000, ge=100, le=100_000)
    #: bias drift when a metric's change against the baseline has a p-value below this
    #: (Bonferroni across the groups and metrics of an attribute). None: from the alert
    #: budget's fairness share; a value here is honoured and lies outside the budget
    drift_p_value: float | None = Field(None, gt=0, lt=1)
    #: explanation_disparity when a test's p-value is below this (Bonferroni across an
    #: attribute's groups). None: from the alert budget's disparity share; a value here
    #: is honoured and lies outside the budget
    disparity_alpha: float | None = Field(None, gt=0, lt=1)


class SurrogateConfig(Strict):
    """A shallow decision tree distilled from each window's explained rows."""

    #: depth of the tree (readable rules: at most 4)
    max_depth: int = Field(3, ge=1, le=4)
    #: share of the window's explained rows held out to measure fidelity (R^2)
    holdout: float = Field(0.3, gt=0.05, lt=0.9)
    #: bootstrap windows drawn from the baseline to calibrate the fidelity range
    resamples: int = Field(200, ge=20, le=5000)
    #: a window's fidelity below the baseline's `alpha` quantile, or a top split seen in
    #: fewer than this share of the baseline's windows, raises surrogate_fidelity. None:
    #: from the alert budget's transparency share; a value here is honoured and lies
    #: outside the budget
    alpha: float | None = Field(None, gt=0, lt=0.5)
    #: the baseline's median fidelity (R²) a tree of `max_depth` must reach to summarise
    #: the model at all; below it the surrogate is shown with a note and raises nothing
    min_fidelity: float = Field(0.5, ge=0, lt=1)


class ReasonsConfig(Strict):
    """The top reasons of each explained decision and how their mix moves."""

    #: the outcome that benefits the person (as fairness.favorable); None: fairness's,
    #: else binary: class 0 (the positive class is the flagged, unfavourable one)
    favorable: int | str | None = None
    #: regression: a prediction above/below this is a decision (default fairness.threshold,
    #: else each row is compared with the attribution baseline's output)
    threshold: float | None = None
    #: reasons kept per explained request
    top: int = Field(3, ge=1, le=20)
    #: unfavourable decisions (window and baseline) needed to compare the mix of reasons
    min_decisions: int = Field(20, ge=5)
    #: reason_shift when the permutation test's p-value is below this. None: from the
    #: alert budget's transparency share; a value here is honoured and lies outside it
    p_value: float | None = Field(None, gt=0, lt=1)
    permutations: int = Field(1000, ge=100, le=100_000)


class CardConfig(Strict):
    """The human-written parts of the model card (the rest comes from the database)."""

    owners: tuple[str, ...] = ()
    version: str | None = None
    overview: str | None = None
    intended_use: str | None = None
    limitations: tuple[str, ...] = ()
    ethical_considerations: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    #: runs whose importance, performance and surrogate the card shows
    recent_runs: int = Field(20, ge=1, le=1000)
    #: stored card versions kept per model (older ones are deleted when a run stores a new one)
    keep_versions: int = Field(100, ge=1)


class FilesSourceConfig(Strict):
    glob: str
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    timestamp_column: str = "timestamp"
    request_id_column: str = "request_id"
    prediction_column: str = "prediction"
    label_column: str | None = None


class SqlSourceConfig(Strict):
    #: the user's database URL; prefer url_env so a password stays out of the file
    url: str | None = None
    url_env: str | None = None
    #: a SELECT with :start and :end parameters returning the feature columns,
    #: a timestamp, a request id and the prediction
    query: str
    timestamp_column: str = "timestamp"
    request_id_column: str = "request_id"
    prediction_column: str = "prediction"
    label_column: str | None = None

    @model_validator(mode="after")
    def _url_and_params(self) -> SqlSourceConfig:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("set exactly one of url and url_env")
        for param in (":start", ":end"):
            if param not in self.query:
                raise ValueError(f"query: must use the parameter {param}")
        return self

    def resolved_url(self) -> str:
        """The database URL, read from the environment when `url_env` names it."""
        if self.url:
            return self.url
        value = os.environ.get(self.url_env or "")
        if not value:
            raise ConfigError([f"sql.url_env: environment variable {self.url_env} is not set"])
        return value


class ModelConfig(Strict):
    name: str = Field(pattern=_NAME)
    #: a .keras file or a SavedModel directory (relative to the config file)
    path: Path
    task: Task
    label: str | None = None
    #: for multiclass: the class whose score is explained (None: the predicted class)
    explain_class: int | None = Field(None, ge=0)
    #: names of the classes, in the model's output order (reports and Slack)
    class_names: tuple[str, ...] = ()
    window: Duration = timedelta(minutes=15)
    schedule: str = "interval:15m"
    sample_size: int = Field(2000, gt=0)
    #: sample each predicted class in proportion (classification only)
    stratify: bool = False
    seed: int = 0
    source: Literal["log", "files", "sql"] = "log"
    files: FilesSourceConfig | None = None
    sql: SqlSourceConfig | None = None
    features: FeaturesConfig
    baseline: BaselineConfig = BaselineConfig()
    drift: DriftConfig = DriftConfig()
    attribution: AttributionConfig = AttributionConfig()
    performance: PerformanceConfig = PerformanceConfig()
    alerts: AlertsConfig = AlertsConfig()
    segments: SegmentsConfig = SegmentsConfig()
    fairness: FairnessConfig = FairnessConfig()
    labels: LabelsConfig = LabelsConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
    reasons: ReasonsConfig = ReasonsConfig()
    card: CardConfig = CardConfig()
    #: binary: a score at or above this is the positive class (precision, recall, rates)
    decision_threshold: float = Field(0.5, gt=0, lt=1)

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _threshold_for_binary(self) -> ModelConfig:
        if self.decision_threshold != 0.5 and self.task != Task.BINARY:
            raise ValueError(
                "decision_threshold: only binary_classification models have one "
                f"(this model's task is {self.task})"
            )
        return self

    @model_validator(mode="after")
    def _source_keys(self) -> ModelConfig:
        if self.source == "files" and self.files is None:
            raise ValueError("files: a [models.files] table is required when source = 'files'")
        if self.source == "sql" and self.sql is None:
            raise ValueError("sql: a [models.sql] table is required when source = 'sql'")
        unknown = sorted(set(self.drift.features) - set(self.features.names))
        if unknown:
            raise ValueError(f"drift.features: not a configured feature: {unknown}")
        if self.label and self.label in self.features.names:
            raise ValueError(f"label: {self.label!r} is also listed as a feature")
        _check_segments(self)
        _check_fairness(self)
        _check_reasons(self)
        return self


def _check_segments(model: ModelConfig) -> None:
    """Segment attributes are not inputs; segment features are."""
    seg = model.segments
    clash = sorted(set(seg.attributes) & (set(model.features.names) | {model.label or ""}))
    if clash:
        raise ValueError(
            f"segments.attributes: {clash} are model inputs or the label; "
            "list inputs under segments.features"
        )
    unknown = sorted(set(seg.features) - set(model.features.names))
    if unknown:
        raise ValueError(f"segments.features: not a configured feature: {unknown}")


def _check_fairness(model: ModelConfig) -> None:
    """protected ⊆ segments, a favorable outcome that fits the task, known reference keys."""
    fair = model.fairness
    if not fair.protected:
        if fair.reference_group:
            raise ValueError("fairness.reference_group: set without fairness.protected")
        return
    unknown = sorted(set(fair.protected) - set(model.segments.names))
    if unknown:
        raise ValueError(
            f"fairness.protected: {unknown} must be listed in segments.attributes or "
            "segments.features"
        )
    extra = sorted(set(fair.reference_group) - set(fair.protected))
    if extra:
        raise ValueError(f"fairness.reference_group: not a protected attribute: {extra}")
    favorable = fair.favorable
    if favorable is None:
        raise ValueError("fairness.favorable: required when fairness.protected is set")
    if isinstance(favorable, bool):
        raise ValueError(f"fairness.favorable: must be a class or 'above'/'below', got {favorable!r}")
    direction = favorable in ("above", "below")
    if model.task == Task.REGRESSION:
        if not direction:
            raise ValueError("fairness.favorable: must be 'above' or 'below' for regression")
        if fair.threshold is None:
            raise ValueError("fairness.threshold: required for regression")
        return
    if direction:
        if model.task == Task.MULTICLASS:
            raise ValueError("fairness.favorable: 'above'/'below' needs a binary or regression model")
        return
    classes = 2 if model.task == Task.BINARY else len(model.class_names) or None
    if isinstance(favorable, str):
        if favorable not in model.class_names:
            known = ", ".join(model.class_names) or "none (set class_names)"
            raise ValueError(f"fairness.favorable: {favorable!r} is not a class name (known: {known})")
    elif favorable < 0 or (classes is not None and favorable >= classes):
        raise ValueError(f"fairness.favorable: class index {favorable} is out of range")


def _check_reasons(model: ModelConfig) -> None:
    """reasons.favorable names a class of this model, or a direction where one applies."""
    favorable = model.reasons.favorable
    if favorable is None:
        return
    if isinstance(favorable, bool):
        raise ValueError(f"reasons.favorable: must be a class or 'above'/'below', got {favorable!r}")
    if favorable in ("above", "below"):
        if model.task == "multiclass_classification":
            raise ValueError("reasons.favorable: 'above'/'below' needs a binary or regression model")
        return
    if model.task == "regression":
        raise ValueError("reasons.favorable: must be 'above' or 'below' for regression")
    if isinstance(favorable, str) and favorable not in model.class_names:
        known = ", ".join(model.class_names) or "none (set class_names)"
        raise ValueError(f"reasons.favorable: {favorable!r} is not a class name (known: {known})")
    too_big = model.task == "binary_classification" and isinstance(favorable, int) and favorable > 1
    if isinstance(favorable, int) and (favorable < 0 or too_big):
        raise ValueError(f"reasons.favorable: class index {favorable} is out of range")


class Secrets(Strict):
    """Values that come from the environment only. Masked when printed."""

    ingest_token: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    ui_token: SecretStr | None = None
    #: "name:token,name:token" (parsed by monitor.ui.auth; masked like every secret)
    ui_users: SecretStr | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Secrets:
        env = dict(os.environ if env is None else env)
        pick = {
            "ingest_token": "MONITOR_INGEST_TOKEN",
            "slack_bot_token": "SLACK_BOT_TOKEN",
            "slack_app_token": "SLACK_APP_TOKEN",
            "slack_signing_secret": "SLACK_SIGNING_SECRET",
            "slack_webhook_url": "SLACK_WEBHOOK_URL",
            "ui_token": "MONITOR_UI_TOKEN",
            "ui_users": "MONITOR_UI_USERS",
        }
        return cls(**{field: env[var] for field, var in pick.items() if env.get(var)})


class Settings(Strict):
    database: DatabaseConfig = DatabaseConfig()
    server: ServerConfig = ServerConfig()
    slack: SlackConfig = SlackConfig()
    logging: LoggingConfig = LoggingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    ui: UIConfig = UIConfig()
    models: tuple[ModelConfig, ...] = ()
    secrets: Secrets = Secrets()
    #: the file these settings came from (None when built in code)
    source_path: Path | None = None

    @model_validator(mode="after")
    def _unique_model_names(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: names must be unique, repeated: {dupes}")
        return self

    def model(self, name: str) -> ModelConfig:
        """The model called `name`, or a ConfigError listing the configured ones."""
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models) or "none"
        where = self.source_path or "config"
        raise ConfigError([f"{where}: models: no model named {name!r} (configured: {known})"])

    def masked(self) -> dict[str, Any]:
        """The resolved settings as plain data, every secret masked."""
        data = self.model_dump(mode="json", exclude={"secrets", "source_path"})
        data["database"]["url"] = mask_url(self.database.url)
        data["secrets"] = {
            name: ("set (masked)" if value is not None else "not set")
            for name, value in self.secrets
        }
        for model in data["models"]:
            if model.get("sql") and model["sql"].get("url"):
                model["sql"]["url"] = mask_url(model["sql"]["url"])
        # any other URL (report_base_url, api_url, ...) may carry user-info too
        return _mask_strings(data)


def mask_url(url: str) -> str:
    """Hide every credential of a URL (``postgresql://u:***@host/db?password=***``):
    `monitor.logs.mask_url`, the one masking function."""
    from monitor.logs import mask_url as mask

    return mask(url)


def _mask_strings(value: Any) -> Any:
    """Every string inside `value` (dicts, lists) with its URL credentials masked."""
    if isinstance(value, str):
        return mask_url(value) if "://" in value or "=" in value else value
    if isinstance(value, dict):
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_strings(v) for v in value]
    return value


def parse_schedule(value: str) -> tuple[str, Any]:
    """Validate a schedule: ``interval:15m`` or a 5-field cron expression.

    Returns ``("interval", timedelta)`` or ``("cron", fields)``.
    """
    if value.startswith("interval:"):
        return "interval", parse_duration(value.removeprefix("interval:"))
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"must be 'interval:<duration>' or a 5-field cron expression "
            f"(minute hour day month weekday), got {value!r}"
        )
    if not all(re.fullmatch(r"[0-9A-Za-z*/,\-]+", f) for f in fields):
        raise ValueError(f"has characters a cron expression cannot contain: {value!r}")
    return "cron", tuple(fields)


def _check_method(value: str | None) -> str | None:
    if value is not None and value not in DRIFT_METHODS:
        raise ValueError(f"unknown drift method {value!r}; known: {', '.join(sorted(DRIFT_METHODS))}")
    return value


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """`path` if given, else $MONITOR_CONFIG, else ./config.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_settings(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Read, validate and resolve the configuration file.

    Relative paths in the file are resolved against the file's directory. Raises
    ConfigError with one line per problem, naming the file and the key path.
    """
    cfg_path = resolve_config_path(path)
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(
            [f"{cfg_path}: not found (pass --config PATH or set {CONFIG_ENV})"]
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{cfg_path}: invalid TOML: {err}"]) from err
    except OSError as err:
        raise ConfigError([f"{cfg_path}: cannot be read: {err.strerror}"]) from err
    return settings_from_dict(raw, source=cfg_path, env=env)


def settings_from_dict(
    raw: dict[str, Any], source: Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Validate a parsed configuration; `source` names the file in error messages."""
    env = dict(os.environ if env is None else env)
    where = str(source) if source else "config"
    if "secrets" in raw or "source_path" in raw:
        bad = "secrets" if "secrets" in raw else "source_path"
        raise ConfigError([f"{where}: {bad}: unknown key (secrets come from the environment)"])
    data = dict(raw)
    if env.get("MONITOR_DATABASE_URL"):
        data["database"] = {**data.get("database", {}), "url": env["MONITOR_DATABASE_URL"]}
    try:
        settings = Settings(**data, secrets=Secrets.from_env(env), source_path=source)
    except ValidationError as err:
        # unknown keys first: a misspelled table (`[[model]]`) explains the errors after it
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
        raise ConfigError([_describe(where, e, raw) for e in errors]) from err
    if source is not None:
        settings = _resolve_paths(settings, source.parent)
    return settings


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def absolute(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    models = tuple(
        m.model_copy(
            update={
                "path": absolute(m.path),
                "baseline": m.baseline.model_copy(update={"data": absolute(m.baseline.data)}),
            }
        )
        for m in settings.models
    )
    database = settings.database
    prefix = "sqlite:///"
    if database.url.startswith(prefix) and not database.url.startswith(prefix + "/"):
        rel = database.url.removeprefix(prefix)
        if rel and rel != ":memory:":
            database = database.model_copy(update={"url": prefix + str((base / rel).resolve())})
    return settings.model_copy(update={"models": models, "database": database})


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "required key is missing",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
}


def _describe(where: str, error: dict[str, Any], raw: dict[str, Any]) -> str:
    """One pydantic error as ``FILE: key.path: message, got VALUE``."""
    loc = [part for part in error["loc"] if part not in _UNION_TAGS]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _did_you_mean(loc, raw)
        return f"{where}: {path}: unknown key{hint}"
    if kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        # model-level validators name the key at the start of their message
        if ": " in message and not path:
            return f"{where}: {message}"
        head, sep, rest = message.partition(": ")
        if sep and re.fullmatch(r"[a-z_.]+", head):
            return f"{where}: {path + '.' if path else ''}{head}: {rest}"
        return f"{where}: {path or '(top level)'}: {message}"
    template = _MESSAGES.get(kind)
    message = template.format(**error.get("ctx", {})) if template else error["msg"].lower()
    if kind != "missing":
        message += f", got {error.get('input')!r}"
    if kind == "tuple_type" and isinstance(error.get("input"), dict) and len(loc) == 1:
        message += f" (write each entry as an array of tables: [[{loc[0]}]], then [{loc[0]}.<key>])"
    return f"{where}: {path}: {message}"


_UNION_TAGS = {"function-after", "function-before", "function-plain", "list", "tuple"}


def _did_you_mean(loc: list[Any], raw: dict[str, Any]) -> str:
    """Suggest the closest known key for a misspelled one."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return ""
    known = [k for k in getattr(model, "model_fields", {}) if k not in ("secrets", "source_path")]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
