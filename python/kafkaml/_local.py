"""The embedded Kafka broker for notebooks, demos and tests."""

from __future__ import annotations

import os
from typing import Literal

from kafkaml._display import html_rows, html_table
from kafkaml._native import ClosedError, ConfigError, LocalBroker, LocalCluster, UnsupportedError
from kafkaml._service import StopOnExit


class LocalKafka(StopOnExit):
    """A Kafka broker running in this process, listening on a loopback port.

    Any Kafka client (kafkaml, confluent-kafka, the Java tools) can produce to and consume
    from it. The default engine is kafkaml's own broker:

    * every message written is kept: in memory, or with ``path`` also in files under that
      directory, so that another process (or this one after a restart) finds the topics,
      messages and committed group offsets again;
    * topics are created by :meth:`create_topic`, by any client's admin API, or on first use
      (producing, or a producer's metadata request) with ``partitions`` partitions, like
      Kafka's ``auto.create.topics.enable``;
    * consumer groups rebalance and commit; a member that leaves is gone at once (re-running
      a notebook cell does not wait for the old member's session to expire);
    * offsets can be looked up by time (``start=datetime``);
    * one node, replication factor 1, no transactions and no retention or compaction.

    ``engine="mock"`` runs librdkafka's mock cluster instead (``brokers`` > 1 and
    :meth:`broker_down` / :meth:`broker_up` for fault tests). It keeps only the newest
    ~5 MiB of each partition (older data is dropped silently), cannot look offsets up by
    time, and ignores clients' CreateTopics.

    Use it as a context manager::

        with kafkaml.LocalKafka() as kafka:
            kafka.create_topic("sensors", partitions=3)
            kafkaml.write_topic(kafka, "sensors", table)
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        engine: Literal["broker", "mock"] = "broker",
        path: str | os.PathLike[str] | None = None,
        partitions: int = 1,
        port: int = 0,
    ) -> None:
        self._cluster: LocalCluster | None = None
        self._broker: LocalBroker | None = None
        if engine == "mock":
            if path is not None:
                raise ConfigError("LocalKafka(engine='mock') keeps data in memory only: path needs engine='broker'")
            self._cluster = LocalCluster(brokers)
        elif engine == "broker":
            if brokers != 1:
                raise ConfigError(f"LocalKafka's broker is one node, not {brokers}: use engine='mock' for several")
            self._broker = LocalBroker(None if path is None else os.fspath(path), partitions, port)
        else:
            raise ConfigError(f"LocalKafka engine must be 'broker' or 'mock', not {engine!r}")
        self.engine = engine
        self.brokers = brokers
        self.path = None if path is None else os.fspath(path)
        # The mock cluster cannot list its topics; these are the ones create_topic made.
        self._topics: dict[str, int] = {}

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port,...`` list for clients' ``bootstrap.servers``."""
        return self._running().bootstrap_servers

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Creates topic ``name`` with ``partitions`` partitions (replication factor 1).

        On the default engine an existing topic with as many partitions is left as it is
        (a re-run cell, or a ``path`` that already holds it); other counts raise KafkaError.
        """
        self._running().create_topic(name, partitions)
        self._topics[name] = partitions

    def delete_topic(self, name: str) -> None:
        """Deletes topic ``name`` and its messages (not on ``engine="mock"``)."""
        self._running()
        if self._broker is None:
            raise UnsupportedError("LocalKafka(engine='mock') cannot delete topics")
        self._broker.delete_topic(name)
        self._topics.pop(name, None)

    def topics(self) -> dict[str, int]:
        """Each topic's partition count (on ``engine="mock"``: the topics :meth:`create_topic` made)."""
        self._running()
        if self._broker is None:
            return dict(self._topics)
        return {name: partitions for name, partitions, _, _ in self._broker.topics()}

    def broker_down(self, broker_id: int = 1) -> None:
        """Takes broker ``broker_id`` (1-based) offline, for fault tests (``engine="mock"`` only)."""
        self._mock("broker_down").broker_down(broker_id)

    def broker_up(self, broker_id: int = 1) -> None:
        """Brings broker ``broker_id`` back online (``engine="mock"`` only)."""
        self._mock("broker_up").broker_up(broker_id)

    def stop(self) -> None:
        """Stops the broker; data in memory is gone, data under ``path`` stays."""
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    def _running(self) -> LocalCluster | LocalBroker:
        engine = self._cluster or self._broker
        if engine is None:
            raise ClosedError("this LocalKafka is stopped")
        return engine

    def _mock(self, what: str) -> LocalCluster:
        self._running()
        if self._cluster is None:
            raise UnsupportedError(f"LocalKafka.{what} needs engine='mock' (librdkafka's mock cluster)")
        return self._cluster

    def __str__(self) -> str:
        return self.bootstrap_servers

    def __repr__(self) -> str:
        running = self._cluster is not None or self._broker is not None
        state = self.bootstrap_servers if running else "stopped"
        if self.engine == "mock":
            return f"LocalKafka(brokers={self.brokers}, engine='mock', bootstrap_servers={state!r})"
        where = f", path={self.path!r}" if self.path is not None else ""
        return f"LocalKafka(bootstrap_servers={state!r}{where})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state, address, engine and the topics."""
        running = self._cluster is not None or self._broker is not None
        where = "in memory" if self.path is None else f"files under {self.path}"
        rows: list[tuple[str, object]] = [
            ("state", f"running ({where})" if running else "stopped"),
            ("bootstrap_servers", self.bootstrap_servers if running else None),
            ("engine", "kafkaml broker" if self.engine == "broker" else f"librdkafka mock, {self.brokers} broker(s)"),
        ]
        if self._broker is not None:
            topics = self._broker.topics()
            if topics:
                table = [(name, partitions, f"{messages:,}") for name, partitions, messages, _ in topics]
                rows.append(("topics", html_rows(["topic", "partitions", "messages"], table)))
            else:
                rows.append(("topics", "none yet (producing creates them)"))
        elif self._topics:
            rows.append(("topics created", html_rows(["topic", "partitions"], sorted(self._topics.items()))))
        else:
            rows.append(("topics created", "none yet (producing creates one-partition topics)"))
        return html_table("LocalKafka", rows)
