"""The reasons behind each explained decision, and whether their mix moved.

A decision's top reasons are the features whose signed contribution pushed the
explained output toward the decision the model made: for a binary model (explained
output P(positive)) the largest positive contributions when it decided positive, the
largest negative ones otherwise; for regression, toward the side of the threshold (or
of the attribution baseline's output) the prediction fell on; for multiclass, what
raised the score of the explained class.

Which decisions are unfavourable (the ones people ask "why?" about):
`reasons.favorable`, else `fairness.favorable`, else for binary class 0 is favourable
(the positive class is the one the model flags: fraud, default, disease); multiclass
and regression without a favourable outcome count every decision.

`reason_shift` compares the distribution of the top reason among unfavourable
decisions of a window with the baseline's by total-variation distance, with an exact
permutation test at both sample sizes: under no shift the window's counts of each reason
are multivariate hypergeometric given the pooled counts, drawn in growing batches until
`PERMUTATION_HITS` draws reach the window's distance, so p-values as small as the alert
budget's share (about 1e-5 with hourly windows) are reachable, down to 1 / MAX_DRAWS.

Pure: arrays and DataFrames in, frozen records out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.drift.records import plain

#: the top reason of a decision no feature pushed toward
NO_REASON = "(none)"
#: the permutation test stops once this many draws reach the window's distance...
PERMUTATION_HITS = 10
#: ...or after this many (its smallest p-value is 1 / (MAX_DRAWS + 1))
MAX_DRAWS = 2_000_000
_LARGEST_BATCH = 200_000


@dataclass(frozen=True)
class Decisions:
    """Per explained row: the sign reasons point to (+1 / -1) and whether it is unfavourable."""

    toward: np.ndarray
    unfavourable: np.ndarray
    #: how decisions were told apart, in words (README and `once --json`)
    rule: str


def _favorable(model: Any) -> int | str | None:
    if model.reasons.favorable is not None:
        return model.reasons.favorable
    return model.fairness.favorable


def decisions(model: Any, output: np.ndarray, scores: np.ndarray | None = None,
              baseline_output: np.ndarray | None = None) -> Decisions:
    """How each explained row was decided, from the model's configuration (`ModelConfig`).

    `output` is the explained output per row; `scores` the model's class scores
    (multiclass: (n, k)); `baseline_output` the attribution baseline's output per row.
    """
    output = np.asarray(output, dtype=float)
    n = len(output)
    favorable = _favorable(model)
    task = str(model.task)
    if task == "binary_classification":
        positive = output >= model.decision_threshold
        if favorable in ("above", 1) or (
            isinstance(favorable, str) and favorable not in ("above", "below")
            and list(model.class_names).index(favorable) == 1
        ):
            unfavourable, which = ~positive, "the negative class"
        else:
            unfavourable, which = positive, "the positive class"
        rule = f"binary: {which} (score {'<' if which.endswith('negative class') else '>='} " \
               f"{model.decision_threshold:g}) is unfavourable"
        return Decisions(np.where(positive, 1.0, -1.0), unfavourable, rule)
    if task == "regression":
        threshold = model.reasons.threshold
        if threshold is None:
            threshold = model.fairness.threshold
        if threshold is not None:
            above = output >= threshold
            where = f"{threshold:g}"
        else:
            ref = (np.asarray(baseline_output, dtype=float) if baseline_output is not None
                   else np.full(n, np.median(output)))
            above = output >= ref
            where = "the attribution baseline's output"
        if favorable in ("above", "below"):
            unfavourable = ~above if favorable == "above" else above
            side = "below" if favorable == "above" else "above"
            rule = f"regression: a prediction {side} {where} is unfavourable"
        else:
            unfavourable = np.ones(n, dtype=bool)
            rule = f"regression: every decision counts (reasons point above/below {where})"
        return Decisions(np.where(above, 1.0, -1.0), unfavourable, rule)
    # multiclass: the explained output is a class score; reasons are what raised it
    toward = np.ones(n)
    if favorable is None or scores is None or np.asarray(scores).ndim != 2:
        return Decisions(toward, np.ones(n, dtype=bool), "multiclass: every decision counts")
    index = list(model.class_names).index(favorable) if isinstance(favorable, str) else int(favorable)
    predicted = np.asarray(scores).argmax(axis=1)
    rule = f"multiclass: a class other than {favorable!r} is unfavourable"
    return Decisions(toward, predicted != index, rule)


def pushed_order(matrix: np.ndarray, toward: Any, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices of its `top` largest contributions in the direction `toward`
    (+1/-1, per row or one for all), largest first, and those signed contributions
    (non-finite ones count as 0). Shared by the reasons of a decision and explanation
    disparity (`monitor.fairness.disparity`)."""
    matrix = np.asarray(matrix, dtype=float)
    toward = np.broadcast_to(np.asarray(toward, dtype=float), (matrix.shape[0],))
    pushed = np.nan_to_num(matrix * toward[:, None], nan=0.0, posinf=0.0, neginf=0.0)
    return np.argsort(-pushed, axis=1, kind="stable")[:, :top], pushed


