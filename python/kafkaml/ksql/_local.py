"""The embedded KSQL engine behind ksqlDB's REST API: ``LocalKsql`` and ``model_udf``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._display import html_table
from kafkaml._native import KsqlServer, ModelUdf
from kafkaml._service import StopOnExit
from kafkaml.ksql._client import Client


def model_udf(
    model: Any,
    input: str | list[str] = "#-separated",
    output: Literal["reconstruction_error", "prediction"] = "reconstruction_error",
) -> ModelUdf:
    """A :class:`kafkaml.Model` as a KSQL scalar function, scored in Rust on whole batches.

    Args:
        model: a loaded :class:`kafkaml.Model`.
        input: ``"<sep>-separated"`` for one text argument of numbers separated by ``<sep>``
            (the talk's ``"2.10# 2.13# ..."`` readings: ``"#-separated"``), or a list of
            argument names, one numeric argument per model input.
        output: ``"reconstruction_error"`` (mean squared error between the row and the model's
            output: an autoencoder's anomaly score) or ``"prediction"`` (the first output).

    Returns a value for ``LocalKsql(udfs={"ANOMALY": model_udf(model)})``. A row that cannot be
    scored (wrong count of readings, text that is not a number) gives NULL, counted as the
    query's processing error; the record is still written.

    Raises:
        ConfigError: ``input`` or ``output`` is not understood, or does not fit the model
            (a list of the wrong length, ``reconstruction_error`` for a non-autoencoder).
    """
    native = getattr(model, "_native", model)
    if isinstance(input, str):
        if not input.endswith("-separated") or input == "-separated":
            from kafkaml._native import ConfigError

            raise ConfigError(
                f'input must be "<separator>-separated" (e.g. "#-separated") or a list of argument names, not {input!r}'
            )
        return ModelUdf(native, separator=input[: -len("-separated")], output=output)
    return ModelUdf(native, columns=list(input), output=output)


class LocalKsql(StopOnExit):
    """A KSQL server in this process: kafkaml's engine with ksqlDB's REST API, on any Kafka.

    ``kafkaml.ksql.Client``, ksql-python's ``KSQLAPI`` (``kafkaml.ksql.KSQLAPI``) and ksqlDB's
    own clients talk to it as to a ksqlDB server, so the same notebook later points at a real
    ksqlDB cluster by changing the URL::

        with kafkaml.LocalKafka() as kafka, kafkaml.ksql.LocalKsql(kafka) as ksql:
            client = ksql.client()
            client.execute("CREATE STREAM s (id INT, v DOUBLE) WITH (kafka_topic='t', value_format='JSON', partitions=1);")

    Streams and tables, persistent queries (``CREATE STREAM|TABLE ... AS SELECT``, ``INSERT
    INTO``), aggregations (``GROUP BY``, ``HAVING``, tumbling, hopping and session windows),
    joins (of two sources or more), push queries (``SELECT ... EMIT CHANGES``) and pull queries
    on the tables queries write (``SELECT ... FROM table WHERE ...``) run here; what does not
    (aggregations over joins, PROTOBUF, ...) is refused with a statement error naming the
    construct. Statements that change what runs are kept on the service's command topic
    (``_confluent-ksql-<service_id>_command_topic``) and replayed when a server with the same
    ``service_id`` starts: persistent queries resume from their committed offsets, an
    aggregation with its state from its changelog topic.

    Args:
        bootstrap: ``"host:port"`` of the Kafka cluster, or a :class:`kafkaml.LocalKafka`.
        listen: ``host:port`` to serve on; port 0 picks a free one (see :attr:`url`).
        udfs: extra scalar functions by name, e.g. ``{"ANOMALY": model_udf(model)}``.
        schema_registry: URL (or :class:`kafkaml.LocalSchemaRegistry`) for the AVRO format.
        service_id: the service's id; by default a fresh one per instance (its own command
            topic), so a notebook re-run starts clean. Give one to find earlier statements.
        config: librdkafka properties for the server's Kafka clients.

    Raises:
        KafkaError: the cluster cannot be reached, or the command topic cannot be read.
        ConfigError: ``listen`` cannot be bound, or a UDF does not fit its model.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        *,
        listen: str = "127.0.0.1:0",
        udfs: Mapping[str, ModelUdf] | None = None,
        schema_registry: Any = None,
        service_id: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap_servers(bootstrap, config)
        self.service_id = service_id or f"kafkaml_{uuid.uuid4().hex[:12]}_"
        registry_url = None if schema_registry is None else str(getattr(schema_registry, "url", schema_registry))
        self.udfs = dict(udfs or {})
        self._server: KsqlServer | None = KsqlServer(
            self.bootstrap,
            listen,
            service_id=self.service_id,
            udfs=list(self.udfs.items()),
            schema_registry=registry_url,
            config=dict(config or {}),
        )
        self._url = self._server.url
        self.command_topic = self._server.command_topic

    @property
    def url(self) -> str:
        """``http://host:port``: the URL ksqlDB clients are given."""
        return self._url

    @property
    def running(self) -> bool:
        """False once stopped."""
        return self._server is not None

    def client(self, **options: Any) -> Client:
        """A :class:`kafkaml.ksql.Client` for this server (options as ``Client``'s)."""
        return Client(self._url, **options)

    def stats(self) -> dict[str, Any]:
        """Requests, statements (and how many were refused), push queries, commands replayed
        at start, and per persistent query (``queries``) its records in and out, ``caught_up``
        (its source read to the end, found by a check made ``caught_up_checked_ago`` seconds
        ago) and the error it stopped on."""
        if self._server is None:
            return {"running": False, "url": self._url}
        return self._server.stats()

    def wait_for_queries(self, timeout: float = 60.0) -> dict[str, Any]:
        """Waits until every persistent query has read its source topics to the ends they have
        now (all it read is written and committed); returns ``stats()["queries"]``.

        Useful in notebooks and tests: ``CREATE STREAM ... AS SELECT`` returns at once, and the
        query runs in the background. Records written before the call are waited for: a query
        counts as caught up only by a check it made after the call (it checks twice a second
        while idle). A query started at ``latest`` (ksqlDB's default) is caught up once it
        stands at the end, so writing after this returns loses nothing to it.

        Raises:
            KafkaError: a query stopped on an error (its message says which and why).
            TimeoutError: not caught up within ``timeout`` seconds (the message shows progress).
        """
        import time

        from kafkaml._native import KafkaError

        called = time.monotonic()
        deadline = called + timeout
        while True:
            queries = self.stats().get("queries", {})
            failed = {query_id: q["error"] for query_id, q in queries.items() if q["error"]}
            if failed:
                raise KafkaError("; ".join(failed.values()))
            since_call = time.monotonic() - called
            if all(q["caught_up"] and q["caught_up_checked_ago"] < since_call for q in queries.values()):
                return queries
            if time.monotonic() > deadline:
                behind = {
                    query_id: f"{q['records_in']:,} records read"
                    for query_id, q in queries.items()
                    if not q["caught_up"]
                }
                raise TimeoutError(f"persistent queries not caught up after {timeout} s: {behind}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stops serving and stops the persistent queries; their statements stay on the
        command topic for the next server with this ``service_id``."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        state = self._url if self._server is not None else "stopped"
        return f"LocalKsql(bootstrap={self.bootstrap!r}, service_id={self.service_id!r}, url={state!r})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state, URL, service id and the counters."""
        stats = self.stats()
        rows: list[tuple[str, object]] = [
            ("state", "running" if self.running else "stopped"),
            ("url", self._url),
            ("bootstrap", self.bootstrap),
            ("service id", self.service_id),
            ("UDFs", ", ".join(self.udfs) or "none"),
        ]
        for key in ("statements", "statement_errors", "push_queries"):
            if key in stats:
                rows.append((key.replace("_", " "), stats[key]))
        for query_id, query in stats.get("queries", {}).items():
            rows.append(
                (
                    query_id,
                    f"{query['records_in']:,} in, {query['records_out']:,} out"
                    + (f", {query['error']}" if query["error"] else ""),
                )
            )
        return html_table("LocalKsql", rows)
