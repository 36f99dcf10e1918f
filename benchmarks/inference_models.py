"""The three models of the inference benchmark, built once and kept under ``--models DIR``.

- ``talk``: the talk's frozen autoencoder (Dense 30-14 tanh, 14-7 relu, 7-7 tanh, 7-30 relu),
  rebuilt in Keras 3 with the frozen graph's weights, exported to ONNX (and the original .pb);
- ``mlp``: an MLP autoencoder 30-20-8-20-30 (tanh, relu, tanh, relu), seeded weights;
- ``sensor``: the car-sensor autoencoder over 210 readings (Dense 64 tanh, 16 relu, 64 tanh,
  210 linear), as ``bench_ksql_engine.py`` trains it (5 epochs on synthetic warm-up curves).

Each model is written as ``NAME.onnx`` (tf2onnx, batch dimension open), ``NAME.pb`` (frozen
graph) and ``NAME.keras``, with ``NAME_x.npy`` (999 input rows) and ``NAME_keras.npy`` (Keras'
outputs for them). The MLP's biases are set to small random values (fresh Dense layers have
zero biases, which tf2onnx would drop from the graph).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
TALK = ROOT.parent / "shared" / "fixtures" / "talk"
NAMES = ("talk", "mlp", "sensor")
SUFFIXES = (".onnx", ".pb", ".keras", "_x.npy", "_keras.npy")
TALK_LAYERS = [("Encoder1", 14, "tanh"), ("Encoder2", 7, "relu"), ("Decoder1", 7, "tanh"), ("Decoder2", 30, "relu")]


def talk_keras() -> Any:
    """The talk's architecture in Keras 3, weights taken from the frozen graph's constants."""
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString((TALK / "autoencoder_fraud.pb").read_bytes())
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    model = keras.Sequential(
        [keras.Input((30,))] + [keras.layers.Dense(w, activation=a, name=n) for n, w, a in TALK_LAYERS]
    )
    for name, _, _ in TALK_LAYERS:
        model.get_layer(name).set_weights([consts[f"{name}/kernel"], consts[f"{name}/bias"]])
    return model


def mlp_keras() -> Any:
    import keras

    keras.utils.set_random_seed(21)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((30,)),
            L.Dense(20, activation="tanh"),
            L.Dense(8, activation="relu"),
            L.Dense(20, activation="tanh"),
            L.Dense(30, activation="relu"),
        ]
    )
    rng = np.random.default_rng(21)
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return model


def sensor_keras() -> Any:
    import keras

    keras.utils.set_random_seed(5)
    width = 210
    rng = np.random.default_rng(5)
    base = 5 + np.sin(np.linspace(0, 3, width))
    train = (base[None, :] + rng.normal(0, 0.05, size=(2048, width))).astype(np.float32)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((width,)),
            L.Dense(64, activation="tanh"),
            L.Dense(16, activation="relu"),
            L.Dense(64, activation="tanh"),
            L.Dense(width),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(train, train, epochs=5, batch_size=128, verbose=0)
    return model


def rows(name: str) -> np.ndarray:
    """999 input rows for a model: the talk's credit-card rows, or synthetic sensor curves."""
    if name in ("talk", "mlp"):
        return np.load(TALK / "creditcard_small_x.npy")
    rng = np.random.default_rng(9)
    base = 5 + np.sin(np.linspace(0, 3, 210))
    return (base[None, :] + rng.normal(0, 0.1, size=(999, 210))).astype(np.float32)


def build(directory: Path) -> dict[str, Path]:
    """Writes the three models into ``directory`` (skipping those already there)."""
    directory.mkdir(parents=True, exist_ok=True)
    builders = {"talk": talk_keras, "mlp": mlp_keras, "sensor": sensor_keras}
    for name in NAMES:
        if all((directory / f"{name}{suffix}").exists() for suffix in SUFFIXES):
            continue
        from kafkaml import export

        model = builders[name]()
        x = rows(name)
        export.to_onnx(model, directory / f"{name}.onnx")
        export.freeze_keras(model, directory / f"{name}.pb")
        model.save(directory / f"{name}.keras")
        np.save(directory / f"{name}_x.npy", x)
        np.save(directory / f"{name}_keras.npy", np.asarray(model(x, training=False)))
    return {name: directory / f"{name}.onnx" for name in NAMES}
