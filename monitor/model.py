"""Load a TensorFlow model (Keras 3 ``.keras`` file or SavedModel directory) and call it.

A `LoadedModel` hides the two formats and the two input styles behind one interface:

* single-tensor models take one ``(n, d)`` float tensor whose columns are the features
  in configuration order (numeric first, then categorical);
* dict-input models take one named input per feature (``{"age": (n, 1), ...}``), which
  may be float, integer or string tensors (lookups inside the model).

TensorFlow is imported lazily: importing this module is cheap, calling `load_model` is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.errors import ModelError
from monitor.vocab import Task

log = logging.getLogger(__name__)

TASKS = tuple(Task)
DEFAULT_BATCH_SIZE = 4096


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, dtype kind ("float", "int", "string") and shape."""

    name: str
    kind: str
    shape: tuple[int | None, ...]

    @property
    def differentiable(self) -> bool:
        return self.kind == "float"



def output_matrix(out: Any) -> Any:
    """A model's raw output as one 2-D float32 tensor (rows x outputs).

    Dict outputs take the first key in sorted order and list outputs their first
    element: monitor explains one output head per model.
    """
    import tensorflow as tf

    if isinstance(out, Mapping):
        out = out[sorted(out)[0]]
    elif isinstance(out, list | tuple):
        out = out[0]
    out = tf.cast(out, tf.float32)
    return tf.reshape(out, (-1, 1)) if out.shape.rank == 1 else out

