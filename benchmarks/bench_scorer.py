"""Stream deployment: kafkaml's StreamScorer side by side with the talk's Python loop.

    python benchmarks/bench_scorer.py [--events 1000000] [--batch-size 10000] [--sides ...]

The same topic of credit-card events (an ``id`` and the 30 model inputs, JSON, 3 partitions)
on a real broker is scored with the talk's autoencoder (30-14-7-7-30) into a results topic
(``id``, ``score``, ``anomaly`` per event) by
  (a) ``kafkaml``: ``StreamScorer``: consume, decode, predict (the model's backend: the dense
      kernels for this graph), encode and produce in a Rust thread; offsets committed after
      the results are acknowledged;
  (b) ``kafkaml_tract``: the same, the model loaded with ``backend="tract"`` (as before the
      dense backend);
  (c) ``ceiling``: the same scorer with inference all but free (an ONNX model that is one
      30x30 identity matrix product): its I/O ceiling, what consuming, decoding, encoding
      and producing alone allow;
  (d) ``python``: the talk's Python loop: confluent-kafka ``consume(batch_size)`` +
      ``json.loads`` + numpy + Keras ``model(x, training=False)`` (the same weights, see
      inference_models.talk_keras) + per-row error + ``produce(json.dumps(...))``, committing
      after each flushed batch.
Each runs in a fresh process, from a new consumer group, until every event has its result;
both run --repeat times (3) in rounds and the fastest run of each counts.
Prints events/s and the ratio; saves benchmarks/results/scorer.json (scorer_batchN.json for
another --batch-size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, fastest, kafka_broker, machine, peak_rss_mb, run_worker, save  # noqa: E402

TALK = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "talk"
FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
THRESHOLD = 5.0
SIDES = ("kafkaml", "kafkaml_tract", "ceiling", "python")
PARTITIONS = 3


def identity_onnx(path: Path) -> None:
    """A 30-wide ONNX model whose output is its input times the identity matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    eye = numpy_helper.from_array(np.eye(30, dtype=np.float32), "eye")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "eye"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 30])],
        [eye],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def worker_kafkaml(bootstrap: str, source: str, sink: str, events: int, batch_size: int, kind: str) -> dict:
    import tempfile

    import kafkaml

    if kind == "ceiling":
        path = Path(tempfile.mkdtemp()) / "identity.onnx"
        identity_onnx(path)
        model = kafkaml.Model.load(path)
    else:
        backend = "tract" if kind == "kafkaml_tract" else "auto"
        model = kafkaml.Model.load(TALK / "autoencoder_fraud.pb", backend=backend)
    scorer = kafkaml.StreamScorer(
        bootstrap,
        source,
        sink,
        model,
        features=FEATURES,
        id_columns=["id"],
        threshold=THRESHOLD,
        group_id=f"bench-kafkaml-{uuid.uuid4().hex[:8]}",
        schema=["id BIGINT", *(f"{f} DOUBLE" for f in FEATURES)],
        batch_size=batch_size,
    )
    with Timer() as t:
        stats = scorer.run(until=events)
    return {
        "events": stats["produced"],
        "seconds": t.seconds,
        "peak_rss_mb": peak_rss_mb(),
        "backend": model.backend,
    }


