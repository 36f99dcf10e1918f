"""kafkaml.MqttBridge against a real Mosquitto broker (Debian's, started here on a free port
with persistence) and the real Kafka broker: QoS 0/1/2 delivery, order, the persistent
session while the bridge is away, a Mosquitto restart mid-stream, a record Kafka refuses,
and the errors a user meets first."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import kafkaml
import pytest
from kafka_helpers import read_all
from mqtt_helpers import Mosquitto, free_port, wait_for


def client_id() -> str:
    return f"bridge-{uuid.uuid4().hex[:12]}"


def test_qos_0_1_2_messages_land_keyed_by_mqtt_topic(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    topic = new_topic(partitions=1)
    with kafkaml.MqttBridge(
        bootstrap, mosquitto.url, {topic: ".*temperature"}, "car/#", qos=2, client_id=client_id()
    ) as bridge:
        assert bridge.stats()["connected"] is True
        for qos in (0, 1, 2):
            mosquitto.publish("car/engine/temperature", [f"reading at qos {qos}"], qos)
        mosquitto.publish("car/engine/speed", ["no rule for me"], 1)
        mosquitto.publish("house/temperature", ["not subscribed"], 1)
        wait_for(lambda: bridge.stats()["written"] == 3 and bridge.stats()["unmatched"] == 1, "3 written")
        stats = bridge.stats()
        # each at the QoS it was published with (the subscription allows up to 2)
        assert (stats["received_qos0"], stats["received_qos1"], stats["received_qos2"]) == (1, 2, 1)
        assert stats["kafka_errors"] == 0 and stats["duplicates"] == 0
    records = read_all(bootstrap, topic)
    assert [(r.key, r.value) for r in records] == [
        (b"car/engine/temperature", f"reading at qos {qos}".encode()) for qos in (0, 1, 2)
    ]


def test_two_thousand_messages_land_once_in_order(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    topic = new_topic(partitions=1)
    sent = [f"{i},{i * 0.5}" for i in range(2000)]
    with kafkaml.MqttBridge(
        bootstrap, mosquitto.url, {topic: "sensors/.*"}, "sensors/#", qos=2, client_id=client_id()
    ) as bridge:
        mosquitto.publish("sensors/car-1", sent, 2)
        wait_for(lambda: bridge.stats()["written"] >= 2000, "2,000 written")
    assert [r.value.decode() for r in read_all(bootstrap, topic) if r.value] == sent


def test_the_broker_keeps_messages_while_the_bridge_is_away(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    topic = new_topic(partitions=1)
    identity = client_id()
    rules = {topic: ".*"}
    with kafkaml.MqttBridge(bootstrap, mosquitto.url, rules, "away/#", qos=1, client_id=identity) as bridge:
        mosquitto.publish("away/a", ["before"], 1)
        wait_for(lambda: bridge.stats()["written"] == 1, "the first message")
    # The bridge is gone; its session is not: Mosquitto queues QoS 1 messages for it.
    mosquitto.publish("away/a", [f"while away {i}" for i in range(50)], 1)
    with kafkaml.MqttBridge(bootstrap, mosquitto.url, rules, "away/#", qos=1, client_id=identity) as bridge:
        wait_for(lambda: bridge.stats()["written"] == 50, "the 50 queued messages")
    values = [r.value.decode() for r in read_all(bootstrap, topic) if r.value]
    assert values == ["before"] + [f"while away {i}" for i in range(50)]


def test_a_mosquitto_restart_mid_stream_loses_nothing(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    topic = new_topic(partitions=1)
    with kafkaml.MqttBridge(
        bootstrap, mosquitto.url, {topic: ".*"}, "restart/#", qos=1, client_id=client_id()
    ) as bridge:
        mosquitto.publish("restart/x", [f"first {i}" for i in range(100)], 1)
        wait_for(lambda: bridge.stats()["written"] >= 100, "the first 100")
        mosquitto.stop()
        wait_for(lambda: not bridge.stats()["connected"], "the bridge to notice")
        mosquitto.start()
        wait_for(lambda: bridge.stats()["connected"], "the bridge to reconnect", timeout=15)
        mosquitto.publish("restart/x", [f"second {i}" for i in range(100)], 1)
        wait_for(lambda: bridge.stats()["written"] >= 200, "the second 100")
        stats = bridge.stats()
        assert stats["connections"] >= 2 and stats["last_error"]
    # QoS 1 is at least once: a message may land twice, none may be missing
    values = {r.value.decode() for r in read_all(bootstrap, topic) if r.value}
    assert values == {f"first {i}" for i in range(100)} | {f"second {i}" for i in range(100)}


def test_a_record_kafka_refuses_is_never_acknowledged(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    """librdkafka refuses a record above the producer's message.max.bytes: the bridge does not
    acknowledge it, so Mosquitto delivers it again after every reconnection."""
    topic = new_topic(partitions=1)
    with kafkaml.MqttBridge(
        bootstrap,
        mosquitto.url,
        {topic: ".*"},
        "big/#",
        qos=1,
        client_id=client_id(),
        config={"message.max.bytes": "2000"},
    ) as bridge:
        mosquitto.publish("big/one", ["x" * 5000], 1)
        wait_for(lambda: bridge.stats()["kafka_errors"] >= 3, "3 refusals of the redelivered message")
        stats = bridge.stats()
        assert stats["written"] == 0 and stats["connections"] >= 3
        assert "big/one" in stats["last_error"]
    assert read_all(bootstrap, topic) == []


def test_errors_name_what_is_wrong(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    closed = free_port()
    with pytest.raises(kafkaml.MqttError, match=f"127.0.0.1:{closed}.*cannot connect"):
        kafkaml.MqttBridge(bootstrap, f"mqtt://127.0.0.1:{closed}", {topic: ".*"})
    with pytest.raises(kafkaml.ConfigError, match="'#' must be a whole level"):
        kafkaml.MqttBridge(bootstrap, "127.0.0.1:1", {topic: ".*"}, "a/#/b")
    with pytest.raises(kafkaml.ConfigError, match="TLS"):
        kafkaml.MqttBridge(bootstrap, "mqtts://127.0.0.1:8883", {topic: ".*"})
    with pytest.raises(kafkaml.ConfigError, match="qos"):
        kafkaml.MqttBridge(bootstrap, "127.0.0.1:1", {topic: ".*"}, qos=3)


def test_cli_bridges_until_ctrl_c(bootstrap: str, new_topic, mosquitto: Mosquitto) -> None:
    """`python -m kafkaml mqtt-bridge`: what Mosquitto's clients publish lands in Kafka; Ctrl-C
    stops it with a summary."""
    topic = new_topic(partitions=1)
    command = [sys.executable, "-m", "kafkaml", "mqtt-bridge", mosquitto.url, "--bootstrap", bootstrap]
    command += ["--topics", f"{topic}:car/.*", "--subscribe", "car/#", "--qos", "2", "--client-id", client_id()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert "MQTT bridge is running" in banner and "car/# at QoS 2" in banner, banner
        mosquitto.publish("car/engine/temperature", ["one", "two"], 2)
        wait_for(lambda: len(read_all(bootstrap, topic)) == 2, "2 records in Kafka")
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "2 messages received, 2 written, 0 unmatched" in rest
    assert [r.value for r in read_all(bootstrap, topic)] == [b"one", b"two"]
