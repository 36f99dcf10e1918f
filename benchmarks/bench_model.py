"""Model inference side by side in one process: kafkaml vs onnxruntime (and Keras).

    python benchmarks/bench_model.py [--rounds 7] [--reps-scale 1.0] [--threads 2]

Three models (``benchmarks/inference_models.py`` builds them once into ``--models``): the
talk's autoencoder (its frozen graph's weights in Keras 3, 30-14-7-7-30), an MLP autoencoder
30-20-8-20-30 (tanh/relu) and the car-sensor autoencoder 210-64-16-64-210. kafkaml and
onnxruntime load the very same ONNX file; kafkaml also loads the talk's original frozen graph
(``../shared/fixtures/talk/autoencoder_fraud.pb``). onnxruntime runs with ``--threads``
intra-op threads (its CPU provider, default options otherwise); kafkaml splits big batches
over the machine's cores (2 here), so both use the same number of threads.

For batches of 1, 32, 1,024 and 100,000 rows (the model's 999 rows tiled), the runtimes take
turns: in each of ``--rounds`` rounds every runtime makes a block of calls (one warm-up, then
the timed ones) after a 50 ms pause (onnxruntime's worker threads spin for a while after its
calls; without the pause they would take a core from whoever comes next). A runtime's figure
is the median over rounds of its per-block median latency. Printed: latencies, and kafkaml's
speed relative to onnxruntime's (``onnxruntime ms / kafkaml ms``; > 1: kafkaml is faster).
Results go to benchmarks/results/model.json. Needs tensorflow, tf2onnx and onnxruntime
(``scripts/setup --test``).
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
import inference_models  # noqa: E402
from common import machine, save  # noqa: E402

BATCHES = (1, 32, 1024, 100_000)
# Timed calls per block, by batch size and by the model's work per row (small / sensor).
REPS = {1: 2000, 32: 2000, 1024: 300, 100_000: 10}
KERAS_REPS = {1: 100, 32: 100, 1024: 50, 100_000: 3}
DEFAULT_MODELS = Path(os.environ.get("KAFKAML_CACHE", Path.home() / ".cache" / "kafkaml")) / "bench-models"


def block_median(call: Callable[[], Any], reps: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per batch size")
    parser.add_argument("--reps-scale", type=float, default=1.0, help="scale the calls per block")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime's intra-op threads")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="where the models are built")
    parser.add_argument("--no-keras", action="store_true", help="leave Keras out (quicker)")
    parser.add_argument("--only", nargs="*", default=list(inference_models.NAMES), help="models to run")
    args = parser.parse_args()

    import kafkaml
    import keras
    import onnxruntime as ort
    import tensorflow as tf

    inference_models.build(args.models)
    results: dict[str, Any] = {}
    for name in args.only:
        onnx_path = args.models / f"{name}.onnx"
        x999 = np.load(args.models / f"{name}_x.npy")
        reference = np.load(args.models / f"{name}_keras.npy")
        model = kafkaml.Model.load(onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        twin = keras.models.load_model(args.models / f"{name}.keras")
        errors = {
            "kafkaml": float(np.abs(model.predict(x999) - reference).max()),
            "onnxruntime": float(np.abs(session.run(None, {input_name: x999})[0] - reference).max()),
        }
        if name == "talk":
            pb = kafkaml.Model.load(inference_models.TALK / "autoencoder_fraud.pb")
            tf_out = np.load(inference_models.TALK / "autoencoder_fraud_tf_output.npy")
            errors["kafkaml_pb_vs_tensorflow"] = float(np.abs(pb.predict(x999) - tf_out).max())
        assert errors["kafkaml"] < 1e-5, errors
        print(f"\n{name}: {onnx_path.name}, kafkaml backend {model.backend}; max |output - Keras|: {errors}")

        runners: dict[str, Callable[[np.ndarray], Callable[[], Any]]] = {
            "kafkaml": lambda x: lambda: model.predict(x),
            "onnxruntime": lambda x: lambda: session.run(None, {input_name: x}),
        }
        if not args.no_keras:
            runners["keras_call"] = lambda x: lambda: twin(x, training=False)
        rows: dict[str, Any] = {}
        print(f"{'batch':>8} | {'kafkaml':>11} | {'onnxruntime':>11} | {'kafkaml/ort':>11} | {'keras model(x)':>14}")
        for batch in BATCHES:
            x = np.ascontiguousarray(np.tile(x999, (-(-batch // len(x999)), 1))[:batch])
            per_round: dict[str, list[float]] = {key: [] for key in runners}
            for _ in range(args.rounds):
                for key, make in runners.items():
                    time.sleep(0.05)
                    reps = (KERAS_REPS if key.startswith("keras") else REPS)[batch]
                    per_round[key].append(block_median(make(x), max(1, int(reps * args.reps_scale))))
            ms = {key: statistics.median(times) * 1e3 for key, times in per_round.items()}
            ratio = ms["onnxruntime"] / ms["kafkaml"]
            rounds_ratio = [o / k for o, k in zip(per_round["onnxruntime"], per_round["kafkaml"])]
            rows[str(batch)] = {
                **{f"{key}_ms": value for key, value in ms.items()},
                "kafkaml_rows_s": batch / ms["kafkaml"] * 1e3,
                "onnxruntime_rows_s": batch / ms["onnxruntime"] * 1e3,
                "speed_vs_onnxruntime": ratio,
                "speed_vs_onnxruntime_per_round": rounds_ratio,
                "rounds_ms": {key: [t * 1e3 for t in times] for key, times in per_round.items()},
            }
            keras_ms = f"{ms['keras_call']:>11.3f} ms" if "keras_call" in ms else f"{'-':>14}"
            print(
                f"{batch:>8} | {ms['kafkaml']:>8.4f} ms | {ms['onnxruntime']:>8.4f} ms | {ratio:>10.2f}x | {keras_ms}"
            )
        results[name] = {
            "file": onnx_path.name,
            "kafkaml_backend": model.backend,
            "max_abs_error_vs_keras": errors,
            "batches": rows,
        }

    worst = {name: min(r["speed_vs_onnxruntime"] for r in res["batches"].values()) for name, res in results.items()}
    print(f"\nkafkaml/onnxruntime, worst batch size per model: {worst}")
    path = save(
        "model",
        {
            "machine": machine(),
            "onnxruntime": ort.__version__,
            "tensorflow": tf.__version__,
            "onnxruntime_threads": args.threads,
            "rounds": args.rounds,
            "models": results,
            "worst_speed_vs_onnxruntime": worst,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
