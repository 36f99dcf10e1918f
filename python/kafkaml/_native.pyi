"""Type stubs for kafkaml's Rust extension (``kafkaml._native``).

Users call the wrappers in :mod:`kafkaml`; these are the native classes behind them.
"""

from typing import Any, Mapping, Sequence, final

from typing_extensions import Self

import numpy as np
import pyarrow as pa

__version__: str
__all__ = [
    "ArrowConsumer",
    "ArrowProducer",
    "ConfigError",
    "DecodeError",
    "DeliveryError",
    "KafkaError",
    "KafkaMLError",
    "LocalCluster",
    "Model",
    "ModelError",
    "SchemaError",
    "UnsupportedError",
    "__version__",
    "parse_columns",
    "to_numpy",
]

class KafkaMLError(Exception):
    """Base class of every error kafkaml raises."""

class KafkaError(KafkaMLError):
    """Kafka could not be reached, or refused or failed a request."""

class DecodeError(KafkaMLError):
    """A message could not be decoded."""

    topic: str
    partition: int
    offset: int
    reason: str

class SchemaError(KafkaMLError):
    """A schema is invalid or does not fit the data."""

class DeliveryError(KafkaError):
    """Messages could not be delivered to a topic."""

class ConfigError(KafkaMLError):
    """An argument or configuration property is invalid."""

class UnsupportedError(KafkaMLError):
    """The request cannot be served here (e.g. seeking by time on LocalKafka)."""

class ModelError(KafkaMLError):
    """A model file could not be loaded (malformed, unsupported op, unknown node) or run (shape or dtype mismatch)."""

@final
class Model:
    """The native model behind :class:`kafkaml.Model`."""

    @staticmethod
    def load(
        path: str,
        inputs: list[str] | None = None,
        outputs: list[str] | None = None,
        input_shape: list[int] | None = None,
    ) -> Model: ...
    @property
    def input(self) -> tuple[str, list[int | None], str]: ...
    @property
    def output(self) -> tuple[str, list[int | None], str]: ...
    @property
    def input_width(self) -> int: ...
    @property
    def output_width(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs the model on a C-contiguous float32 matrix [rows, input_width]."""
    def reconstruction_error(self, x: np.ndarray) -> np.ndarray:
        """Per-row mean squared error between the input and the model's reconstruction."""

@final
class StreamScorer:
    """The Rust stream scorer behind :class:`kafkaml.StreamScorer`; starts scoring when made."""

    def __init__(
        self,
        bootstrap: str,
        source_topic: str,
        sink_topic: str,
        model: Model,
        *,
        group_id: str,
        feature_columns: list[str] | None = None,
        feature_text_column: str | None = None,
        separator: str = "#",
        format: str = "json",
        schema: Any = None,
        id_columns: list[str] = ...,
        scaling: tuple[list[float], list[float]] | None = None,
        threshold: float | None = None,
        sink_format: str = "json",
        batch_size: int = 10_000,
        max_wait_ms: int = 100,
        on_error: str = "raise",
        delimiter: str = ",",
        config: dict[str, Any] | None = None,
        sink_config: dict[str, Any] | None = None,
        timeout_s: float = 20.0,
    ) -> None: ...
    def stats(self) -> dict[str, Any]:
        """Progress counters as a dict."""
    @property
    def running(self) -> bool: ...
    def errors(self) -> tuple[int, list[tuple[str, int, int, str]]]:
        """(skipped count, [(topic, partition, offset, reason), ...] of the latest failures)."""
    def stop(self, timeout_s: float) -> None:
        """Finishes the batch in hand, commits, and ends the thread (abandoning the batch after
        `timeout_s`); raises the error that ended the thread, if one did."""

@final
class ArrowConsumer:
    """The core consumer behind :class:`kafkaml.Consumer` (arguments already normalised)."""

    def __new__(
        cls,
        bootstrap: str,
        topics: Sequence[str],
        format: str,
        *,
        schema: pa.Schema | str | Sequence[str] | None = None,
        avro_schema: str | None = None,
        schema_registry: str | Mapping[str, str] | None = None,
        group_id: str | None = None,
        start_kind: str = "earliest",
        start_offsets: Mapping[int, int] | None = None,
        start_time_ms: int | None = None,
        stop_kind: str = "never",
        stop_time_ms: int | None = None,
        batch_size: int = 10_000,
        max_wait_ms: int = 500,
        on_error: str = "raise",
        include_metadata: bool = False,
        delimiter: str = ",",
        ordered: bool = False,
        config: Mapping[str, Any] | None = None,
        timeout_s: float = 10.0,
    ) -> Self: ...
    def next_batch(self) -> pa.RecordBatch | None:
        """The next batch, or None once the stop is reached (GIL released while reading)."""
    def commit(self) -> int:
        """Commits the offsets after every batch handed out; returns partitions committed."""
    def close(self) -> None:
        """Leaves the group and releases the client."""
    def schema(self) -> pa.Schema | None:
        """The batches' schema, or None while a json schema is not inferred yet."""
    def errors(self) -> tuple[int, list[tuple[str, int, int, str]]]:
        """(skipped count, latest failures as (topic, partition, offset, reason))."""
    @property
    def snapshot_size(self) -> int | None:
        """Offsets between the start and the end of a ``stop="end"`` read without a group, else None."""
    @property
    def messages_read(self) -> int:
        """Messages consumed so far, skipped ones included."""
    @property
    def finished(self) -> bool:
        """True once the stop was reached (or the consumer closed)."""

@final
class ArrowProducer:
    """The core producer behind :class:`kafkaml.Producer` and :func:`kafkaml.write_topic`."""

    def __new__(
        cls,
        bootstrap: str,
        topic: str,
        format: str = "json",
        *,
        key: str | None = None,
        avro_schema: str | None = None,
        schema_registry: str | Mapping[str, str] | None = None,
        delimiter: str = ",",
        config: Mapping[str, Any] | None = None,
        timeout_s: float = 10.0,
    ) -> Self: ...
    def send(self, data: Any) -> int:
        """Encodes and queues every row of an Arrow table/batch/stream; returns rows queued."""
    def flush(self) -> int:
        """Waits for delivery; raises DeliveryError if any message failed."""
    def close(self) -> None:
        """Flushes and releases the client."""
    @property
    def topic(self) -> str:
        """The topic written to."""

@final
class LocalCluster:
    """librdkafka's in-process mock cluster (see :class:`kafkaml.LocalKafka`)."""

    def __new__(cls, brokers: int = 1) -> Self: ...
    @property
    def bootstrap_servers(self) -> str:
        """The cluster's bootstrap address list."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Creates a topic (replication factor 1)."""
    def broker_down(self, broker_id: int) -> None:
        """Takes a broker offline."""
    def broker_up(self, broker_id: int) -> None:
        """Brings a broker back."""
    def stop(self) -> None:
        """Stops the cluster; its data is gone."""

def to_numpy(
    data: Any, columns: Sequence[str] | None = None, dtype: str = "float32", fill: float | None = None
) -> np.ndarray:
    """Arrow columns as a C-contiguous 2-D matrix, built in Rust."""

def parse_columns(declarations: str | Sequence[str]) -> pa.Schema:
    """KSQL column declarations as a pyarrow.Schema."""