class LoadedModel:
    """A model ready to be called on DataFrames (batched) or on tensors (for gradients).

    `features` fixes the column order of a single-tensor model. Calling the object on a
    tensor (or a dict of tensors) returns the raw output as a 2-D tensor ``(n, k)``.
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        fn: Any,
        inputs: tuple[InputSpec, ...],
        *,
        dict_inputs: bool,
        features: tuple[str, ...] | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.path, self.format, self.inputs = path, fmt, inputs
        self.dict_inputs, self.features, self.batch_size = dict_inputs, features, batch_size
        #: the column order a single-tensor model declares (a `feature_names` attribute), if any
        self.declared_features = _declared_features(fn)
        self._fn = fn
        self._compiled: Any = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def differentiable(self) -> bool:
        """True when every model input is a float tensor (gradients can reach it)."""
        return all(spec.differentiable for spec in self.inputs)

    def __call__(self, inputs: Any) -> Any:
        """Raw output for a tensor or dict of tensors, as a 2-D float tensor."""

        if self.format == "saved_model":
            out = self._fn(**inputs) if self.dict_inputs else self._fn(inputs)
        else:
            out = self._fn(inputs, training=False)
        return output_matrix(out)

    def to_inputs(self, frame: pd.DataFrame) -> np.ndarray | dict[str, np.ndarray]:
        """The model's inputs for `frame`: a float32 matrix, or a dict of arrays by name.

        Raises ModelError naming any input the frame lacks.
        """
        if not self.dict_inputs:
            columns = list(self.features) if self.features else list(frame.columns)
            _require_columns(frame, columns)
            width = self.inputs[0].shape[-1]
            if width is not None and width != len(columns):
                raise ModelError(
                    f"model {self.path} takes {width} input columns, the frame gives "
                    f"{len(columns)} ({columns}); list the model's features in config"
                )
            try:
                return frame[columns].to_numpy(dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise ModelError(
                    f"model {self.path} takes one float tensor, but a feature column is "
                    f"not numeric: {err}"
                ) from err
        _require_columns(frame, self.input_names)
        return {spec.name: _column(frame[spec.name], spec) for spec in self.inputs}

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw model outputs for every row of `frame`, shape ``(n, k)``, in batches."""
        return self.predict_inputs(self.to_inputs(frame))

    def predict_inputs(self, inputs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """Raw outputs for already converted inputs, shape ``(n, k)``, in batches."""
        n = _length(inputs)
        if n == 0:
            return np.zeros((0, 1), dtype=np.float32)
        forward = self._forward()
        parts = []
        for start in range(0, n, self.batch_size):
            chunk = _slice(inputs, slice(start, start + self.batch_size))
            parts.append(forward(chunk).numpy())
        return np.concatenate(parts, axis=0)

    def score(
        self, frame: pd.DataFrame, task: str, explain_class: int | None = None
    ) -> np.ndarray:
        """The explained output per row, shape ``(n,)`` (see `select_output`)."""
        return select_output(self.predict_frame(frame), task, explain_class)

    def _forward(self) -> Any:
        if self._compiled is None:
            import tensorflow as tf

            self._compiled = tf.function(self.__call__, reduce_retracing=True)
        return self._compiled


#: models whose unverifiable column order was already warned about (once per process)
_ORDER_WARNED: set[str] = set()


def check_features(
    model: LoadedModel, numeric: Sequence[str], categorical: Sequence[str], *, where: str = "features"
) -> tuple[str, ...]:
    """Check the configured features against the model's inputs; returns warnings.

    Named inputs: a string tensor declared numeric, or a float tensor declared
    categorical, is a ModelError naming the feature and both types. A single-tensor
    model: its width must match, and its column order is checked against the names it
    declares; when it declares none, a warning (once per model) says the order cannot
    be verified.
    """
    declared = {**{n: "numeric" for n in numeric}, **{n: "categorical" for n in categorical}}
    names = list(numeric) + list(categorical)
    problems: list[str] = []
    if model.dict_inputs or (len(model.inputs) == 1 and model.inputs[0].name in declared
                             and len(names) == 1):
        unlisted = [spec.name for spec in model.inputs if spec.name not in declared]
        if unlisted:
            problems.append(f"{where}: the model takes input(s) {unlisted}, which are not configured")
        for spec in model.inputs:
            kind = declared.get(spec.name)
            if kind is None:
                continue
            if kind == "numeric" and spec.kind == "string":
                problems.append(
                    f"{where}: {spec.name!r} is declared numeric but the model takes it as a "
                    f"string tensor: list it under features.categorical"
                )
            elif kind == "categorical" and spec.kind == "float":
                problems.append(
                    f"{where}: {spec.name!r} is declared categorical but the model takes it as a "
                    f"float tensor: list it under features.numeric"
                )
        if problems:
            raise ModelError(f"{model.path}: " + "; ".join(problems))
        return ()
    spec = model.inputs[0]
    if spec.kind == "string":
        raise ModelError(
            f"{model.path}: {where}: the model takes one string tensor {spec.name!r}, but the "
            f"features {names} are fed as numbers"
        )
    width = spec.shape[-1] if spec.shape else None
    if width is not None and width != len(names):
        raise ModelError(
            f"{model.path}: {where}: the model takes {width} input columns, the configuration "
            f"lists {len(names)} features ({names})"
        )
    if model.declared_features is not None:
        if list(model.declared_features) != names:
            raise ModelError(
                f"{model.path}: {where}: the model declares its columns as "
                f"{list(model.declared_features)}, the configuration lists {names} "
                "(numeric first, then categorical): list them in the model's order"
            )
        return ()
    key = str(model.path)
    if key in _ORDER_WARNED:
        return ()
    _ORDER_WARNED.add(key)
    message = (
        f"{model.path} takes one unnamed ({width}-column) tensor: monitor feeds the columns in "
        f"configuration order {names} (numeric first, then categorical) and cannot verify it "
        "against the model"
    )
    log.warning("%s", message)
    return (message,)


def output_target(raw: np.ndarray, task: str, explain_class: int | None = None) -> np.ndarray:
    """The output column explained for each row: an int array of shape ``(n,)``.

    Binary: the positive-class probability (column 0 of a one-column output, else
    column 1). Multiclass: `explain_class` when set, else each row's predicted class.
    Regression: column 0.
    """
    raw = np.asarray(raw)
    if raw.ndim == 1:
        raw = raw[:, None]
    n, k = raw.shape
    if task not in TASKS:
        raise ModelError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task == Task.MULTICLASS:
        if explain_class is not None:
            if explain_class >= k:
                raise ModelError(f"explain_class {explain_class} but the model has {k} outputs")
            return np.full(n, explain_class, dtype=np.int64)
        return raw.argmax(axis=1).astype(np.int64)
    column = 1 if task == Task.BINARY and k == 2 else 0
    return np.full(n, column, dtype=np.int64)


def select_output(raw: np.ndarray, task: str, explain_class: int | None = None) -> np.ndarray:
    """The explained output per row, shape ``(n,)``, chosen by `output_target`."""
    raw = np.asarray(raw)
    if raw.ndim == 1:
        raw = raw[:, None]
    target = output_target(raw, task, explain_class)
    return raw[np.arange(len(raw)), target]


def load_model(
    path: str | Path,
    *,
    features: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> LoadedModel:
    """Load a ``.keras`` file or a SavedModel directory.

    `features` (numeric then categorical) gives the column order of a single-tensor
    model; named inputs are matched by name. Raises ModelError when the path is not a
    model or cannot be loaded.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model path {path} does not exist")
    feature_tuple = tuple(features) if features else None
    if path.is_dir():
        fn, inputs = _load_saved_model(path)
        fmt = "saved_model"
    elif path.suffix in (".keras", ".h5"):
        fn, inputs = _load_keras(path)
        fmt = "keras"
    else:
        raise ModelError(f"{path}: expected a .keras file or a SavedModel directory")
    names = [spec.name for spec in inputs]
    dict_inputs = len(inputs) > 1 or bool(feature_tuple and names[0] in feature_tuple
                                          and len(feature_tuple) == 1)
    if len(inputs) == 1 and not dict_inputs and len(inputs[0].shape) != 2:
        raise ModelError(f"{path}: a single input must be (batch, features), got {inputs[0]}")
    log.info("loaded %s model %s with inputs %s", fmt, path, names)
    return LoadedModel(path, fmt, fn, inputs, dict_inputs=dict_inputs,
                       features=feature_tuple, batch_size=batch_size)


def _load_keras(path: Path) -> tuple[Any, tuple[InputSpec, ...]]:
    import keras

    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # noqa: BLE001 - Keras raises many kinds; all mean "cannot load"
        raise ModelError(f"{path}: cannot load Keras model: {err}") from err
    specs = []
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        specs.append(InputSpec(name, _kind(str(tensor.dtype)), tuple(tensor.shape)))
    if len(specs) > 1 and not isinstance(model.input, Mapping):
        raise ModelError(f"{path}: a model with several inputs must take them as a dict by name")
    return model, tuple(specs)


def _load_saved_model(path: Path) -> tuple[Any, tuple[InputSpec, ...]]:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001 - TF raises many kinds; all mean "cannot load"
        raise ModelError(f"{path}: cannot load SavedModel: {err}") from err
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ModelError(f"{path}: the SavedModel has no serving_default signature")
    _, kwargs = signature.structured_input_signature
    specs = tuple(
        InputSpec(name, _kind(spec.dtype.name), tuple(spec.shape.as_list()))
        for name, spec in sorted(kwargs.items())
    )
    # _SavedModelCall keeps `loaded` alive: the signature only holds weak references
    if len(specs) == 1:
        return _SavedModelCall(loaded, signature, specs[0].name), specs
    return _SavedModelCall(loaded, signature, None), specs


class _SavedModelCall:
    """Calls a SavedModel signature with one positional tensor or named tensors."""

    def __init__(self, loaded: Any, signature: Any, single: str | None):
        self.loaded, self.signature, self.single = loaded, signature, single

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.single is not None and args:
            return self.signature(**{self.single: args[0]})
        return self.signature(**kwargs)


def _declared_features(fn: Any) -> tuple[str, ...] | None:
    """The column names a model carries as a `feature_names` attribute (list, tensor or
    variable of strings), else None."""
    target = getattr(fn, "loaded", fn)
    value = getattr(target, "feature_names", None)
    if value is None:
        return None
    if hasattr(value, "numpy"):
        value = value.numpy()
    try:
        names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel())
    except TypeError:
        return None
    return names or None


def _kind(dtype: str) -> str:
    if "float" in dtype or "half" in dtype or "double" in dtype:
        return "float"
    if "int" in dtype or "bool" in dtype:
        return "int"
    if "string" in dtype or "str" in dtype or "object" in dtype:
        return "string"
    return dtype


def _column(series: pd.Series, spec: InputSpec) -> np.ndarray:
    if spec.kind == "float":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float32)
    elif spec.kind == "int":
        values = series.to_numpy(dtype=np.int64)
    else:
        values = series.astype(str).to_numpy(dtype=object)
    return values.reshape(-1, 1) if len(spec.shape) == 2 else values


def _require_columns(frame: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ModelError(
            f"the model needs input(s) {missing} but the frame has no such column "
            f"(columns: {list(frame.columns)})"
        )


def _length(inputs: np.ndarray | Mapping[str, np.ndarray]) -> int:
    if isinstance(inputs, Mapping):
        return len(next(iter(inputs.values())))
    return len(inputs)


def _slice(inputs: Any, index: slice) -> Any:
    if isinstance(inputs, Mapping):
        return {name: value[index] for name, value in inputs.items()}
    return inputs[index]
