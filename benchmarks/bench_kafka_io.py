"""Kafka -> numpy and Arrow -> Kafka, kafkaml side by side with confluent-kafka, in one run.

    python benchmarks/bench_kafka_io.py [--messages 1000000]

The same topics of credit-card rows (Time, V1..V28, Amount, Class: 31 numbers) on a real
broker, as JSON and as CSV,read into a float32 numpy matrix by
  (a) kafkaml: read_matrix(...), decoding in Rust straight into the matrix; and, as the
      table route, read_topic(...) + to_numpy(...);
  (b) confluent-kafka: consume() + json.loads / str.split + numpy, the talk's route;
  (c) librdkafka polling every message without decoding (examples/raw_consume.rs): the ceiling,
      with its batch API (its fastest way; the one-at-a-time poll is shown too).
Each reader runs in a fresh process so its peak memory is its own; every reader and writer
runs --repeat times (3) in rounds, and its fastest run counts. Writing is compared too:
kafkaml.write_topic vs a confluent-kafka produce loop with json.dumps.
Prints msgs/s and ratios; saves benchmarks/results/kafka_io.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    Timer,
    broker_cpu_seconds,
    cpu_seconds,
    fastest,
    kafka_broker,
    machine,
    peak_rss_mb,
    run_worker,
    save,
    settle,
)

FIELDS = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
DECLARATIONS = ", ".join(f"{name} DOUBLE" for name in FIELDS)
PARTITIONS = 3


# ---------------- workers (each in a fresh process) ----------------


def worker_kafkaml(bootstrap: str, topic: str, fmt: str, route: str) -> dict:
    import kafkaml

    settle()
    cpu_before = cpu_seconds()
    with Timer() as t:
        if route == "matrix":
            matrix = kafkaml.read_matrix(bootstrap, topic, format=fmt, schema=DECLARATIONS, columns=FIELDS)
        else:
            table = kafkaml.read_topic(bootstrap, topic, format=fmt, schema=DECLARATIONS)
            matrix = kafkaml.to_numpy(table, columns=FIELDS, dtype="float32")
    return {
        "rows": matrix.shape[0],
        "seconds": t.seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "peak_rss_mb": peak_rss_mb(),
        "matrix_mb": matrix.nbytes / 2**20,
        "checksum": float(matrix[:, 0].astype(np.float64).sum()),
    }


def worker_confluent(bootstrap: str, topic: str, fmt: str) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    settle()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-confluent", "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    total = 0
    assignment = []
    for p in parts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
        assignment.append(TopicPartition(topic, p, low))
    rows: list = []
    cpu_before = cpu_seconds()
    with Timer() as t:
        consumer.assign(assignment)
        while len(rows) < total:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error():
                    continue
                if fmt == "json":
                    record = json.loads(message.value())
                    rows.append([record[name] for name in FIELDS])
                else:
                    rows.append([float(v) for v in message.value().split(b",")])
        matrix = np.array(rows, dtype=np.float32)
    cpu = cpu_seconds() - cpu_before
    consumer.close()
    return {
        "rows": matrix.shape[0],
        "seconds": t.seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "checksum": float(matrix[:, 0].astype(np.float64).sum()),
    }


def raw_ceiling(bootstrap: str, topic: str, per_message: bool = False) -> dict:
    env_target = {"CARGO_TARGET_DIR": str(Path.home() / ".cache" / "kafkaml" / "target")}
    import os

    if per_message:
        env_target["RAW_PER_MESSAGE"] = "1"

    done = subprocess.run(
        [
            "cargo",
            "run",
            "--quiet",
            "--release",
            "--no-default-features",
            "--example",
            "raw_consume",
            "--",
            bootstrap,
            topic,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env_target},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rows": result["messages"], "seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"]}


# ---------------- producing ----------------


def produce_all(bootstrap: str, messages: int, repeat: int) -> tuple[dict, dict[str, str]]:
    """Writes the rows as JSON and CSV with kafkaml and as JSON with a confluent-kafka loop,
    each ``repeat`` times (in rounds, to fresh topics; the fastest counts). Returns the
    write figures and the first round's topics, which the readers read."""
    import kafkaml
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafkaml.datasets import credit_card_transactions

    table = credit_card_transactions(messages, seed=7).cast(kafkaml.parse_columns(DECLARATIONS))
    records = table.to_pylist()  # the Python way starts from Python rows
    suffix = f"{messages}-{np.random.default_rng().integers(1 << 30)}"
    rounds = [
        {
            "json": f"bench-json-{suffix}-{r}",
            "csv": f"bench-csv-{suffix}-{r}",
            "json_confluent": f"bench-json-ck-{suffix}-{r}",
        }
        for r in range(repeat)
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topics = [NewTopic(t, PARTITIONS, 1) for topics in rounds for t in topics.values()]
    for future in admin.create_topics(new_topics).values():
        future.result()

    def confluent_write(topic: str) -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "queue.buffering.max.messages": 500_000})
        for record in records:
            while True:
                try:
                    producer.produce(topic, json.dumps(record).encode())
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush()

    seconds: dict[str, list[float]] = {"kafkaml_write_json": [], "kafkaml_write_csv": [], "confluent_produce_json": []}
    for topics in rounds:
        for name, write in (
            ("kafkaml_write_json", lambda: kafkaml.write_topic(bootstrap, topics["json"], table, format="json")),
            ("kafkaml_write_csv", lambda: kafkaml.write_topic(bootstrap, topics["csv"], table, format="csv")),
            ("confluent_produce_json", lambda: confluent_write(topics["json_confluent"])),
        ):
            with Timer() as t:
                write()
            seconds[name].append(t.seconds)
    results: dict = {f"{name}_msgs_s": messages / min(s) for name, s in seconds.items()}
    results["all_seconds"] = seconds
    return results, rounds[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader and writer; the fastest counts")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "BOOTSTRAP", "TOPIC", "FORMAT"))
    args = parser.parse_args()
    if args.worker:
        kind, bootstrap, topic, fmt = args.worker
        if kind.startswith("kafkaml"):
            result = worker_kafkaml(bootstrap, topic, fmt, route="matrix" if kind == "kafkaml_matrix" else "table")
        else:
            result = worker_confluent(bootstrap, topic, fmt)
        print(json.dumps(result))
        return

    with kafka_broker() as bootstrap:
        writing, topics = produce_all(bootstrap, args.messages, args.repeat)
        me = Path(__file__)
        readers = {
            "kafkaml_json": lambda: run_worker(me, "kafkaml_matrix", bootstrap, topics["json"], "json"),
            "kafkaml_json_table": lambda: run_worker(me, "kafkaml", bootstrap, topics["json"], "json"),
            "confluent_json": lambda: run_worker(me, "confluent", bootstrap, topics["json"], "json"),
            "kafkaml_csv": lambda: run_worker(me, "kafkaml_matrix", bootstrap, topics["csv"], "csv"),
            "kafkaml_csv_table": lambda: run_worker(me, "kafkaml", bootstrap, topics["csv"], "csv"),
            "confluent_csv": lambda: run_worker(me, "confluent", bootstrap, topics["csv"], "csv"),
            "raw_json": lambda: raw_ceiling(bootstrap, topics["json"]),
            "raw_csv": lambda: raw_ceiling(bootstrap, topics["csv"]),
            "raw_csv_one_by_one": lambda: raw_ceiling(bootstrap, topics["csv"], per_message=True),
        }
        # Every reader runs --repeat times, in rounds (so a slow spell of the shared machine
        # touches all of them alike); each keeps its fastest run and lists all.
        runs: dict[str, list[dict]] = {name: [] for name in readers}
        for _ in range(args.repeat):
            for name, read in readers.items():
                # The broker's CPU over the whole worker (its start and imports too: the
                # broker is idle then). Reader and broker share the machine's cores.
                broker_before = broker_cpu_seconds()
                result = read()
                broker_after = broker_cpu_seconds()
                if broker_before is not None and broker_after is not None:
                    result["broker_cpu_seconds"] = broker_after - broker_before
                runs[name].append(result)
        reads = {name: fastest(rs) for name, rs in runs.items()}
    for name, r in reads.items():
        r["msgs_s"] = r["rows"] / r["seconds"]
        assert r["rows"] == args.messages, f"{name} read {r['rows']} of {args.messages}"
    for fmt in ("json", "csv"):
        for ours in (f"kafkaml_{fmt}", f"kafkaml_{fmt}_table"):
            if abs(reads[ours]["checksum"] - reads[f"confluent_{fmt}"]["checksum"]) > 1e-3 * args.messages:
                raise SystemExit(f"{fmt}: {ours} and confluent-kafka read different data")

    ratios = {
        "json_kafkaml_vs_confluent": reads["kafkaml_json"]["msgs_s"] / reads["confluent_json"]["msgs_s"],
        "csv_kafkaml_vs_confluent": reads["kafkaml_csv"]["msgs_s"] / reads["confluent_csv"]["msgs_s"],
        "csv_kafkaml_vs_raw_ceiling": reads["kafkaml_csv"]["msgs_s"] / reads["raw_csv"]["msgs_s"],
        "json_kafkaml_vs_raw_ceiling": reads["kafkaml_json"]["msgs_s"] / reads["raw_json"]["msgs_s"],
        "json_table_kafkaml_vs_confluent": reads["kafkaml_json_table"]["msgs_s"] / reads["confluent_json"]["msgs_s"],
        "csv_table_kafkaml_vs_raw_ceiling": reads["kafkaml_csv_table"]["msgs_s"] / reads["raw_csv"]["msgs_s"],
        "csv_kafkaml_vs_raw_one_by_one": reads["kafkaml_csv"]["msgs_s"] / reads["raw_csv_one_by_one"]["msgs_s"],
        "write_json_kafkaml_vs_confluent": writing["kafkaml_write_json_msgs_s"]
        / writing["confluent_produce_json_msgs_s"],
        # The ceiling's runs vary most (0.5-1.0 s): each round's kafkaml run against that round's.
        "csv_vs_raw_ceiling_by_round": [
            raw / ours for ours, raw in zip(reads["kafkaml_csv"]["all_seconds"], reads["raw_csv"]["all_seconds"])
        ],
    }
    budget = 2 * reads["kafkaml_json"]["matrix_mb"] + 300
    print(
        f"\n{args.messages:,} credit-card messages, {PARTITIONS} partitions, real Kafka broker, "
        f"best of {args.repeat} runs per reader"
    )
    print(f"{'reader':<20}{'msgs/s':>14}{'seconds':>10}{'peak RSS MB':>14}{'reader CPU s':>14}{'broker CPU s':>14}")
    for name, r in reads.items():
        print(
            f"{name:<20}{r['msgs_s']:>14,.0f}{r['seconds']:>10.2f}{r.get('peak_rss_mb', float('nan')):>14.0f}"
            f"{r['cpu_seconds']:>14.2f}{r.get('broker_cpu_seconds', float('nan')):>14.2f}"
        )
    print(
        f"\nwrite: kafkaml json {writing['kafkaml_write_json_msgs_s']:,.0f} msgs/s, csv "
        f"{writing['kafkaml_write_csv_msgs_s']:,.0f} msgs/s; confluent-kafka + json.dumps "
        f"{writing['confluent_produce_json_msgs_s']:,.0f} msgs/s"
    )
    print("\nratios (target):")
    print(f"  JSON read, kafkaml / confluent-kafka+json.loads: {ratios['json_kafkaml_vs_confluent']:.1f}x (>= 10x)")
    print(
        f"  CSV read, kafkaml / raw librdkafka ceiling:      {ratios['csv_kafkaml_vs_raw_ceiling']:.0%} (>= 50%); "
        f"round by round: {', '.join(f'{r:.0%}' for r in ratios['csv_vs_raw_ceiling_by_round'])}"
    )
    print(f"  CSV read, kafkaml / confluent-kafka+split:       {ratios['csv_kafkaml_vs_confluent']:.1f}x")
    print(
        f"  table route (read_topic + to_numpy): JSON {ratios['json_table_kafkaml_vs_confluent']:.1f}x confluent-kafka, "
        f"CSV {ratios['csv_table_kafkaml_vs_raw_ceiling']:.0%} of the ceiling"
    )
    print(f"  CSV read, kafkaml / ceiling polling one message at a time: {ratios['csv_kafkaml_vs_raw_one_by_one']:.0%}")
    print(
        f"  JSON write, kafkaml / confluent-kafka+json.dumps: {ratios['write_json_kafkaml_vs_confluent']:.1f}x (>= 5x)"
    )
    print(
        f"  peak memory, kafkaml JSON read: {reads['kafkaml_json']['peak_rss_mb']:.0f} MB "
        f"(table route {reads['kafkaml_json_table']['peak_rss_mb']:.0f} MB; "
        f"budget 2 x {reads['kafkaml_json']['matrix_mb']:.0f} MB matrix + 300 MB = {budget:.0f} MB)"
    )
    path = save(
        "kafka_io",
        {
            "messages": args.messages,
            "partitions": PARTITIONS,
            "repeat": args.repeat,
            "machine": machine(),
            "reads": reads,
            "writing": writing,
            "ratios": ratios,
            "memory_budget_mb": budget,
        },
    )
    print(f"\nsaved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
