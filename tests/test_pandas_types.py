"""pandas types through a real broker as pandas users expect them: datetimes with a named
time zone, naive datetimes and ISO-8601 text read back as timestamps, the index kept like
``pyarrow.Table.from_pandas`` keeps it."""

from __future__ import annotations

import json

import kafkaml
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from kafka_helpers import consume, produce

ROWS = 48
BERLIN = "Europe/Berlin"
# What kafkaml.formats::parse_dates makes of a text column (pandas' parse_dates).
PARSED_DATE = pa.timestamp("us", tz="UTC")


def zoned_frame(unit: str) -> pd.DataFrame:
    """Hourly instants across Berlin's spring clock change (+01:00 then +02:00), with
    digits down to the unit's last, and NaT."""
    start = pd.Timestamp("2024-03-30T20:00:00", tz="UTC")
    fraction = pd.Timedelta(nanoseconds=123_456_789 if unit == "ns" else 123_456_000)
    instants = [start + pd.Timedelta(hours=i) + fraction * (i % 2) for i in range(ROWS)]
    when = pd.Series(instants).dt.tz_convert(BERLIN).astype(f"datetime64[{unit}, {BERLIN}]")
    when[5] = pd.NaT
    return pd.DataFrame({"id": np.arange(ROWS, dtype=np.int64), "when": when, "v": np.arange(ROWS) / 4})


def by_id(table: pa.Table) -> pd.DataFrame:
    return table.sort_by("id").to_pandas()


# ---------- named time zones ----------


@pytest.mark.parametrize("unit", ["ns", "us"])
@pytest.mark.parametrize("format", ["json", "csv"])
def test_named_time_zone_round_trips_as_the_same_instants(bootstrap: str, new_topic, format: str, unit: str) -> None:
    topic = new_topic(partitions=3)
    frame = zoned_frame(unit)
    assert str(frame["when"].dtype) == f"datetime64[{unit}, {BERLIN}]"
    assert kafkaml.write_topic(bootstrap, topic, frame, format=format) == ROWS

    # each instant as ISO-8601 text with its own offset: winter time, then summer time
    texts = [m.value.decode() for m in consume(bootstrap, topic, ROWS)]
    assert any("+01:00" in t for t in texts) and any("+02:00" in t for t in texts), texts[:3]

    schema = pa.schema([("id", pa.int64()), ("when", pa.timestamp(unit, tz=BERLIN)), ("v", pa.float64())])
    back = by_id(kafkaml.read_topic(bootstrap, topic, format=format, schema=schema))
    assert str(back["when"].dtype) == f"datetime64[{unit}, {BERLIN}]"
    pd.testing.assert_frame_equal(back, frame)


def test_named_time_zone_in_message_keys(bootstrap: str, new_topic) -> None:
    # the zone is resolved wherever kafkaml prints a timestamp: message keys too
    topic = new_topic(partitions=1)
    frame = zoned_frame("us").iloc[:3]
    kafkaml.write_topic(bootstrap, topic, frame, format="json", key="when")
    keys = [m.key.decode() for m in consume(bootstrap, topic, len(frame))]
    assert keys == ["2024-03-30T21:00:00+01:00", "2024-03-30T22:00:00.123456+01:00", "2024-03-30T23:00:00+01:00"]


# ---------- naive datetimes, declared as timestamps ----------


@pytest.mark.parametrize("format", ["json", "csv"])
def test_naive_datetimes_round_trip_with_a_pyarrow_schema(bootstrap: str, new_topic, format: str) -> None:
    topic = new_topic(partitions=2)
    frame = zoned_frame("ns")
    frame["when"] = frame["when"].dt.tz_localize(None)  # wall-clock times, no zone
    kafkaml.write_topic(bootstrap, topic, frame, format=format)
    texts = [m.value.decode() for m in consume(bootstrap, topic, ROWS)]
    assert not any("+0" in t or "Z" in t for t in texts), "naive text carries no offset"

    schema = pa.schema([("id", pa.int64()), ("when", pa.timestamp("ns")), ("v", pa.float64())])
    back = by_id(kafkaml.read_topic(bootstrap, topic, format=format, schema=schema))
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize("format", ["json", "csv"])
def test_ksql_timestamp_declarations_read_iso_text(bootstrap: str, new_topic, format: str) -> None:
    topic = new_topic(partitions=2)
    frame = pd.DataFrame(
        {
            "id": np.arange(ROWS, dtype=np.int64),
            "when": pd.date_range("2024-01-31 23:59:59.250", periods=ROWS, freq="37min", unit="ms"),
        }
    )
    kafkaml.write_topic(bootstrap, topic, frame, format=format)
    back = by_id(kafkaml.read_topic(bootstrap, topic, format=format, schema="id BIGINT, when TIMESTAMP"))
    assert str(back["when"].dtype) == "datetime64[ms]"  # KSQL TIMESTAMP: milliseconds
    pd.testing.assert_frame_equal(back, frame)


