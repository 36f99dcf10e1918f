"""The embedded KSQL engine's stateful queries (issue 19) on a real broker, side by side with
the same pipelines in quixstreams, in one run on the same data.

    python benchmarks/bench_ksql_stateful.py [--events 1000000] [--keys 10000] [--users 100000]
        [--quix-python /tmp/qx/bin/python]

Data: --events car-sensor events (JSON, keyed by car, 4 partitions) with an event time TS one
millisecond apart, each naming one of --users owners; a users table of --users rows.

1. Windowed aggregate: ``CREATE TABLE ... AS SELECT car_id, COUNT(*), AVG(sensor_value) FROM
   events WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY car_id``, timed from the statement until the
   query has read its source to the end (``wait_for_queries``); its state per group and window
   (the changelog's bytes per key).
2. Stream-table join: ``CREATE STREAM ... AS SELECT ... FROM events e LEFT JOIN users u ON
   e.owner_id = u.user_id`` against the --users table, timed the same way.
3. Stateless: ``CREATE STREAM ... AS SELECT`` (a projection) over the same events: the engine's
   part-1 rate the stateful queries are compared with (target: >= 50 % of it).

With --quix-python (a Python with quixstreams installed; it pins confluent-kafka < 2.13, so
its own environment: ``python -m venv /tmp/qx && /tmp/qx/bin/pip install quixstreams``), the
same windowed aggregate (``tumbling_window(60 s).agg(Count, Mean).current()``) and join
(``join_asof`` on the users table, left) run there, and engine / quixstreams ratios are
printed (target: >= 5x). Peak memory: this process's (the engine runs in it) and the worker's.
Results go to benchmarks/results/ksql_stateful.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, kafka_broker, machine, peak_rss_mb, save  # noqa: E402

PARTITIONS = 4
BASE_MS = 1_700_000_000_000
WINDOW_MS = 60_000
# A quixstreams run stops when no record came for this long (a stall, not the end).
IDLE_S = 60


def create(bootstrap: str, *names: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=60)


def write_data(bootstrap: str, events_topic: str, users_topic: str, events: int, keys: int, users: int) -> None:
    import kafkaml
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(11)
    user_ids = [f"u{i}" for i in range(users)]
    kafkaml.write_topic(
        bootstrap,
        users_topic,
        pa.table(
            {"USER_ID": user_ids, "NAME": [f"owner {i}" for i in range(users)], "TIER": rng.integers(0, 3, users)}
        ),
        format="json",
        key="USER_ID",
    )
    car = rng.integers(0, keys, events)
    table = pa.table(
        {
            "CAR_ID": [f"car-{c}" for c in car],
            "OWNER_ID": [user_ids[c % users] for c in car],
            "SENSOR_VALUE": rng.normal(70.0, 5.0, events),
            "TS": BASE_MS + np.arange(events, dtype=np.int64),
        }
    )
    kafkaml.write_topic(bootstrap, events_topic, table, format="json", key="CAR_ID", timeout=120)
    print(f"wrote {events:,} events over {keys:,} cars and {users:,} users")


def engine_run(bootstrap: str, statements: list[str], timed: str) -> tuple[float, dict]:
    from kafkaml.ksql import LocalKsql

    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.set("auto.offset.reset", "earliest")
        for statement in statements:
            client.ksql(statement)
        with Timer() as timer:
            client.ksql(timed)
            queries = ksql.wait_for_queries(timeout=3600)
    return timer.seconds, queries


def declarations(events_topic: str, users_topic: str) -> list[str]:
    return [
        f"CREATE STREAM events (car_id STRING KEY, owner_id STRING, sensor_value DOUBLE, ts BIGINT) "
        f"WITH (kafka_topic='{events_topic}', value_format='JSON', timestamp='ts');",
        f"CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, tier INT) "
        f"WITH (kafka_topic='{users_topic}', value_format='JSON');",
    ]


def changelog_bytes_per_key(bootstrap: str, queries: dict) -> float | None:
    """The latest changelog record's value size, averaged over keys (group and window)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    (query_id,) = queries
    names = [t for t in topics if t.endswith(f"query_{query_id}-Aggregate-Aggregate-Materialize-changelog")]
    if not names:
        return None
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    latest: dict[bytes, int] = {}
    for partition in topics[names[0]].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(names[0], partition), timeout=30)
        if high <= low:
            continue
        consumer.assign([TopicPartition(names[0], partition, low)])
        read = low
        while read < high:
            message = consumer.poll(5)
            if message is None or message.error():
                continue
            read = message.offset() + 1
            if message.key() and message.key()[:1] == b"G":
                latest[message.key()] = len(message.value() or b"")
    consumer.close()
    live = [size for size in latest.values() if size]
    return sum(live) / len(live) if live else None


