"""The embedded KSQL engine's stateful queries (tables, aggregations, windows, joins, pull
queries) on the real Apache Kafka broker, through ``kafkaml.ksql.Client``: what the talk's KSQL
slides do, with exact counts after a restart of the engine.

No ksqlDB server runs here: ``LocalKsql`` is the server under test; ksqlDB's own cases for the
same statements run in ``test_ksql_conformance.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka_helpers import consume, produce
from kafkaml.ksql import Client, KsqlError, KsqlStatementError, LocalKsql

# Three cars' sensor events: car i sends 10 * (i + 1) events, spread over two 2-hour windows
# from BASE_MS (a window start; a timestamp of 0 would be "now" to the producer).
HOUR_MS = 3_600_000
BASE_MS = 1_699_999_200_000


def car_events(cars: int = 3) -> list[tuple[str, str, int]]:
    """(key, JSON value, timestamp): car i's events, half in the first window, half in the next."""
    events = []
    for car in range(cars):
        for n in range(10 * (car + 1)):
            window = n % 2
            timestamp = BASE_MS + window * 2 * HOUR_MS + n * 1000
            value = json.dumps({"CAR_ID": f"car-{car}", "SENSOR_VALUE": float(n)})
            events.append((f"car-{car}", value, timestamp))
    return events


def expected_windows(events: list[tuple[str, str, int]]) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for key, _, timestamp in events:
        start = timestamp // (2 * HOUR_MS) * 2 * HOUR_MS
        counts[(key, start)] = counts.get((key, start), 0) + 1
    return counts


def produce_events(producer: Any, topic: str, events: list[tuple[str, str, int]]) -> None:
    produce(
        producer,
        topic,
        [value for _, value, _ in events],
        keys=[key for key, _, _ in events],
        timestamps_ms=[timestamp for _, _, timestamp in events],
        partitions=1,
    )


def pull_counts(client: Any, table: str) -> dict[tuple[str, int], int]:
    rows = client.query(f"SELECT car_id, WINDOWSTART, events FROM {table};").to_pandas()
    return {(r.CAR_ID, int(r.WINDOWSTART)): int(r.EVENTS) for r in rows.itertuples()}


def declare_and_count(client: Any, source: str, table: str) -> None:
    """The slide's car_sensor stream over `source`, and `table`: its tumbling 2-hour count per car."""
    client.set("auto.offset.reset", "earliest")
    client.ksql(
        f"CREATE STREAM car_sensor (car_id STRING KEY, sensor_value DOUBLE) "
        f"WITH (kafka_topic='{source}', value_format='JSON');"
    )
    client.ksql(
        f"CREATE TABLE {table} AS SELECT car_id, COUNT(*) AS events FROM car_sensor "
        f"WINDOW TUMBLING (SIZE 120 MINUTES) GROUP BY car_id;"
    )


def test_a_windowed_count_is_exact_after_the_engine_restarts(
    bootstrap: str, new_topic: Any, confluent_producer: Any, admin: AdminClient
) -> None:
    """The slide's tumbling 2-hour count per car: the aggregation's state lives in a compacted
    changelog topic, so a second engine with the same service id resumes with it and the
    counts stay exact across the restart (pull queries read them); a third, after the changelog
    was deleted, reads the source again from its start and gets them right too."""
    source = new_topic(partitions=1)
    table = f"DETECT_{uuid.uuid4().hex[:8].upper()}"
    service_id = f"tables_{uuid.uuid4().hex[:8]}_"
    events = car_events()
    first_half, second_half = events[::2], events[1::2]
    with LocalKsql(bootstrap, service_id=service_id) as first, first.client() as client:
        declare_and_count(client, source, table)
        produce_events(confluent_producer, source, first_half)
        first.wait_for_queries(timeout=60)
        assert pull_counts(client, table) == expected_windows(first_half)
        query_id = next(iter(first.stats()["queries"]))
    changelog = f"_confluent-ksql-{service_id}query_{query_id}-Aggregate-Aggregate-Materialize-changelog"
    config = admin.describe_configs([ConfigResource("topic", changelog)])[ConfigResource("topic", changelog)]
    assert config.result(timeout=30)["cleanup.policy"].value == "compact"
    with LocalKsql(bootstrap, service_id=service_id) as second, second.client() as client:
        produce_events(confluent_producer, source, second_half)
        second.wait_for_queries(timeout=60)
        assert pull_counts(client, table) == expected_windows(events)
        one_car = client.query(f"SELECT * FROM {table} WHERE car_id = 'car-2';").to_pandas()
        assert sorted(one_car.EVENTS.tolist()) == [15, 15]
    # The changelog lost: the query reads its source again rather than count from nothing.
    for future in admin.delete_topics([changelog], operation_timeout=30).values():
        future.result(timeout=60)
    time.sleep(2)  # the deletion reaches the metadata
    with LocalKsql(bootstrap, service_id=service_id) as third, third.client() as client:
        more = car_events(cars=1)  # car-0 again: its windows would restart from 0 without the state
        produce_events(confluent_producer, source, more)
        third.wait_for_queries(timeout=60)
        assert pull_counts(client, table) == expected_windows(events + more)
    admin.delete_topics([f"_confluent-ksql-{service_id}_command_topic", table, changelog], operation_timeout=30)


