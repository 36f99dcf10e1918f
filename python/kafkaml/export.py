"""Export Keras models to files :class:`kafkaml.Model` loads.

TensorFlow is imported only when a function here is called: it is not a runtime
dependency of kafkaml. Install it (``pip install tensorflow-cpu``, and ``tf2onnx`` for ONNX
with Keras 3) in the environment where you train.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["freeze_keras", "to_onnx"]


def _input_signature(model: Any, tf: Any) -> list[Any]:
    """One ``tf.TensorSpec`` per model input, batch dimension left open."""
    specs = []
    for i, tensor in enumerate(model.inputs):
        shape = [None] + list(tensor.shape[1:])
        name = getattr(tensor, "name", None) or f"input_{i}"
        name = name.split(":")[0].replace("/", "_")
        specs.append(tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=name))
    return specs


def freeze_keras(model: Any, path: str | os.PathLike[str], *, input_name: str = "input") -> tuple[list[str], list[str]]:
    """Freezes a TF 2.x / Keras 3 model into a TensorFlow GraphDef (``.pb``) at ``path``.

    Variables become constants (``convert_variables_to_constants_v2``), layers run in
    inference mode (Dropout off, BatchNormalization on its moving statistics). The single
    input is named ``input_name``. Returns the graph's input and output node names, which
    :meth:`kafkaml.Model.load` also finds by itself.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = _input_signature(model, tf)
    if len(specs) != 1:
        raise ValueError(f"freeze_keras exports models with one input, this one has {len(specs)}")
    spec = tf.TensorSpec(specs[0].shape, specs[0].dtype, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(x: Any) -> Any:
        return model(x, training=False)

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    inputs = [t.name.split(":")[0] for t in frozen.inputs]
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    return inputs, outputs


def to_onnx(model: Any, path: str | os.PathLike[str], *, opset: int | None = None) -> str:
    """Writes a Keras model as ONNX at ``path`` (through tf2onnx) and returns the path.

    Uses ``tf2onnx.convert.from_keras`` with an input signature whose batch dimension is
    open, so the file serves any batch size. ``opset`` defaults to tf2onnx's choice.
    """
    import tensorflow as tf
    import tf2onnx

    specs = _input_signature(model, tf)

    @tf.function(input_signature=specs)
    def serve(*xs: Any) -> Any:
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)

    target = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset, output_path=target)
    return target
