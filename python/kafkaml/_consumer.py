"""Kafka topics into Arrow record batches and tables."""

from __future__ import annotations

import datetime as _dt
import difflib
import inspect
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from kafkaml import _native
from kafkaml._args import Bootstrap, SchemaRegistryArg, bootstrap_servers
from kafkaml._display import html_table
from kafkaml._matrix import MatrixDtype, to_numpy
from kafkaml._progress import progress_bar

Start = Literal["earliest", "latest"] | Mapping[int, int] | _dt.datetime
Stop = None | Literal["end"] | _dt.datetime


@dataclass(frozen=True)
class DecodeFailure:
    """One message that could not be decoded, and where it is."""

    topic: str
    partition: int
    offset: int
    reason: str


@dataclass(frozen=True)
class ConsumerErrors:
    """What the ``on_error="skip"`` policy skipped: the count and the latest failures."""

    skipped: int = 0
    recent: list[DecodeFailure] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.skipped > 0


class Consumer:
    """Reads Kafka topics as ``pyarrow.RecordBatch`` es, decoded in Rust.

    Iterating yields record batches of up to ``batch_size`` rows (fewer when ``max_wait_ms``
    passed since a batch's first message). No Python object is made per message: messages
    are decoded in Rust with the GIL released, on a second thread while the rest of the
    batch is polled.

    Args:
        bootstrap: ``"host:port"`` or a :class:`LocalKafka`.
        topics: one topic or several (all decoded with the same format and schema).
        format: ``"json"`` (one object per message), ``"csv"``/``"delimited"`` (one line per
            message, no header, quoted strings, an empty field is null), ``"avro"`` (Confluent
            wire format with ``schema_registry``, or bare datums with an Avro ``schema``), or
            ``"raw"`` (``key`` and ``value`` bytes).
        schema: a ``pyarrow.Schema``; or KSQL column declarations (``"ID BIGINT, V1 DOUBLE"``
            or ``['Id bigint', 'V1 double']``, names kept as written); for ``format="avro"``
            without a registry, the Avro schema (dict or JSON). Inferred from the first batch
            for json when omitted.
        group_id: a consumer group. With it and ``start`` "earliest"/"latest", the consumer
            joins the group (committed offsets win; partitions are shared); :meth:`commit`
            stores progress. Without it, all partitions are read and nothing is committed.
        start: ``"earliest"``, ``"latest"``, ``{partition: offset}``, or a ``datetime`` (the first
            message at or after it, per partition; real brokers only).
        stop: ``None`` follows the topics until closed; ``"end"`` stops at the end offsets
            taken at start (a bounded, repeatable snapshot); a ``datetime`` stops before the
            first message at or after it.
        on_error: ``"raise"``: a :class:`DecodeError` naming topic, partition and offset (the
            consumer is left before the batch that held it, nothing is lost); ``"skip"``:
            bad messages are counted in :attr:`errors` and left out.
        include_metadata: add ``_topic``, ``_partition``, ``_offset``, ``_timestamp``, ``_key``.
        schema_registry: URL, ``{"url": ..., "basic.auth.user.info": "key:secret"}`` or a
            :class:`LocalSchemaRegistry`.
        delimiter: the field delimiter for csv.
        parse_dates: column names (json, csv) whose ISO-8601 text is read as timestamps, as
            pandas' ``read_csv(parse_dates=[...])``: ``timestamp[us, UTC]``, text with an
            offset converted to UTC, text without one read as UTC. A column already declared
            as a timestamp keeps its type; a numeric column or an unknown name is a
            :class:`SchemaError`. Applies to the declared or the inferred schema.
        ordered: read partitions one after another in (topic, partition) order, so rows
            come in a deterministic order (as :func:`read_topic` does). Ignored with a
            ``group_id`` in a group (the group assigns partitions).
        config: librdkafka properties, passed through unchanged (as in confluent-kafka).
        timeout: seconds to wait for the broker before raising :class:`KafkaError`.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        topics: str | Sequence[str],
        *,
        format: str = "json",
        schema: Any = None,
        group_id: str | None = None,
        start: Start = "earliest",
        stop: Stop = None,
        batch_size: int = 10_000,
        max_wait_ms: int = 500,
        on_error: Literal["raise", "skip"] = "raise",
        include_metadata: bool = False,
        schema_registry: SchemaRegistryArg | None = None,
        delimiter: str = ",",
        parse_dates: str | Sequence[str] | None = None,
        ordered: bool = False,
        config: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        parse_dates = [parse_dates] if isinstance(parse_dates, str) else list(parse_dates or ())
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.format = format
        self._stop = stop
        self._declared = schema is not None
        self._final_errors = ConsumerErrors()
        self._final_messages_read = 0
        # Every option goes to the core as given: it checks and converts them in one place.
        options = {name: value for name, value in locals().items() if name not in _NOT_OPTIONS}
        if format in ("json", "csv", "delimited") and isinstance(schema, (str, list, tuple)):
            _native.parse_columns(schema)  # a typo in a declaration fails before any connection
        self._native: _native.ArrowConsumer | None = _native.ArrowConsumer(
            bootstrap_servers(bootstrap, config), self.topics, **options
        )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        batch = self._open().next_batch()
        if batch is None:
            raise StopIteration
        return batch

    def read_all(self, *, progress: bool = False) -> pa.Table:
        """Reads until the stop and returns one table.

        Needs a ``stop`` (``"end"`` or a datetime): without one the consumer follows its
        topics forever, so this raises :class:`ConfigError` instead of never returning.
        ``progress=True`` shows a progress bar (tqdm's notebook widget in Jupyter, a text bar
        elsewhere), sized to the snapshot for ``stop="end"`` without a group.
        """
        self._needs_stop("read_all")
        batches = list(self) if not progress else self._with_progress_bar()
        schema = self.schema
        if schema is None:  # json with nothing to infer from
            return pa.table({})
        table = pa.Table.from_batches(batches, schema=schema)
        self._warn_about_absent_columns(table)
        return table

    def read_matrix(
        self,
        columns: Sequence[str] | None = None,
        dtype: MatrixDtype = "float32",
        fill: float | None = None,
        *,
        progress: bool = False,
    ) -> np.ndarray:
        """Reads until the stop (needs ``stop`` set) straight into one 2-D C-contiguous matrix.

        The same matrix as ``to_numpy(self.read_all(), columns, dtype, fill)``, without the
        table: each batch's rows are written as soon as they are decoded and the batch is
        dropped, so it is faster and needs about the matrix's memory instead of the table's
        on top. Not with ``include_metadata`` (the matrix holds the values' columns).
        ``progress=True`` shows a progress bar, updated after each batch.
        Raises :class:`SchemaError` for a column that is missing or not numeric, or a null
        without ``fill`` (naming the column and the row).
        """
        self._needs_stop("read_matrix")
        names = list(columns) if columns is not None else None
        native = self._open()
        if not progress:
            return native.read_matrix(names, np.dtype(dtype).name, fill)
        with self._progress_bar() as bar:
            return native.read_matrix(names, np.dtype(dtype).name, fill, lambda read: bar.update(read - bar.n))

    def _needs_stop(self, method: str) -> None:
        if self._stop is None:
            raise _native.ConfigError(
                f"{method}() reads until the consumer's stop, and this consumer has none "
                '(stop=None follows the topics forever): create it with stop="end" to read to the '
                "end offsets taken at start, or with a datetime; or iterate over it batch by batch"
            )

    def _progress_bar(self) -> Any:
        native = self._open()
        return progress_bar(total=native.snapshot_size, desc=", ".join(self.topics), unit="msg")

    def _warn_about_absent_columns(self, table: pa.Table) -> None:
        """JSON columns declared but null in every row usually mean a misspelt key."""
        if self.format != "json" or not self._declared or table.num_rows == 0:
            return
        absent = [
            name
            for name, column in zip(table.column_names, table.columns)
            if not name.startswith("_") and column.null_count == table.num_rows
        ]
        if absent:
            warnings.warn(
                f"declared column(s) {', '.join(map(repr, absent))} never appeared in the "
                f"{table.num_rows} message(s) read (null in every row): check their spelling and "
                "case against the messages' keys",
                UserWarning,
                stacklevel=3,
            )

    def _with_progress_bar(self) -> list[pa.RecordBatch]:
        native = self._open()
        batches = []
        with self._progress_bar() as bar:
            for batch in self:
                batches.append(batch)
                bar.update(native.messages_read - bar.n)
        return batches

    @property
    def schema(self) -> pa.Schema | None:
        """The schema of the batches (None until json inference saw a message)."""
        return self._open().schema()

    @property
    def errors(self) -> ConsumerErrors:
        """Messages skipped under ``on_error="skip"``: the count and the latest few (still
        there after :meth:`close`, for a look after a ``with`` block)."""
        if self._native is None:
            return self._final_errors
        skipped, recent = self._native.errors()
        return ConsumerErrors(skipped, [DecodeFailure(*r) for r in recent])

    @property
    def messages_read(self) -> int:
        """Messages consumed so far, skipped ones included (also after :meth:`close`)."""
        if self._native is None:
            return self._final_messages_read
        return self._native.messages_read

    def commit(self) -> int:
        """Commits the offsets after every batch handed out so far (synchronously).

        Returns the number of partitions committed. Needs ``group_id``.
        """
        return self._open().commit()

    def close(self) -> None:
        """Leaves the group and releases the connection (no commit; call :meth:`commit`)."""
        if self._native is not None:
            self._final_errors = self.errors
            self._final_messages_read = self._native.messages_read
            self._native.close()
            self._native = None

    def _open(self) -> _native.ArrowConsumer:
        if self._native is None:
            raise _native.ClosedError("the consumer is closed")
        return self._native

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def lag(self) -> int | None:
        """Messages between this consumer's positions and the ends of its partitions (from
        the last fetch responses; None while unknown, e.g. before a group assigned any)."""
        return self._open().lag

    def __repr__(self) -> str:
        if self._native is None:
            return f"Consumer(topics={self.topics!r}, format={self.format!r}, closed)"
        state = "finished" if self._native.finished else "open"
        return (
            f"Consumer(topics={self.topics!r}, format={self.format!r}, {state}, "
            f"read={self._native.messages_read}, lag={self._native.lag})"
        )

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [("topics", ", ".join(self.topics)), ("format", self.format)]
        if self._native is None:
            rows.append(("state", "closed"))
        else:
            native = self._native
            skipped, _ = native.errors()
            rows += [
                ("state", "finished" if native.finished else "open"),
                ("messages read", f"{native.messages_read:,}"),
                ("lag", "unknown" if native.lag is None else f"{native.lag:,}"),
                ("snapshot", "-" if native.snapshot_size is None else f"{native.snapshot_size:,} messages"),
                ("skipped (on_error='skip')", skipped),
            ]
            schema = native.schema()
            if schema is not None:
                rows.append(("columns", ", ".join(f"{f.name}: {f.type}" for f in schema)))
        return html_table("kafkaml.Consumer", rows)


_NOT_OPTIONS = frozenset({"self", "bootstrap", "topics", "__class__"})
"""``Consumer.__init__``'s arguments that are not options passed through to the core."""


