"""Keras models built here with TensorFlow, exported both ways (frozen GraphDef and ONNX),
must give TensorFlow's outputs within 1e-4 through kafkaml at batch sizes 1, 7 and 1000.

TensorFlow and tf2onnx come with the ``test`` extra (``scripts/setup --test``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import kafkaml  # noqa: E402
import keras  # noqa: E402  (tensorflow-cpu, keras and tf2onnx are in the test extra)
from kafkaml import export  # noqa: E402

L = keras.layers
BATCHES = (1, 7, 1000)

# Every built-in activation that works as Dense(activation=name). `threshold` is not among
# them: it needs its threshold and default value as arguments. `glu` halves the width.
ACTIVATIONS = sorted(
    name
    for name in dir(keras.activations)
    if not name.startswith("_") and name not in ("get", "serialize", "deserialize", "threshold")
)
# Activations whose frozen graphs contain ops no runtime here implements (kept honest:
# loading must fail with a ModelError naming the op).
UNSUPPORTED_TF = {"sparsemax": ("TopKV2", "Cumsum"), "glu": ("Split",)}
UNSUPPORTED_ONNX: dict[str, tuple[str, ...]] = {}


def _seeded(build: Callable[[], Any]) -> Any:
    keras.utils.set_random_seed(7)
    model = build()
    # Non-trivial BatchNormalization statistics (fresh layers have mean 0, variance 1).
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.normal(0, 0.5, beta.shape).astype(np.float32),
                    rng.normal(0, 0.5, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
                ]
            )
    return model


ARCHITECTURES: dict[str, Callable[[], Any]] = {
    "conv1d_pooling_bn": lambda: keras.Sequential(
        [
            keras.Input((20, 3)),
            L.Conv1D(4, 3, activation="relu"),
            L.MaxPooling1D(2),
            L.Conv1D(5, 3, padding="same", activation="tanh"),
            L.AveragePooling1D(2),
            L.BatchNormalization(),
            L.Flatten(),
            L.Dense(3),
        ]
    ),
    "conv2d_pooling_bn_dropout": lambda: keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            L.Conv2D(4, 3, activation="elu"),
            L.BatchNormalization(),
            L.MaxPooling2D(2),
            L.Dropout(0.3),
            L.Conv2D(3, (2, 2), strides=2, padding="same", activation="selu"),
            L.AveragePooling2D(2, padding="same"),
            L.GlobalAveragePooling2D(),
            L.Dense(4, activation="softmax"),
        ]
    ),
    "conv2d_flatten_global_max": lambda: keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(3, 3, padding="same", activation="leaky_relu"),
            L.MaxPooling2D(2, strides=1),
            L.Flatten(),
            L.Reshape((7, 7, 3)),
            L.GlobalMaxPooling2D(),
            L.Dense(2, activation="sigmoid"),
        ]
    ),
    "dense_bn_dropout_reshape": lambda: keras.Sequential(
        [
            keras.Input((10,)),
            L.Dense(8, activation="softplus"),
            L.BatchNormalization(),
            L.Dropout(0.5),
            L.Reshape((2, 4)),
            L.Flatten(),
            L.Dense(10, activation="sigmoid"),
        ]
    ),
    "autoencoder_30_14_7_7_30": lambda: keras.Sequential(
        [
            keras.Input((30,)),
            L.Dense(14, activation="tanh"),
            L.Dense(7, activation="relu"),
            L.Dense(7, activation="tanh"),
            L.Dense(30, activation="relu"),
        ]
    ),
}


def _activation_model(name: str) -> Callable[[], Any]:
    if name == "glu":  # halves the width, which Keras' shape inference for a next layer misses
        return lambda: keras.Sequential([keras.Input((6,)), L.Dense(8, activation=name)])
    return lambda: keras.Sequential([keras.Input((6,)), L.Dense(8, activation=name), L.Dense(3)])


def _inputs(model: Any, batch: int) -> np.ndarray:
    rng = np.random.default_rng(batch)
    shape = (batch, *model.inputs[0].shape[1:])
    return rng.normal(0, 2, shape).astype(np.float32)


def _export(model: Any, tmp_path: Path, fmt: str) -> Path:
    if fmt == "tf":
        path = tmp_path / "model.pb"
        export.freeze_keras(model, path)
    else:
        path = tmp_path / "model.onnx"
        export.to_onnx(model, path)
    return path


def _check(model: Any, loaded: kafkaml.Model) -> None:
    for batch in BATCHES:
        x = _inputs(model, batch)
        want = np.asarray(model(x, training=False))
        got = loaded.predict(x)
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"batch {batch}")


@pytest.mark.parametrize("fmt", ["tf", "onnx"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_with_every_builtin_activation(activation: str, fmt: str, tmp_path: Path) -> None:
    model = _seeded(_activation_model(activation))
    path = _export(model, tmp_path, fmt)
    unsupported = (UNSUPPORTED_TF if fmt == "tf" else UNSUPPORTED_ONNX).get(activation)
    if unsupported:
        with pytest.raises(kafkaml.ModelError, match="|".join(unsupported)):
            kafkaml.Model.load(path)
        return
    _check(model, kafkaml.Model.load(path))


@pytest.mark.parametrize("fmt", ["tf", "onnx"])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_layers(architecture: str, fmt: str, tmp_path: Path) -> None:
    model = _seeded(ARCHITECTURES[architecture])
    path = _export(model, tmp_path, fmt)
    loaded = kafkaml.Model.load(path)
    assert loaded.format == ("tensorflow" if fmt == "tf" else "onnx")
    assert loaded.inputs[0].shape == (None, *model.inputs[0].shape[1:])
    assert loaded.outputs[0].shape == (None, *model.outputs[0].shape[1:])
    _check(model, loaded)


def test_freeze_keras_names_the_input(tmp_path: Path) -> None:
    model = _seeded(ARCHITECTURES["autoencoder_30_14_7_7_30"])
    inputs, outputs = export.freeze_keras(model, tmp_path / "ae.pb", input_name="features")
    assert inputs == ["features"] and len(outputs) == 1
    loaded = kafkaml.Model.load(tmp_path / "ae.pb")
    assert loaded.inputs[0].name == "features" and loaded.outputs[0].name == outputs[0]
    x = _inputs(model, 50)
    errors = loaded.reconstruction_error(x)
    want = ((x - np.asarray(model(x, training=False))) ** 2).mean(axis=1)
    np.testing.assert_allclose(errors, want, rtol=1e-4, atol=1e-5)


def test_float64_model(tmp_path: Path) -> None:
    keras.backend.set_floatx("float64")
    try:
        model = _seeded(lambda: keras.Sequential([keras.Input((5,), dtype="float64"), L.Dense(4, activation="elu")]))
        export.freeze_keras(model, tmp_path / "f64.pb")
    finally:
        keras.backend.set_floatx("float32")
    loaded = kafkaml.Model.load(tmp_path / "f64.pb")
    assert loaded.inputs[0].dtype == "float64"
    x = _inputs(model, 7).astype(np.float64)
    np.testing.assert_allclose(loaded.predict(x), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-4)