def worker_quix(bootstrap: str, kind: str, events_topic: str, users_topic: str, sink: str, events: int) -> dict:
    """The same pipeline as a quixstreams application (run by --quix-python)."""
    import tempfile
    import time as clock

    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Mean

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
    )
    event_time = lambda value, headers, timestamp, kind: value["TS"]  # noqa: E731
    source = app.topic(events_topic, value_deserializer="json", key_deserializer="str", timestamp_extractor=event_time)
    out = app.topic(sink, value_serializer="json", key_serializer="str")
    frame = app.dataframe(source)
    if kind == "window":
        frame = frame.tumbling_window(duration_ms=WINDOW_MS).agg(n=Count(), mean=Mean("SENSOR_VALUE")).current()
    else:
        users = app.dataframe(app.topic(users_topic, value_deserializer="json", key_deserializer="str"))
        frame = frame.group_by("OWNER_ID", name="by-owner")
        frame = frame.join_asof(
            users, how="left", on_merge=lambda left, right: {**left, "NAME": (right or {}).get("NAME")}
        )
        frame = frame.apply(
            lambda row: {"CAR_ID": row["CAR_ID"], "SENSOR_VALUE": row["SENSOR_VALUE"], "NAME": row["NAME"]}
        )
    frame.to_topic(out)
    start = clock.perf_counter()
    # `count` counts outputs (one per event here); the idle timeout only guards a stall.
    app.run(count=events, collect=False, timeout=IDLE_S)
    seconds = clock.perf_counter() - start
    # VmHWM: ru_maxrss would include the parent's peak, kept across exec.
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"events": events, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def quix(python: str, *args: str) -> dict:
    run = subprocess.run([python, __file__, "--worker", *args], capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000, help="cars (aggregation keys)")
    parser.add_argument("--users", type=int, default=100_000, help="rows of the joined table")
    parser.add_argument("--quix-python", default=None, help="a Python with quixstreams installed (the peer)")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        bootstrap, kind, events_topic, users_topic, sink, events = args.worker
        print(json.dumps(worker_quix(bootstrap, kind, events_topic, users_topic, sink, int(events))))
        return
    run_id = uuid.uuid4().hex[:8]
    events_topic, users_topic = f"bench-stateful-events-{run_id}", f"bench-stateful-users-{run_id}"
    with kafka_broker() as bootstrap:
        create(bootstrap, events_topic, users_topic)
        write_data(bootstrap, events_topic, users_topic, args.events, args.keys, args.users)
        results: dict = {"machine": machine(), "events": args.events, "keys": args.keys, "users": args.users}
        ddl = declarations(events_topic, users_topic)

        seconds, queries = engine_run(
            bootstrap,
            ddl,
            f"CREATE TABLE per_car_{run_id} AS SELECT car_id, COUNT(*) AS n, AVG(sensor_value) AS mean "
            f"FROM events WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY car_id;",
        )
        window = {"seconds": seconds, "events_per_s": args.events / seconds}
        window["changelog_bytes_per_key"] = changelog_bytes_per_key(bootstrap, queries)
        results["windowed_aggregate"] = window
        print(
            f"windowed COUNT/AVG by car: {window['events_per_s']:,.0f} events/s ({seconds:.1f} s); "
            f"state {window['changelog_bytes_per_key'] or 0:.0f} bytes per group and window"
        )

        seconds, _ = engine_run(
            bootstrap,
            ddl,
            f"CREATE STREAM enriched_{run_id} AS SELECT e.owner_id, e.car_id, e.sensor_value, u.name "
            f"FROM events e LEFT JOIN users u ON e.owner_id = u.user_id;",
        )
        results["stream_table_join"] = {"seconds": seconds, "events_per_s": args.events / seconds}
        print(f"stream-table join ({args.users:,} users): {args.events / seconds:,.0f} events/s ({seconds:.1f} s)")

        seconds, _ = engine_run(
            bootstrap, ddl, f"CREATE STREAM projected_{run_id} AS SELECT car_id, sensor_value * 2 AS twice FROM events;"
        )
        stateless = args.events / seconds
        results["stateless"] = {"seconds": seconds, "events_per_s": stateless}
        for name in ("windowed_aggregate", "stream_table_join"):
            results[name]["vs_stateless"] = results[name]["events_per_s"] / stateless
        print(
            f"stateless projection: {stateless:,.0f} events/s; windowed aggregate at "
            f"{100 * results['windowed_aggregate']['vs_stateless']:.0f} %, join at "
            f"{100 * results['stream_table_join']['vs_stateless']:.0f} % of it (target >= 50 %)"
        )
        results["peak_rss_mb"] = peak_rss_mb()

        if args.quix_python:
            for kind, name in (("window", "windowed_aggregate"), ("join", "stream_table_join")):
                sink = f"bench-quix-{kind}-{run_id}"
                create(bootstrap, sink)
                peer = quix(args.quix_python, bootstrap, kind, events_topic, users_topic, sink, str(args.events))
                results[f"quixstreams_{name}"] = peer
                if "error" in peer:
                    print(f"quixstreams {name}: failed: {peer['error']}")
                    continue
                import kafkaml

                peer["written"] = kafkaml.read_topic(bootstrap, sink, format="json").num_rows
                if peer["written"] < args.events:
                    print(f"quixstreams {name}: wrote {peer['written']:,} of {args.events:,}; no ratio")
                    continue
                peer["events_per_s"] = args.events / peer["seconds"]
                ratio = results[name]["events_per_s"] / peer["events_per_s"]
                results[name]["vs_quixstreams"] = ratio
                print(
                    f"quixstreams {name}: {peer['events_per_s']:,.0f} events/s, peak {peer['peak_rss_mb']:.0f} MB; "
                    f"the engine / quixstreams: {ratio:.1f}x (target >= 5x)"
                )
        print(f"peak RSS of the engine's process: {results['peak_rss_mb']:.0f} MB")
        print(f"saved {save('ksql_stateful', results)}")


if __name__ == "__main__":
    main()
