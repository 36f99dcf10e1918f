"""The talk's autoencoder, kafkaml (Rust, tract) side by side with Keras, in one run.

    python benchmarks/bench_model.py [--reps-scale 1.0]

The model: the talk's frozen graph ``../shared/fixtures/talk/autoencoder_fraud.pb``
(Dense 30-14 tanh, 14-7 relu, 7-7 tanh, 7-30 relu). kafkaml loads the .pb as it is. For
Keras the same 30-14-7-7-30 architecture is rebuilt and its weights are loaded from the
frozen graph's constants (checked: its outputs match TensorFlow's recorded outputs), so both
run the very same model. The data: the talk's 999 credit-card rows
(``creditcard_small_x.npy``), tiled to the batch size.

For batches of 1, 32, 1024 and 100,000 rows it times
  (a) kafkaml ``Model.predict(x)`` (GIL released, tract, 100k rows split over the cores),
  (b) Keras ``model(x, training=False)`` (eager call),
  (c) Keras ``model.predict(x, verbose=0)``,
reporting the median latency per call and rows/s; prints the ratios and saves
benchmarks/results/model.json. Needs tensorflow (``scripts/setup --test``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, save  # noqa: E402

TALK = ROOT.parent / "shared" / "fixtures" / "talk"
BATCHES = (1, 32, 1024, 100_000)
# Calls per measurement: (kafkaml, keras model(x), keras predict) at each batch size.
REPS = {1: (3000, 300, 100), 32: (3000, 300, 100), 1024: (500, 100, 50), 100_000: (10, 5, 3)}
LAYERS = [("Encoder1", 14, "tanh"), ("Encoder2", 7, "relu"), ("Decoder1", 7, "tanh"), ("Decoder2", 30, "relu")]


def keras_twin(pb: Path) -> Any:
    """The talk's architecture in Keras 3, weights taken from the frozen graph's constants."""
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(pb.read_bytes())
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    model = keras.Sequential([keras.Input((30,))] + [keras.layers.Dense(w, activation=a, name=n) for n, w, a in LAYERS])
    for name, _, _ in LAYERS:
        model.get_layer(name).set_weights([consts[f"{name}/kernel"], consts[f"{name}/bias"]])
    return model


def median_seconds(call: Callable[[], Any], reps: int) -> float:
    call()  # warm-up (tracing, allocation)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps-scale", type=float, default=1.0, help="scale the number of timed calls")
    args = parser.parse_args()

    import kafkaml

    x999 = np.load(TALK / "creditcard_small_x.npy")
    expected = np.load(TALK / "autoencoder_fraud_tf_output.npy")
    model = kafkaml.Model.load(TALK / "autoencoder_fraud.pb")
    twin = keras_twin(TALK / "autoencoder_fraud.pb")
    twin_error = float(np.abs(np.asarray(twin(x999, training=False)) - expected).max())
    kafkaml_error = float(np.abs(model.predict(x999) - expected).max())
    assert twin_error < 1e-4 and kafkaml_error < 1e-5, (twin_error, kafkaml_error)
    print(f"same model: max |keras - tf| = {twin_error:.2e}, max |kafkaml - tf| = {kafkaml_error:.2e}")

    rows: dict[str, Any] = {}
    print(
        f"{'batch':>8} | {'kafkaml':>12} | {'keras model(x)':>14} | {'keras predict':>13} | {'vs model(x)':>11} | {'vs predict':>10}"
    )
    for batch in BATCHES:
        x = np.ascontiguousarray(np.tile(x999, (-(-batch // len(x999)), 1))[:batch])
        reps = [max(1, int(r * args.reps_scale)) for r in REPS[batch]]
        t_kafkaml = median_seconds(lambda: model.predict(x), reps[0])
        t_call = median_seconds(lambda: twin(x, training=False), reps[1])
        t_predict = median_seconds(lambda: twin.predict(x, verbose=0, batch_size=max(32, batch)), reps[2])
        rows[str(batch)] = {
            "kafkaml_ms": t_kafkaml * 1e3,
            "keras_call_ms": t_call * 1e3,
            "keras_predict_ms": t_predict * 1e3,
            "kafkaml_rows_s": batch / t_kafkaml,
            "keras_call_rows_s": batch / t_call,
            "keras_predict_rows_s": batch / t_predict,
            "speedup_vs_call": t_call / t_kafkaml,
            "speedup_vs_predict": t_predict / t_kafkaml,
            "reps": reps,
        }
        print(
            f"{batch:>8} | {t_kafkaml * 1e3:>9.4f} ms | {t_call * 1e3:>11.3f} ms | {t_predict * 1e3:>10.3f} ms"
            f" | {t_call / t_kafkaml:>10.1f}x | {t_predict / t_kafkaml:>9.1f}x"
        )
    small = min(rows[str(b)]["speedup_vs_call"] for b in (1, 32))
    big = rows["100000"]["kafkaml_rows_s"] / max(
        rows["100000"]["keras_call_rows_s"], rows["100000"]["keras_predict_rows_s"]
    )
    print(f"latency at batch <= 32: kafkaml is {small:.1f}x faster than model(x) (target >= 20x)")
    print(f"throughput at 100k rows: kafkaml / best of Keras = {big:.2f}x (target >= 1x)")
    import tensorflow as tf

    path = save(
        "model",
        {
            "machine": machine(),
            "tensorflow": tf.__version__,
            "keras_weights": "rebuilt 30-14-7-7-30 Keras model, weights from the frozen graph's constants",
            "max_abs_error_vs_tf": {"kafkaml": kafkaml_error, "keras": twin_error},
            "batches": rows,
            "latency_speedup_vs_call_batch_le_32": small,
            "throughput_ratio_100k_vs_best_keras": big,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
