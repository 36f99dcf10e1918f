"""to_numpy: Arrow columns into C-contiguous float matrices."""

from __future__ import annotations

import decimal

import numpy as np
import pyarrow as pa
import pytest

import kafkaml


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
    expected = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in table.column_names])
    assert np.array_equal(matrix[order], expected)
