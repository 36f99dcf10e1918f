"""Errors: malformed messages under both policies, an unreachable broker, unknown topics."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kafkaml
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from kafka_helpers import produce

ROWS = 60

AVRO_SCHEMA = {
    "type": "record",
    "name": "Row",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "x", "type": "double"},
    ],
}


def bare_avro(row: dict) -> bytes:
    """The Avro binary encoding of a Row datum (no framing), written out by hand."""

    def long(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while n > 0x7F:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    name = b"\x00" if row["name"] is None else b"\x02" + long(len(row["name"].encode())) + row["name"].encode()
    return long(row["id"]) + name + struct.pack("<d", row["x"])


@dataclass
class Case:
    """How one format encodes good rows, what its bad messages are, and how to read it."""

    format: str
    encode: Callable[[dict, str], bytes | str]
    bad: list[bytes | str]
    read_options: Callable[[Any], dict]


def row(i: int) -> dict:
    return {"id": i, "name": None if i % 4 == 0 else f"n{i}", "x": i / 4}


CASES = {
    "json": Case(
        "json",
        lambda r, topic: json.dumps(r),
        [
            '{"id": 7, "x": ',  # truncated
            "not json at all",
            '{"id": "seven", "x": 1.5}',  # does not fit the declared type
            '{"id": 1, "x": 1.0}{"id": 2, "x": 2.0}',  # two values in one message
        ],
        lambda registry: {"schema": "id BIGINT, name STRING, x DOUBLE"},
    ),
    "csv": Case(
        "csv",
        lambda r, topic: f"{r['id']},{r['name'] or ''},{r['x']}",
        ["5,too few", "x,not a number,1.0", '9,"unterminated,1.0', "1,a,2.0,one too many"],
        lambda registry: {"schema": "id BIGINT, name STRING, x DOUBLE"},
    ),
    "avro": Case(  # Confluent wire format through the Schema Registry double
        "avro",
        None,  # set per test: needs the registry
        [
            b"garbage without the magic byte",
            None,  # a truncated datum, made per test
            b"\x00\x00\x00\x03\xe7" + bare_avro(row(1)),  # schema id 999: unknown to the registry
        ],
        lambda registry: {"schema_registry": registry.url},
    ),
    "avro-bare": Case(  # bare datums, the writer's schema given
        "avro",
        lambda r, topic: bare_avro(r),
        [
            bare_avro(row(3))[:-3],  # cut inside the double
            bare_avro({"id": 4, "name": "four", "x": 1.0})[:3],  # cut inside the string
            bare_avro(row(5)) + b"\x01\x02",  # bytes left over
            b"\x02\x08",  # union index 4 of a 2-branch union
        ],
        lambda registry: {"schema": AVRO_SCHEMA},
    ),
}


@pytest.fixture(params=list(CASES))
def bad_topic(request, bootstrap: str, new_topic, confluent_producer, registry):
    """A 3-partition topic of ROWS good messages with the case's bad ones spread among them.

    Returns (case, topic, read options, good ids, {(partition, offset) of each bad message})."""
    case = CASES[request.param]
    topic = new_topic(partitions=3)
    encode, bad = case.encode, list(case.bad)
    if request.param == "avro":
        serializer = AvroSerializer(SchemaRegistryClient({"url": registry.url}), json.dumps(AVRO_SCHEMA))
        context = SerializationContext(topic, MessageField.VALUE)
        encode = lambda r, topic: serializer(r, context)  # noqa: E731
        bad[1] = serializer(row(2), context)[:-4]  # cut inside the double
    messages: list[bytes | str] = []
    bad_positions: list[int] = []
    good_ids: list[int] = []
    for i in range(ROWS):
        if i % 15 == 7 and len(bad_positions) < len(bad):
            bad_positions.append(len(messages))
            messages.append(bad[len(bad_positions) - 1])
        messages.append(encode(row(i), topic))
        good_ids.append(i)
    delivered = produce(confluent_producer, topic, messages)
    bad_places = {(delivered[p].partition, delivered[p].offset) for p in bad_positions}
    assert len(bad_places) == len(bad)
    return case, topic, case.read_options(registry), good_ids, bad_places


def test_raise_names_the_bad_message(bootstrap: str, bad_topic) -> None:
    case, topic, options, _, bad_places = bad_topic
    with pytest.raises(kafkaml.DecodeError) as caught:
        kafkaml.read_topic(bootstrap, topic, format=case.format, on_error="raise", **options)
    error = caught.value
    assert isinstance(error, kafkaml.KafkaMLError)
    assert error.topic == topic
    assert (error.partition, error.offset) in bad_places
    assert error.reason
    assert f"{topic}[{error.partition}]@{error.offset}" in str(error)


def test_raise_leaves_the_consumer_before_the_bad_message(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    messages = [json.dumps(row(i)) for i in range(ROWS)]
    messages[31] = '{"id": 31, "x": '
    delivered = produce(confluent_producer, topic, messages)
    bad = (delivered[31].partition, delivered[31].offset)
    options = {"schema": "id BIGINT, name STRING, x DOUBLE", "stop": "end"}
    with kafkaml.Consumer(bootstrap, topic, **options) as consumer:
        with pytest.raises(kafkaml.DecodeError) as first:
            consumer.read_all()
        # nothing of the failed batch was handed out: reading on meets the same message again
        with pytest.raises(kafkaml.DecodeError) as second:
            consumer.read_all()
    assert (first.value.partition, first.value.offset) == bad
    assert (second.value.topic, second.value.partition, second.value.offset) == (topic, *bad)
    # and a batch before the bad message is handed out whole
    with kafkaml.Consumer(bootstrap, topic, start={bad[0]: 0}, batch_size=1, **options) as consumer:
        good = []
        with pytest.raises(kafkaml.DecodeError):
            for batch in consumer:
                good.extend(batch.column("id").to_pylist())
    assert len(good) >= 1 and 31 not in good


def test_skip_returns_every_good_row_and_counts_the_bad(bootstrap: str, bad_topic) -> None:
    case, topic, options, good_ids, bad_places = bad_topic
    with kafkaml.Consumer(bootstrap, topic, format=case.format, stop="end", on_error="skip", **options) as consumer:
        table = consumer.read_all()
        errors = consumer.errors
        assert consumer.messages_read == ROWS + len(bad_places)
    assert sorted(table.column("id").to_pylist()) == good_ids
    assert [r for r in table.to_pylist() if r["id"] == 5] == [row(5)]
    assert errors.skipped == len(bad_places)
    assert bool(errors)
    assert {(f.partition, f.offset) for f in errors.recent} == bad_places
    assert all(f.topic == topic and f.reason for f in errors.recent)

    # read_topic takes the policy too, and a clean read has no errors
    assert (
        sorted(kafkaml.read_topic(bootstrap, topic, format=case.format, on_error="skip", **options)["id"].to_pylist())
        == good_ids
    )


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_bad_messages_across_decode_chunks_keep_their_coordinates(
    bootstrap: str, new_topic, confluent_producer, fmt: str
) -> None:
    # A batch of 6,000 messages is decoded in chunks of 1,024 on a second thread while it is
    # polled: failures and metadata must still line up with the messages they belong to.
    topic = new_topic(partitions=1)
    bad_offsets = {5, 1_500, 3_071, 5_999}  # in the 1st, 2nd, 3rd and last chunk
    encode = (lambda i: json.dumps({"id": i, "x": i / 4})) if fmt == "json" else (lambda i: f"{i},{i / 4}")
    messages = ['{"id": ' if i in bad_offsets else encode(i) for i in range(6_000)]
    produce(confluent_producer, topic, messages, partitions=1)
    options: dict[str, Any] = {"format": fmt, "schema": "id BIGINT, x DOUBLE", "stop": "end", "batch_size": 10_000}

    with kafkaml.Consumer(bootstrap, topic, on_error="skip", include_metadata=True, **options) as consumer:
        table = consumer.read_all()
        assert {f.offset for f in consumer.errors.recent} == bad_offsets
    assert table.num_rows == 6_000 - len(bad_offsets)
    assert table.column("id").to_pylist() == table.column("_offset").to_pylist()
    assert table.column("x").to_pylist() == [i / 4 for i in table.column("id").to_pylist()]

    with kafkaml.Consumer(bootstrap, topic, on_error="raise", **options) as consumer:
        with pytest.raises(kafkaml.DecodeError) as caught:
            consumer.read_all()
    assert (caught.value.partition, caught.value.offset) == (0, 5)


def test_skipping_truncated_avro_does_not_invent_nulls(bootstrap: str, new_topic, confluent_producer) -> None:
    # apache-avro reads an end of input inside a trailing union or string as null: a datum
    # cut there used to decode "successfully", its lost fields replaced by nulls.
    schema = {
        "type": "record",
        "name": "Note",
        "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None}],
    }
    topic = new_topic(partitions=1)
    whole = b"\x12" + b"\x02" + b"\x08" + b"nine"  # id 9, note "nine"
    produce(confluent_producer, topic, [whole, whole[:1], whole[:5]], partitions=1)
    with kafkaml.Consumer(bootstrap, topic, format="avro", schema=schema, stop="end", on_error="skip") as consumer:
        table = consumer.read_all()
        assert consumer.errors.skipped == 2
        assert {f.offset for f in consumer.errors.recent} == {1, 2}
        assert all("truncated" in f.reason for f in consumer.errors.recent)
    assert table.to_pylist() == [{"id": 9, "note": "nine"}]


def test_an_unreachable_broker_raises_kafka_error(new_topic) -> None:
    nowhere = "127.0.0.1:1"
    table = pa.table({"id": [1, 2, 3]})
    with pytest.raises(kafkaml.KafkaError) as consumer_error:
        kafkaml.Consumer(nowhere, "anything", timeout=2)
    with pytest.raises(kafkaml.KafkaError) as write_error:
        kafkaml.write_topic(nowhere, "anything", table, timeout=2)
    with pytest.raises(kafkaml.KafkaError):
        kafkaml.Producer(nowhere, "anything", timeout=2)
    for error in (consumer_error.value, write_error.value):
        assert isinstance(error, kafkaml.KafkaMLError)
        assert not isinstance(error, kafkaml.DeliveryError)
        assert nowhere in str(error)


def test_an_unknown_topic_raises_kafka_error_naming_it(bootstrap: str) -> None:
    missing = f"no-such-topic-{uuid.uuid4().hex}"
    with pytest.raises(kafkaml.KafkaError, match=missing):
        kafkaml.Consumer(bootstrap, missing, timeout=5)
    with pytest.raises(kafkaml.KafkaError, match=missing):
        kafkaml.read_topic(bootstrap, missing, timeout=5)


def test_bad_options_are_config_errors(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    with pytest.raises(kafkaml.ConfigError, match="on_error"):
        kafkaml.Consumer(bootstrap, topic, on_error="ignore")
    with pytest.raises(kafkaml.ConfigError, match="needs schema"):
        kafkaml.Consumer(bootstrap, topic, format="csv")
    with pytest.raises(kafkaml.ConfigError, match="unknown format"):
        kafkaml.Consumer(bootstrap, topic, format="xml")
    with pytest.raises(kafkaml.ConfigError):
        kafkaml.read_topic(bootstrap, topic, stop=None)
