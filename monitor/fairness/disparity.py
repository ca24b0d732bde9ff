"""Explanation disparity: are groups denied for different reasons, and is a feature a proxy?

Reasons: for each unfavorable decision, the `top_k` features that pushed hardest
against the person (the largest ``sign * attribution`` above zero). Per protected
group, the distribution of those reasons is compared with the other groups' and with
the same group's in the baseline by total variation distance. Influence: per feature,
the mean |attribution| in a group against the other groups, as a Welch t statistic.

Thresholds are calibrated by permutation (seeded, vectorised): group labels (or
window/baseline labels) are shuffled among the rows, so the threshold fits the
window's size and the features' correlation. Influence uses the maximum over
features (max-T), so its p-value is already adjusted across features; every p-value
is then compared with ``alpha / groups`` (Bonferroni across an attribute's groups).

A difference between groups that the baseline already had is a property of the model,
not news: once fitted, the across-group tests judge the *change* of the gap against the
baseline's gap (reasons: window distance minus baseline distance; influence: the change
of each feature's group gap in units of its spread, maximum over features), with window
and baseline rows shuffled within the group and within the rest, so the group sizes of
both sides are kept. Without a baseline they judge the gap itself.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitor.fairness.groups import GroupKeys
from monitor.fairness.records import MISSING, FairnessError, frozen, plain

if TYPE_CHECKING:
    from monitor.config import ModelConfig

log = logging.getLogger(__name__)

OTHER_GROUPS = "other_groups"
BASELINE = "baseline"
#: permutations evaluated per matrix product (bounds memory: chunk x rows floats)
_CHUNK = 250
#: a permutation test stops once this many draws reach the window's statistic (after
#: the configured number): p-values are resolved, small ones cost draws only when small
PERMUTATION_HITS = 10


@dataclass(frozen=True)
class ReasonDisparity:
    """A group's reasons for unfavorable decisions against `compared_with`
    (``other_groups`` or ``baseline``): total variation distance, its calibrated
    threshold and p-value; `finding` when the p-value is below the corrected level."""

    attribute: str
    group: str
    compared_with: str
    rows: int
    other_rows: int
    distance: float
    threshold: float
    p_value: float
    finding: bool
    #: feature -> share of the group's reasons (largest first, at most 5)
    group_reasons: Mapping[str, float]
    other_reasons: Mapping[str, float]
    #: other_groups tests with a baseline: the same distance in the baseline; `distance -
    #: baseline_distance` is then what `threshold` and `p_value` judge (None: the gap itself)
    baseline_distance: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_reasons", frozen(self.group_reasons))
        object.__setattr__(self, "other_reasons", frozen(self.other_reasons))

    @property
    def judged(self) -> str:
        """What `threshold` and `p_value` are about: the gap itself or its change."""
        return "change" if self.baseline_distance is not None else "gap"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "compared_with": self.compared_with,
            "rows": int(self.rows),
            "other_rows": int(self.other_rows),
            "distance": plain(self.distance),
            "threshold": plain(self.threshold),
            "p_value": plain(self.p_value),
            "finding": bool(self.finding),
            "group_reasons": {k: plain(v) for k, v in self.group_reasons.items()},
            "other_reasons": {k: plain(v) for k, v in self.other_reasons.items()},
            "baseline_distance": plain(self.baseline_distance),
            "judged": self.judged,
        }


@dataclass(frozen=True)
class FeatureInfluence:
    """The feature whose mean |attribution| differs most between a group and the others.

    Without a baseline `statistic` is the Welch t of (group - others); with one, the
    change of the (group - others) gap since the baseline in units of the feature's
    spread. `threshold` is the permutation quantile of the maximum |statistic| over
    features; `finding` flags a possible proxy of the protected attribute.
    """

    attribute: str
    group: str
    feature: str
    group_mean_abs: float
    other_mean_abs: float
    statistic: float
    threshold: float
    p_value: float
    finding: bool
    #: the same means in the baseline (None: judged without a baseline)
    baseline_group_mean_abs: float | None = None
    baseline_other_mean_abs: float | None = None

    @property
    def judged(self) -> str:
        return "change" if self.baseline_group_mean_abs is not None else "gap"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "feature": self.feature,
            "group_mean_abs": plain(self.group_mean_abs),
            "other_mean_abs": plain(self.other_mean_abs),
            "statistic": plain(self.statistic),
            "threshold": plain(self.threshold),
            "p_value": plain(self.p_value),
            "finding": bool(self.finding),
            "baseline_group_mean_abs": plain(self.baseline_group_mean_abs),
            "baseline_other_mean_abs": plain(self.baseline_other_mean_abs),
            "judged": self.judged,
        }


@dataclass(frozen=True)
class DisparityReport:
    """Explanation disparity of one window: every test run, and the findings among them."""

    reasons: tuple[ReasonDisparity, ...]
    influence: tuple[FeatureInfluence, ...]
    rows: int
    unfavorable_rows: int
    permutations: int
    alpha: float

    @property
    def findings(self) -> tuple[ReasonDisparity | FeatureInfluence, ...]:
        return tuple(r for r in (*self.reasons, *self.influence) if r.finding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reasons": [r.to_dict() for r in self.reasons],
            "influence": [i.to_dict() for i in self.influence],
            "rows": int(self.rows),
            "unfavorable_rows": int(self.unfavorable_rows),
            "permutations": int(self.permutations),
            "alpha": plain(self.alpha),
            "findings": len(self.findings),
        }


def top_reasons(attributions: np.ndarray, sign: float | np.ndarray, top_k: int = 3) -> np.ndarray:
    """(n, features) 0/1: the `top_k` features with the largest ``sign * attribution`` > 0
    (the same ranking as a decision's stored reasons, `monitor.reasons.pushed_order`)."""
    from monitor.reasons import pushed_order

    top, against = pushed_order(attributions, sign, top_k)
    out = np.zeros(against.shape)
    np.put_along_axis(out, top, 1.0, axis=1)
    return out * (against > 0)


class DisparityAnalyzer:
    """Explanation disparity of windows: ``fit(baseline)`` then ``analyze(window)``.

    Inputs per row: protected attribute values (a frame), attributions (n, features)
    of the explained score, whether the decision was favorable, and the sign of a
    contribution against the person (`Outcome.against_sign()` for binary and
    regression models; a per-row array is accepted).
    """

    def __init__(
        self,
        protected: Sequence[str],
        features: Sequence[str],
        *,
        numeric: Sequence[str] = (),
        bins: int = 4,
        top_k: int = 3,
        permutations: int = 1000,
        alpha: float = 0.005,
        min_rows: int = 30,
        seed: int = 0,
    ):
        if not protected or not features:
            raise FairnessError("explanation disparity needs protected attributes and features")
        self.protected, self.features = tuple(protected), tuple(features)
        self.keys = GroupKeys(self.protected, numeric, bins)
        self.top_k, self.permutations, self.alpha = top_k, int(permutations), alpha
        self.min_rows, self.seed = int(min_rows), seed
        #: attribute -> (group keys, reasons) of the baseline's unfavorable rows with a reason
        self._baseline: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        #: attribute -> (group keys, |attributions|) of all the baseline's rows
        self._baseline_influence: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_config(cls, model: ModelConfig) -> DisparityAnalyzer:
        """Build from a `ModelConfig`: its protected attributes, input features, seed, and
        its level: the disparity part of the model's alert budget per attribute and test
        kind, unless `fairness.disparity_alpha` sets one."""
        from monitor.budget import AlertBudget, level_or

        fair, seg = model.fairness, model.segments
        return cls(
            fair.protected,
            model.features.names,
            numeric=[n for n in fair.protected if n in set(model.features.numeric)],
            alpha=level_or(fair.disparity_alpha, AlertBudget.for_model(model).disparity),
            bins=seg.bins,
            min_rows=seg.min_rows,
            seed=model.seed,
        )

    def fit(
        self, attributes: pd.DataFrame, attributions: Any, favorable: Any, sign: float | np.ndarray
    ) -> DisparityAnalyzer:
        """Learn each protected attribute's baseline reasons (unfavorable rows). Returns self."""
        self.keys.fit(attributes)
        keys, reasons, values = self._prepare(attributes, attributions, favorable, sign)
        all_keys = self.keys.transform(attributes)
        self._baseline = {name: (keys[name], reasons) for name in self.protected}
        self._baseline_influence = {name: (all_keys[name], np.abs(values)) for name in self.protected}
        return self

    def analyze(
        self,
        attributes: pd.DataFrame,
        attributions: Any,
        favorable: Any,
        sign: float | np.ndarray,
        *,
        seed: int | None = None,
    ) -> DisparityReport:
        """Test one window's reasons (across groups, against the baseline) and influence."""
        keys, reasons, values = self._prepare(attributes, attributions, favorable, sign)
        all_keys = self.keys.transform(attributes)
        found_reasons: list[ReasonDisparity] = []
        found_influence: list[FeatureInfluence] = []
        for name in self.protected:
            rng = np.random.default_rng([self.seed if seed is None else seed, zlib.crc32(name.encode())])
            found_reasons += self._reasons(name, keys[name], reasons, rng)
            found_influence += self._influence(name, all_keys[name], np.abs(values), rng)
        log.debug(
            "explanation disparity: %d unfavorable rows with reasons, %d tests",
            len(reasons),
            len(found_reasons) + len(found_influence),
        )
        return DisparityReport(
            tuple(found_reasons),
            tuple(found_influence),
            len(values),
            len(reasons),
            self.permutations,
            self.alpha,
        )

    def _prepare(
        self, attributes: pd.DataFrame, attributions: Any, favorable: Any, sign: float | np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Group keys and reasons of the unfavorable rows that have a reason; all attributions."""
        values = np.asarray(attributions, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise FairnessError(
                f"attributions must be (rows, {len(self.features)} features), got {values.shape}"
            )
        fav = np.asarray(favorable, dtype=bool).reshape(-1)
        if len(fav) != len(values) or len(attributes) != len(values):
            raise FairnessError("attributes, attributions and decisions must be aligned by row")
        signs = np.broadcast_to(np.asarray(sign, dtype=float), (len(values),))
        reasons = top_reasons(values[~fav], signs[~fav], self.top_k)
        has = reasons.sum(axis=1) > 0
        keys = self.keys.transform(attributes)
        return {n: k[~fav][has] for n, k in keys.items()}, reasons[has], values

    def _reasons(
        self, name: str, keys: np.ndarray, reasons: np.ndarray, rng: np.random.Generator
    ) -> list[ReasonDisparity]:
        """Each group's reasons against the other groups' and against its baseline's."""
        known = keys != MISSING
        keys, reasons = keys[known], reasons[known]
        groups = self._tested_groups(keys)
        level = self.alpha / max(len(groups), 1)
        base = self._baseline.get(name)
        out = []
        for g in groups:
            inside = keys == g
            if self._comparable(base, g):
                out.append(self._tv_change_test(name, g, keys, reasons, base, level, rng))  # type: ignore[arg-type]
                continue
            out.append(self._tv_test(name, g, OTHER_GROUPS, reasons, inside, level, rng))
        if base is None:
            return out
        then = [
            g
            for g in sorted(set(keys.tolist()))
            if np.sum(keys == g) >= self.min_rows and np.sum(base[0] == g) >= self.min_rows
        ]
        level = self.alpha / max(len(then), 1)
        for g in then:
            inside = keys == g
            before = base[1][base[0] == g]
            pooled = np.vstack([reasons[inside], before])
            member = np.r_[np.ones(int(inside.sum()), bool), np.zeros(len(before), bool)]
            out.append(self._tv_test(name, g, BASELINE, pooled, member, level, rng))
        return out

    def _comparable(self, base: tuple[np.ndarray, np.ndarray] | None, group: str) -> bool:
        """Whether the baseline has `group` and the rest with enough rows to judge the
        change of their gap (a group new since the baseline is judged on its gap)."""
        if base is None:
            return False
        keys = base[0][base[0] != MISSING]
        inside = int(np.sum(keys == group))
        return inside >= self.min_rows and len(keys) - inside >= self.min_rows

    def _enough(self, level: float) -> int:
        """Permutations at most: the configured number, or enough for a p-value below `level`."""
        return max(self.permutations, int(np.ceil(2 / level)))

    def _permutation_test(
        self, statistic: Any, observed: float, chunks: Iterator[np.ndarray], level: float
    ) -> tuple[float, float]:
        """The p-value of `observed` and the statistic a clean window exceeds with
        probability `level` (NaN when the draws made cannot place it), from index chunks
        drawn lazily: at least `permutations`, then until PERMUTATION_HITS draws reach
        `observed` (a clean window stops early), at most `_enough(level)`; so a budget's
        small level costs permutations only where the p-value is small."""
        hits = drawn = 0
        kept: list[np.ndarray] = []
        for idx in chunks:
            null = statistic(idx)
            null = null[np.isfinite(null)]
            hits += int(np.sum(null >= observed - 1e-12))
            drawn += len(null)
            if sum(len(k) for k in kept) * level < 1:
                kept.append(null)
            if drawn >= self.permutations and hits >= PERMUTATION_HITS:
                break
        null = np.concatenate(kept) if kept else np.empty(0)
        critical = float(np.quantile(null, 1 - level)) if len(null) * level >= 1 else float("nan")
        return float((1 + hits) / (drawn + 1)), critical

    def _tested_groups(self, keys: np.ndarray) -> list[str]:
        """Groups with enough rows on both sides; of two groups only the smaller (mirror tests)."""
        sizes = {g: int(np.sum(keys == g)) for g in sorted(set(keys.tolist()))}
        groups = [g for g, n in sizes.items() if self.min_rows <= n <= len(keys) - self.min_rows]
        if len(sizes) == 2 and len(groups) == 2:
            groups = [min(groups, key=lambda g: (sizes[g], g))]
        return groups

    def _tv_test(
        self,
        name: str,
        group: str,
        other: str,
        reasons: np.ndarray,
        member: np.ndarray,
        level: float,
        rng: np.random.Generator,
    ) -> ReasonDisparity:
        total = reasons.sum(axis=0)
        flag = member.astype(float)
        observed = float(_tv(flag @ reasons, total)[0])
        p, critical = self._permutation_test(
            lambda idx: _tv(flag[idx] @ reasons, total), observed,
            _permutations(len(flag), self._enough(level), rng), level,
        )
        inside = reasons[member].sum(axis=0)
        return ReasonDisparity(
            name,
            group,
            other,
            int(member.sum()),
            int((~member).sum()),
            observed,
            critical,
            p,
            bool(p < level),
            self._shares(inside),
            self._shares(total - inside),
        )

    def _tv_change_test(
        self,
        name: str,
        group: str,
        keys: np.ndarray,
        reasons: np.ndarray,
        base: tuple[np.ndarray, np.ndarray],
        level: float,
        rng: np.random.Generator,
    ) -> ReasonDisparity:
        """Has the gap between `group`'s reasons and the other groups' grown since the
        baseline? Window and baseline rows are shuffled within the group and within the rest."""
        base_keys, base_reasons = base
        known = base_keys != MISSING
        base_keys, base_reasons = base_keys[known], base_reasons[known]
        inside, base_inside = keys == group, base_keys == group
        # pooled rows, the group's first: (window, baseline) within each stratum
        blocks = (reasons[inside], base_reasons[base_inside], reasons[~inside], base_reasons[~base_inside])
        pooled = np.vstack(blocks)
        period = np.concatenate([np.full(len(b), i % 2 == 0) for i, b in enumerate(blocks)])
        members = len(blocks[0]) + len(blocks[1])

        def change(flags: np.ndarray) -> np.ndarray:  # (k, rows) window flags -> (k,) change
            window, baseline = flags.astype(float), (~flags).astype(float)
            gap_now = _tv(window[:, :members] @ pooled[:members], window @ pooled)
            gap_then = _tv(baseline[:, :members] @ pooled[:members], baseline @ pooled)
            return gap_now - gap_then

        now_then = change(period[None, :])
        observed = float(now_then[0])
        p, critical = self._permutation_test(
            lambda idx: change(period[idx]), observed,
            _stratified(members, len(pooled), self._enough(level), rng), level,
        )
        inside_now = blocks[0].sum(axis=0)
        distance = float(_tv(inside_now, reasons.sum(axis=0))[0])
        return ReasonDisparity(
            name,
            group,
            OTHER_GROUPS,
            int(inside.sum()),
            int((~inside).sum()),
            distance,
            critical,
            p,
            bool(np.isfinite(observed) and p < level),
            self._shares(inside_now),
            self._shares(blocks[2].sum(axis=0)),
            baseline_distance=distance - observed,
        )

    def _influence(
        self, name: str, keys: np.ndarray, magnitude: np.ndarray, rng: np.random.Generator
    ) -> list[FeatureInfluence]:
        """Per group, the feature whose mean |attribution| differs most from the others'
        (with a baseline: whose gap changed most since the baseline)."""
        known = keys != MISSING
        keys, magnitude = keys[known], magnitude[known]
        groups = self._tested_groups(keys)
        level = self.alpha / max(len(groups), 1)
        base = self._baseline_influence.get(name)
        changes = [g for g in groups if self._comparable(base, g)]
        out = [self._influence_change(name, g, keys, magnitude, base, level, rng)  # type: ignore[arg-type]
               for g in changes]
        groups = [g for g in groups if g not in changes]
        for g in groups:
            member = keys == g
            flag = member.astype(float)
            t = _welch(flag[None, :], magnitude)[0]
            j = int(np.nanargmax(np.abs(t)))
            p, critical = self._permutation_test(
                lambda idx, flag=flag: np.nanmax(np.abs(_welch(flag[idx], magnitude)), axis=1),
                float(abs(t[j])), _permutations(len(keys), self._enough(level), rng), level,
            )
            out.append(
                FeatureInfluence(
                    name,
                    g,
                    self.features[j],
                    float(magnitude[member, j].mean()),
                    float(magnitude[~member, j].mean()),
                    float(t[j]),
                    critical,
                    p,
                    bool(p < level),
                )
            )
        return out

    def _influence_change(
        self,
        name: str,
        group: str,
        keys: np.ndarray,
        magnitude: np.ndarray,
        base: tuple[np.ndarray, np.ndarray],
        level: float,
        rng: np.random.Generator,
    ) -> FeatureInfluence:
        """The feature whose (group - others) gap of mean |attribution| changed most since
        the baseline, in units of its spread; shuffled as in `_tv_change_test`."""
        base_keys, base_magnitude = base
        known = base_keys != MISSING
        base_keys, base_magnitude = base_keys[known], base_magnitude[known]
        inside, base_inside = keys == group, base_keys == group
        blocks = (magnitude[inside], base_magnitude[base_inside],
                  magnitude[~inside], base_magnitude[~base_inside])
        pooled = np.vstack(blocks)
        period = np.concatenate([np.full(len(b), i % 2 == 0) for i, b in enumerate(blocks)])
        members = len(blocks[0]) + len(blocks[1])
        # the counts of each (period, stratum) cell are the same in every shuffle
        sizes = np.array([len(b) for b in blocks], dtype=float)
        spread = pooled.std(axis=0)
        spread[spread <= 0] = np.inf  # a feature that never varies cannot change its gap
        scale = spread * np.sqrt(1 / sizes[0] + 1 / sizes[1] + 1 / sizes[2] + 1 / sizes[3])

        def change(flags: np.ndarray) -> np.ndarray:  # (k, rows) -> (k, features)
            window = flags.astype(float)
            g_now = window[:, :members] @ pooled[:members] / sizes[0]
            g_then = (pooled[:members].sum(axis=0) - window[:, :members] @ pooled[:members]) / sizes[1]
            rest_now = window[:, members:] @ pooled[members:] / sizes[2]
            rest_then = (pooled[members:].sum(axis=0) - window[:, members:] @ pooled[members:]) / sizes[3]
            return ((g_now - rest_now) - (g_then - rest_then)) / scale

        observed = change(period[None, :])[0]
        j = int(np.argmax(np.abs(observed)))
        p, critical = self._permutation_test(
            lambda idx: np.abs(change(period[idx])).max(axis=1), float(abs(observed[j])),
            _stratified(members, len(pooled), self._enough(level), rng), level,
        )
        return FeatureInfluence(
            name,
            group,
            self.features[j],
            float(blocks[0][:, j].mean()),
            float(blocks[2][:, j].mean()),
            float(observed[j]),
            critical,
            p,
            bool(p < level),
            baseline_group_mean_abs=float(blocks[1][:, j].mean()),
            baseline_other_mean_abs=float(blocks[3][:, j].mean()),
        )

    def _shares(self, counts: np.ndarray) -> dict[str, float]:
        total = counts.sum()
        if total <= 0:
            return {}
        order = np.argsort(-counts, kind="stable")[:5]
        return {self.features[j]: float(counts[j] / total) for j in order if counts[j] > 0}


def _permutations(rows: int, permutations: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Random permutations of ``range(rows)`` as (chunk, rows) int32 index arrays, drawn
    one chunk at a time (a caller that stops early draws no more)."""
    full, rest = divmod(permutations, _CHUNK)
    base = np.arange(rows, dtype=np.int32)
    for size in [_CHUNK] * full + ([rest] if rest else []):
        yield rng.permuted(np.broadcast_to(base, (size, rows)), axis=1)


def _stratified(members: int, rows: int, permutations: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Permutations of ``range(rows)`` that shuffle the first `members` positions among
    themselves and the rest among themselves, as (chunk, rows) int32 index arrays."""
    inside = _permutations(members, permutations, rng)
    outside = _permutations(rows - members, permutations, rng)
    for a, b in zip(inside, outside, strict=True):
        yield np.hstack([a, b + members])


def _tv(inside: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Total variation between the reason shares of the members and of the rest."""
    inside = np.atleast_2d(inside)
    outside = total - inside
    with np.errstate(invalid="ignore", divide="ignore"):
        p = inside / inside.sum(axis=1, keepdims=True)
        q = outside / outside.sum(axis=1, keepdims=True)
    return 0.5 * np.abs(p - q).sum(axis=1)


def _welch(member: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(k, features) Welch t of mean(values | member) - mean(values | not member)."""
    n1 = member.sum(axis=1, keepdims=True)
    n0 = values.shape[0] - n1
    s1, q1 = member @ values, member @ values**2
    total, total_sq = values.sum(axis=0), (values**2).sum(axis=0)
    m1, m0 = s1 / n1, (total - s1) / n0
    v1 = (q1 - n1 * m1**2) / np.maximum(n1 - 1, 1)
    v0 = (total_sq - q1 - n0 * m0**2) / np.maximum(n0 - 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (m1 - m0) / np.sqrt(np.maximum(v1, 0) / n1 + np.maximum(v0, 0) / n0)