def top_reasons(values: pd.DataFrame, toward: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
    """Per row: up to `top` (feature, contribution) that pushed toward its decision, most first."""
    matrix = values.to_numpy(dtype=float)
    names = [str(c) for c in values.columns]
    order, pushed = pushed_order(matrix, toward, top)
    out = []
    for i in range(len(matrix)):
        out.append([(names[j], float(matrix[i, j])) for j in order[i] if pushed[i, j] > 0])
    return out


def first_reasons(reasons: Sequence[Sequence[tuple[str, float]]]) -> list[str]:
    return [r[0][0] if r else NO_REASON for r in reasons]


@dataclass(frozen=True)
class ReasonShift:
    """The mix of top reasons among unfavourable decisions, window against baseline."""

    window: Mapping[str, int]
    baseline: Mapping[str, int]
    #: total-variation distance between the two shares
    distance: float
    #: permutation p-value of `distance` (both sample sizes kept)
    p_value: float
    #: the distance a clean window of this size exceeds with probability `alpha` (None
    #: when the draws made are too few to place it: fewer than 1 / alpha)
    threshold: float | None
    alpha: float
    permutations: int

    @property
    def shifted(self) -> bool:
        return self.p_value < self.alpha

    def shares(self, which: Mapping[str, int]) -> dict[str, float]:
        total = sum(which.values()) or 1
        return {k: plain(v / total) for k, v in sorted(which.items(), key=lambda kv: -kv[1])}

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.shares(self.window),
            "baseline": self.shares(self.baseline),
            "window_decisions": int(sum(self.window.values())),
            "baseline_decisions": int(sum(self.baseline.values())),
            "distance": plain(self.distance),
            "p_value": plain(self.p_value),
            "threshold": plain(self.threshold),
            "alpha": self.alpha,
            "permutations": self.permutations,
            "shifted": self.shifted,
        }


def _tvd(win: np.ndarray, pooled: np.ndarray, n: int, m: int) -> np.ndarray:
    """Total-variation distance of each row of window counts from the rest of `pooled`."""
    return 0.5 * np.abs(win / n - (pooled - win) / m).sum(axis=-1)


def reason_shift(
    window: Sequence[str], baseline: Sequence[str], *, alpha: float, permutations: int,
    min_decisions: int, seed: int = 0,
) -> ReasonShift | None:
    """Exact permutation test of the top-reason mix (at least `permutations` draws, more
    until `PERMUTATION_HITS` reach the window's distance); None when either side has
    too few decisions."""
    if len(window) < min_decisions or len(baseline) < min_decisions:
        return None
    labels = sorted(set(window) | set(baseline))
    counts_w = pd.Series(list(window)).value_counts()
    counts_b = pd.Series(list(baseline)).value_counts()
    win = np.array([counts_w.get(name, 0) for name in labels], dtype=np.int64)
    pooled = win + np.array([counts_b.get(name, 0) for name in labels], dtype=np.int64)
    n, m = len(window), len(baseline)
    observed = float(_tvd(win.astype(float), pooled, n, m))
    rng = np.random.default_rng(seed)
    hits, drawn, batch, draws = 0, 0, int(permutations), []
    while drawn < MAX_DRAWS and (drawn < permutations or hits < PERMUTATION_HITS):
        null = _tvd(rng.multivariate_hypergeometric(pooled, n, size=batch).astype(float), pooled, n, m)
        hits += int(np.sum(null >= observed - 1e-12))
        drawn += batch
        if sum(len(d) for d in draws) < 1 / alpha:
            draws.append(null)  # enough to place the threshold; later ones only count hits
        batch = min(4 * batch, _LARGEST_BATCH, MAX_DRAWS - drawn)
    kept = np.concatenate(draws)
    threshold = float(np.quantile(kept, 1 - alpha)) if len(kept) * alpha >= 1 else None
    return ReasonShift(
        {str(k): int(v) for k, v in counts_w.items()},
        {str(k): int(v) for k, v in counts_b.items()},
        observed, float((hits + 1) / (drawn + 1)), threshold, alpha, drawn,
    )


