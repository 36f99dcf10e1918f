"""The dense backend (kafkaml's own kernels for chains of dense layers): which models get it,
that it reproduces TensorFlow/Keras within 1e-5 on the inference benchmark's three models in
both file formats and with every instruction set, at odd batch sizes (0 and 1 included), and
that anything else falls back to tract, correctly.

TensorFlow, tf2onnx and onnxruntime come with the ``test`` extra (``scripts/setup --test``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import kafkaml  # noqa: E402
import keras  # noqa: E402
from kafkaml import export  # noqa: E402

L = keras.layers
# 0 and 1; tile remainders; a 64-row block and one row past it; big enough to split over
# the cores (2,048 rows of the small models, 100 of the sensor's cross the threshold).
BATCHES = (0, 1, 2, 7, 9, 31, 64, 65, 999, 3001)
TALK = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "talk"


def _talk() -> Any:
    """The talk's autoencoder in Keras 3, with its frozen graph's weights."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString((TALK / "autoencoder_fraud.pb").read_bytes())
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    layers = [("Encoder1", 14, "tanh"), ("Encoder2", 7, "relu"), ("Decoder1", 7, "tanh"), ("Decoder2", 30, "relu")]
    model = keras.Sequential([keras.Input((30,))] + [L.Dense(w, activation=a, name=n) for n, w, a in layers])
    for name, _, _ in layers:
        model.get_layer(name).set_weights([consts[f"{name}/kernel"], consts[f"{name}/bias"]])
    return model


def _dense_stack(width: int, layers: list[tuple[int, str | None, bool]], seed: int) -> Any:
    """A Keras chain of Dense(units, activation, use_bias) layers over ``width`` inputs, seeded,
    with small random biases (fresh Dense layers have zero biases, which tf2onnx drops)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((width,))] + [L.Dense(units, activation=act, use_bias=bias) for units, act, bias in layers]
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.2, weights[1].shape).astype(np.float32)])
    return model


def _mlp() -> Any:
    return _dense_stack(30, [(20, "tanh", True), (8, "relu", True), (20, "tanh", True), (30, "relu", True)], 21)


def _sensor() -> Any:
    return _dense_stack(210, [(64, "tanh", True), (16, "relu", True), (64, "tanh", True), (210, None, True)], 5)


def _other_activations() -> Any:
    """Sigmoid, ReLU6, a linear layer and a layer without bias, widths around the panels."""
    return _dense_stack(
        17,
        [(33, "sigmoid", True), (9, "relu6", True), (16, None, True), (24, "tanh", False), (3, "sigmoid", True)],
        3,
    )


MODELS = {"talk": _talk, "mlp": _mlp, "sensor": _sensor, "activations": _other_activations}


def _rows(model: Any, batch: int) -> np.ndarray:
    rng = np.random.default_rng(batch + 11)
    width = model.inputs[0].shape[1]
    # Values where tanh and sigmoid are neither flat nor linear, and some far out.
    x = rng.normal(0, 2, (batch, width)).astype(np.float32)
    if batch > 3:
        x[3] *= 40
    return x


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, dict[str, Path]]]:
    out = {}
    for name, build in MODELS.items():
        model = build()
        folder = tmp_path_factory.mktemp(name)
        export.freeze_keras(model, folder / "m.pb")
        export.to_onnx(model, folder / "m.onnx")
        out[name] = (model, {"tf": folder / "m.pb", "onnx": folder / "m.onnx"})
    return out


def _assert_matches_keras(model: Any, loaded: kafkaml.Model) -> None:
    for batch in BATCHES:
        x = _rows(model, batch)
        got = loaded.predict(x)
        want = np.asarray(model(x, training=False)) if batch else np.zeros((0, got.shape[1]), np.float32)
        assert got.shape == (batch, model.outputs[0].shape[1]) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=f"batch {batch}")


@pytest.mark.parametrize("fmt", ["tf", "onnx"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_dense_models_run_dense_and_match_keras(exported, name: str, fmt: str) -> None:
    model, paths = exported[name]
    loaded = kafkaml.Model.load(paths[fmt])
    assert loaded.backend == "dense"
    _assert_matches_keras(model, loaded)


@pytest.mark.parametrize("isa", ["avx2", "portable"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_instruction_set_matches_keras(exported, name: str, isa: str, monkeypatch) -> None:
    """KAFKAML_DENSE_ISA lowers the kernels' instruction set (read when a model loads)."""
    monkeypatch.setenv("KAFKAML_DENSE_ISA", isa)
    model, paths = exported[name]
    loaded = kafkaml.Model.load(paths["onnx"])
    assert loaded.backend == "dense"
    if isa == "portable" or loaded._native.dense_isa != "portable":  # a CPU without AVX2 stays portable
        assert loaded._native.dense_isa == isa
    _assert_matches_keras(model, loaded)


