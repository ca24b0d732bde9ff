"""Answers to "why did the model decide this for request X?".

The stored attribution from the run that sampled the request is preferred; a request
that was never sampled is looked up in the model's source (the prediction log, or the
configured files or SQL query) and explained on demand against the active baseline,
with the same method the runs use. A multiclass answer says which class it explains;
an on-demand answer shows the logged prediction beside the recomputed output and
warns when they differ (the served model may not be the configured one).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.config import ModelConfig, Settings
from monitor.errors import AttributionError, NotFoundError
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.store.runs import find_prediction, latest_explanation

log = logging.getLogger(__name__)

#: logged and recomputed outputs agree when within this relative or absolute tolerance
REL_TOLERANCE = 0.01
ABS_TOLERANCE = 1e-3


def explain_request(settings: Settings, engine: Engine, model: str, request_id: str) -> dict[str, Any]:
    """The explanation of one request: output, baseline output, signed contributions.

    `contributions` is a list of ``[feature, contribution, input value]``, largest
    absolute contribution first. `explained` says which output is explained (for
    multiclass: `class_index` and `class_name`), `logged_prediction` is the served
    value of that output when known, and `warnings` lists disagreements.
    """
    from monitor.intake.lookup import find_request

    cfg = settings.model(model)
    with transaction(engine) as session:
        stored = latest_explanation(session, model, request_id)
        if stored is not None:
            sample, run = stored
            logged = find_prediction(session, model, request_id) if cfg.source == "log" else None
            values, features = dict(sample.values), dict(sample.features)
            method, output, base = sample.method, sample.output, sample.baseline_output
            where = f"run {run.id}, window {run.window_start.isoformat()} .. {run.window_end.isoformat()}"
            logged_prediction = logged.prediction if logged is not None else None
            attributes = logged.attributes if logged is not None else None
            stored_reasons = getattr(sample, "reasons", None)
            baseline_stats = _feature_stats(session, model)
    if stored is not None:
        target = _target(cfg, logged_prediction, None, features)
        answer = _answer(cfg, request_id, method, output, base, values, features, where, target)
        answer = with_reasons(cfg, answer, stored_reasons, baseline_stats)
        return _with_groups(cfg, engine, _compare(cfg, answer, logged_prediction, recomputed=False),
                            features, attributes)
    record = find_request(cfg, engine, request_id)
    if record is None:
        where = "the prediction log" if cfg.source == "log" else f"its {cfg.source} source"
        raise NotFoundError(
            f"request {request_id!r} of model {model!r} is neither among the explained samples "
            f"of any run nor in {where}"
        )
    with transaction(engine) as session:
        baseline = active_baseline(session, model)
    if baseline is None:
        raise NotFoundError(f"model {model!r} has no baseline: run `monitor baseline {model}` first")
    answer = _on_demand(cfg, dict(record.features), record.prediction, baseline, request_id)
    return _with_groups(cfg, engine, answer, dict(record.features), record.attributes, baseline)


def _with_groups(
    cfg: ModelConfig,
    engine: Engine,
    answer: dict[str, Any],
    features: dict[str, Any],
    attributes: Any,
    baseline: Any = None,
) -> dict[str, Any]:
    """`answer` plus `groups`: the segments the request belongs to, when the model has
    `[models.segments]` (its attributes as logged; inputs binned at the baseline's quantiles)."""
    from monitor.fairness_step import configured, request_groups

    if not configured(cfg):
        return answer
    if baseline is None:
        with transaction(engine) as session:
            baseline = active_baseline(session, cfg.name)
    answer["groups"] = list(request_groups(cfg, baseline, features, attributes))
    return answer


def _on_demand(
    cfg: ModelConfig, features: dict[str, Any], logged: Any, baseline: Any, request_id: str
) -> dict[str, Any]:
    import pandas as pd

    from monitor.attribution import explain_for_model
    from monitor.model import load_model

    missing = [name for name in cfg.features.names if _missing(features.get(name))]
    if missing:
        raise AttributionError(
            f"request {request_id!r} of model {cfg.name!r} has no value for "
            f"{', '.join(missing)} (null when it was logged): the model cannot be run on a "
            "missing input, so no contribution can be computed for this request. Its logged "
            f"prediction ({_shown(logged)}) still counts in prediction drift and performance, and "
            "the missing value in the window's data quality."
        )
    frame = pd.DataFrame([{name: features.get(name) for name in cfg.features.names}], index=[request_id])
    for name in cfg.features.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    loaded = load_model(cfg.path)
    raw = np.asarray(loaded.predict_frame(frame), dtype=float)[0]
    explanation = explain_for_model(cfg, loaded, frame, baseline.sample)
    base = explanation.baseline_output
    answer = _answer(
        cfg,
        request_id,
        explanation.method,
        float(explanation.output[0]),
        float(base[0]) if base is not None else None,
        explanation.values.iloc[0].to_dict(),
        features,
        f"computed on demand against baseline v{baseline.version}",
        _target(cfg, logged, raw, features),
    )
    answer = with_reasons(cfg, answer, None, baseline.feature_stats, scores=raw)
    return _compare(cfg, answer, logged, recomputed=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _shown(logged: Any) -> str:
    if logged is None:
        return "not known"
    return f"{logged:.4g}" if isinstance(logged, float) else str(logged)


def _target(
    cfg: ModelConfig, logged: Any, raw: np.ndarray | None, features: dict[str, Any]
) -> dict[str, Any]:
    """Which output is explained: a description, and for multiclass the class index/name.

    The class is `explain_class` when configured, else the model's predicted class: from
    the recomputed scores `raw`, else the logged scores, else recomputed from `features`.
    """
    if cfg.task == "regression":
        return {"explained": "the predicted value", "class_index": None, "class_name": None}
    if cfg.task == "binary_classification":
        positive = f" ({cfg.class_names[1]!r})" if len(cfg.class_names) == 2 else ""
        return {"explained": f"P(positive class){positive}", "class_index": None, "class_name": None}
    if cfg.explain_class is not None:
        index, why = cfg.explain_class, "explain_class in the configuration"
    elif raw is not None:
        index, why = int(np.argmax(raw)), "the class the model predicts"
    elif isinstance(logged, list | tuple) and logged:
        index, why = int(np.argmax(logged)), "the class the model predicted (logged scores)"
    elif isinstance(logged, int) and not isinstance(logged, bool):
        index, why = logged, "the class the model predicted (logged)"
    else:
        index, why = _recompute_class(cfg, features), "the class the model predicts"
    name = cfg.class_names[index] if index < len(cfg.class_names) else None
    label = f"class {index}" + (f" {name!r}" if name else "")
    return {"explained": f"the score of {label}, {why}", "class_index": index, "class_name": name}


def _recompute_class(cfg: ModelConfig, features: dict[str, Any]) -> int:
    import pandas as pd

    from monitor.model import load_model

    frame = pd.DataFrame([{name: features.get(name) for name in cfg.features.names}])
    for name in cfg.features.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return int(np.argmax(load_model(cfg.path).predict_frame(frame)[0]))


def _logged_output(cfg: ModelConfig, logged: Any, index: int | None) -> tuple[float | None, int | None]:
    """The logged value of the explained output and the logged class (multiclass)."""
    if logged is None:
        return None, None
    if cfg.task != "multiclass_classification":
        try:
            return float(logged), None
        except (TypeError, ValueError):
            return None, None
    if isinstance(logged, list | tuple) and logged:
        scores = [float(v) for v in logged]
        value = scores[index] if index is not None and index < len(scores) else None
        return value, int(np.argmax(scores))
    if isinstance(logged, int) and not isinstance(logged, bool):
        return None, logged
    return None, None


def _compare(cfg: ModelConfig, answer: dict[str, Any], logged: Any, *, recomputed: bool) -> dict[str, Any]:
    """Add the logged prediction to `answer`, and a warning when it disagrees with the output."""
    value, logged_class = _logged_output(cfg, logged, answer["class_index"])
    warnings: list[str] = []
    output = answer["output"]
    kind = "recomputed" if recomputed else "explained by the run"
    if value is not None and not math.isclose(value, output, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE):
        warnings.append(
            f"the logged prediction {value:.6g} differs from the {kind} output {output:.6g} "
            f"(beyond {REL_TOLERANCE:.0%} or {ABS_TOLERANCE:g}): the served model may not be the "
            f"configured one ({cfg.path}), or the logged inputs are not what it saw"
        )
    if (
        logged_class is not None
        and answer["class_index"] is not None
        and cfg.explain_class is None
        and logged_class != answer["class_index"]
    ):
        warnings.append(
            f"the logged prediction is class {logged_class} but the configured model predicts class "
            f"{answer['class_index']}: the served model may not be the configured one ({cfg.path})"
        )
    for warning in warnings:
        log.warning("model %s request %s: %s", cfg.name, answer["request_id"], warning)
    return {**answer, "logged_prediction": value, "logged_class": logged_class,
            "recomputed": recomputed, "warnings": warnings}


def _answer(
    cfg: ModelConfig,
    request_id: str,
    method: str,
    output: float,
    baseline_output: float | None,
    values: dict[str, Any],
    inputs: dict[str, Any],
    source: str,
    target: dict[str, Any],
) -> dict[str, Any]:
    contributions = sorted(
        ([name, float(v or 0.0), inputs.get(name)] for name, v in values.items()),
        key=lambda item: -abs(item[1]),
    )
    return {
        "model": cfg.name,
        "request_id": request_id,
        "method": method,
        "output": float(output),
        "baseline_output": baseline_output,
        "source": source,
        **target,
        "contributions": contributions,
    }


def _feature_stats(session: Any, model: str) -> dict[str, Any]:
    baseline = active_baseline(session, model)
    return dict(baseline.feature_stats) if baseline is not None else {}


def with_reasons(
    cfg: ModelConfig,
    answer: dict[str, Any],
    stored: dict[str, Any] | None,
    stats: dict[str, Any],
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Add the decision's top reasons (`reasons`: unfavourable, top) and their plain-words
    form (`reasons_text`): stored by the run, else computed from the contributions."""
    import pandas as pd

    from monitor.reasons import decisions, in_words, top_reasons

    if stored is None:
        names = [c[0] for c in answer["contributions"]]
        values = pd.DataFrame([[c[1] for c in answer["contributions"]]], columns=names)
        base = answer.get("baseline_output")
        decided = decisions(
            cfg,
            np.array([answer["output"]]),
            np.asarray(scores)[None, :] if scores is not None and np.ndim(scores) == 1 else None,
            np.array([base]) if base is not None else None,
        )
        top = top_reasons(values, decided.toward, cfg.reasons.top)[0]
        stored = {"unfavourable": bool(decided.unfavourable[0]), "top": [[n, v] for n, v in top]}
    inputs = {c[0]: c[2] for c in answer["contributions"]}
    return {**answer, "reasons": stored, "reasons_text": in_words(stored["top"], inputs, stats)}


# -- what-if and counterfactuals --------------------------------------------------------

#: points per numeric actionable feature in the counterfactual grid (baseline quantiles)
GRID_POINTS = 21
#: bisection steps that shrink the last change of a counterfactual towards the original
REFINE_STEPS = 12


def what_if(
    settings: Settings, engine: Engine, model: str, request_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Request `request_id` with some feature values changed, explained again.

    Returns ``{"original": explain_request(...), "changes": {feature: [old, new]},
    "answer": <the same shape as explain_request, computed on demand>}``. Unknown
    features are a NotFoundError; numeric values must parse as numbers.
    """
    cfg = settings.model(model)
    original = explain_request(settings, engine, model, request_id)
    features = {name: value for name, _, value in original["contributions"]}
    parsed = coerce_values(cfg, changes)
    baseline = _baseline(engine, model)
    new = {**features, **parsed}
    answer = _on_demand(cfg, new, None, baseline, request_id)
    return {"original": original, "answer": answer,
            "changes": {k: [features.get(k), v] for k, v in parsed.items()}}


def coerce_values(cfg: ModelConfig, changes: dict[str, Any]) -> dict[str, Any]:
    """`{feature: text}` -> typed values (float for numeric features)."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in cfg.features.names:
            raise NotFoundError(
                f"model {cfg.name!r} has no feature {name!r} (features: {', '.join(cfg.features.names)})"
            )
        if name in cfg.features.numeric:
            try:
                out[name] = float(value)
            except (TypeError, ValueError) as err:
                raise NotFoundError(f"feature {name!r} is numeric: {value!r} is not a number") from err
        else:
            out[name] = str(value)
    return out


def _baseline(engine: Engine, model: str) -> Any:
    with transaction(engine) as session:
        baseline = active_baseline(session, model)
    if baseline is None:
        raise NotFoundError(f"model {model!r} has no baseline: run `monitor baseline {model}` first")
    return baseline


def favourable_rule(cfg: ModelConfig) -> tuple[str, Any]:
    """How to tell a favourable decision from the raw output: ("class", index),
    ("above", threshold) or ("below", threshold), from `[models.fairness] favorable`."""
    favorable, fairness = cfg.fairness.favorable, cfg.fairness
    if favorable is None:
        raise NotFoundError(
            f"model {cfg.name!r}: a counterfactual needs the favourable outcome: set "
            "[models.fairness] favorable (a class, or \"above\"/\"below\" with threshold)"
        )
    if favorable in ("above", "below"):
        threshold = fairness.threshold if fairness.threshold is not None else cfg.decision_threshold
        return str(favorable), float(threshold)
    index = cfg.class_names.index(favorable) if isinstance(favorable, str) else int(favorable)
    if cfg.task == "binary_classification":
        threshold = fairness.threshold if fairness.threshold is not None else cfg.decision_threshold
        return ("above" if index == 1 else "below"), float(threshold)
    return "class", index


def _margins(rule: tuple[str, Any], raw: np.ndarray) -> np.ndarray:
    """How far each output is on the favourable side (> 0: favourable)."""
    raw = np.asarray(raw, dtype=float)
    kind, value = rule
    if kind == "class":
        target = raw[:, value]
        others = np.delete(raw, value, axis=1).max(axis=1) if raw.shape[1] > 1 else 0.0
        return target - others + 1e-12 * (raw.argmax(axis=1) == value)
    score = raw[:, 0]
    return score - value + 1e-12 if kind == "above" else value - score


def counterfactual(settings: Settings, engine: Engine, model: str, request_id: str) -> dict[str, Any]:
    """The smallest change to the actionable features that makes the decision favourable.

    A greedy grid search using the model (documented in the README): the grid of each
    numeric actionable feature is GRID_POINTS quantiles of the baseline (so every value
    stays within the baseline's range), of a categorical one the baseline's categories.
    Each round scores every single-feature move from the current point in one batch;
    if some move is favourable, the cheapest one wins (cost: sum of |change| / the
    baseline's range, 1 per changed category) and a bisection shrinks it towards the
    original value; else the move that gains the most margin is kept and the next
    round starts from there. Returns `found`, `changes` {feature: [old, new]}, the
    outputs before and after, and the cost.
    """
    import pandas as pd

    from monitor.model import load_model

    cfg = settings.model(model)
    actionable = list(cfg.features.actionable)
    if not actionable:
        raise NotFoundError(
            f"model {model!r} has no actionable feature: list them in [models.features] actionable"
        )
    rule = favourable_rule(cfg)
    original = explain_request(settings, engine, model, request_id)
    start = {name: value for name, _, value in original["contributions"]}
    sample = _baseline(engine, model).sample
    grids, spans = {}, {}
    for name in actionable:
        column = sample[name].dropna()
        if name in cfg.features.numeric:
            values = np.unique(np.quantile(column.astype(float), np.linspace(0, 1, GRID_POINTS)))
            grids[name] = [float(v) for v in values]
            spans[name] = float(values[-1] - values[0]) or 1.0
        else:
            grids[name] = sorted({str(v) for v in column})
    loaded = load_model(cfg.path)

    def predict(rows: list[dict[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame([{n: r.get(n) for n in cfg.features.names} for r in rows])
        for n in cfg.features.numeric:
            frame[n] = pd.to_numeric(frame[n], errors="coerce").astype("float64")
        return np.asarray(loaded.predict_frame(frame), dtype=float)

    def cost(point: dict[str, Any]) -> float:
        total = 0.0
        for n in actionable:
            if n in spans:
                total += abs(float(point[n]) - float(start[n] or 0.0)) / spans[n]
            elif str(point[n]) != str(start[n]):
                total += 1.0
        return total

    before = predict([start])
    current = dict(start)
    margin0 = float(_margins(rule, before)[0])
    if margin0 > 0:
        return _cf_answer(cfg, request_id, rule, start, current, before, before, True, 0.0,
                          "the decision is already favourable")
    for _ in range(len(actionable)):
        moves = [(n, v) for n in actionable for v in grids[n] if v != current[n]]
        if not moves:
            break
        points = [{**current, n: v} for n, v in moves]
        margins = _margins(rule, predict(points))
        winners = [i for i, m in enumerate(margins) if m > 0]
        if winners:
            best = min(winners, key=lambda i: cost(points[i]))
            name, value = moves[best]
            current = _shrink(cfg, rule, predict, current, name, value)
            after = predict([current])
            return _cf_answer(cfg, request_id, rule, start, current, before, after, True, cost(current), "")
        current = points[int(np.argmax(margins))]
    after = predict([current])
    return _cf_answer(cfg, request_id, rule, start, current, before, after, False, cost(current),
                      "no change of the actionable features within the baseline's range makes "
                      "the decision favourable")


def _shrink(cfg: ModelConfig, rule: tuple[str, Any], predict: Any, point: dict[str, Any],
            name: str, value: Any) -> dict[str, Any]:
    """Move a numeric `name` from its value in `point` towards `value` only as far as
    needed to stay favourable (bisection); categorical moves are kept as they are."""
    if name not in cfg.features.numeric:
        return {**point, name: value}
    lo, hi = float(point[name] or 0.0), float(value)
    for _ in range(REFINE_STEPS):
        mid = (lo + hi) / 2
        if _margins(rule, predict([{**point, name: mid}]))[0] > 0:
            hi = mid
        else:
            lo = mid
    return {**point, name: hi}


def _cf_answer(cfg: ModelConfig, request_id: str, rule: tuple[str, Any], start: dict[str, Any],
               end: dict[str, Any], before: np.ndarray, after: np.ndarray, found: bool, cost: float,
               note: str) -> dict[str, Any]:
    kind, value = rule
    wanted = (f"class {value}" + (f" {cfg.class_names[value]!r}" if value < len(cfg.class_names) else "")
              if kind == "class" else f"output {'>=' if kind == 'above' else '<'} {value:g}")
    return {
        "model": cfg.name, "request_id": request_id, "found": found, "favourable": wanted,
        "actionable": list(cfg.features.actionable),
        "changes": {n: [start[n], end[n]] for n in cfg.features.actionable if end[n] != start[n]},
        "output_before": [float(v) for v in np.asarray(before)[0]],
        "output_after": [float(v) for v in np.asarray(after)[0]],
        "cost": float(cost), "note": note,
    }