def worker_python(bootstrap: str, source: str, sink: str, events: int, batch_size: int) -> dict:
    from confluent_kafka import Consumer, Producer
    from inference_models import talk_keras

    model = talk_keras()
    model(np.zeros((1, 30), np.float32), training=False)  # build outside the timing
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-python-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    done = 0
    with Timer() as t:
        consumer.subscribe([source])
        while done < events:
            messages = [m for m in consumer.consume(num_messages=batch_size, timeout=1.0) if m.error() is None]
            if not messages:
                continue
            rows = [json.loads(m.value()) for m in messages]
            x = np.array([[row[f] for f in FEATURES] for row in rows], dtype=np.float32)
            reconstruction = model(x, training=False).numpy()
            scores = ((reconstruction - x) ** 2).mean(axis=1)
            for message, row, score in zip(messages, rows, scores):
                result = {"id": row["id"], "score": float(score), "anomaly": bool(score > THRESHOLD)}
                while True:
                    try:
                        producer.produce(sink, json.dumps(result).encode(), key=message.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                producer.poll(0)
            producer.flush()
            consumer.commit(asynchronous=False)
            done += len(messages)
    consumer.close()
    return {"events": done, "seconds": t.seconds, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per batch, both sides")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES, help="which scorers run")
    parser.add_argument("--worker", nargs=6, metavar=("KIND", "BOOTSTRAP", "SOURCE", "SINK", "EVENTS", "BATCH"))
    args = parser.parse_args()
    if args.worker:
        kind, bootstrap, source, sink, events, batch_size = args.worker
        if kind == "python":
            result = worker_python(bootstrap, source, sink, int(events), int(batch_size))
        else:
            result = worker_kafkaml(bootstrap, source, sink, int(events), int(batch_size), kind)
        print(json.dumps(result))
        return

    import kafkaml
    import pyarrow as pa
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafkaml import datasets

    with kafka_broker() as bootstrap:
        run_id = uuid.uuid4().hex[:8]
        source = f"bench-scorer-events-{run_id}"
        kinds = tuple(args.sides)
        sinks = {
            (kind, round_): f"bench-scorer-results-{kind}-{round_}-{run_id}"
            for kind in kinds
            for round_ in range(args.repeat)
        }
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [NewTopic(source, PARTITIONS, 1)] + [NewTopic(s, PARTITIONS, 1) for s in sinks.values()]
        for future in admin.create_topics(topics).values():
            future.result(timeout=60)
        table = datasets.credit_card_transactions(args.events, seed=11).drop_columns(["Class"])
        table = table.add_column(0, "id", pa.array(np.arange(args.events, dtype=np.int64)))
        with Timer() as t:
            kafkaml.write_topic(bootstrap, source, table, key="id")
        print(f"wrote {args.events:,} events in {t.seconds:.1f} s")

        # Both sides run --repeat times, in rounds (a slow spell of the shared machine touches
        # both alike); each keeps its fastest run, and every run must leave one result per event.
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for round_ in range(args.repeat):
            for kind in kinds:
                sink = sinks[(kind, round_)]
                result = run_worker(
                    Path(__file__), kind, bootstrap, source, sink, str(args.events), str(args.batch_size)
                )
                written = kafkaml.read_topic(bootstrap, sink, schema="id BIGINT, score DOUBLE, anomaly BOOLEAN")
                result["results_in_sink"] = written.num_rows
                result["distinct_ids"] = len(set(written.column("id").to_pylist()))
                result["events_per_s"] = result["events"] / result["seconds"]
                if result["distinct_ids"] != args.events:
                    raise SystemExit(f"{kind} left results for {result['distinct_ids']:,} of {args.events:,} events")
                runs[kind].append(result)
                print(
                    f"{kind:8s} {result['events_per_s']:>10,.0f} events/s  {result['seconds']:7.2f} s  "
                    f"peak RSS {result['peak_rss_mb']:,.0f} MB  results {result['results_in_sink']:,} "
                    f"({result['distinct_ids']:,} distinct ids)"
                )
        results = {kind: fastest(rs) for kind, rs in runs.items()}
        rate = {kind: r["events_per_s"] for kind, r in results.items()}
        ratios = {}
        for other in ("python", "ceiling", "kafkaml_tract"):
            if "kafkaml" in rate and other in rate:
                ratios[f"kafkaml_vs_{other}"] = rate["kafkaml"] / rate[other]
        print(f"best of {args.repeat} each: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        ratio = ratios.get("kafkaml_vs_python")
        name = "scorer" if args.batch_size == 10_000 else f"scorer_batch{args.batch_size}"
        path = save(
            name,
            {
                "events": args.events,
                "batch_size": args.batch_size,
                "repeat": args.repeat,
                "machine": machine(),
                "results": results,
                "ratio": ratio,
                "ratios": ratios,
            },
        )
        print(f"saved {path}")


if __name__ == "__main__":
    main()