@pytest.mark.parametrize("isa", ["avx512", "avx2", "portable"])
def test_a_rows_result_does_not_depend_on_its_batch(exported, isa: str, monkeypatch) -> None:
    """Bit for bit: a row scored alone, in a short tile or split over threads gives one result
    (the KSQL UDF scores the records a poll returned together; predict scores one)."""
    monkeypatch.setenv("KAFKAML_DENSE_ISA", isa)
    for name in sorted(MODELS):
        loaded = kafkaml.Model.load(exported[name][1]["onnx"])
        x = _rows(exported[name][0], 3001)
        whole = loaded.predict(x)
        for start, stop in [(0, 1), (5, 6), (0, 2), (0, 7), (3, 12), (100, 165), (0, 1500)]:
            np.testing.assert_array_equal(loaded.predict(x[start:stop]), whole[start:stop], err_msg=f"{name} {isa}")


def test_dense_and_tract_agree_and_share_the_interface(exported) -> None:
    model, paths = exported["sensor"]
    dense = kafkaml.Model.load(paths["onnx"], backend="dense")
    tract = kafkaml.Model.load(paths["onnx"], backend="tract")
    assert (dense.backend, tract.backend) == ("dense", "tract")
    assert dense.inputs == tract.inputs and dense.outputs == tract.outputs
    x = _rows(model, 257)
    np.testing.assert_allclose(dense.predict(x), tract.predict(x), rtol=0, atol=1e-5)
    np.testing.assert_allclose(dense.reconstruction_error(x), tract.reconstruction_error(x), rtol=1e-5)
    # float64, Fortran order, a list and a DataFrame go through the same conversions.
    for variant in (x.astype(np.float64), np.asfortranarray(x), x.tolist()):
        np.testing.assert_array_equal(dense.predict(variant), dense.predict(x))
    assert "dense kernels" in dense._repr_html_() and "tract" in tract._repr_html_()


def test_the_talks_frozen_graph_runs_dense_within_1e_5_of_tensorflow() -> None:
    model = kafkaml.Model.load(TALK / "autoencoder_fraud.pb")
    assert model.backend == "dense"
    x = np.load(TALK / "creditcard_small_x.npy")
    want = np.load(TALK / "autoencoder_fraud_tf_output.npy")
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.predict(x[5:6]), want[5:6], rtol=0, atol=1e-5)


def test_a_model_shared_by_threads_gives_each_its_own_rows(exported) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model, paths = exported["mlp"]
    loaded = kafkaml.Model.load(paths["onnx"])
    inputs = [_rows(model, n) for n in (1, 5, 64, 130, 4000)] * 4
    expected = [loaded.predict(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(loaded.predict, inputs))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def _softplus_model() -> Any:
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="softplus"), L.Dense(3)])


def _conv_model() -> Any:
    keras.utils.set_random_seed(2)
    return keras.Sequential([keras.Input((12, 2)), L.Conv1D(3, 3, activation="relu"), L.Flatten(), L.Dense(4)])


@pytest.mark.parametrize("fmt", ["tf", "onnx"])
@pytest.mark.parametrize(("build", "op"), [(_softplus_model, "Exp|Softplus|Ln|feeds 2 nodes"), (_conv_model, "")])
def test_other_graphs_fall_back_to_tract(build, op: str, fmt: str, tmp_path: Path) -> None:
    model = build()
    path = tmp_path / ("m.pb" if fmt == "tf" else "m.onnx")
    (export.freeze_keras if fmt == "tf" else export.to_onnx)(model, path)
    loaded = kafkaml.Model.load(path)
    assert loaded.backend == "tract"
    shape = (9, *model.inputs[0].shape[1:])
    x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-5)
    with pytest.raises(kafkaml.ModelError, match="the dense backend cannot run node") as refused:
        kafkaml.Model.load(path, backend="dense")
    assert path.name in str(refused.value)
    if op:
        assert any(name in str(refused.value) for name in op.split("|")), str(refused.value)


def test_float64_models_stay_on_tract(tmp_path: Path) -> None:
    keras.backend.set_floatx("float64")
    try:
        model = keras.Sequential([keras.Input((5,), dtype="float64"), L.Dense(4, activation="tanh")])
        export.freeze_keras(model, tmp_path / "f64.pb")
    finally:
        keras.backend.set_floatx("float32")
    assert kafkaml.Model.load(tmp_path / "f64.pb").backend == "tract"
    with pytest.raises(kafkaml.ModelError, match="dense backend"):
        kafkaml.Model.load(tmp_path / "f64.pb", backend="dense")


def test_an_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(kafkaml.ConfigError, match="backend must be"):
        kafkaml.Model.load(TALK / "autoencoder_fraud.pb", backend="onnxruntime")


def test_onnxruntime_agrees_on_the_same_files(exported) -> None:
    """A second opinion on the ONNX exports: onnxruntime and kafkaml run the same file alike."""
    import onnxruntime as ort

    for name in ("talk", "mlp", "sensor"):
        model, paths = exported[name]
        session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
        x = _rows(model, 50)
        want = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(kafkaml.Model.load(paths["onnx"]).predict(x), want, rtol=0, atol=1e-5)
