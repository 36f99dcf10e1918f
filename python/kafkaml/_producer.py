"""Arrow tables, numpy matrices and CSV files into Kafka topics, encoded in Rust."""

from __future__ import annotations

import io
import json
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow as pa

from kafkaml import _native
from kafkaml._args import Bootstrap, SchemaRegistryArg, avro_schema_text, bootstrap_servers, string_config
from kafkaml._local import LocalKafka
from kafkaml._progress import progress_bar


class Producer:
    """Writes rows to one topic, one message per row, encoded in Rust.

    Args:
        bootstrap: ``"host:port"`` or a :class:`LocalKafka`.
        topic: the topic to write to.
        format: ``"json"``, ``"csv"``/``"delimited"``, ``"avro"`` or ``"raw"`` (the ``value`` column's bytes).
        key: a column whose values (in text form; bytes as they are) become message keys.
        schema: for avro, the writer schema (dict or JSON); derived from the data if omitted.
        schema_registry: for avro, register the schema under ``<topic>-value`` and write the
            Confluent wire format: a URL, ``{"url": ...}`` or a :class:`LocalSchemaRegistry`.
        delimiter: the field delimiter for csv.
        config: librdkafka properties, passed through unchanged. The producer is idempotent
            unless ``{"enable.idempotence": "false"}`` says otherwise: a batch librdkafka
            retries is written once and in order (about 10 % slower than without).
        timeout: seconds to wait for the broker; messages not delivered within 3x fail.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        topic: str,
        *,
        format: str = "json",
        key: str | None = None,
        schema: Any = None,
        schema_registry: SchemaRegistryArg | None = None,
        delimiter: str = ",",
        config: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.topic = topic
        self.format = format
        self._native: _native.ArrowProducer | None = _native.ArrowProducer(
            bootstrap_servers(bootstrap),
            topic,
            format,
            key=key,
            avro_schema=avro_schema_text(schema) if format == "avro" else None,
            schema_registry=schema_registry,
            delimiter=delimiter,
            config=string_config(config),
            timeout_s=timeout,
        )

    def send(
        self,
        data: Any,
        *,
        columns: Sequence[str] | None = None,
        schema: Any = None,
        preserve_index: bool | None = None,
    ) -> int:
        """Queues every row of ``data`` (see :func:`write_topic`); returns the rows queued."""
        table = as_arrow(data, columns=columns, schema=schema, preserve_index=preserve_index)
        return self._open().send(table)

    def flush(self) -> int:
        """Waits until every queued message is delivered; raises :class:`DeliveryError` if
        any failed. Returns the messages delivered since the producer was made."""
        return self._open().flush()

    def close(self) -> None:
        """Flushes and closes."""
        if self._native is not None:
            try:
                self._native.close()
            finally:
                self._native = None

    def _open(self) -> _native.ArrowProducer:
        if self._native is None:
            raise _native.ClosedError("the producer is closed")
        return self._native

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._native = None  # an error is on its way: do not wait for deliveries

    def __repr__(self) -> str:
        return f"Producer(topic={self.topic!r}, format={self.format!r})"


def write_topic(
    bootstrap: Bootstrap,
    topic: str,
    data: Any,
    *,
    format: str = "json",
    key: str | None = None,
    schema: Any = None,
    columns: Sequence[str] | None = None,
    schema_registry: SchemaRegistryArg | None = None,
    delimiter: str = ",",
    config: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
    preserve_index: bool | None = None,
    progress: bool = False,
) -> int:
    """Writes ``data`` to ``topic``, one message per row, and waits for delivery.

    ``data`` is a pyarrow Table or RecordBatch, anything with ``__arrow_c_stream__`` (pandas,
    polars), a pandas DataFrame, a 2-D numpy array (with ``columns=`` names or a ``schema``),
    or the path of a CSV file. For a CSV file, ``schema`` (KSQL declarations or a
    ``pyarrow.Schema``) names and types the columns and a first line equal to those names is
    skipped as a header; without ``schema``, the first line is the header and types are
    inferred. For ``format="avro"``, ``schema`` is the Avro writer schema instead.

    A pandas DataFrame's index is written as ``pyarrow.Table.from_pandas`` keeps it: as
    columns after the others (a MultiIndex one per level, unnamed levels named
    ``__index_level_0__``, ...). ``preserve_index=None`` drops only an unnamed RangeIndex (the
    default 0, 1, 2, ...) and keeps every other index, ``True`` keeps any, ``False`` none.
    Unlike pyarrow, a named RangeIndex (or a MultiIndex level of one) is a column too:
    pyarrow keeps those in the schema's metadata, which no Kafka message carries. With
    ``schema``, only the index levels it names are written (``True`` insists on all).
    Zoned datetimes (``datetime64[ns, Europe/Berlin]``) are written as ISO-8601 text with
    each instant's offset, naive ones without; read them back as timestamps by declaring
    the columns ``pyarrow.timestamp(...)`` (or KSQL ``TIMESTAMP``) in the reader's schema.

    ``progress=True`` shows a progress bar of the rows handed to the producer (tqdm's widget
    in Jupyter, a text bar elsewhere). On ``LocalKafka(engine="mock")``, which keeps only the
    newest ~5 MiB of each partition, a write that would not fit the topic's partitions warns
    before writing and says how many partitions would hold it.

    With ``format="raw"``, ``data`` may also be a list of bytes or str (str encoded as UTF-8),
    one message each: a quick way to put a few messages in a topic.

    Returns the number of rows written. Raises :class:`DeliveryError` if any message failed.
    """
    arrow_schema = None if format == "avro" and avro_schema_text(schema) is not None else schema
    if format == "raw" and isinstance(data, (list, tuple)):
        data = _raw_values(data)
    table = as_arrow(data, columns=columns, schema=arrow_schema, preserve_index=preserve_index)
    mock = isinstance(bootstrap, LocalKafka) and bootstrap.engine == "mock"
    if progress or mock:
        table = pa.table(table)  # one pass over a stream: sized, sliced and estimated here
    if isinstance(bootstrap, LocalKafka) and bootstrap.engine == "mock":
        _warn_if_local_kafka_drops(bootstrap, topic, table, format)
    with Producer(
        bootstrap,
        topic,
        format=format,
        key=key,
        schema=schema if format == "avro" else None,
        schema_registry=schema_registry,
        delimiter=delimiter,
        config=config,
        timeout=timeout,
    ) as producer:
        native = producer._open()
        if not progress:
            return native.send(table)
        rows = 0
        step = max(_PROGRESS_ROWS, table.num_rows // 100)
        with progress_bar(total=table.num_rows, desc=topic, unit="row") as bar:
            for begin in range(0, table.num_rows, step):
                sent = native.send(table.slice(begin, step))
                rows += sent
                bar.update(sent)
    return rows


def _raw_values(values: Sequence[Any]) -> pa.Table:
    """A list of bytes or str (UTF-8 encoded) as a one-column ``value`` table, one message each."""
    encoded: list[bytes | None] = []
    for index, value in enumerate(values):
        if value is None or isinstance(value, bytes):
            encoded.append(value)
        elif isinstance(value, str):
            encoded.append(value.encode("utf-8"))
        elif isinstance(value, (bytearray, memoryview)):
            encoded.append(bytes(value))
        else:
            raise TypeError(f"format='raw' takes a list of bytes or str, but item {index} is {type(value).__name__}")
    return pa.table({"value": pa.array(encoded, pa.binary())})


_PROGRESS_ROWS = 10_000
"""The fewest rows :func:`write_topic` sends between two updates of its progress bar."""

_LOCAL_KAFKA_PARTITION_BYTES = 5 * 1024 * 1024
"""How much of each partition's log ``LocalKafka(engine="mock")`` (librdkafka's mock cluster) keeps."""

_RECORD_OVERHEAD_BYTES = 20
"""A record's bytes in the log beside its value: length, offset and timestamp deltas, key."""


