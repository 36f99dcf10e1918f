"""Every format round-trips through a real broker: data written by kafkaml.write_topic and
data written by confluent-kafka's own producer read back equal with kafkaml.read_topic."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json

import kafkaml
import pyarrow as pa
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from kafka_helpers import consume, produce

ROWS = 300
UTC = dt.timezone.utc


def nested_table(rows: int = ROWS) -> pa.Table:
    """Scalars, nulls, a list column and a struct column with a nullable field."""
    ids = range(rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [None if i % 7 == 0 else f'name {i}, "quoted"' for i in ids],
            "score": [None if i % 5 == 0 else i / 8 - 3.3 for i in ids],
            "flag": [None if i % 11 == 0 else i % 2 == 0 for i in ids],
            "tags": pa.array(
                [None if i % 6 == 0 else [f"t{j}" for j in range(i % 4)] for i in ids], pa.list_(pa.string())
            ),
            "loc": pa.array(
                [None if i % 4 == 0 else {"lat": i / 3, "lon": None if i % 9 == 0 else -i / 7} for i in ids],
                pa.struct([("lat", pa.float64()), ("lon", pa.float64())]),
            ),
        }
    )


NESTED_DECLARATIONS = (
    "id BIGINT, name STRING, score DOUBLE, flag BOOLEAN, tags ARRAY<STRING>, loc STRUCT<lat DOUBLE, lon DOUBLE>"
)


def flat_table(rows: int = ROWS) -> pa.Table:
    """What a delimited line can hold: numbers, booleans, strings (with delimiters and
    quotes), a UTC timestamp, and nulls (empty fields)."""
    ids = range(rows)
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [None if i % 7 == 0 else f'Smith, "Anna" {i}' if i % 3 == 0 else f"user{i}" for i in ids],
            "score": [None if i % 5 == 0 else i / 8 - 3.3 for i in ids],
            "flag": [None if i % 11 == 0 else i % 2 == 0 for i in ids],
            "at": pa.array(
                [None if i % 13 == 0 else start + dt.timedelta(seconds=17 * i, milliseconds=i) for i in ids],
                pa.timestamp("ms", tz="UTC"),
            ),
        }
    )


def by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("id")


# ---------- JSON ----------


def test_json_written_by_kafkaml_reads_back_equal(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    table = nested_table()
    assert kafkaml.write_topic(bootstrap, topic, table, format="json") == ROWS

    inferred = kafkaml.read_topic(bootstrap, topic, format="json")
    assert inferred.schema == table.schema  # column order and nested types as written
    assert by_id(inferred).equals(table)

    declared = kafkaml.read_topic(bootstrap, topic, format="json", schema=NESTED_DECLARATIONS)
    assert by_id(declared).equals(table)


def test_json_written_by_confluent_reads_back_equal(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    table = nested_table()
    rows = table.to_pylist()
    # Half the messages leave out their null fields instead of writing null: both mean null.
    messages = [
        json.dumps(row if i % 2 else {k: v for k, v in row.items() if v is not None}) for i, row in enumerate(rows)
    ]
    produce(confluent_producer, topic, messages)

    declared = kafkaml.read_topic(bootstrap, topic, format="json", schema=NESTED_DECLARATIONS)
    assert by_id(declared).equals(table)
    inferred = kafkaml.read_topic(bootstrap, topic)
    assert by_id(inferred).to_pylist() == rows


# ---------- CSV (delimited) ----------


def test_csv_written_by_kafkaml_reads_back_equal(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    table = flat_table()
    assert kafkaml.write_topic(bootstrap, topic, table, format="csv") == ROWS
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema=table.schema)
    assert by_id(back).equals(table)


def test_csv_written_by_confluent_reads_back_equal(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    table = flat_table().drop_columns(["at"])
    lines = []
    for row in table.to_pylist():
        out = io.StringIO()
        fields = ["" if v is None else ("true" if v else "false") if isinstance(v, bool) else v for v in row.values()]
        csv.writer(out, lineterminator="").writerow(fields)
        lines.append(out.getvalue())
    assert any('"Smith, ""Anna""' in line for line in lines)  # the writer quoted what it had to
    produce(confluent_producer, topic, lines)

    back = kafkaml.read_topic(
        bootstrap, topic, format="csv", schema="id BIGINT, name VARCHAR, score DOUBLE, flag BOOLEAN"
    )
    assert by_id(back).equals(table)
    delimited = kafkaml.read_topic(bootstrap, topic, format="delimited", schema=table.schema)
    assert by_id(delimited).equals(table)


def test_csv_with_another_delimiter(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    table = flat_table(50)
    kafkaml.write_topic(bootstrap, topic, table, format="csv", delimiter=";")
    raw = kafkaml.read_topic(bootstrap, topic, format="raw")
    assert all(b";" in value for value in raw.column("value").to_pylist())
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema=table.schema, delimiter=";")
    assert by_id(back).equals(table)


def test_csv_single_column_with_nulls(bootstrap: str, new_topic) -> None:
    # A null in a one-column row must not become an empty message (which is no line at all).
    topic = new_topic(partitions=1)
    table = pa.table({"v": pa.array([1.5, None, 3.0, None], pa.float64())})
    kafkaml.write_topic(bootstrap, topic, table, format="csv")
    assert kafkaml.read_topic(bootstrap, topic, format="csv", schema=table.schema).equals(table)
    labels = pa.table({"at": pa.array([None, 1_700_000_000_000], pa.timestamp("ms", tz="UTC"))})
    kafkaml.write_topic(bootstrap, topic, labels, format="csv")
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema=labels.schema, start={0: 4})
    assert back.equals(labels)


# ---------- Avro ----------

AVRO_SCHEMA = {
    "type": "record",
    "name": "Reading",
    "namespace": "kafkaml.tests",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {
            "name": "loc",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Location",
                    "fields": [
                        {"name": "lat", "type": "double"},
                        {"name": "lon", "type": ["null", "double"], "default": None},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": None},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    ],
}


def avro_rows(rows: int = ROWS) -> list[dict]:
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    return [
        {
            "id": i,
            "name": None if i % 7 == 0 else f"name {i}",
            "score": None if i % 5 == 0 else i / 8 - 3.3,
            "tags": [f"t{j}" for j in range(i % 3)],
            "loc": None if i % 4 == 0 else {"lat": i / 3, "lon": None if i % 9 == 0 else -i / 7},
            "counts": {f"k{j}": i * j for j in range(i % 3)},
            "at": None if i % 13 == 0 else start + dt.timedelta(seconds=17 * i, milliseconds=i),
            "price": decimal.Decimal(i * 7 - 1000).scaleb(-2),
        }
        for i in range(rows)
    ]


def plain(rows: list[dict]) -> list[dict]:
    """pyarrow returns Avro maps as lists of pairs: back to dicts, for comparing."""
    return [{**row, "counts": dict(row["counts"]) if row["counts"] is not None else None} for row in rows]


def test_avro_written_by_confluent_reads_back_equal(bootstrap: str, new_topic, confluent_producer, registry) -> None:
    topic = new_topic(partitions=3)
    rows = avro_rows()
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry.url}), json.dumps(AVRO_SCHEMA))
    context = SerializationContext(topic, MessageField.VALUE)
    produce(confluent_producer, topic, [serializer(row, context) for row in rows])
    assert SchemaRegistryClient({"url": registry.url}).get_subjects() == [f"{topic}-value"]

    table = kafkaml.read_topic(bootstrap, topic, format="avro", schema_registry=registry.url)
    assert table.schema.field("loc").type == pa.struct(
        [pa.field("lat", pa.float64(), nullable=False), pa.field("lon", pa.float64())]
    )
    assert table.schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("price").type == pa.decimal128(9, 2)
    assert plain(by_id(table).to_pylist()) == rows


def test_avro_written_by_kafkaml_reads_back_equal_in_both_clients(bootstrap: str, new_topic, registry) -> None:
    source = new_topic(partitions=3)
    topic = new_topic(partitions=3)
    rows = avro_rows()
    # the Arrow table of the rows, typed by the Avro schema (through a bare-datum topic)
    kafkaml.write_topic(
        bootstrap, source, pa.Table.from_pylist(rows, schema=_arrow_schema()), format="avro", schema=AVRO_SCHEMA
    )
    table = by_id(kafkaml.read_topic(bootstrap, source, format="avro", schema=AVRO_SCHEMA))
    assert plain(table.to_pylist()) == rows

    # with a derived schema, registered under <topic>-value
    # the registry object itself does for schema_registry= (its .url)
    assert kafkaml.write_topic(bootstrap, topic, table, format="avro", schema_registry=registry) == ROWS
    assert SchemaRegistryClient({"url": registry.url}).get_subjects() == [f"{topic}-value"]
    back = by_id(kafkaml.read_topic(bootstrap, topic, format="avro", schema_registry=registry))
    assert back.equals(table)

    # confluent-kafka's deserializer sees the same values, logical types included
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    context = SerializationContext(topic, MessageField.VALUE)
    decoded = [deserializer(m.value, context) for m in consume(bootstrap, topic, ROWS)]
    assert sorted(decoded, key=lambda r: r["id"]) == rows


def _arrow_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            ("name", pa.string()),
            ("score", pa.float64()),
            pa.field("tags", pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=False),
            ("loc", pa.struct([pa.field("lat", pa.float64(), nullable=False), ("lon", pa.float64())])),
            pa.field("counts", pa.map_(pa.string(), pa.int64()), nullable=False),
            ("at", pa.timestamp("ms", tz="UTC")),
            pa.field("price", pa.decimal128(9, 2), nullable=False),
        ]
    )


def test_avro_with_the_writers_schema_given(bootstrap: str, new_topic, registry) -> None:
    topic = new_topic(partitions=3)
    rows = avro_rows(60)
    table = pa.Table.from_pylist(rows, schema=_arrow_schema())
    kafkaml.write_topic(bootstrap, topic, table, format="avro", schema=AVRO_SCHEMA, schema_registry=registry.url)
    latest = SchemaRegistryClient({"url": registry.url}).get_latest_version(f"{topic}-value")
    registered = json.loads(latest.schema.schema_str)
    assert registered["name"] == "Reading" and registered["namespace"] == "kafkaml.tests"
    price = next(f for f in registered["fields"] if f["name"] == "price")
    assert price["type"]["logicalType"] == "decimal"  # registered whole, logical types kept
    back = by_id(kafkaml.read_topic(bootstrap, topic, format="avro", schema_registry=registry.url))
    assert back.schema.field("price").type == pa.decimal128(9, 2)
    assert back.schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert plain(back.to_pylist()) == rows


# ---------- raw ----------


def test_raw_keys_and_values(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    values = [bytes([i % 256, 0, 255]) * (i % 4 + 1) for i in range(90)]
    keys = [None if i % 10 == 0 else f"k{i}".encode() for i in range(90)]
    delivered = produce(confluent_producer, topic, values, keys=keys)
    table = kafkaml.read_topic(bootstrap, topic, format="raw")
    expected = sorted(((d.partition, d.offset), d.key, d.value) for d in delivered)
    assert table.column("key").to_pylist() == [k for _, k, _ in expected]
    assert table.column("value").to_pylist() == [v for _, _, v in expected]
