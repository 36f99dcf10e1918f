"""The embedded Kafka cluster for demos and quick tests."""

from __future__ import annotations

from types import TracebackType

from kafkaml._display import html_rows, html_table
from kafkaml._native import ClosedError, LocalCluster


class LocalKafka:
    """librdkafka's in-process Kafka cluster, listening on loopback ports.

    Any Kafka client (kafkaml, confluent-kafka, the Java tools) can produce to and consume
    from it, consumer groups included. It is a test double, not a broker:

    * data lives in memory and is gone when the cluster stops;
    * each partition keeps only its newest ~100,000 message batches / 5 MiB: older data is
      dropped silently (kafkaml's consumer warns when a read finds the log start moved on),
      so size topics with enough partitions;
    * offsets cannot be looked up by time (``start=datetime`` raises on it);
    * clients cannot create topics on it: use :meth:`create_topic` (or produce, which
      auto-creates a one-partition topic).

    Use it as a context manager::

        with kafkaml.LocalKafka() as kafka:
            kafka.create_topic("sensors", partitions=3)
            kafkaml.write_topic(kafka, "sensors", table)
    """

    def __init__(self, brokers: int = 1) -> None:
        self._cluster: LocalCluster | None = LocalCluster(brokers)
        self.brokers = brokers
        # The mock cluster cannot list its topics; these are the ones create_topic made.
        self._topics: dict[str, int] = {}

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port,...`` list for clients' ``bootstrap.servers``."""
        return self._running().bootstrap_servers

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Creates topic ``name`` with ``partitions`` partitions (replication factor 1)."""
        self._running().create_topic(name, partitions)
        self._topics[name] = partitions

    def broker_down(self, broker_id: int = 1) -> None:
        """Takes broker ``broker_id`` (1-based) offline, for fault tests."""
        self._running().broker_down(broker_id)

    def broker_up(self, broker_id: int = 1) -> None:
        """Brings broker ``broker_id`` back online."""
        self._running().broker_up(broker_id)

    def stop(self) -> None:
        """Stops the cluster; its data is gone."""
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None

    def _running(self) -> LocalCluster:
        if self._cluster is None:
            raise ClosedError("this LocalKafka is stopped")
        return self._cluster

    def __enter__(self) -> LocalKafka:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __str__(self) -> str:
        return self.bootstrap_servers

    def __repr__(self) -> str:
        state = self.bootstrap_servers if self._cluster is not None else "stopped"
        return f"LocalKafka(brokers={self.brokers}, bootstrap_servers={state!r})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state, address, brokers and the topics made by :meth:`create_topic`."""
        running = self._cluster is not None
        rows: list[tuple[str, object]] = [
            ("state", "running (in memory)" if running else "stopped"),
            ("bootstrap_servers", self.bootstrap_servers if running else None),
            ("brokers", self.brokers),
        ]
        if self._topics:
            rows.append(("topics created", html_rows(["topic", "partitions"], sorted(self._topics.items()))))
        else:
            rows.append(("topics created", "none yet (producing creates one-partition topics)"))
        return html_table("LocalKafka", rows)
