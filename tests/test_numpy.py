"""to_numpy: Arrow columns into C-contiguous float matrices."""

from __future__ import annotations

import decimal

import kafkaml
import numpy as np
import pyarrow as pa
import pytest


def features(rows: int = 500) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "time": pa.array(np.arange(rows), pa.int64()),
            "v1": rng.normal(size=rows),
            "v2": pa.array(rng.normal(size=rows).astype(np.float32)),
            "count": pa.array(rng.integers(0, 100, rows), pa.int32()),
            "fraud": pa.array(rng.random(rows) < 0.1),
            "price": pa.array([decimal.Decimal(i).scaleb(-2) for i in range(rows)], pa.decimal128(9, 2)),
            "user": [f"u{i}" for i in range(rows)],
        }
    )


NUMERIC = ["time", "v1", "v2", "count", "fraud", "price"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matrix_shape_dtype_layout_and_values(dtype: str) -> None:
    table = features()
    matrix = kafkaml.to_numpy(table, columns=NUMERIC, dtype=dtype)
    assert matrix.shape == (500, len(NUMERIC))
    assert matrix.dtype == np.dtype(dtype)
    assert matrix.flags["C_CONTIGUOUS"]
    for j, name in enumerate(NUMERIC):
        expected = np.array([float(v) for v in table.column(name).to_pylist()], dtype=np.float64).astype(dtype)
        assert np.array_equal(matrix[:, j], expected), name


def test_column_order_follows_the_request_and_batches_are_stacked() -> None:
    table = features(100)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
    assert chunked.column("v1").num_chunks > 1
    matrix = kafkaml.to_numpy(chunked, columns=["v1", "time"], dtype="float64")
    assert np.array_equal(matrix[:, 0], table.column("v1").to_numpy())
    assert np.array_equal(matrix[:, 1], table.column("time").to_numpy().astype(np.float64))
    # a RecordBatch, all columns by default
    batch = table.select(["time", "v1"]).to_batches()[0]
    assert np.array_equal(kafkaml.to_numpy(batch, dtype="float64"), np.column_stack([batch.column(0), batch.column(1)]))


def test_nulls_raise_unless_filled() -> None:
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": pa.array([1, None, 3, None], pa.int64())})
    with pytest.raises(kafkaml.SchemaError, match=r'"b".*row 1'):
        kafkaml.to_numpy(table)
    filled = kafkaml.to_numpy(table, fill=-1.0, dtype="float64")
    assert filled.tolist() == [[1.0, 1.0], [2.0, -1.0], [3.0, 3.0], [4.0, -1.0]]
    nan_filled = kafkaml.to_numpy(table, columns=["b"], fill=float("nan"))
    assert np.isnan(nan_filled[[1, 3], 0]).all() and nan_filled[0, 0] == 1.0


def test_bad_columns_are_schema_errors() -> None:
    table = features(10)
    with pytest.raises(kafkaml.SchemaError, match="user"):
        kafkaml.to_numpy(table, columns=["v1", "user"])
    with pytest.raises(kafkaml.SchemaError, match="missing"):
        kafkaml.to_numpy(table, columns=["missing"])
    with pytest.raises(kafkaml.ConfigError):
        kafkaml.to_numpy(table, columns=["v1"], dtype="int8")


def test_a_matrix_straight_from_kafka(bootstrap: str, new_topic) -> None:
    table = features(400).drop_columns(["price", "user"])
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, table, format="csv")
    replay = kafkaml.read_topic(bootstrap, topic, format="csv", schema=table.schema)
    matrix = kafkaml.to_numpy(replay, dtype="float64")
    order = np.argsort(matrix[:, 0])
    expected = np.column_stack(
        [table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in table.column_names]
    )
    assert np.array_equal(matrix[order], expected)


