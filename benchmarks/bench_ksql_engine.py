"""The embedded KSQL engine (kafkaml.ksql.LocalKsql) on a real broker, side by side with its
ceilings, in one run on the same data.

    python benchmarks/bench_ksql_engine.py [--rows 1000000] [--events 100000] [--rate 1000]

1. Persistent query: the talk's preprocessing, ``CREATE STREAM ... AS SELECT`` of the model
   inputs and the label ``WHERE Class IS NOT NULL``, DELIMITED source -> JSON sink, --rows rows
   on 4 partitions; timed from the statement until the query has read its source to the end
   (``wait_for_queries``). The ceiling: kafkaml's own ``read_topic`` (DELIMITED, declared
   columns) + Arrow filter/projection + ``write_topic`` (JSON) of the same rows. Target: the
   engine at >= 60 % of the ceiling.
2. Model UDF: ``SELECT EVENTID, ANOMALY(SENSORINPUT)`` into a sink over --events car-sensor
   events of 210 '#'-separated readings, against ``StreamScorer`` scoring the same events with
   the same model (its '#'-separated text feature column). Target: >= 50 % of StreamScorer.
3. Push query latency: events produced at --rate per second for 10 s, each carrying its send
   time; a ``SELECT ... EMIT CHANGES`` through ``kafkaml.ksql.Client`` (/query-stream) notes
   when each row arrives: p50 and p99 of arrival - send.

Also the same persistent pipeline in quixstreams (parse the DELIMITED line, filter, project,
JSON out), when --quix-python names a Python with quixstreams installed (its own virtual
environment: it pins confluent-kafka < 2.13), e.g. ``python -m venv /tmp/qx &&
/tmp/qx/bin/pip install quixstreams``; the ratio engine / quixstreams is printed.

Each measured part runs after the data is written; results go to
benchmarks/results/ksql_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, kafka_broker, machine, peak_rss_mb, save  # noqa: E402

DECLARATIONS = (
    ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
    + [f"V{i} double" for i in range(1, 29)]
    + ["Amount double", "Class string"]
)
FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
PARTITIONS = 4
WIDTH = 210


def create(bootstrap: str, *names: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=60)


def persistent_query(bootstrap: str, rows: int, run_id: str) -> dict:
    import kafkaml
    import pyarrow.compute as pc
    from kafkaml import datasets
    from kafkaml.ksql import LocalKsql

    source, ceiling_sink, engine_sink = (f"bench-ksql-{k}-{run_id}" for k in ("source", "ceiling", "engine"))
    create(bootstrap, source, ceiling_sink, engine_sink)
    table = datasets.credit_card_source(rows, seed=3)
    kafkaml.write_topic(bootstrap, source, table, format="delimited")
    print(f"wrote {rows:,} DELIMITED rows")

    with Timer() as ceiling:
        read = kafkaml.read_topic(bootstrap, source, format="delimited", schema=DECLARATIONS)
        kept = read.filter(pc.is_valid(read.column("Class"))).select([*FEATURES, "Class"])
        written = kafkaml.write_topic(bootstrap, ceiling_sink, kept, format="json")
    assert written == rows, written

    statement = (
        f"CREATE STREAM preprocessed WITH (kafka_topic='{engine_sink}', value_format='JSON') AS "
        f"SELECT {', '.join([*FEATURES, 'Class'])} FROM source WHERE Class IS NOT NULL;"
    )
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(
            f"CREATE STREAM source ({', '.join(DECLARATIONS)}) WITH (kafka_topic='{source}', value_format='DELIMITED');"
        )
        client.set("auto.offset.reset", "earliest")
        with Timer() as engine:
            client.ksql(statement)
            queries = ksql.wait_for_queries(timeout=3600)
    (progress,) = queries.values()
    assert progress["records_out"] == rows, progress
    check = kafkaml.read_topic(bootstrap, engine_sink, format="json")
    assert check.num_rows == rows and check.num_columns == len(FEATURES) + 1, check.schema
    result = {
        "rows": rows,
        "ceiling_rows_per_s": rows / ceiling.seconds,
        "engine_rows_per_s": rows / engine.seconds,
        "ceiling_seconds": ceiling.seconds,
        "engine_seconds": engine.seconds,
    }
    result["engine_vs_ceiling"] = result["engine_rows_per_s"] / result["ceiling_rows_per_s"]
    print(
        f"persistent query: engine {result['engine_rows_per_s']:,.0f} rows/s ({engine.seconds:.2f} s), "
        f"read_topic+write_topic {result['ceiling_rows_per_s']:,.0f} rows/s ({ceiling.seconds:.2f} s): "
        f"{100 * result['engine_vs_ceiling']:.0f}% of the ceiling (target >= 60%)"
    )
    return result


def worker_quix(bootstrap: str, source: str, sink: str, rows: int) -> dict:
    """The talk's preprocessing as a quixstreams application (run by --quix-python)."""
    import time as clock

    from quixstreams import Application

    names = [d.split()[0] for d in DECLARATIONS]
    kinds = [d.split()[1] for d in DECLARATIONS]
    casts = {"bigint": int, "int": int, "double": float, "varchar": str, "string": str}

    def parse(line: bytes) -> dict:
        fields = line.decode().split(",")
        return {n: (casts[k](f) if f != "" else None) for n, k, f in zip(names, kinds, fields)}

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    source_topic = app.topic(source, value_deserializer="bytes")
    sink_topic = app.topic(sink, value_serializer="json")
    frame = app.dataframe(source_topic).apply(parse)
    frame = frame.filter(lambda row: row["Class"] is not None)
    frame = frame.apply(lambda row: {name: row[name] for name in [*FEATURES, "Class"]})
    frame.to_topic(sink_topic)
    start = clock.perf_counter()
    app.run(count=rows, collect=False)
    return {"rows": rows, "seconds": clock.perf_counter() - start}


