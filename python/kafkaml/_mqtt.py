"""MQTT into Kafka: the proxy (devices publish to kafkaml over MQTT 3.1.1, each PUBLISH
becomes a Kafka record) and the bridge (kafkaml subscribes on an MQTT broker such as
Mosquitto and writes what it receives to Kafka)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._display import html_table
from kafkaml._native import MqttBridgeRunner, MqttProxyServer, mqtt_proxy_properties
from kafkaml._native import mqtt_publish as _mqtt_publish
from kafkaml._service import StopOnExit

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


class MqttProxy(StopOnExit):
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
        users: ``{"username": "password"}``: only clients that CONNECT with one of these pairs
            are served (others get CONNACK 0x05 without credentials, 0x04 with wrong ones, and
            are counted in ``refused_credentials``). Without it anyone may connect and
            credentials are not checked. The connection is not encrypted (no TLS): use it on
            networks you trust.

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
        users: Mapping[str, str] | None = None,
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
            users=dict(users) if users else None,
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
        users: Mapping[str, str] | None = None,
    ) -> MqttProxy:
        """A proxy configured by Confluent MQTT Proxy's properties file (or its text), such as
        the talk's ``kafka-mqtt-quickstart.properties``: ``topic.regex.list``, ``listeners``,
        ``bootstrap.servers``, ``mqtt.message.max.bytes`` and ``producer.*`` (passed to the
        producer without the prefix). Keys the proxy does not use, such as
        ``confluent.topic.replication.factor``, are ignored with a warning. ``bootstrap``
        and ``listen`` replace the file's values; ``timeout`` and ``users`` are as for
        :class:`MqttProxy` (Confluent's proxy takes credentials from a JAAS file, which is not
        read here)."""
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
            users=users,
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
        ``refused_connections`` (``refused_credentials`` of them), ``subscriptions_refused``,
        ``kafka_errors``,
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


class MqttBridge(StopOnExit):
    """Subscribes on an MQTT broker (Mosquitto, HiveMQ, ...) and writes every message it
    receives to Kafka: the Kafka Connect MQTT source's job, without a Connect cluster::

        with kafkaml.MqttBridge("broker:9092", "mqtt://mosquitto:1883",
                                topics={"temperature": ".*temperature"},
                                subscribe="car/+/temperature", qos=2) as bridge:
            ...

    Each message becomes one Kafka record as with :class:`MqttProxy`: key = the MQTT topic,
    value = the payload as it is, in the Kafka topic of the first rule whose regular
    expression matches the whole MQTT topic.

    Guarantees: the bridge keeps a persistent session (``clean session = 0`` under
    ``client_id``), so the broker holds QoS 1/2 messages while the bridge is away or
    reconnecting. It acknowledges a message to the broker (PUBACK, or PUBREC at QoS 2) only
    after Kafka acknowledged its record, in the order the messages came; QoS 2 ids are kept
    until PUBREL, so a redelivered message is not written twice. A record Kafka fails is never
    acknowledged: the bridge drops the connection, reconnects, and the broker delivers it
    again (``kafka_errors``). Messages whose topic no rule matches are acknowledged and counted
    (``unmatched``). After a lost connection it reconnects after 0.1 s, doubling up to 5 s.
    Messages arrive at the QoS of the subscription at most: subscribe at QoS 1 or 2 for these
    guarantees. Not supported yet: TLS, MQTT 5.

    Args:
        bootstrap: ``"host:port"`` of the Kafka cluster, or a :class:`LocalKafka`.
        broker: the MQTT broker: ``mqtt://host:port``, ``tcp://host:port`` or ``host:port``
            (port 1883 when omitted).
        topics: the rules, first match wins: ``{"kafka topic": "regex"}``, a list of pairs, or
            ``"topic:regex,topic:regex"``.
        subscribe: topic filters to subscribe to (``#`` and ``+`` wildcards), one or a list.
        qos: the QoS asked for every filter (0, 1 or 2).
        client_id: the id the broker keeps the bridge's session under: the same id resumes
            the session, another bridge needs another id.
        username, password: credentials for the broker.
        keep_alive: seconds between keep-alive pings; the connection is dropped and made
            again when the broker is silent for 1.5 times that.
        config: librdkafka properties for the producer over the bridge's defaults
            (idempotence on, ``linger.ms=1``, the Java client's partitioner).
        timeout: seconds Kafka may take to acknowledge a record before it counts as failed.

    Raises:
        MqttError: the broker cannot be reached, or refuses the connection or a filter.
        KafkaError: the cluster cannot be reached, or a rule's topic does not exist and the
            broker does not create topics.
        ConfigError: a rule, filter or QoS is invalid.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        broker: str,
        topics: Topics,
        subscribe: str | Sequence[str] = "#",
        *,
        qos: int = 1,
        client_id: str = "kafkaml-bridge",
        username: str | None = None,
        password: str | None = None,
        keep_alive: float = 30.0,
        config: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if qos not in (0, 1, 2):
            from kafkaml import ConfigError

            raise ConfigError(f"qos must be 0, 1 or 2, got {qos!r}")
        self.topics = _topic_pairs(topics)
        self.subscriptions = [subscribe] if isinstance(subscribe, str) else list(subscribe)
        self.qos = qos
        self.client_id = client_id
        self.bootstrap = bootstrap_servers(bootstrap, config)
        self._runner: MqttBridgeRunner | None = MqttBridgeRunner(
            self.bootstrap,
            broker,
            self.topics,
            [(f, qos) for f in self.subscriptions],
            client_id=client_id,
            keep_alive=keep_alive,
            username=username,
            password=password,
            config=dict(config or {}),
            timeout=timeout,
        )
        self._broker = self._runner.broker

    @property
    def broker(self) -> str:
        """The MQTT broker's ``host:port``."""
        return self._broker

    @property
    def running(self) -> bool:
        """False once stopped."""
        return self._runner is not None

    def stats(self) -> dict[str, Any]:
        """Counters: ``connected`` (now), ``connections`` (sessions made: the first and each
        reconnection), ``received`` messages (and ``received_qos0/1/2``; a redelivery counts
        again), ``written`` (Kafka acknowledged), ``unmatched``, ``duplicates`` (QoS 2
        redeliveries not written again), ``kafka_errors``, ``protocol_errors``,
        ``keepalive_timeouts``, ``in_flight`` (queued, not yet acknowledged) and ``last_error``
        (why the last connection ended, or None)."""
        if self._runner is None:
            return {"running": False, "broker": self._broker}
        return self._runner.stats()

    def stop(self) -> None:
        """Sends the acknowledgements still owed (waiting up to 5 s for Kafka), disconnects,
        then waits up to the timeout for queued records. The broker keeps the session."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.stop()

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return (
            f"MqttBridge(bootstrap={self.bootstrap!r}, broker={self._broker!r}, "
            f"subscribe={self.subscriptions!r}, topics={self.topics!r}, {state})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's display: state, broker, filters, rules and the counters."""
        stats = self.stats()
        rows: list[tuple[str, object]] = [
            ("state", "running" if self.running else "stopped"),
            ("broker", self._broker),
            ("subscribed", ", ".join(self.subscriptions) + f" (QoS {self.qos})"),
            ("bootstrap", self.bootstrap),
            ("topics", ", ".join(f"{t} \u2190 {p}" for t, p in self.topics)),
        ]
        for key in ("connected", "received", "written", "unmatched", "kafka_errors", "last_error"):
            if key in stats:
                rows.append((key.replace("_", " "), stats[key]))
        return html_table("MqttBridge", rows)


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
    """Publishes ``payloads`` in order to ``topic`` on an MQTT server (an :class:`MqttProxy`,
    Mosquitto, HiveMQ, ...): the devices of a demo or a test, with no MQTT client installed::

        kafkaml.mqtt_publish(proxy.url, "car/engine/temperature", readings, qos=2)

    One MQTT 3.1.1 connection (clean session) publishes everything, in Rust, with the GIL
    released. At QoS 1 and 2 up to ``in_flight`` messages wait for their acknowledgement at
    once (QoS 2 through PUBREC, PUBREL and PUBCOMP), and the call returns once all are
    acknowledged; at QoS 0 it returns once the server has closed the connection after
    DISCONNECT (QoS 0 has no acknowledgements: a server that refused a message and closed the
    connection looks the same; publish at QoS 1 to know what arrived).

    Args:
        url: ``mqtt://host:port``, ``tcp://host:port`` or ``host:port`` (port 1883 when
            omitted).
        topic: the MQTT topic (no wildcards).
        payloads: ``bytes`` or ``str`` (sent as UTF-8), one message each.
        qos: 0, 1 or 2.
        client_id: the MQTT client id (default: ``kafkaml-publisher-<pid>``).
        in_flight: QoS 1/2 messages unacknowledged at once. Mosquitto's default
            ``max_inflight_messages`` is 20 and it drops a 3.1.1 client that sends more.
        username, password: credentials for the server.
        timeout: seconds the server may take to answer before the publish fails.

    Returns:
        How many messages were published (acknowledged, at QoS 1 and 2).

    Raises:
        MqttError: the server cannot be reached, refuses the connection, closes it or stays
            silent; the message says how many payloads were acknowledged (all before them
            in order are delivered, so a caller knows where to resume).
        ConfigError: the topic, QoS or ``in_flight`` is invalid.
        TypeError: a payload is neither bytes nor str.
    """
    return _mqtt_publish(
        url,
        topic,
        payloads,
        qos=qos,
        client_id=client_id,
        in_flight=in_flight,
        username=username,
        password=password,
        timeout=timeout,
    )
