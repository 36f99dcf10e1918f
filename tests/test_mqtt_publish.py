"""kafkaml.mqtt_publish against real MQTT servers: Debian's Mosquitto with paho-mqtt reading
what it publishes, and kafkaml's MqttProxy into the real Kafka broker; the errors; and the
proxy's guarantee across a Kafka restart (on LocalKafka, which the test can stop and start)."""

from __future__ import annotations

import threading
import time
import uuid

import kafkaml
import paho.mqtt.client as paho
import pytest
from kafka_helpers import read_all
from mqtt_helpers import Mosquitto, free_port, wait_for


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_a_paho_subscriber_on_mosquitto_gets_every_message_in_order(mosquitto: Mosquitto, qos: int) -> None:
    topic = f"car/{uuid.uuid4().hex[:8]}/temperature"
    received: list[bytes] = []
    subscribed = threading.Event()
    subscriber = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"reader-{uuid.uuid4().hex[:8]}")
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = lambda _client, _data, message: received.append(message.payload)
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe(topic, qos=2)
    subscriber.loop_start()
    try:
        assert subscribed.wait(10), "paho did not subscribe"
        sent = [f"{i},{i * 0.25:.2f}" for i in range(300)] + [b"\x00binary\xff"]
        assert kafkaml.mqtt_publish(mosquitto.url, topic, sent, qos=qos) == len(sent)
        wait_for(lambda: len(received) >= len(sent), f"{len(sent)} messages at paho", timeout=20)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert received == [s.encode() if isinstance(s, str) else s for s in sent]


def test_through_the_proxy_every_qos_lands_in_kafka_in_order(bootstrap: str, new_topic) -> None:
    kafka_topic = new_topic(partitions=1)
    with kafkaml.MqttProxy(bootstrap, {kafka_topic: "car/.*"}) as proxy:
        for qos in (0, 1, 2):
            sent = [f"qos {qos} reading {i}" for i in range(500)]
            assert kafkaml.mqtt_publish(proxy.url, "car/engine/temperature", sent, qos=qos, in_flight=32) == 500
        wait_for(lambda: proxy.stats()["written"] == 1500, "1,500 written")
        stats = proxy.stats()
        assert (stats["received_qos0"], stats["received_qos1"], stats["received_qos2"]) == (500, 500, 500)
        assert stats["duplicates"] == 0 and stats["refused"] == 0
    records = read_all(bootstrap, kafka_topic)
    assert [r.value.decode() for r in records] == [f"qos {q} reading {i}" for q in (0, 1, 2) for i in range(500)]
    assert {r.key for r in records} == {b"car/engine/temperature"}


def test_errors_say_what_went_wrong_and_how_far_it_got(bootstrap: str, new_topic) -> None:
    closed = free_port()
    with pytest.raises(kafkaml.MqttError, match=f"127.0.0.1:{closed}.*cannot connect"):
        kafkaml.mqtt_publish(f"mqtt://127.0.0.1:{closed}", "car/t", ["x"])
    kafka_topic = new_topic(partitions=1)
    with kafkaml.MqttProxy(bootstrap, {kafka_topic: "car/.*"}) as proxy:
        # the proxy refuses a topic no rule matches by closing the connection
        with pytest.raises(kafkaml.MqttError, match=r"closed the connection \(0 of 3 acknowledged\)"):
            kafkaml.mqtt_publish(proxy.url, "house/door", ["a", "b", "c"], qos=1)
        with pytest.raises(kafkaml.ConfigError, match="QoS must be 0, 1 or 2"):
            kafkaml.mqtt_publish(proxy.url, "car/t", ["x"], qos=3)
        with pytest.raises(kafkaml.ConfigError, match="wildcard"):
            kafkaml.mqtt_publish(proxy.url, "car/+", ["x"])
        with pytest.raises(kafkaml.ConfigError, match="in_flight"):
            kafkaml.mqtt_publish(proxy.url, "car/t", ["x"], qos=1, in_flight=0)
        with pytest.raises(TypeError, match="payload 1 is int"):
            kafkaml.mqtt_publish(proxy.url, "car/t", ["x", 5])  # type: ignore[list-item]
        with pytest.raises(kafkaml.ConfigError, match="scheme"):
            kafkaml.mqtt_publish("https://127.0.0.1:1", "car/t", ["x"])
        assert proxy.stats()["written"] == 0
    assert read_all(bootstrap, kafka_topic) == []


def test_a_kafka_restart_while_publishing_loses_no_acknowledged_publish(tmp_path) -> None:
    """The broker goes away mid-stream (LocalKafka on disk, stopped and started again on the
    same port): the proxy acknowledges QoS 2 publishes only once Kafka has them, so every
    acknowledged one is there after the restart, once and in order."""
    port = free_port()
    broker = kafkaml.LocalKafka(path=tmp_path / "kafka", port=port)
    broker.create_topic("cars", 1)
    bootstrap = broker.bootstrap_servers
    sent = [f"reading {i:04d}" for i in range(1000)]
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    with kafkaml.MqttProxy(bootstrap, {"cars": "car/.*"}, timeout=60) as proxy:

        def device() -> None:
            try:
                for start in range(0, len(sent), 50):
                    chunk = sent[start : start + 50]
                    acknowledged.append(kafkaml.mqtt_publish(proxy.url, "car/1/temperature", chunk, qos=2, timeout=90))
            except BaseException as error:
                failures.append(error)

        publisher = threading.Thread(target=device)
        publisher.start()
        try:
            wait_for(lambda: proxy.stats()["written"] >= 300, "300 written before the restart")
            broker.stop()
            time.sleep(1.0)  # publishes meanwhile wait: no acknowledgement without Kafka
            broker = kafkaml.LocalKafka(path=tmp_path / "kafka", port=port)
            publisher.join(timeout=120)
        finally:
            assert not publisher.is_alive(), "the publisher still waits for acknowledgements"
        assert failures == []
        assert sum(acknowledged) == len(sent)
        stats = proxy.stats()
        assert stats["written"] == len(sent) and stats["kafka_errors"] == 0
    try:
        values = [r.value.decode() for r in read_all(bootstrap, "cars")]
        assert values == sent  # every acknowledged publish, once, in order
    finally:
        broker.stop()
