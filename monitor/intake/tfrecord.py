"""TFRecord files of TensorFlow Serving `PredictionLog` protos -> record-shaped rows.

The format TF Serving's request logging and TFX's BulkInferrer write. Supported:
`predict_log` (PredictRequest inputs -> features, PredictResponse outputs ->
prediction) and `classify_log` / `regress_log` (tf.Example features). One request
may carry a batch: it becomes one row per example. LogMetadata has no request id,
so ids are a stable hash of the file name and the record's byte offset (``-i`` per
example of a batch); `log_metadata.timestamp_secs` gives the timestamp when set.
TensorFlow (and the Serving protos, which import it) are loaded only here.
"""

from __future__ import annotations

import base64
import gzip
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import ModelConfig
from monitor.errors import IntakeError
from monitor.intake.files import Row, iter_tfrecords, open_tfrecord, stable_id
from monitor.intake.validate import Unparsed

log = logging.getLogger(__name__)

#: output tensors preferred as "the prediction" when a signature has several
PREFERRED_OUTPUTS = ("probabilities", "scores", "predictions", "outputs", "output_0", "logits")


def read_prediction_logs(path: Path, model: ModelConfig) -> Iterator[Row]:
    """(record, raw) per example logged in `path`; undecodable records become Unparsed."""
    from tensorflow_serving.apis import prediction_log_pb2

    with open_tfrecord(path) as handle:
        size = None if isinstance(handle, gzip.GzipFile) else path.stat().st_size
        for offset, payload in _records(path, handle, size):
            if isinstance(payload, Unparsed):
                yield payload, ""  # garbage or truncated: the rest of the file is one row
                return
            entry = prediction_log_pb2.PredictionLog()
            try:
                entry.ParseFromString(payload)
                rows = list(_rows(entry, model))
            except Exception as err:  # noqa: BLE001 - a bad record is quarantined, not fatal
                raw = base64.b64encode(payload[:65536]).decode()
                yield Unparsed(f"{path.name}@{offset}: not a PredictionLog: {err}"), raw
                continue
            base = stable_id(path, offset)
            stamp = entry.log_metadata.timestamp_secs or None
            for i, row in enumerate(rows):
                _split_attributes(row, model.segments.attributes)
                row["request_id"] = base if len(rows) == 1 else f"{base}-{i}"
                row["timestamp"] = stamp
                yield row, None


def _records(path: Path, handle: Any, size: int | None) -> Iterator[tuple[int, Any]]:
    """(offset, payload) per record; at garbage, (offset, Unparsed) and the end."""
    records = iter_tfrecords(handle, size)
    offset = 0
    while True:
        try:
            offset, payload = next(records)
        except StopIteration:
            return
        except IntakeError as err:
            yield offset, Unparsed(f"{path.name}: {err}; the rest of the file is skipped")
            return
        yield offset, payload


def _rows(entry: Any, model: ModelConfig) -> Iterator[dict[str, Any]]:
    kind = entry.WhichOneof("log_type")
    if kind == "predict_log":
        yield from _predict_rows(entry.predict_log, model)
    elif kind in ("classify_log", "regress_log"):
        yield from _example_rows(getattr(entry, kind), kind)
    else:
        raise ValueError(f"unsupported log type {kind!r} (predict, classify and regress are)")


def _to_numpy(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in tensors.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.item() if hasattr(value, "item") else value


def _predict_rows(entry: Any, model: ModelConfig) -> Iterator[dict[str, Any]]:
    inputs = _to_numpy(entry.request.inputs)
    outputs = _to_numpy(entry.response.outputs)
    names = model.features.names
    if set(names) <= set(inputs):
        # inputs named as segment attributes are carried along (moved out of the features)
        wanted = (*names, *(a for a in model.segments.attributes if a in inputs))
        columns = {n: inputs[n].reshape(len(inputs[n]), -1)[:, 0] for n in wanted}
    elif (
        len(inputs) == 1
        and next(iter(inputs.values())).ndim == 2
        and next(iter(inputs.values())).shape[1] == len(names)
    ):
        matrix = next(iter(inputs.values()))
        columns = {n: matrix[:, j] for j, n in enumerate(names)}
    else:
        # let validation name what is missing or extra
        columns = {k: v.reshape(len(v), -1)[:, 0] for k, v in inputs.items() if v.ndim}
    if not outputs:
        raise ValueError("the response has no outputs")
    key = next((k for k in PREFERRED_OUTPUTS if k in outputs), sorted(outputs)[0])
    scores = outputs[key]
    n = len(scores) if scores.ndim else 1
    for i in range(n):
        value = np.asarray(scores[i] if scores.ndim else scores)
        prediction = value.ravel()[0].item() if value.size == 1 else [float(x) for x in value.ravel()]
        yield {
            "features": {k: _plain(col[i]) for k, col in columns.items() if i < len(col)},
            "prediction": prediction,
        }


def _split_attributes(row: dict[str, Any], attributes: tuple[str, ...]) -> None:
    """Move the values named in `[models.segments] attributes` (inputs of a predict
    request, features of a tf.Example) from the row's features to its attributes."""
    if not attributes or not isinstance(row.get("features"), dict):
        return
    features = row["features"]
    row["attributes"] = {name: features.pop(name) for name in attributes if name in features}


def _example_features(example: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        value = values[0] if len(values) == 1 else (values or None)
        out[name] = _plain(value) if value is not None and not isinstance(value, list) else value
    return out


def _example_rows(entry: Any, kind: str) -> Iterator[dict[str, Any]]:
    request_input = entry.request.input
    holder = request_input.WhichOneof("kind")
    examples = getattr(request_input, holder).examples if holder else []
    if kind == "classify_log":
        results = [
            {(c.label or str(j)): float(c.score) for j, c in enumerate(cls.classes)}
            for cls in entry.response.result.classifications
        ]
    else:
        results = [float(r.value) for r in entry.response.result.regressions]
    if len(results) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(results)} results")
    for example, result in zip(examples, results, strict=True):
        yield {"features": _example_features(example), "prediction": result}