def _warn_if_local_kafka_drops(kafka: LocalKafka, topic: str, table: pa.Table, format: str) -> None:
    """Warns, before writing, when ``table`` encoded would not fit what LocalKafka keeps of
    ``topic``'s partitions (it would drop the oldest messages without a word)."""
    if table.num_rows == 0:
        return
    sample = table.slice(0, min(table.num_rows, 500))
    per_row = _encoded_bytes(sample, format) / sample.num_rows + _RECORD_OVERHEAD_BYTES
    total = per_row * table.num_rows
    partitions = kafka._topics.get(topic, 1)  # produce auto-creates one partition
    if total <= partitions * _LOCAL_KAFKA_PARTITION_BYTES:
        return
    needed = math.ceil(total / (0.8 * _LOCAL_KAFKA_PARTITION_BYTES))
    warnings.warn(
        f"LocalKafka(engine='mock') keeps only the newest ~5 MiB of each partition, and these {table.num_rows:,} "
        f"rows are ~{total / 2**20:,.0f} MiB as {format}: {topic!r} with {partitions} partition(s) "
        f"would lose the oldest of them. Create the topic first with "
        f"kafka.create_topic({topic!r}, partitions={needed}), or use LocalKafka() (which keeps every message).",
        UserWarning,
        stacklevel=3,
    )