def credit_rows(rows: int) -> pa.Table:
    rng = np.random.default_rng(11)
    return pa.table(
        {"id": pa.array(np.arange(rows), pa.int64()), "v1": rng.normal(size=rows), "v2": rng.normal(size=rows)}
    )


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_read_matrix_is_read_topic_then_to_numpy(bootstrap: str, new_topic, fmt: str, dtype: str) -> None:
    # 12,000 rows over 3 partitions: decoded in chunks on a second thread, in two batches of 5,000
    # and one of 2,000 per partition order; columns asked in another order than the schema's.
    table = credit_rows(12_000)
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, table, format=fmt)
    options = {"format": fmt, "schema": "id BIGINT, v1 DOUBLE, v2 DOUBLE", "batch_size": 5_000}
    columns = ["v2", "id", "v1"]
    matrix = kafkaml.read_matrix(bootstrap, topic, columns=columns, dtype=dtype, **options)
    expected = kafkaml.to_numpy(kafkaml.read_topic(bootstrap, topic, **options), columns=columns, dtype=dtype)
    assert matrix.dtype == np.dtype(dtype) and matrix.flags["C_CONTIGUOUS"]
    assert matrix.shape == (12_000, 3)
    assert np.array_equal(matrix, expected)
    assert sorted(matrix[:, 1].astype(np.int64).tolist()) == list(range(12_000))


def test_read_matrix_with_an_inferred_schema_and_small_batches(bootstrap: str, new_topic) -> None:
    # json without a schema: the first batch is decoded on the polling thread to infer it.
    table = credit_rows(300)
    topic = new_topic(partitions=2)
    kafkaml.write_topic(bootstrap, topic, table)
    matrix = kafkaml.read_matrix(bootstrap, topic, batch_size=64, dtype="float64")
    assert np.array_equal(matrix, kafkaml.to_numpy(kafkaml.read_topic(bootstrap, topic), dtype="float64"))
    assert matrix.shape == (300, 3)


def test_read_matrix_skips_or_raises_on_bad_messages(bootstrap: str, new_topic, confluent_producer) -> None:
    from kafka_helpers import produce

    topic = new_topic(partitions=1)
    lines = [f"{i},{i / 2}" for i in range(3_000)]
    lines[1_234] = "1234,not a number"
    produce(confluent_producer, topic, lines, partitions=1)
    options = {"format": "csv", "schema": "id BIGINT, x DOUBLE"}
    skipped = kafkaml.read_matrix(bootstrap, topic, on_error="skip", dtype="float64", **options)
    assert skipped.shape == (2_999, 2)
    assert skipped[:, 0].tolist() == [i for i in range(3_000) if i != 1_234]
    assert skipped[:, 1].tolist() == [i / 2 for i in range(3_000) if i != 1_234]
    with pytest.raises(kafkaml.DecodeError) as caught:
        kafkaml.read_matrix(bootstrap, topic, **options)
    assert (caught.value.partition, caught.value.offset) == (0, 1_234)


def test_read_matrix_nulls_columns_and_options(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    table = pa.table(
        {
            "a": pa.array(np.arange(4_000, dtype=np.float64)),
            "b": pa.array([None if i == 2_500 else i for i in range(4_000)], pa.int64()),
            "name": [f"n{i}" for i in range(4_000)],
        }
    )
    kafkaml.write_topic(bootstrap, topic, table)
    schema = "a DOUBLE, b BIGINT, name STRING"
    # the row of a null counts from the first row of the matrix, across batches
    with pytest.raises(kafkaml.SchemaError, match=r'"b".*row 2500'):
        kafkaml.read_matrix(bootstrap, topic, schema=schema, columns=["a", "b"], batch_size=1_000)
    filled = kafkaml.read_matrix(bootstrap, topic, schema=schema, columns=["b"], fill=-1.0, batch_size=1_000)
    assert filled[2_500, 0] == -1.0 and filled[2_499, 0] == 2_499.0
    with pytest.raises(kafkaml.SchemaError, match="name"):
        kafkaml.read_matrix(bootstrap, topic, schema=schema)
    with pytest.raises(kafkaml.ConfigError):
        kafkaml.read_matrix(bootstrap, topic, schema=schema, columns=["a"], include_metadata=True)
    with pytest.raises(kafkaml.ConfigError):
        kafkaml.read_matrix(bootstrap, topic, schema=schema, columns=["a"], dtype="int8")
    # a group member's rows come in (partition, offset) order too
    grouped = kafkaml.read_matrix(bootstrap, topic, schema=schema, columns=["a"], group_id=f"g-{topic}")
    assert grouped[:, 0].tolist() == list(range(4_000))


def test_read_matrix_of_an_empty_topic_has_its_width(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=2)
    matrix = kafkaml.read_matrix(bootstrap, topic, format="csv", schema="a DOUBLE, b DOUBLE")
    assert matrix.shape == (0, 2) and matrix.dtype == np.float32
