"""Answers to "why did the model decide this for request X?".

The stored attribution from the run that sampled the request is preferred; a request
that was never sampled but is in the prediction log is explained on demand against
the active baseline, with the same method the runs use.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.errors import NotFoundError
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.store.runs import find_prediction, latest_explanation


def explain_request(settings: Settings, engine: Engine, model: str, request_id: str) -> dict[str, Any]:
    """The explanation of one request: output, baseline output, signed contributions.

    `contributions` is a list of ``[feature, contribution, input value]``, largest
    absolute contribution first.
    """
    cfg = settings.model(model)
    with transaction(engine) as session:
        stored = latest_explanation(session, model, request_id)
        if stored is not None:
            sample, run = stored
            return _answer(
                model,
                request_id,
                sample.method,
                sample.output,
                sample.baseline_output,
                sample.values,
                sample.features,
                f"run {run.id}, window {run.window_start.isoformat()} .. {run.window_end.isoformat()}",
            )
        prediction = find_prediction(session, model, request_id)
        baseline = active_baseline(session, model) if prediction is not None else None
        features = dict(prediction.features) if prediction is not None else None
    if features is None:
        raise NotFoundError(
            f"request {request_id!r} of model {model!r} is neither among the explained samples "
            "of any run nor in the prediction log"
        )
    if baseline is None:
        raise NotFoundError(f"model {model!r} has no baseline: run `monitor baseline {model}` first")
    return _on_demand(cfg, features, baseline, request_id)


def _on_demand(cfg: Any, features: dict[str, Any], baseline: Any, request_id: str) -> dict[str, Any]:
    import pandas as pd

    from monitor.attribution import explain_for_model
    from monitor.model import load_model

    frame = pd.DataFrame([{name: features.get(name) for name in cfg.features.names}], index=[request_id])
    for name in cfg.features.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    explanation = explain_for_model(cfg, load_model(cfg.path), frame, baseline.sample)
    values = explanation.values.iloc[0].to_dict()
    base = explanation.baseline_output
    return _answer(
        cfg.name,
        request_id,
        explanation.method,
        float(explanation.output[0]),
        float(base[0]) if base is not None else None,
        values,
        features,
        f"computed on demand against baseline v{baseline.version}",
    )


def _answer(
    model: str,
    request_id: str,
    method: str,
    output: float,
    baseline_output: float | None,
    values: dict[str, Any],
    inputs: dict[str, Any],
    source: str,
) -> dict[str, Any]:
    contributions = sorted(
        ([name, float(v or 0.0), inputs.get(name)] for name, v in values.items()),
        key=lambda item: -abs(item[1]),
    )
    return {
        "model": model,
        "request_id": request_id,
        "method": method,
        "output": float(output),
        "baseline_output": baseline_output,
        "source": source,
        "contributions": contributions,
    }