def quix(bootstrap: str, rows: int, run_id: str, python: str) -> dict:
    import subprocess

    import kafkaml

    source, sink = f"bench-ksql-source-{run_id}", f"bench-quix-sink-{run_id}"
    create(bootstrap, sink)
    run = subprocess.run(
        [python, __file__, "--worker", "quix", bootstrap, source, sink, str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    written = kafkaml.read_topic(bootstrap, sink, format="json").num_rows
    if written < rows:
        raise SystemExit(f"quixstreams wrote {written:,} of {rows:,} rows")
    result["rows_per_s"] = rows / result["seconds"]
    print(f"quixstreams: {result['rows_per_s']:,.0f} rows/s ({result['seconds']:.1f} s)")
    return result


def sensor_model(path: Path) -> None:
    """A Keras autoencoder over 210 readings (the talk's sensor width), frozen to a graph."""
    import kafkaml
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(5)
    base = 5 + np.sin(np.linspace(0, 3, WIDTH))
    train = (base[None, :] + rng.normal(0, 0.05, size=(2048, WIDTH))).astype(np.float32)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(WIDTH,)),
            tf.keras.layers.Dense(64, activation="tanh"),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(64, activation="tanh"),
            tf.keras.layers.Dense(WIDTH),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(train, train, epochs=5, batch_size=128, verbose=0)
    kafkaml.export.freeze_keras(model, path)


def model_udf(bootstrap: str, events: int, run_id: str, model_path: Path) -> dict:
    import kafkaml
    import numpy as np
    import pyarrow as pa
    from kafkaml.ksql import LocalKsql, model_udf

    source, scorer_sink, engine_sink = (f"bench-udf-{k}-{run_id}" for k in ("events", "scorer", "engine"))
    create(bootstrap, source, scorer_sink, engine_sink)
    rng = np.random.default_rng(9)
    base = 5 + np.sin(np.linspace(0, 3, WIDTH))
    readings = base[None, :] + rng.normal(0, 0.1, size=(events, WIDTH))
    text = ["#".join(f"{v:.2f}" for v in row) for row in readings]
    table = pa.table({"eventid": np.arange(events, dtype=np.int64), "sensorinput": text})
    kafkaml.write_topic(bootstrap, source, table, format="delimited")
    model = kafkaml.Model.load(model_path)

    scorer = kafkaml.StreamScorer(
        bootstrap,
        source,
        scorer_sink,
        model,
        features="sensorinput",
        separator="#",
        id_columns=["eventid"],
        threshold=3.0,
        group_id=f"bench-scorer-{run_id}",
        format="csv",
        schema=["eventid BIGINT", "sensorinput STRING"],
    )
    with Timer() as scored:
        stats = scorer.run(until=events)
    assert stats["produced"] == events, stats

    with LocalKsql(bootstrap, udfs={"ANOMALY": model_udf(model)}) as ksql, ksql.client() as client:
        client.ksql(
            f"CREATE STREAM carsensor (eventid bigint, sensorinput varchar) WITH (kafka_topic='{source}', value_format='DELIMITED');"
        )
        client.set("auto.offset.reset", "earliest")
        with Timer() as engine:
            client.ksql(
                f"CREATE STREAM scored WITH (kafka_topic='{engine_sink}', value_format='JSON') AS SELECT EVENTID, ANOMALY(SENSORINPUT) AS SCORE FROM carsensor;"
            )
            queries = ksql.wait_for_queries(timeout=3600)
    (progress,) = queries.values()
    assert progress["records_out"] == events, progress
    result = {
        "events": events,
        "width": WIDTH,
        "scorer_events_per_s": events / scored.seconds,
        "engine_events_per_s": events / engine.seconds,
    }
    result["engine_vs_scorer"] = result["engine_events_per_s"] / result["scorer_events_per_s"]
    print(
        f"ANOMALY UDF: engine {result['engine_events_per_s']:,.0f} events/s, StreamScorer "
        f"{result['scorer_events_per_s']:,.0f} events/s: {100 * result['engine_vs_scorer']:.0f}% (target >= 50%)"
    )
    return result


def push_latency(bootstrap: str, rate: int, run_id: str, seconds: float = 10.0) -> dict:
    import numpy as np
    from confluent_kafka import Producer
    from kafkaml.ksql import LocalKsql

    source = f"bench-push-{run_id}"
    create(bootstrap, source, partitions=1)
    arrivals: dict[int, float] = {}
    sent: dict[int, float] = {}
    total = int(rate * seconds)
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(f"CREATE STREAM ticks (n BIGINT, v DOUBLE) WITH (kafka_topic='{source}', value_format='JSON');")
        query = client.query(
            "SELECT n, v * 2 AS doubled FROM ticks EMIT CHANGES;", limit=total, endpoint="query-stream"
        )

        def read() -> None:
            for row in query:
                arrivals[row["N"]] = time.perf_counter()

        reader = threading.Thread(target=read)
        reader.start()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.0005, due - now))
            sent[n] = time.perf_counter()
            producer.produce(source, json.dumps({"N": n, "V": float(n)}).encode())
            producer.poll(0)
        producer.flush(30)
        reader.join(timeout=60)
    latencies = np.array([arrivals[n] - sent[n] for n in sent if n in arrivals]) * 1000
    result = {
        "rate_per_s": rate,
        "events": total,
        "received": len(latencies),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }
    print(
        f"push query at {rate:,}/s: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms ({len(latencies):,} of {total:,} rows)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the persistent query")
    parser.add_argument("--events", type=int, default=100_000, help="sensor events for the UDF")
    parser.add_argument("--rate", type=int, default=1_000, help="events per second for the push latency")
    parser.add_argument("--model", type=Path, default=None, help="a 210-wide autoencoder (.pb); trained if absent")
    parser.add_argument("--quix-python", default=None, help="a Python with quixstreams installed (the peer)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _, bootstrap, source, sink, rows = args.worker
        print(json.dumps(worker_quix(bootstrap, source, sink, int(rows))))
        return
    run_id = uuid.uuid4().hex[:8]
    with kafka_broker() as bootstrap:
        results = {"machine": machine()}
        results["persistent_query"] = persistent_query(bootstrap, args.rows, run_id)
        if args.quix_python:
            results["quixstreams"] = quix(bootstrap, args.rows, run_id, args.quix_python)
            ratio = results["persistent_query"]["engine_rows_per_s"] / results["quixstreams"]["rows_per_s"]
            results["engine_vs_quixstreams"] = ratio
            print(f"the engine / quixstreams on the same pipeline: {ratio:.1f}x rows/s")
        model_path = args.model or Path(f"/tmp/bench-sensor-{run_id}.pb")
        if args.model is None:
            sensor_model(model_path)
        results["model_udf"] = model_udf(bootstrap, args.events, run_id, model_path)
        results["push_query"] = push_latency(bootstrap, args.rate, run_id)
        results["peak_rss_mb"] = peak_rss_mb()
        print(f"saved {save('ksql_engine', results)}")


if __name__ == "__main__":
    main()
