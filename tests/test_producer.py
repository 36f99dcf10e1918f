"""The Producer class and write_topic on a real broker: repeated sends, keys, delivery failures."""

from __future__ import annotations

import json
from collections import defaultdict

import kafkaml
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from kafka_helpers import consume


def readings(rows: int, start: int = 0) -> pa.Table:
    ids = range(start, start + rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "user": [f"user-{i % 7}" for i in ids],
            "amount": [round(i * 1.5, 2) for i in ids],
        }
    )


def test_repeated_send_and_flush(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    with kafkaml.Producer(bootstrap, topic, format="json") as producer:
        delivered = []
        for chunk in range(4):
            assert producer.send(readings(25, start=25 * chunk)) == 25
            delivered.append(producer.flush())
        # a RecordBatch and a pandas frame are data too
        assert producer.send(readings(10, start=100).to_batches()[0]) == 10
        assert producer.send(readings(10, start=110).to_pandas()) == 10
    assert delivered == [25, 50, 75, 100]  # counted since the producer was made
    table = kafkaml.read_topic(bootstrap, topic)
    assert sorted(table.column("id").to_pylist()) == list(range(120))
    assert table.sort_by("id").equals(readings(120))


def test_closing_the_producer_delivers_what_was_sent(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    producer = kafkaml.Producer(bootstrap, topic, format="csv")
    producer.send(readings(50))
    producer.close()
    with pytest.raises(kafkaml.ClosedError, match="closed"):
        producer.send(readings(1))
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema=readings(1).schema)
    assert back.sort_by("id").equals(readings(50))


def test_key_column_becomes_the_message_key(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    with kafkaml.Producer(bootstrap, topic, key="user") as producer:
        producer.send(readings(70))
        producer.flush()
    messages = consume(bootstrap, topic, 70)
    partitions_of_key = defaultdict(set)
    for message in messages:
        value = json.loads(message.value)
        assert message.key == value["user"].encode()
        partitions_of_key[message.key].add(message.partition)
    assert len(partitions_of_key) == 7
    assert all(len(p) == 1 for p in partitions_of_key.values())  # one key, one partition

    # a numeric key column is written in its text form, and kafkaml reads keys back
    numeric = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, numeric, readings(20), key="id")
    table = kafkaml.read_topic(bootstrap, numeric, include_metadata=True)
    assert table.column("_key").to_pylist() == [str(i).encode() for i in table.column("id").to_pylist()]


def test_large_tables_keep_each_key_with_its_row(bootstrap: str, new_topic) -> None:
    # 20,000 rows are encoded in several slices (8,192 rows each): the keys, encoded for the
    # whole table at once, must still go with their own rows in the later slices.
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, readings(20_000), key="id", format="csv") == 20_000
    table = kafkaml.read_topic(bootstrap, topic, format="csv", schema=readings(1).schema, include_metadata=True)
    assert sorted(table.column("id").to_pylist()) == list(range(20_000))
    assert table.column("_key").to_pylist() == [str(i).encode() for i in table.column("id").to_pylist()]


def test_an_unknown_key_column_is_an_error(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    with pytest.raises(kafkaml.SchemaError, match="nope"):
        kafkaml.write_topic(bootstrap, topic, readings(3), key="nope")


def test_broker_rejecting_messages_raises_delivery_error(bootstrap: str, new_topic) -> None:
    # The topic accepts record batches of at most 200 bytes: the broker refuses these rows.
    topic = new_topic(partitions=1, config={"max.message.bytes": "200"})
    big = pa.table({"id": pa.array(range(5), pa.int64()), "padding": ["x" * 500] * 5})
    producer = kafkaml.Producer(bootstrap, topic, timeout=5)
    assert producer.send(big) == 5  # queued: the failure comes with the delivery reports
    with pytest.raises(kafkaml.DeliveryError) as caught:
        producer.flush()
    assert isinstance(caught.value, kafkaml.KafkaError)
    assert topic in str(caught.value)
    assert "5 message" in str(caught.value)
    assert "too large" in str(caught.value).lower()
    # small rows still go through on the same producer
    producer.send(pa.table({"id": pa.array([7], pa.int64())}))
    producer.close()

    with pytest.raises(kafkaml.DeliveryError):
        kafkaml.write_topic(bootstrap, topic, big, timeout=5)
    assert kafkaml.read_topic(bootstrap, topic).column("id").to_pylist() == [7]


def test_write_topic_takes_pandas_and_numpy(bootstrap: str, new_topic) -> None:
    frame = pd.DataFrame({"id": np.arange(40, dtype=np.int64), "v": np.linspace(0, 1, 40)})
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, frame) == 40
    back = kafkaml.read_topic(bootstrap, topic).sort_by("id").to_pandas()
    pd.testing.assert_frame_equal(back, frame)

    matrix = np.arange(60, dtype=np.float64).reshape(20, 3)
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, matrix, columns=["a", "b", "c"], format="csv") == 20
    table = kafkaml.read_topic(bootstrap, topic, format="csv", schema="a DOUBLE, b DOUBLE, c DOUBLE").sort_by("a")
    assert np.array_equal(kafkaml.to_numpy(table, dtype="float64"), matrix)
    with pytest.raises(kafkaml.SchemaError, match="columns"):
        kafkaml.write_topic(bootstrap, topic, matrix)
