"""One alert budget per model: the whole stream's false-alarm rate per window, shared by the checks.

`models.alerts.false_alarms_per_month` is what a clean month may cost in messages of any
statistical kind. At the model's window length it is a per-window family-wise rate
(`monitor.drift.calibration.family_alpha`: 1 a month with hourly windows is 1/720); the
checks split it by `models.alerts.shares` (weights, normalised over the checks that are
configured for the model: a check that cannot run gives its share back to the others).
Inside a check the share is split again over its tests (Holm or Bonferroni), so the
rates add up: the stream's false alarms per clean window are at most `per_window`.

A check's own level setting (`surrogate.alpha`, `reasons.p_value`, `fairness.confidence`,
`fairness.drift_p_value`, `fairness.disparity_alpha`, `performance.ci_level`) is an
override: when set it is honoured as given and lies outside the budget (its share is
then unused). Operational kinds (no_data, data_gap, run_failed) are not statistical and
stay outside the budget.

Pure: a frozen `AlertBudget` from a `ModelConfig`, built once per run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from monitor.config import ModelConfig
from monitor.drift.calibration import family_alpha
from monitor.vocab import BudgetFamily

#: the transparency share is split evenly between these three checks
TRANSPARENCY_CHECKS = ("surrogate", "reasons", "faithfulness")
#: the surrogate's two tests (fidelity below its range, first split moved) share its part
SURROGATE_TESTS = 2
#: explanation disparity runs two tests per attribute (reasons by group, influence by group)
DISPARITY_TESTS = 2


def configured_families(model: ModelConfig) -> frozenset[BudgetFamily]:
    """The budgeted checks that can raise a finding for `model` (fairness and
    explanation disparity need `[models.segments]` and protected attributes)."""
    families = set(BudgetFamily)
    if not (model.segments.names and model.fairness.protected):
        families -= {BudgetFamily.FAIRNESS, BudgetFamily.DISPARITY}
    return frozenset(families)


@dataclass(frozen=True)
class AlertBudget:
    """The per-window rate of a model's whole alert stream and each check's part of it."""

    false_alarms_per_month: float
    #: the whole stream's family-wise false-alarm rate per window
    per_window: float
    #: each configured family's normalised share (they sum to 1)
    shares: Mapping[BudgetFamily, float]
    #: protected attributes fairness and disparity split their parts over
    protected: int = 1
    #: config keys set explicitly: those checks use the given level, outside the budget
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares", MappingProxyType(dict(self.shares)))

    @classmethod
    def for_model(cls, model: ModelConfig) -> AlertBudget:
        """The budget of `model`: its monthly rate at its window length, split by its shares."""
        per_window = family_alpha(model.alerts.false_alarms_per_month, model.window)
        return cls(
            model.alerts.false_alarms_per_month,
            per_window,
            normalised_shares(model.alerts.shares.model_dump(), configured_families(model)),
            max(len(model.fairness.protected), 1),
            _overrides(model),
        )

    def rate(self, family: BudgetFamily) -> float:
        """The per-window false-alarm rate `family` may spend (0 when not configured)."""
        return self.per_window * self.shares.get(family, 0.0)

    # each check's level, from its share (the check's config override is applied by
    # the caller: `level_or` below)

    @property
    def drift(self) -> float:
        return self.rate(BudgetFamily.DRIFT)

    @property
    def attribution(self) -> float:
        return self.rate(BudgetFamily.ATTRIBUTION)

    @property
    def quality(self) -> float:
        return self.rate(BudgetFamily.QUALITY)

    @property
    def performance(self) -> float:
        """The rate performance_drop may spend; split over the window's metrics by
        Bonferroni where the intervals are made (one-sided: only a drop alerts)."""
        return self.rate(BudgetFamily.PERFORMANCE)

    @property
    def bias(self) -> float:
        """Per protected attribute: the rate its simultaneous bias intervals may spend
        (half the fairness part; `1 - bias` is their confidence)."""
        return self.rate(BudgetFamily.FAIRNESS) / 2 / self.protected

    @property
    def bias_drift(self) -> float:
        """Per protected attribute: the level of bias-drift tests (half the fairness part)."""
        return self.rate(BudgetFamily.FAIRNESS) / 2 / self.protected

    @property
    def disparity(self) -> float:
        """Per protected attribute and test kind: explanation disparity's level (split
        across the attribute's groups by the analyzer)."""
        return self.rate(BudgetFamily.DISPARITY) / DISPARITY_TESTS / self.protected

    @property
    def surrogate(self) -> float:
        """Each of the surrogate's two tests: a sixth of the transparency part."""
        return self.rate(BudgetFamily.TRANSPARENCY) / len(TRANSPARENCY_CHECKS) / SURROGATE_TESTS

    @property
    def reasons(self) -> float:
        return self.rate(BudgetFamily.TRANSPARENCY) / len(TRANSPARENCY_CHECKS)

    @property
    def faithfulness(self) -> float:
        return self.rate(BudgetFamily.TRANSPARENCY) / len(TRANSPARENCY_CHECKS)

    def to_dict(self) -> dict[str, Any]:
        """What `once --json` shows under "budget": the per-window rate and each
        configured family's part of it."""
        return {
            "false_alarms_per_month": self.false_alarms_per_month,
            "per_window": self.per_window,
            "families": {str(f): self.rate(f) for f in BudgetFamily if f in self.shares},
            "overrides": list(self.overrides),
        }


def normalised_shares(
    weights: Mapping[str, float], configured: frozenset[BudgetFamily]
) -> dict[BudgetFamily, float]:
    """The weights of the configured families, scaled to sum 1 (the others get none)."""
    kept = {f: float(weights.get(str(f), 0.0)) for f in BudgetFamily if f in configured}
    total = sum(kept.values())
    return {f: (w / total if total > 0 else 0.0) for f, w in kept.items()}


def level_or(override: float | None, budgeted: float) -> float:
    """A check's level: its explicit config value when set, else its budgeted rate."""
    return budgeted if override is None else override


def _overrides(model: ModelConfig) -> tuple[str, ...]:
    keys = {
        "performance.ci_level": model.performance.ci_level,
        "fairness.confidence": model.fairness.confidence,
        "fairness.drift_p_value": model.fairness.drift_p_value,
        "fairness.disparity_alpha": model.fairness.disparity_alpha,
        "surrogate.alpha": model.surrogate.alpha,
        "reasons.p_value": model.reasons.p_value,
    }
    if model.drift.threshold_mode == "fixed":
        keys["drift.threshold_mode"] = "fixed"
    return tuple(key for key, value in keys.items() if value is not None)
