"""The MQTT proxy: devices publish over MQTT 3.1.1, each PUBLISH becomes a Kafka record."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._display import html_table
from kafkaml._native import MqttProxyServer, mqtt_proxy_properties

Topics = str | Mapping[str, str] | Sequence[tuple[str, str]]
"""Topic rules: ``{"kafka topic": "mqtt topic regex"}``, ``[(topic, regex), ...]`` or
Confluent's ``"topic:regex,topic:regex"``."""


def _topic_pairs(topics: Topics) -> list[tuple[str, str]]:
    if isinstance(topics, str):
        pairs = []
        for item in topics.split(","):
            if item.strip():
                topic, colon, pattern = item.partition(":")
                if not colon:
                    from kafkaml import ConfigError

                    raise ConfigError(f"topic rule {item.strip()!r}: expected <kafka topic>:<regex>")
                pairs.append((topic, pattern))
        return pairs
    if isinstance(topics, Mapping):
        return [(str(k), str(v)) for k, v in topics.items()]
    return [(str(k), str(v)) for k, v in topics]


class MqttProxy:
    """An MQTT 3.1.1 server that writes every PUBLISH to Kafka, as Confluent MQTT Proxy does.

    Devices publish to it with any MQTT client (``mosquitto_pub``, paho-mqtt, a car)::

        with kafkaml.MqttProxy("broker:9092", topics={"temperature": ".*temperature"}) as proxy:
            # mosquitto_pub -h 127.0.0.1 -p {proxy.port} -t car/engine/temperature -q 2 -m "..."
            ...

    Each PUBLISH becomes one Kafka record: key = the MQTT topic, value = the payload as it is,
    in the Kafka topic of the first rule whose regular expression matches the whole MQTT topic.

    Guarantees: QoS 0 is queued and not answered; QoS 1 is answered (PUBACK) only after Kafka
    acknowledged the record; QoS 2 is answered (PUBREC) only after Kafka acknowledged it, and
    its packet id is kept until PUBREL, so a retransmitted PUBLISH is answered without being
    written twice (also across reconnections with ``clean session = 0``). If Kafka fails a
    record, the device gets no PUBACK/PUBREC: its connection is closed (``kafka_errors``,
    ``closed_on_kafka_error``) and it retransmits when it reconnects.

    Refused, counted in :meth:`stats`, and the connection closed (the only refusal MQTT 3.1.1
    has for a PUBLISH): a topic no rule matches, a payload over ``max_message_bytes``, a
    retained message (a proxy keeps nothing for subscribers). SUBSCRIBE is answered with the
    failure code 0x80 for each filter. A last will is written to Kafka when a connection
    ends without DISCONNECT. Not supported: TLS, authentication (credentials are accepted
    and ignored), MQTT 5 (refused with CONNACK 0x01, as 3.1.1 servers do).

    Args:
        bootstrap: ``"host:port"`` of the Kafka cluster, or a :class:`LocalKafka`.
        topics: the rules, first match wins: ``{"kafka topic": "regex"}``, a list of pairs, or
            Confluent's ``topic.regex.list`` text.
        listen: ``host:port`` to accept MQTT connections on; port 0 picks a free one.
        max_message_bytes: larger payloads are refused (Confluent's
            ``mqtt.message.max.bytes``, default 8092).
        config: librdkafka properties for the producer (``acks``, ``compression.type``,
            SASL, ...) over the proxy's defaults (idempotence on, ``linger.ms=1``, the Java
            client's ``murmur2_random`` partitioner).
        timeout: seconds Kafka may take to acknowledge a record before it counts as failed.

    Raises:
        KafkaError: the cluster cannot be reached, or a rule's topic does not exist and the
            broker does not create topics.
        ConfigError: a rule is invalid (a bad regex or Kafka topic name), ``listen`` cannot be
            bound, or a property is invalid.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        topics: Topics,
        listen: str = "127.0.0.1:0",
        *,
        max_message_bytes: int = 8092,
        config: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.listen = listen
        self.topics = _topic_pairs(topics)
        self.bootstrap = bootstrap_servers(bootstrap, config)
        self._server: MqttProxyServer | None = MqttProxyServer(
            self.bootstrap,
            self.topics,
            listen,
            max_message_bytes=max_message_bytes,
            config=dict(config or {}),
            timeout=timeout,
        )
        self._url = self._server.url
        self._port = self._server.port

    @classmethod
    def from_properties(
        cls,
        properties: str | os.PathLike[str],
        *,
        bootstrap: Bootstrap | None = None,
        listen: str | None = None,
        timeout: float = 30.0,
    ) -> MqttProxy:
        """A proxy configured by Confluent MQTT Proxy's properties file (or its text), such as
        the talk's ``kafka-mqtt-quickstart.properties``: ``topic.regex.list``, ``listeners``,
        ``bootstrap.servers``, ``mqtt.message.max.bytes`` and ``producer.*`` (passed to the
        producer without the prefix). Keys the proxy does not use, such as
        ``confluent.topic.replication.factor``, are ignored with a warning. ``bootstrap``
        and ``listen`` replace the file's values."""
        text = str(properties)
        if "\n" not in text and os.path.isfile(text):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        parsed = mqtt_proxy_properties(text)
        if parsed["ignored"]:
            warnings.warn(
                "MQTT proxy properties not used by kafkaml (ignored): " + ", ".join(parsed["ignored"]),
                UserWarning,
                stacklevel=2,
            )
        return cls(
            bootstrap if bootstrap is not None else parsed["bootstrap"],
            parsed["topics"],
            listen if listen is not None else parsed["listen"],
            max_message_bytes=parsed["max_message_bytes"],
            config=parsed["config"],
            timeout=timeout,
        )

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return self._url

    @property
    def port(self) -> int:
        """The port the proxy accepts MQTT connections on."""
        return self._port

    @property
    def running(self) -> bool:
        """False once stopped."""
        return self._server is not None

    def stats(self) -> dict[str, Any]:
        """Counters: ``received`` PUBLISHes (and ``received_qos0/1/2``), ``written`` (Kafka
        acknowledged), ``duplicates`` (QoS 2 retransmissions not written again), ``refused``
        (``refused_unmatched``, ``refused_too_large``, ``refused_retained``),
        ``refused_connections``, ``subscriptions_refused``, ``kafka_errors``,
        ``closed_on_kafka_error``, ``protocol_errors``, ``keepalive_timeouts``, ``wills``,
        ``connections`` (accepted), ``connected`` (open now) and ``in_flight`` (queued, not yet
        acknowledged)."""
        if self._server is None:
            return {"running": False, "url": self._url}
        return self._server.stats()

    def stop(self) -> None:
        """Closes every connection, then waits up to the timeout for queued records."""
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()

    def __enter__(self) -> MqttProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        state = self._url if self._server is not None else "stopped"
        return f"MqttProxy(bootstrap={self.bootstrap!r}, topics={self.topics!r}, url={state!r})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state, URL, rules and the counters."""
        stats = self.stats()
        rows: list[tuple[str, object]] = [
            ("state", "running" if self.running else "stopped"),
            ("url", self._url),
            ("bootstrap", self.bootstrap),
            ("topics", ", ".join(f"{t} \u2190 {p}" for t, p in self.topics)),
        ]
        for key in ("received", "written", "refused", "duplicates", "kafka_errors", "connected"):
            if key in stats:
                rows.append((key.replace("_", " "), stats[key]))
        return html_table("MqttProxy", rows)
