"""Type stubs for kafkaml's Rust extension (``kafkaml._native``).

Users call the wrappers in :mod:`kafkaml`; these are the native classes behind them.
"""

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, final

import numpy as np
import pyarrow as pa
from typing_extensions import Self

__version__: str
__all__ = [
    "ArrowConsumer",
    "ArrowProducer",
    "ClosedError",
    "ConfigError",
    "DecodeError",
    "DeliveryError",
    "KafkaError",
    "KafkaMLError",
    "LocalBroker",
    "LocalCluster",
    "Model",
    "ModelError",
    "SchemaError",
    "UnsupportedError",
    "MqttProxyServer",
    "MqttBridgeRunner",
    "MqttError",
    "mqtt_proxy_properties",
    "mqtt_publish",
    "StreamScorer",
    "SchemaRegistryServer",
    "KsqlServer",
    "ModelUdf",
    "ksql_conformance",
    "__version__",
    "parse_columns",
    "to_numpy",
    # ksqlDB client
    "KsqlAuthError",
    "KsqlConnection",
    "KsqlConnectionError",
    "KsqlEndpointError",
    "KsqlError",
    "KsqlQueryStream",
    "KsqlServerNotReadyError",
    "KsqlStatementError",
    "KsqlStreamError",
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

class ClosedError(KafkaMLError):
    """The object was closed or stopped (a Consumer, Producer or LocalKafka): make a new one."""

class UnsupportedError(KafkaMLError):
    """The request cannot be served here (e.g. seeking by time on LocalKafka)."""

class ModelError(KafkaMLError):
    """A model file could not be loaded (malformed, unsupported op, unknown node) or run (shape or dtype mismatch)."""

class MqttError(KafkaMLError):
    """An MQTT broker could not be reached, or refused the connection or a subscription."""

@final
class Model:
    """The native model behind :class:`kafkaml.Model`."""

    @staticmethod
    def load(
        path: str,
        inputs: list[str] | None = None,
        outputs: list[str] | None = None,
        input_shape: list[int] | None = None,
        backend: str = "auto",
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
    @property
    def backend(self) -> str: ...
    @property
    def dense_isa(self) -> str | None: ...
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs the model on a C-contiguous float32 matrix [rows, input_width]."""
    def reconstruction_error(self, x: np.ndarray) -> np.ndarray:
        """Per-row mean squared error between the input and the model's reconstruction."""

@final
class StreamScorer:
    """The Rust stream scorer behind :class:`kafkaml.StreamScorer`; starts scoring when made."""

    def __new__(
        cls,
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
        on_error: str = ...,
        delimiter: str = ...,
        config: dict[str, Any] | None = ...,
        sink_config: dict[str, Any] | None = ...,
        timeout_s: float = 20.0,
    ) -> StreamScorer: ...
    def stats(self) -> dict[str, Any]:
        """Progress counters as a dict, with ``error``: the message of the error that ended
        the thread (kept after :meth:`stop` raised it), None while healthy."""
    @property
    def running(self) -> bool: ...
    def errors(self) -> tuple[int, list[tuple[str, int, int, str]]]:
        """(skipped count, [(topic, partition, offset, reason), ...] of the latest failures)."""
    def stop(self, timeout_s: float) -> None:
        """Finishes the batch in hand, commits, and ends the thread (abandoning the batch after
        `timeout_s`); raises the error that ended the thread, if one did."""

@final
class ArrowConsumer:
    """The core consumer behind :class:`kafkaml.Consumer`: every option is checked and
    converted here, once (see ``Consumer`` for what each means)."""

    def __new__(
        cls,
        bootstrap: str,
        topics: Sequence[str],
        *,
        format: str = "json",
        schema: pa.Schema | str | Sequence[str] | Mapping[str, Any] | None = None,
        schema_registry: str | Mapping[str, str] | Any | None = None,
        group_id: str | None = None,
        start: str | Mapping[int, int] | _dt.date | None = ...,
        stop: str | _dt.date | None = ...,
        batch_size: int = 10_000,
        max_wait_ms: int = 500,
        on_error: str = ...,
        include_metadata: bool = False,
        delimiter: str = ...,
        parse_dates: Sequence[str] = ...,
        ordered: bool = False,
        config: Mapping[str, Any] | None = ...,
        timeout: float = 10.0,
    ) -> Self: ...
    def next_batch(self) -> pa.RecordBatch | None:
        """The next batch, or None once the stop is reached (GIL released while reading)."""
    def read_matrix(
        self,
        columns: Sequence[str] | None = None,
        dtype: str = "float32",
        fill: float | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> np.ndarray:
        """Reads to the stop straight into a C-contiguous (rows, columns) matrix (GIL released);
        ``progress(messages_read)`` is called after each round of messages."""
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
    def lag(self) -> int | None:
        """Messages between the positions and the partitions' ends, None while unknown."""
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
        schema_registry: str | Mapping[str, str] | Any | None = None,
        delimiter: str = ...,
        config: Mapping[str, Any] | None = ...,
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

@final
class LocalBroker:
    """kafkaml's in-process Kafka broker (see :class:`kafkaml.LocalKafka`)."""

    def __new__(
        cls, path: str | os.PathLike[str] | None = None, partitions: int = 1, port: int = 0, host: str = "127.0.0.1"
    ) -> Self: ...
    @property
    def bootstrap_servers(self) -> str:
        """The broker's ``host:port``."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Creates a topic (replication factor 1); one with as many partitions already there is kept."""
    def delete_topic(self, name: str) -> None:
        """Deletes a topic and its data."""
    def topics(self) -> list[tuple[str, int, int, int]]:
        """(name, partitions, messages, stored bytes) of each topic, sorted by name."""
    def stop(self) -> None:
        """Stops the broker; in-memory data is gone, a directory's stays."""

@final
class SchemaRegistryServer:
    """The embedded Schema Registry's HTTP server (see :class:`kafkaml.LocalSchemaRegistry`)."""

    def __new__(
        cls,
        bootstrap: str,
        listen: str = "127.0.0.1:0",
        *,
        topic: str = "_schemas",
        config: Mapping[str, Any] | None = ...,
        timeout: float = 30.0,
    ) -> Self: ...
    @property
    def url(self) -> str:
        """``http://host:port``."""
    @property
    def port(self) -> int:
        """The port it listens on."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def stats(self) -> dict[str, Any]:
        """Request counters, state sizes and the log position."""
    def stop(self) -> None:
        """Stops serving."""

@final
class ModelUdf:
    """A model packaged as a KSQL scalar function (see :func:`kafkaml.ksql.model_udf`)."""

    def __new__(
        cls,
        model: Model,
        *,
        separator: str | None = None,
        columns: Sequence[str] | None = None,
        output: str = "reconstruction_error",
    ) -> Self: ...

@final
class KsqlServer:
    """The embedded KSQL server (see :class:`kafkaml.ksql.LocalKsql`)."""

    def __new__(
        cls,
        bootstrap: str,
        listen: str = "127.0.0.1:0",
        *,
        service_id: str = "default_",
        udfs: Sequence[tuple[str, ModelUdf]] = ...,
        schema_registry: str | None = None,
        config: Mapping[str, Any] | None = ...,
    ) -> Self: ...
    @property
    def url(self) -> str:
        """``http://host:port``."""
    @property
    def port(self) -> int:
        """The port it listens on."""
    @property
    def service_id(self) -> str:
        """The service id (names the command topic and the queries' consumer groups)."""
    @property
    def command_topic(self) -> str:
        """The topic the server keeps its statements on."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def stats(self) -> dict[str, Any]:
        """Request and statement counters, and per persistent query its records in and out."""
    def stop(self) -> None:
        """Stops serving and stops the persistent queries."""

def ksql_conformance(paths: Sequence[str]) -> list[dict[str, str]]:
    """Runs ksqlDB's conformance cases (files or folders) against the embedded engine."""

@final
class MqttProxyServer:
    """The MQTT proxy's server (see :class:`kafkaml.MqttProxy`)."""

    def __new__(
        cls,
        bootstrap: str,
        topics: Sequence[tuple[str, str]],
        listen: str = "127.0.0.1:0",
        *,
        max_message_bytes: int = 8092,
        config: Mapping[str, Any] | None = ...,
        timeout: float = 30.0,
        users: Mapping[str, str] | None = None,
    ) -> Self: ...
    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
    @property
    def port(self) -> int:
        """The port it listens on."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def stats(self) -> dict[str, Any]:
        """Counters as a dict."""
    def stop(self) -> None:
        """Closes the connections and flushes the producer."""

@final
class MqttBridgeRunner:
    """The bridge from an MQTT broker into Kafka (see :class:`kafkaml.MqttBridge`)."""

    def __new__(
        cls,
        bootstrap: str,
        broker: str,
        topics: Sequence[tuple[str, str]],
        subscriptions: Sequence[tuple[str, int]],
        *,
        client_id: str = "kafkaml-bridge",
        keep_alive: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        config: Mapping[str, Any] | None = ...,
        timeout: float = 30.0,
    ) -> Self: ...
    @property
    def broker(self) -> str:
        """The broker's ``host:port``."""
    @property
    def running(self) -> bool:
        """False once stopped."""
    def stats(self) -> dict[str, Any]:
        """Counters as a dict."""
    def stop(self) -> None:
        """Sends the acknowledgements owed, disconnects and flushes the producer."""

def mqtt_proxy_properties(text: str) -> dict[str, Any]:
    """Confluent MQTT Proxy properties text as the proxy's arguments and the ignored keys."""

def mqtt_publish(
    url: str,
    topic: str,
    payloads: Iterable[bytes | str],
    *,
    qos: int = 0,
    client_id: str | None = None,
    in_flight: int = 16,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
) -> int:
    """Publishes the payloads in order over MQTT 3.1.1 (see :func:`kafkaml.mqtt_publish`)."""

def to_numpy(
    data: Any, columns: Sequence[str] | None = None, dtype: str = "float32", fill: float | None = None
) -> np.ndarray:
    """Arrow columns as a C-contiguous 2-D matrix, built in Rust."""

def parse_columns(declarations: str | Sequence[str]) -> pa.Schema:
    """KSQL column declarations as a pyarrow.Schema."""

# --- ksqlDB client (kafkaml.ksql) ---

class KsqlError(KafkaMLError):
    """ksqlDB refused or failed a request. ``kind`` names the failure's class (``"statement"``,
    ``"not_found"``, ``"auth"``, ...); ``KsqlError(message, error_code)`` is ksql-python's
    ``KSQLError`` constructor."""

    error_code: int | None
    http_status: int | None
    kind: str | None
    message: str
    msg: str
    statement_text: str | None
    raw: str | None
    stackTrace: Any
    def __init__(self, message: object = "", error_code: int | None = None, stackTrace: Any = None) -> None: ...

class KsqlStatementError(KsqlError):
    """The statement is invalid or failed (error code 40001)."""

class KsqlEndpointError(KsqlError):
    """The statement was sent to the wrong endpoint (error code 40002)."""

class KsqlAuthError(KsqlError):
    """Authentication or authorization failed."""

class KsqlServerNotReadyError(KsqlError):
    """The server is not ready (HTTP 503)."""

class KsqlStreamError(KsqlError):
    """The server reported an error in the middle of a result stream."""

class KsqlConnectionError(KsqlError):
    """The server could not be reached or did not answer in time."""

@final
class KsqlConnection:
    """The native ksqlDB client behind :class:`kafkaml.ksql.Client`."""

    def __new__(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        verify: bool = True,
        ca_pem: bytes | None = None,
        client_cert_pem: bytes | None = None,
        client_key_pem: bytes | None = None,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        http2: bool = False,
        retries: int = 3,
    ) -> Self: ...
    @property
    def url(self) -> str: ...
    def ksql(
        self,
        statements: str,
        streams_properties: str = "{}",
        session_variables: str = "{}",
        command_sequence_number: int | None = None,
    ) -> str: ...
    def get(self, path: str) -> str: ...
    def terminate(self, delete_topics: Sequence[str] = ...) -> str: ...
    def close_query(self, query_id: str) -> None: ...
    def insert(self, target: str, rows: Sequence[str], fail_on_rejected: bool = True) -> list[str]: ...
    def query(
        self,
        sql: str,
        properties: str = "{}",
        session_variables: str = "{}",
        endpoint: str = "query",
        limit: int | None = None,
        header_timeout: float = 60.0,
        wait_for_header: bool = True,
        raw_lines: bool = False,
    ) -> KsqlQueryStream: ...

@final
class KsqlQueryStream:
    """The rows of one streaming query, read on demand."""

    def next_batch(
        self, max_rows: int = 10_000, max_wait: float = 0.5, idle_timeout: float | None = None
    ) -> pa.RecordBatch | None: ...
    def next_texts(self, idle_timeout: float | None = None) -> list[str] | None: ...
    def next_lines(self, idle_timeout: float | None = None) -> list[str] | None: ...
    def close(self) -> bool: ...
    @property
    def query_id(self) -> str | None: ...
    @property
    def schema(self) -> pa.Schema | None: ...
    @property
    def final_message(self) -> str | None: ...
    @property
    def finished(self) -> bool: ...
    @property
    def rows_read(self) -> int: ...
    @property
    def tombstones(self) -> int: ...
