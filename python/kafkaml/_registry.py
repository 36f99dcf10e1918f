"""The embedded Schema Registry: Confluent's REST API, state in a Kafka topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._display import html_table
from kafkaml._native import SchemaRegistryServer
from kafkaml._service import StopOnExit


class LocalSchemaRegistry(StopOnExit):
    """A Confluent-compatible Schema Registry served from this process.

    confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``
    (and kafkaml's own Avro reads and writes) use it like Confluent's registry::

        with kafkaml.LocalSchemaRegistry("broker:9092") as registry:
            client = SchemaRegistryClient({"url": registry.url})
            kafkaml.write_topic(bootstrap, "t", table, format="avro", schema_registry=registry)

    Its state lives in the compacted topic ``topic`` (``_schemas``, as Confluent keeps it),
    read to its end before the registry serves: a restarted registry, or a second one on the
    same cluster, serves the same ids. Registries on one cluster need no leader: every write is
    a claim appended to the topic, and the first valid claim in log order wins (see README).

    Avro schemas only (with references); JSON Schema and Protobuf are refused with error
    code 42201. Compatibility levels: NONE, BACKWARD, FORWARD, FULL and their _TRANSITIVE
    forms, by Avro's schema-resolution rules. Modes READWRITE and READONLY.

    Args:
        bootstrap: ``"host:port"`` of the Kafka cluster, or a :class:`LocalKafka`.
        listen: ``host:port`` to serve HTTP on; port 0 picks a free one (see :attr:`port`).
        topic: the topic holding the registry's state (created compacted, one partition).
        config: librdkafka properties for the registry's Kafka clients (SASL, TLS, ...).
        timeout: seconds a Kafka request may take before the registry reports an error.

    Raises:
        KafkaError: the cluster cannot be reached or the topic cannot be read.
        ConfigError: ``listen`` cannot be bound, or a property is invalid.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        listen: str = "127.0.0.1:0",
        *,
        topic: str = "_schemas",
        config: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.listen = listen
        self.topic = topic
        self.bootstrap = bootstrap_servers(bootstrap, config)
        self._server: SchemaRegistryServer | None = SchemaRegistryServer(
            self.bootstrap, listen, topic=topic, config=dict(config or {}), timeout=timeout
        )
        self._url = self._server.url
        self._port = self._server.port

    @property
    def url(self) -> str:
        """``http://host:port``: give it to clients as ``{"url": registry.url}``."""
        return self._url

    @property
    def port(self) -> int:
        """The port the registry listens on."""
        return self._port

    @property
    def running(self) -> bool:
        """False once stopped."""
        return self._server is not None

    def stats(self) -> dict[str, Any]:
        """Requests served (``requests``, ``client_errors``, ``server_errors``), state sizes
        (``schemas``, ``subjects``, ``max_id``), registrations written here (``registered``),
        claims that lost a race to another registry (``claims_rejected``), and where the
        registry has read its topic to (``log_position``)."""
        if self._server is None:
            return {"running": False, "url": self._url}
        return self._server.stats()

    def stop(self) -> None:
        """Stops serving. The state stays in the topic for the next registry."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        state = self._url if self._server is not None else "stopped"
        return f"LocalSchemaRegistry(bootstrap={self.bootstrap!r}, topic={self.topic!r}, url={state!r})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state, URL, where the state lives and the counters."""
        stats = self.stats()
        rows: list[tuple[str, object]] = [
            ("state", "running" if self.running else "stopped"),
            ("url", self._url),
            ("bootstrap", self.bootstrap),
            ("topic", self.topic),
        ]
        for key in ("schemas", "subjects", "requests", "client_errors", "server_errors"):
            if key in stats:
                rows.append((key.replace("_", " "), stats[key]))
        return html_table("LocalSchemaRegistry", rows)
