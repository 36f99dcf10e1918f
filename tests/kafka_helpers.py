"""Plain helpers for the tests: producing and consuming with confluent-kafka, the peer client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka import TopicPartition


@dataclass(frozen=True)
class Delivered:
    """Where the broker put one message."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def produce(
    producer: ConfluentProducer,
    topic: str,
    values: Iterable[bytes | str | None],
    *,
    partitions: int = 3,
    keys: Iterable[bytes | str | None] | None = None,
    timestamps_ms: Iterable[int] | None = None,
) -> list[Delivered]:
    """Produces ``values`` round-robin over ``partitions`` (message i to partition i % n) and
    returns where each landed, in the order given. Fails on any delivery error."""
    values = list(values)
    keys = list(keys) if keys is not None else [None] * len(values)
    stamps = list(timestamps_ms) if timestamps_ms is not None else [0] * len(values)
    reports: list[Delivered | None] = [None] * len(values)
    errors: list[str] = []

    def report(index: int):
        def on_delivery(error, message):
            if error is not None:
                errors.append(f"message {index}: {error}")
                return
            reports[index] = Delivered(
                message.topic(),
                message.partition(),
                message.offset(),
                message.timestamp()[1],
                message.key(),
                message.value(),
            )

        return on_delivery

    for i, (value, key, stamp) in enumerate(zip(values, keys, stamps)):
        producer.produce(topic, value=value, key=key, partition=i % partitions, timestamp=stamp, on_delivery=report(i))
        producer.poll(0)
    left = producer.flush(30)
    assert left == 0, f"{left} messages still undelivered"
    assert not errors, errors
    return [r for r in reports if r is not None]


def consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Delivered]:
    """Reads ``count`` messages of ``topic`` from the start with confluent-kafka's consumer."""
    consumer = ConfluentConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"tests-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[Delivered] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == ConfluentKafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {message.error()}")
            got.append(
                Delivered(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    message.timestamp()[1],
                    message.key(),
                    message.value(),
                )
            )
    finally:
        consumer.close()
    assert len(got) == count, f"read {len(got)} of {count} messages of {topic}"
    return got


def message_count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` now (sum of high minus low watermarks)."""
    consumer = ConfluentConsumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex}"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str) -> list[Delivered]:
    """Every record of ``topic``, and a check that no more arrive."""
    count = message_count(bootstrap, topic)
    return consume(bootstrap, topic, count) if count else []