# ---------- ISO-8601 text from other writers, read as parse_dates reads it ----------


def test_iso_text_of_every_form_reads_as_utc_instants(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    moment = pd.Timestamp("2024-03-31T01:30:00.123456Z")
    forms = [
        "2024-03-31T01:30:00.123456Z",  # pandas' to_json, kafkaml's UTC columns
        "2024-03-31T03:30:00.123456+02:00",  # kafkaml's Europe/Berlin columns
        "2024-03-31T02:30:00.123456+01:00",
        "2024-03-31 01:30:00.123456",  # no offset: read as UTC
        "2024-03-31T01:30:00.123456789Z",  # nanoseconds: floored to the microsecond
    ]
    produce(confluent_producer, topic, [json.dumps({"id": i, "when": t}) for i, t in enumerate(forms)])
    schema = pa.schema([("id", pa.int64()), ("when", PARSED_DATE)])
    back = by_id(kafkaml.read_topic(bootstrap, topic, format="json", schema=schema))
    assert back["when"].tolist() == [moment] * len(forms)
    assert str(back["when"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize("format", ["json", "csv"])
def test_pandas_own_text_reads_back_as_timestamps(bootstrap: str, new_topic, confluent_producer, format: str) -> None:
    # Messages written by pandas itself (to_json's and to_csv's ISO text), not by kafkaml.
    topic = new_topic(partitions=2)
    frame = zoned_frame("us").dropna()
    # to_json writes milliseconds (floored in UTC: Berlin's wall clock has gaps)
    frame["when"] = frame["when"].dt.tz_convert("UTC").dt.floor("ms").dt.tz_convert(BERLIN)
    if format == "json":
        lines = frame.to_json(orient="records", lines=True, date_format="iso").splitlines()
    else:
        lines = frame.to_csv(index=False, header=False).splitlines()
    produce(confluent_producer, topic, lines, partitions=2)
    schema = pa.schema([("id", pa.int64()), ("when", PARSED_DATE), ("v", pa.float64())])
    back = by_id(kafkaml.read_topic(bootstrap, topic, format=format, schema=schema))
    assert (back["when"] == frame["when"].reset_index(drop=True)).all()  # the same instants
    assert str(back["when"].dt.tz) == "UTC"


def test_parse_dates_reads_text_columns_of_an_inferred_schema(bootstrap: str, new_topic) -> None:
    # The quick way back for a DataFrame written as JSON: no schema, parse_dates= names the
    # timestamp column, as pandas' read_json(convert_dates=[...]) does.
    topic = new_topic(partitions=2)
    frame = zoned_frame("us")
    kafkaml.write_topic(bootstrap, topic, frame)
    plain = kafkaml.read_topic(bootstrap, topic).schema.field("when").type
    assert pa.types.is_string(plain) or pa.types.is_large_string(plain)  # text without parse_dates
    back = by_id(kafkaml.read_topic(bootstrap, topic, parse_dates=["when"]))
    assert str(back["when"].dtype) == "datetime64[us, UTC]"
    assert back["when"].isna().tolist() == frame["when"].isna().tolist()
    assert (back["when"].dropna() == frame["when"].dropna()).all()  # the same instants
    assert back["v"].tolist() == frame["v"].tolist()


@pytest.mark.parametrize("format", ["json", "csv"])
def test_parse_dates_with_a_declared_text_column(bootstrap: str, new_topic, confluent_producer, format: str) -> None:
    topic = new_topic()
    lines = (
        ['{"id": 0, "when": "2024-03-31T03:30:00+02:00"}', '{"id": 1, "when": null}']
        if format == "json"
        else ["0,2024-03-31T03:30:00+02:00", "1,"]
    )
    produce(confluent_producer, topic, lines)
    back = kafkaml.read_topic(bootstrap, topic, format=format, schema="id BIGINT, when STRING", parse_dates="when")
    assert back.schema.field("when").type == PARSED_DATE
    assert back.column("when").to_pylist()[0] == pd.Timestamp("2024-03-31T01:30:00Z").to_pydatetime()
    assert back.column("when").to_pylist()[1] is None


def test_parse_dates_refuses_numbers_unknown_names_and_other_formats(bootstrap: str, new_topic) -> None:
    topic = new_topic()
    kafkaml.write_topic(bootstrap, topic, pa.table({"id": [1, 2], "when": ["2024-01-01", "2024-01-02"]}))
    with pytest.raises(kafkaml.SchemaError, match="not text"):
        kafkaml.read_topic(bootstrap, topic, schema="id BIGINT, when STRING", parse_dates=["id"])
    with pytest.raises(kafkaml.SchemaError, match="not in the schema"):
        kafkaml.read_topic(bootstrap, topic, parse_dates=["whne"])
    with pytest.raises(kafkaml.ConfigError, match="parse_dates"):
        kafkaml.read_topic(bootstrap, topic, format="raw", parse_dates=["when"])


@pytest.mark.parametrize("text", ["yesterday", "2024-02-30T10:00:00Z"])
@pytest.mark.parametrize("format", ["json", "csv"])
def test_text_that_is_no_date_is_a_decode_error_naming_message_and_column(
    bootstrap: str, new_topic, confluent_producer, format: str, text: str
) -> None:
    topic = new_topic(partitions=2)
    if format == "json":
        good, message, named = (
            '{"id": 0, "when": "2024-01-01T00:00:00Z"}',
            json.dumps({"id": 1, "when": text}),
            "'when'",
        )
    else:
        good, message, named = "0,2024-01-01T00:00:00Z", f"1,{text}", 'field 2 ("when")'
    delivered = produce(confluent_producer, topic, [good, good, good, message], partitions=2)
    bad = delivered[3]
    schema = pa.schema([("id", pa.int64()), ("when", PARSED_DATE)])
    with pytest.raises(kafkaml.DecodeError) as caught:
        kafkaml.read_topic(bootstrap, topic, format=format, schema=schema)
    error = caught.value
    assert (error.topic, error.partition, error.offset) == (topic, bad.partition, bad.offset)
    assert named in error.reason and text in error.reason, error.reason


# ---------- the index ----------


def index_frame() -> pd.DataFrame:
    return pd.DataFrame({"v": np.arange(6) / 2, "name": [f"n{i}" for i in range(6)]})


def read_back(bootstrap: str, topic: str) -> pd.DataFrame:
    return kafkaml.read_topic(bootstrap, topic).to_pandas()


def test_default_range_index_is_dropped(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    frame = index_frame()
    kafkaml.write_topic(bootstrap, topic, frame)
    back = read_back(bootstrap, topic)
    assert list(back.columns) == ["v", "name"]
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize("kind", ["range", "labels", "dates"])
def test_named_index_is_kept_as_a_column(bootstrap: str, new_topic, kind: str) -> None:
    topic = new_topic(partitions=1)
    frame = index_frame()
    if kind == "range":
        frame.index.name = "row"  # pyarrow keeps a RangeIndex in metadata only: lost in Kafka
    elif kind == "labels":
        frame.index = pd.Index([f"k{i}" for i in range(6)], name="row")
    else:
        frame.index = pd.date_range("2024-01-01", periods=6, freq="D", name="row", tz="UTC")
    kafkaml.write_topic(bootstrap, topic, frame)
    table = kafkaml.read_topic(bootstrap, topic)
    assert table.column_names == ["v", "name", "row"]  # after the columns, as pyarrow puts it
    expected = frame.index.astype(str).tolist() if kind != "range" else list(range(6))
    if kind == "dates":
        expected = [t.isoformat().replace("+00:00", "Z") for t in frame.index]
    assert table.column("row").to_pylist() == expected
    assert table.column("v").to_pylist() == frame["v"].tolist()


def test_multi_index_is_kept_level_by_level(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    frame = index_frame()
    frame.index = pd.MultiIndex.from_arrays([[1, 1, 1, 2, 2, 2], list("abcabc")], names=["group", None])
    kafkaml.write_topic(bootstrap, topic, frame, format="csv")
    schema = pa.schema([("v", pa.float64()), ("name", pa.string()), ("group", pa.int64()), ("level", pa.string())])
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema=schema)
    assert back.column("group").to_pylist() == [1, 1, 1, 2, 2, 2]
    assert back.column("level").to_pylist() == list("abcabc")  # the unnamed level, in its place
    assert back.column("name").to_pylist() == frame["name"].tolist()


def test_preserve_index_true_and_false(bootstrap: str, new_topic) -> None:
    named = index_frame().set_index("name")
    dropped, kept = new_topic(partitions=1), new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, dropped, named, preserve_index=False)
    assert read_back(bootstrap, dropped).columns.tolist() == ["v"]

    with kafkaml.Producer(bootstrap, kept) as producer:
        producer.send(index_frame(), preserve_index=True)  # even the default RangeIndex
    back = read_back(bootstrap, kept)
    assert back.columns.tolist() == ["v", "name", "__index_level_0__"]
    assert back["__index_level_0__"].tolist() == list(range(6))


def test_index_and_a_schema(bootstrap: str, new_topic) -> None:
    frame = index_frame().set_index("name")
    with_index = pa.schema([("v", pa.float32()), ("name", pa.string())])
    without = pa.schema([("v", pa.float32())])
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, frame, schema=with_index)
    assert read_back(bootstrap, topic)["name"].tolist() == frame.index.tolist()

    # the schema names the columns to write...
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, frame, schema=without)
    assert read_back(bootstrap, topic).columns.tolist() == ["v"]
    # ...unless preserve_index=True asks for an index it cannot hold
    with pytest.raises(kafkaml.SchemaError, match=r"\['name'\]"):
        kafkaml.write_topic(bootstrap, topic, frame, schema=without, preserve_index=True)