@dataclass(frozen=True)
class ReasonsOutcome:
    """A window's per-request reasons and the comparison of their mix with the baseline's."""

    rule: str
    #: request id -> {"unfavourable": bool, "top": [[feature, contribution], ...]}
    per_request: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shift: ReasonShift | None = None

    def to_dict(self) -> dict[str, Any]:
        unfavourable = [r for r in self.per_request.values() if r["unfavourable"]]
        firsts = pd.Series([r["top"][0][0] if r["top"] else NO_REASON for r in unfavourable])
        return {
            "rule": self.rule,
            "explained": len(self.per_request),
            "unfavourable": len(unfavourable),
            "top_reasons": {str(k): int(v) for k, v in firsts.value_counts().items()},
            "shift": self.shift.to_dict() if self.shift is not None else None,
        }


def window_reasons(
    model: Any,
    values: pd.DataFrame,
    output: np.ndarray,
    scores: np.ndarray | None,
    baseline_output: np.ndarray | None,
    reference_values: pd.DataFrame | None,
    reference_output: np.ndarray | None,
    reference_scores: np.ndarray | None,
    *,
    alpha: float | None = None,
    seed: int = 0,
) -> ReasonsOutcome:
    """Reasons of a window's explained rows (`values`, index = request id) and, when the
    baseline has attributions, the test of their mix against the baseline's at `alpha`
    (the reasons part of the alert budget; default `reasons.p_value`, else 0.01)."""
    cfg = model.reasons
    decided = decisions(model, output, scores, baseline_output)
    reasons = top_reasons(values, decided.toward, cfg.top)
    per_request = {
        str(rid): {"unfavourable": bool(decided.unfavourable[i]),
                   "top": [[name, plain(v)] for name, v in reasons[i]]}
        for i, rid in enumerate(values.index)
    }
    shift = None
    if reference_values is not None and reference_output is not None and len(reference_values):
        ref_decided = decisions(model, reference_output, reference_scores, None)
        ref_reasons = top_reasons(reference_values, ref_decided.toward, 1)
        win = [r for r, bad in zip(first_reasons(reasons), decided.unfavourable, strict=True) if bad]
        ref = [r for r, bad in zip(first_reasons(ref_reasons), ref_decided.unfavourable, strict=True) if bad]
        level = alpha if alpha is not None else (cfg.p_value or 0.01)
        shift = reason_shift(win, ref, alpha=level, permutations=cfg.permutations,
                             min_decisions=cfg.min_decisions, seed=seed)
    return ReasonsOutcome(decided.rule, per_request, shift)


def in_words(top: Sequence[Sequence[Any]], inputs: Mapping[str, Any], stats: Mapping[str, Any]) -> str:
    """The reasons of one decision in plain words, e.g. "mostly because mean_radius is
    high (23.1, typical 14.1), and mean_texture is high (25, typical 19)"."""
    if not top:
        return "no feature pushed toward this decision (it stayed close to the baseline's output)"
    parts = [_describe(str(name), float(contribution), inputs.get(name), stats.get(name) or {})
             for name, contribution in top]
    head = f"mostly because {parts[0]}"
    return head if len(parts) == 1 else head + ", then " + ", and ".join(parts[1:])


def _describe(name: str, contribution: float, value: Any, stats: Mapping[str, Any]) -> str:
    typical = stats.get("p50", stats.get("mean"))
    if isinstance(value, int | float) and not isinstance(value, bool) and typical is not None:
        word = "high" if value > typical else "low" if value < typical else "typical"
        return f"{name} is {word} ({value:.3g}, typical {typical:.3g})"
    if value is not None and stats.get("categories"):
        common = max(stats["categories"].items(), key=lambda kv: kv[1])[0]
        return f"{name} is {value!r} (most common {common!r})"
    return f"{name} = {value!r} (contribution {contribution:+.3g})"


__all__ = ["Decisions", "ReasonShift", "ReasonsOutcome", "decisions", "in_words", "reason_shift",
           "top_reasons", "window_reasons"]