def _encoded_bytes(sample: pa.Table, format: str) -> int:
    """About how many bytes ``sample``'s rows take as messages of ``format``."""
    if format == "json":
        return sum(len(json.dumps(row, default=str)) for row in sample.to_pylist())
    if format in ("csv", "delimited"):
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(sample, buffer, pacsv.WriteOptions(include_header=False))
        return buffer.tell()
    return sample.nbytes  # avro and raw: about their Arrow size


def as_arrow(
    data: Any,
    *,
    columns: Sequence[str] | None = None,
    schema: Any = None,
    preserve_index: bool | None = None,
) -> Any:
    """``data`` as something with ``__arrow_c_stream__`` or ``__arrow_c_array__``."""
    arrow_schema = _arrow_schema(schema)
    if isinstance(data, (str, os.PathLike)):
        return read_csv_file(os.fspath(data), arrow_schema)
    # Before the Arrow stream check: a DataFrame has __arrow_c_stream__ too, which keeps a
    # named RangeIndex only in metadata and gives no say over the index.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return _pandas_table(data, arrow_schema, preserve_index, pandas)
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        if arrow_schema is not None and isinstance(data, (pa.Table, pa.RecordBatch)):
            return data.cast(arrow_schema)
        return data
    if _is_numpy(data):
        return _numpy_table(data, columns, arrow_schema)
    raise TypeError(
        "data must be a pyarrow Table/RecordBatch, an Arrow stream (pandas, polars), "
        f"a 2-D numpy array, or a CSV path; got {type(data).__name__}"
    )


def _arrow_schema(schema: Any) -> pa.Schema | None:
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    return _native.parse_columns(schema)


def _pandas_table(frame: Any, schema: pa.Schema | None, preserve_index: bool | None, pandas: Any) -> pa.Table:
    """``pyarrow.Table.from_pandas``, the index as :func:`write_topic` describes."""
    index = frame.index
    keep = preserve_index
    if keep is None:
        keep = not (isinstance(index, pandas.RangeIndex) and index.name is None)
    if preserve_index and schema is not None:
        # pyarrow would drop index levels the schema lacks without a word.
        names = [name if name is not None else f"__index_level_{i}__" for i, name in enumerate(index.names)]
        missing = [name for name in names if name not in schema.names]
        if missing:
            raise _native.SchemaError(
                f"preserve_index=True, but the schema has no column for the index level(s) {missing}; "
                "add them to the schema, or pass preserve_index=None to write only the schema's columns"
            )
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=keep)


def _is_numpy(data: Any) -> bool:
    return type(data).__module__ == "numpy" and hasattr(data, "ndim")


def _numpy_table(matrix: Any, columns: Sequence[str] | None, schema: pa.Schema | None) -> pa.Table:
    if matrix.ndim != 2:
        raise _native.SchemaError(f"a numpy matrix must be 2-D, got shape {matrix.shape}")
    names = list(columns) if columns is not None else (schema.names if schema is not None else None)
    if names is None:
        raise _native.SchemaError("a numpy matrix needs columns= names (or a schema)")
    if len(names) != matrix.shape[1]:
        raise _native.SchemaError(f"{len(names)} column names for a matrix of {matrix.shape[1]} columns")
    table = pa.table({name: matrix[:, i] for i, name in enumerate(names)})
    return table.cast(schema) if schema is not None else table


def read_csv_file(path: str, schema: pa.Schema | None) -> pa.Table:
    """Reads a CSV file with pyarrow (multi-threaded C++), as :func:`write_topic` describes."""
    import pyarrow.csv as pacsv

    if schema is None:
        return pacsv.read_csv(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip().split(",")
    has_header = [name.strip().strip('"').lower() for name in first] == [n.lower() for n in schema.names]
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=schema.names, skip_rows=1 if has_header else 0),
        convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True),
    )
