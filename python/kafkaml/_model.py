"""Rust-side model inference: TensorFlow frozen graphs and ONNX files, run by kafkaml's dense
kernels (chains of dense layers) or by tract (everything else)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from kafkaml import _native
from kafkaml._display import Html, html_rows, html_table

__all__ = ["Model", "TensorInfo"]


class TensorInfo(NamedTuple):
    """Name, shape and dtype of a model input or output; ``shape[0]`` is ``None`` (the batch)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def _info(raw: tuple[str, list[int | None], str]) -> TensorInfo:
    name, shape, dtype = raw
    return TensorInfo(name, tuple(shape), dtype)


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike)):
        return [os.fsdecode(value)]
    return [str(v) for v in value]


_BACKENDS = {"tensorflow": "TensorFlow frozen graph", "onnx": "ONNX"}


def _shape(shape: tuple[int | None, ...]) -> str:
    """``[batch, 30]``: the batch dimension named, the others as numbers."""
    return "[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]"


def _is_arrow(x: Any) -> bool:
    return hasattr(x, "__arrow_c_stream__") or hasattr(x, "__arrow_c_array__")


class Model:
    """A TensorFlow frozen graph (``.pb``) or ONNX model, loaded once and run in Rust.

    Load with :meth:`Model.load`. Inference runs in Rust with the GIL released: graphs made
    only of dense layers and element-wise activations (ReLU, tanh, sigmoid, clips) run on
    kafkaml's own SIMD kernels, everything else on tract (:attr:`backend` says which). One
    ``Model`` is safe to share between threads, and any batch size runs after one load.

    Example::

        model = kafkaml.Model.load("autoencoder_fraud.pb")
        scores, flags = model.score(x, threshold=5.0)
    """

    __slots__ = ("_native", "_row_shape")

    def __init__(self, native: _native.Model) -> None:
        """Wraps a native model; use :meth:`Model.load` instead."""
        self._native = native
        shape = native.output[1][1:]
        # Outputs of more than one dimension per row are reshaped after each call.
        self._row_shape: tuple[int, ...] | None = tuple(int(d or 1) for d in shape) if len(shape) > 1 else None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        inputs: str | Sequence[str] | None = None,
        outputs: str | Sequence[str] | None = None,
        input_shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> Model:
        """Loads a model file: a TensorFlow frozen GraphDef (``.pb``) or ONNX (``.onnx``).

        ``inputs`` / ``outputs`` name the graph nodes to feed and read (found automatically:
        placeholders or graph inputs, and sinks). ``input_shape`` is the shape of one row
        without the batch dimension, needed only when the file does not declare it.
        ``backend`` picks what runs the model: ``"auto"`` (the default) uses kafkaml's dense
        kernels when the graph is a chain of dense layers and element-wise activations and
        they agree with tract on probe rows at load, else tract; ``"tract"`` always tract;
        ``"dense"`` the dense kernels or a :class:`kafkaml.ModelError` naming the node they
        cannot run.
        Raises :class:`kafkaml.ModelError` for malformed files, unsupported ops (naming the op
        and the node), unknown node names and shapes that do not fit — and for what Keras and
        TensorFlow save by default (a ``.keras`` or ``.h5`` file, a SavedModel folder), saying
        how to convert it: ``kafkaml.export.freeze_keras(model, "m.pb")`` or
        ``kafkaml.export.to_onnx(model, "m.onnx")``.
        """
        native = _native.Model.load(
            os.fspath(path),
            _names(inputs),
            _names(outputs),
            None if input_shape is None else [int(d) for d in input_shape],
            backend,
        )
        return cls(native)

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's input: name, shape (``None`` for the batch) and dtype."""
        return [_info(self._native.input)]

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's output: name, shape (``None`` for the batch) and dtype."""
        return [_info(self._native.output)]

    @property
    def input_width(self) -> int:
        """Features per input row (the product of the input's non-batch dimensions)."""
        return self._native.input_width

    @property
    def output_width(self) -> int:
        """Values per output row."""
        return self._native.output_width

    @property
    def path(self) -> str:
        """The file the model was loaded from."""
        return os.fspath(self._native.path)

    @property
    def format(self) -> str:
        """``"tensorflow"`` or ``"onnx"``."""
        return self._native.format

    @property
    def backend(self) -> str:
        """What runs the model: ``"dense"`` (kafkaml's dense-layer kernels) or ``"tract"``."""
        return self._native.backend

    def __repr__(self) -> str:
        i, o = self.inputs[0], self.outputs[0]
        return (
            f"Model({os.path.basename(self.path)!r}, {self.format}, "
            f"input {i.name!r} {i.dtype}{_shape(i.shape)} -> output {o.name!r} {o.dtype}{_shape(o.shape)})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: file, backend, and the inputs and outputs with shapes and dtypes."""

        def tensors(infos: list[TensorInfo]) -> Html:
            return html_rows(["name", "shape", "dtype"], [(t.name, _shape(t.shape), t.dtype) for t in infos])

        return html_table(
            f"kafkaml.Model {os.path.basename(self.path)}",
            [
                ("file", self.path),
                ("backend", f"{_BACKENDS.get(self.format, self.format)}, run in Rust by {self._runner()}"),
                ("inputs", tensors(self.inputs)),
                ("outputs", tensors(self.outputs)),
                ("features per row", self.input_width),
            ],
        )

    def _runner(self) -> str:
        if self._native.backend == "dense":
            return f"kafkaml's dense kernels ({self._native.dense_isa})"
        return "tract"

    def _matrix(self, x: Any, columns: Sequence[str] | None) -> np.ndarray:
        """Any supported input as a C-contiguous float32 matrix [rows, input_width]."""
        if isinstance(x, np.ndarray):
            if columns is not None:
                raise TypeError("columns= selects columns of a table or DataFrame, not of a numpy array")
            matrix = x
        elif type(x).__module__.startswith("pandas"):
            frame = x if columns is None else x[list(columns)]
            matrix = frame.to_numpy(dtype=np.float32)
        elif _is_arrow(x):
            matrix = _native.to_numpy(x, None if columns is None else list(columns), "float32", None)
        else:
            if columns is not None:
                raise TypeError(f"columns= needs a pyarrow table or pandas DataFrame, got {type(x).__name__}")
            matrix = np.asarray(x)
        if matrix.dtype.kind not in "fiub":
            raise _native.ModelError(f"the model takes numbers, got an array of dtype {matrix.dtype}")
        if matrix.ndim == 0:
            raise _native.ModelError("the model takes a batch of rows, got a scalar")
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        matrix = matrix.reshape(matrix.shape[0], int(np.prod(matrix.shape[1:])))
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def predict(self, x: Any, columns: Sequence[str] | None = None) -> np.ndarray:
        """Runs the model on a batch of rows and returns float32 ``[rows, *output_shape]``.

        ``x`` is a numpy array (float32 or float64, C or Fortran order; ``[rows, features]``
        or ``[rows, *input_shape]``), a pandas DataFrame, or a pyarrow Table / RecordBatch;
        ``columns`` picks and orders the feature columns of a table or DataFrame.
        """
        if columns is None and type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous:
            out = self._native.predict(x)  # the common case, without conversions
        else:
            out = self._native.predict(self._matrix(x, columns))
        if self._row_shape is not None:
            out = out.reshape((out.shape[0], *self._row_shape))
        return out

    def reconstruction_error(self, x: Any, columns: Sequence[str] | None = None) -> np.ndarray:
        """Per-row mean squared error between ``x`` and the model's output (float32 ``[rows]``).

        The anomaly score of an autoencoder; the model's output must be as wide as its input.
        """
        if columns is None and type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous:
            return self._native.reconstruction_error(x)
        return self._native.reconstruction_error(self._matrix(x, columns))

    def score(self, x: Any, threshold: float, columns: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly scores and flags: ``(reconstruction_error(x), reconstruction_error(x) > threshold)``."""
        scores = self.reconstruction_error(x, columns)
        return scores, scores > np.float32(threshold)
