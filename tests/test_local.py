"""LocalKafka(engine="mock"), librdkafka's in-process cluster: kafkaml and confluent-kafka both
work against it, and its limits are said (the default engine is tested in test_local_broker.py)."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import kafkaml
import pyarrow as pa
import pytest
from confluent_kafka import Producer as ConfluentProducer
from kafka_helpers import consume, produce


def test_local_kafka_round_trip_and_peer_client() -> None:
    table = pa.table({"id": pa.array(range(200), pa.int64()), "v": [i / 3 for i in range(200)]})
    with kafkaml.LocalKafka(engine="mock") as kafka:
        host, _, port = kafka.bootstrap_servers.partition(":")
        assert host and port.isdigit()
        assert str(kafka) == kafka.bootstrap_servers
        kafka.create_topic("readings", partitions=3)

        assert kafkaml.write_topic(kafka, "readings", table, config={"sticky.partitioning.linger.ms": 0}) == 200
        back = kafkaml.read_topic(kafka, "readings", include_metadata=True)
        assert back.select(["id", "v"]).sort_by("id").equals(table)
        assert set(back.column("_partition").to_pylist()) == {0, 1, 2}
        # the same snapshot twice
        assert back.equals(kafkaml.read_topic(kafka, "readings", include_metadata=True))

        # confluent-kafka produces to it and consumes from it
        producer = ConfluentProducer({"bootstrap.servers": kafka.bootstrap_servers})
        produce(producer, "readings", [json.dumps({"id": 1000 + i, "v": 0.5}) for i in range(30)])
        del producer
        consumed = consume(kafka.bootstrap_servers, "readings", 230)
        assert {m.partition for m in consumed} == {0, 1, 2}
        assert sorted(json.loads(m.value)["id"] for m in consumed) == [*range(200), *range(1000, 1030)]
        assert sorted(kafkaml.read_topic(kafka, "readings").column("id").to_pylist()) == [
            *range(200),
            *range(1000, 1030),
        ]

        # offsets by time are not something the mock cluster can do
        with pytest.raises(kafkaml.UnsupportedError, match="LocalKafka") as caught:
            kafkaml.read_topic(kafka, "readings", start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        assert isinstance(caught.value, kafkaml.KafkaMLError)

    assert "stopped" in repr(kafka)
    with pytest.raises(kafkaml.ClosedError, match="stopped") as closed:
        kafka.bootstrap_servers
    assert isinstance(closed.value, kafkaml.KafkaMLError)
    with pytest.raises(kafkaml.ClosedError, match="stopped"):
        kafka.create_topic("late")


def test_write_that_local_kafka_would_drop_warns_first() -> None:
    # ~6 MiB of JSON: more than the ~5 MiB the mock keeps of one partition.
    table = pa.table({"id": pa.array(range(3_000), pa.int64()), "text": ["x" * 2_000] * 3_000})
    with kafkaml.LocalKafka() as kafka, warnings.catch_warnings():
        warnings.simplefilter("error")  # the default engine keeps every message: no warning
        assert kafkaml.write_topic(kafka, "wide", table) == 3_000
        assert kafkaml.read_topic(kafka, "wide").num_rows == 3_000
    with kafkaml.LocalKafka(engine="mock") as kafka:
        with pytest.warns(UserWarning, match=r"create_topic\('wide', partitions=2\)"):
            kafkaml.write_topic(kafka, "wide", table)
        kafka.create_topic("roomy", partitions=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same rows spread over two partitions fit
            assert kafkaml.write_topic(kafka, "roomy", table) == 3_000


def test_local_kafka_consumer_group_resumes() -> None:
    # librdkafka's mock cluster ignores a member's LeaveGroup: the next member waits for the
    # old one's session to time out (45 s by default), so the sessions are kept short here.
    short_sessions = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}
    with kafkaml.LocalKafka(engine="mock") as kafka:
        kafka.create_topic("events", partitions=3)
        kafkaml.write_topic(kafka, "events", pa.table({"id": pa.array(range(90), pa.int64())}))
        with kafkaml.Consumer(
            kafka, "events", group_id="g", stop="end", batch_size=20, config=short_sessions
        ) as consumer:
            first = next(iter(consumer))
            assert consumer.commit() >= 1
        with kafkaml.Consumer(kafka, "events", group_id="g", stop="end", config=short_sessions) as consumer:
            rest = consumer.read_all()
    seen = first.column("id").to_pylist() + rest.column("id").to_pylist()
    assert sorted(seen) == list(range(90))


def test_local_kafka_topics_need_partitions() -> None:
    with kafkaml.LocalKafka(engine="mock") as kafka:
        with pytest.raises(kafkaml.ConfigError):
            kafka.create_topic("empty", partitions=0)