def test_having_shows_a_car_from_its_sixth_event_with_exact_count_and_mean(
    bootstrap: str, new_topic: Any, confluent_producer: Any
) -> None:
    """`HAVING count(*) > 5` as on the slide: a car's row appears from its sixth event on (the
    sink holds the updates from then), and a pull query reads exact counts and means. (Rows that
    stop passing HAVING and aggregates over tables are covered by ksqlDB's own cases in
    test_ksql_conformance.py.)"""
    source = new_topic(partitions=1)
    table = f"BUSY_{uuid.uuid4().hex[:8].upper()}"
    events = car_events()
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.set("auto.offset.reset", "earliest")
        client.ksql(
            f"CREATE STREAM car_sensor (car_id STRING KEY, sensor_value DOUBLE) "
            f"WITH (kafka_topic='{source}', value_format='JSON');"
        )
        client.ksql(
            f"CREATE TABLE {table} AS SELECT car_id, COUNT(*) AS events, AVG(sensor_value) AS mean "
            f"FROM car_sensor GROUP BY car_id HAVING COUNT(*) > 5;"
        )
        produce_events(confluent_producer, source, events)
        ksql.wait_for_queries(timeout=60)
        rows = client.query(f"SELECT * FROM {table};").to_pandas().sort_values("CAR_ID")
        # car-0 has 10 events, car-1 20, car-2 30: all pass; their means are exact.
        assert rows.CAR_ID.tolist() == ["car-0", "car-1", "car-2"]
        assert rows.EVENTS.tolist() == [10, 20, 30]
        assert rows.MEAN.tolist() == [4.5, 9.5, 14.5]
        records = consume(bootstrap, table, count=30 + 20 + 10 - 3 * 5, timeout=60)
        assert all(r.value is not None for r in records)  # no car ever dropped below six


def test_the_slides_stream_table_join_enriches_cars_with_their_owners(
    bootstrap: str, new_topic: Any, confluent_producer: Any
) -> None:
    """The slide's `LEFT JOIN users u ON c.owner_id = u.user_id WHERE c.model = 'Luxury Car
    ABC'`, verbatim but for the topic names: a car whose owner is unknown gets NULLs, and an
    owner's later update changes only later cars (table updates emit nothing)."""
    cars, users = new_topic(partitions=1), new_topic(partitions=1)
    sink = f"CAR_SENSOR_{uuid.uuid4().hex[:8].upper()}"
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.set("auto.offset.reset", "earliest")
        client.ksql(
            f"CREATE STREAM car (car_id STRING, car_model STRING, owner_id STRING, model STRING) "
            f"WITH (kafka_topic='{cars}', value_format='JSON');"
        )
        client.ksql(
            f"CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING) "
            f"WITH (kafka_topic='{users}', value_format='JSON');"
        )
        produce(confluent_producer, users, [json.dumps({"NAME": "Ada"})], keys=["u1"], partitions=1)
        ksql.wait_for_queries(timeout=60)
        client.ksql(
            f"CREATE STREAM {sink} AS SELECT car_ID, car_model, owner_id value, name FROM car c "
            f"LEFT JOIN users u ON c.owner_id = u.user_id WHERE c.model = 'Luxury Car ABC';"
        )
        cars_json = [
            {"CAR_ID": "c1", "CAR_MODEL": "XYZ", "OWNER_ID": "u1", "MODEL": "Luxury Car ABC"},
            {"CAR_ID": "c2", "CAR_MODEL": "XYZ", "OWNER_ID": "u2", "MODEL": "Luxury Car ABC"},
            {"CAR_ID": "c3", "CAR_MODEL": "Van", "OWNER_ID": "u1", "MODEL": "Family Van"},
        ]
        produce(confluent_producer, cars, [json.dumps(c) for c in cars_json], partitions=1)
        got = consume(bootstrap, sink, count=2, timeout=60)
        values = [json.loads(m.value) for m in got]
        assert [m.key for m in got] == [b"u1", b"u2"]  # the key is the join key, as the projection names it
        assert values == [
            {"CAR_ID": "c1", "CAR_MODEL": "XYZ", "NAME": "Ada"},
            {"CAR_ID": "c2", "CAR_MODEL": "XYZ", "NAME": None},
        ]