def read_topic(bootstrap: Bootstrap, topic: str | Sequence[str], *, progress: bool = False, **options: Any) -> pa.Table:
    """Reads a snapshot of ``topic`` from ``start`` to the end offsets taken now, as a table.

    Takes every :class:`Consumer` option except ``stop``; ``batch_size`` (the table's chunk
    length) is 50,000 unless given. Rows come in (topic, partition, offset) order, so
    reading the same snapshot twice gives identical tables — the replayable epoch training
    needs. ``progress=True`` shows a progress bar (tqdm, when installed; in Jupyter its
    notebook widget).
    """
    _check_options("read_topic", options, extra=("progress",))
    if not _snapshot_options("read_topic", options):
        with Consumer(bootstrap, topic, **options) as consumer:
            return consumer.read_all(progress=progress)
    # A group member's partitions arrive interleaved: order them by their coordinates.
    keep_metadata = bool(options.get("include_metadata", False))
    options["include_metadata"] = True
    with Consumer(bootstrap, topic, **options) as consumer:
        table = consumer.read_all(progress=progress)
    if table.num_columns == 0:
        return table
    table = table.sort_by([("_topic", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")])
    if not keep_metadata:
        table = table.drop_columns(METADATA_COLUMNS)
    return table


def read_matrix(
    bootstrap: Bootstrap,
    topic: str | Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    dtype: MatrixDtype = "float32",
    fill: float | None = None,
    progress: bool = False,
    **options: Any,
) -> np.ndarray:
    """Reads a snapshot of ``topic`` straight into a 2-D C-contiguous numpy matrix.

    ``to_numpy(read_topic(bootstrap, topic, **options), columns, dtype, fill)`` in one step,
    rows in the same order, without building the table: the feature matrix a training script
    wants, read faster and in about the matrix's memory. Takes every :class:`Consumer` option
    except ``stop`` and ``include_metadata``; ``progress=True`` shows a progress bar.
    """
    _check_options("read_matrix", options, extra=("columns", "dtype", "fill", "progress"))
    if options.get("include_metadata"):
        raise _native.ConfigError("read_matrix reads the values' columns; use read_topic for the metadata")
    if _snapshot_options("read_matrix", options):
        # A group member's partitions arrive interleaved: read_topic puts them in order.
        return to_numpy(read_topic(bootstrap, topic, progress=progress, **options), columns, dtype, fill)
    with Consumer(bootstrap, topic, **options) as consumer:
        return consumer.read_matrix(columns, dtype, fill, progress=progress)


def _check_options(function: str, options: Mapping[str, Any], extra: Sequence[str] = ()) -> None:
    """Raises TypeError for a keyword no Consumer takes, with the closest one it does."""
    known = _consumer_options() | set(extra)
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(sorted(known))}"
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}{hint}")


def _consumer_options() -> set[str]:
    return set(inspect.signature(Consumer.__init__).parameters) - _NOT_OPTIONS


def _snapshot_options(function: str, options: dict[str, Any]) -> bool:
    """Checks and completes the Consumer options of a snapshot read (``stop="end"``, batches
    of ``READ_TOPIC_BATCH_SIZE`` unless given); True when it reads as a group member, else
    it reads partition after partition, so rows come in a deterministic order unsorted."""
    if options.get("stop", "end") != "end":
        raise _native.ConfigError(f"{function} always stops at the end offsets; use Consumer for other stops")
    options["stop"] = "end"
    options.setdefault("batch_size", READ_TOPIC_BATCH_SIZE)
    grouped = options.get("group_id") is not None
    if not grouped:
        options["ordered"] = True
    return grouped


READ_TOPIC_BATCH_SIZE = 50_000
"""``read_topic``'s default batch size. Larger than :class:`Consumer`'s: the batches only
become chunks of one table, and each polling round ends waiting for its last rows to be
decoded on one core (1M-row reads 5-10 % faster than with 10,000; the same peak memory, while
100,000 added ~70 MB to it)."""

METADATA_COLUMNS = ["_topic", "_partition", "_offset", "_timestamp", "_key"]
"""The columns ``include_metadata=True`` adds, in order."""