def test_statements_part_two_does_not_cover_are_refused_by_name(bootstrap: str, new_topic: Any) -> None:
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(f"CREATE STREAM s (id INT, v DOUBLE) WITH (kafka_topic='{source}', value_format='JSON');")
        # N-way joins run now; one that repeats a source is refused, as ksqlDB refuses it.
        with pytest.raises(KsqlStatementError, match="N-way joins do not support multiple occurrences"):
            client.ksql(
                "CREATE STREAM j AS SELECT a.id FROM s a JOIN s b WITHIN 1 SECOND ON a.id = b.id "
                "JOIN s c WITHIN 1 SECOND ON a.id = c.id;"
            )
        client.ksql(
            f"CREATE TABLE t (id INT PRIMARY KEY, v DOUBLE) WITH (kafka_topic='{source}', value_format='JSON');"
        )
        with pytest.raises(KsqlError, match="isn't queryable"):
            client.query("SELECT * FROM t WHERE id = 1;").to_pandas()


def test_a_windowed_count_stays_exact_through_a_broker_restart_mid_stream(
    own_broker: tuple[str, dict[str, str]],
) -> None:
    """The broker (a real one of this test's own) restarts between two halves of the events:
    the query reconnects, writes its changelog and sink again, and the counts stay exact."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic

    address, env = own_broker
    own_admin = AdminClient({"bootstrap.servers": address})  # kept: a dropped client cancels its calls
    own_admin.create_topics([NewTopic("cars", 1, 1)])["cars"].result(timeout=60)
    producer = Producer({"bootstrap.servers": address, "enable.idempotence": True})
    events = car_events(cars=4)
    first_half, second_half = events[: len(events) // 2], events[len(events) // 2 :]
    with LocalKsql(address) as ksql, ksql.client() as client:
        declare_and_count(client, "cars", "DETECT")
        produce_events(producer, "cars", first_half)
        ksql.wait_for_queries(timeout=60)
        restart = subprocess.run(
            [str(Path(__file__).resolve().parents[1] / "scripts" / "kafka-server"), "restart"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert restart.returncode == 0, restart.stderr[-2000:]
        produce_events(producer, "cars", second_half)
        queries = ksql.wait_for_queries(timeout=240)
        assert all(q["error"] is None for q in queries.values()), queries
        assert pull_counts(client, "DETECT") == expected_windows(events)


def test_after_an_engine_kill_counts_are_over_by_at_most_the_records_since_its_last_commit(
    bootstrap: str, new_topic: Any, confluent_producer: Any, admin: AdminClient
) -> None:
    """`python -m kafkaml ksql-server` killed (SIGKILL) while it counts, then started again
    with the same service id: nothing is lost, and what was counted twice is at most what the
    killed server had read past its last committed offset (at-least-once)."""
    source = new_topic(partitions=1)
    service_id = f"kill_{uuid.uuid4().hex[:8]}_"
    table = f"KILLED_{uuid.uuid4().hex[:8].upper()}"
    events = car_events(cars=3) * 400  # 24,000 events, 400 per car and window slot
    produce_events(confluent_producer, source, events)
    command = [sys.executable, "-m", "kafkaml", "ksql-server", "--bootstrap", bootstrap, "--listen", "127.0.0.1:0"]
    command += ["--service-id", service_id]

    def serve() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        url = process.stdout.readline().strip().split()[-1]
        assert url.startswith("http"), url
        return process, url

    first, url = serve()
    try:
        with Client(url) as client:
            declare_and_count(client, source, table)
        # killed once the sink has some of the results, not all
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            marks = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"}).get_watermark_offsets(
                TopicPartition(table, 0), timeout=10
            )
            if marks[1] > 0:
                break
            time.sleep(0.01)
    finally:
        first.kill()
        first.wait(timeout=30)
    group = next(g.group_id for g in admin.list_consumer_groups().result().valid if service_id in g.group_id)
    (offsets,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    committed = sum(max(p.offset, 0) for p in offsets.result().topic_partitions)
    second, url = serve()
    try:
        with Client(url) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                counts = pull_counts(client, table)
                if sum(counts.values()) >= len(events):
                    break
                time.sleep(0.5)
    finally:
        second.terminate()
        second.wait(timeout=60)
    expected = expected_windows(events)
    assert set(counts) == set(expected)
    assert all(counts[window] >= n for window, n in expected.items()), "a count lost records"
    twice = sum(counts.values()) - len(events)
    assert 0 <= twice <= len(events) - committed, (twice, committed)
    admin.delete_topics([f"_confluent-ksql-{service_id}_command_topic", table], operation_timeout=30)
