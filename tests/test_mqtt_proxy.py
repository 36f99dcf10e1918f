"""kafkaml's MQTT proxy with real MQTT clients (Debian's mosquitto_pub, paho-mqtt, and raw
sockets where a test needs packets no client sends on purpose) against the real Kafka broker:
delivery at QoS 0/1/2, keys, topic rules, refusals, QoS 2 retransmissions, Kafka failures,
keep-alive, and the talk's properties file."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kafkaml
import paho.mqtt.client as paho
import pytest
from kafka_helpers import consume, message_count, read_all

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
pytestmark = pytest.mark.skipif(
    MOSQUITTO_PUB is None, reason="mosquitto_pub missing: scripts/setup --test installs mosquitto-clients"
)

# The talk's reading: an event id, then 210 '#'-separated engine temperatures.
TALK_PAYLOAD = "99999," + "# ".join(f"{2.1 + (i % 50) * 0.1:.2f}" for i in range(210))

# The live demo's kafka-mqtt-quickstart.properties, as the talk writes it.
QUICKSTART = """topic.regex.list=temperature:.*temperature
listeners=0.0.0.0:1883
bootstrap.servers=PLAINTEXT://localhost:9092
confluent.topic.replication.factor=1
"""


def pub(proxy: kafkaml.MqttProxy, topic: str, message: str, *args: str, timeout: float = 20) -> int:
    """``mosquitto_pub`` against the proxy; returns its exit status."""
    assert MOSQUITTO_PUB is not None
    done = subprocess.run(
        [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(proxy.port), "-t", topic, "-m", message, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode


@pytest.fixture
def proxy_for(bootstrap: str) -> Iterator[Callable[..., kafkaml.MqttProxy]]:
    """Starts proxies on free ports, stopped after the test."""
    started: list[kafkaml.MqttProxy] = []

    def start(topics, **options) -> kafkaml.MqttProxy:
        proxy = kafkaml.MqttProxy(bootstrap, topics, **options)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# --- a raw MQTT 3.1.1 client, for the packets tests must control --------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def connect_packet(client_id: str, *, clean: bool = True, keep_alive: int = 60, level: int = 4) -> bytes:
    body = _string("MQTT") + bytes([level, 0x02 if clean else 0]) + struct.pack(">H", keep_alive)
    body += _string(client_id)
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, dup: bool = False) -> bytes:
    body = _string(topic) + (struct.pack(">H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (0x08 if dup else 0) | (qos << 1)]) + _length(len(body)) + body


class RawClient:
    """A socket speaking MQTT packet by packet."""

    def __init__(self, port: int, client_id: str = "raw", *, clean: bool = True, keep_alive: int = 60) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(connect_packet(client_id, clean=clean, keep_alive=keep_alive))
        kind, body = self.read()
        assert kind == 0x20 and body[1] == 0, (kind, body)
        self.session_present = bool(body[0] & 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by the proxy")
            data += chunk
        return data

    def read(self) -> tuple[int, bytes]:
        """The next packet as (first byte, body)."""
        first = self._exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._exactly(length)

    def closed_by_peer(self, within: float = 10) -> bool:
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


# --- delivery ------------------------------------------------------------------------------


def test_mosquitto_pub_qos_0_1_2_land_keyed_by_mqtt_topic(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*temperature"})
    for qos in (0, 1, 2):
        assert pub(proxy, "car/engine/temperature", f"{qos},{TALK_PAYLOAD}", "-q", str(qos)) == 0
    records = consume(bootstrap, topic, 3)
    assert [r.key for r in records] == [b"car/engine/temperature"] * 3
    assert [r.value for r in records] == [f"{q},{TALK_PAYLOAD}".encode() for q in (0, 1, 2)]
    stats = proxy.stats()
    assert (stats["received_qos0"], stats["received_qos1"], stats["received_qos2"]) == (1, 1, 1)
    assert stats["received"] == 3 and stats["written"] == 3 and stats["refused"] == 0
    assert message_count(bootstrap, topic) == 3


def test_paho_qos1_acknowledged_only_once_written_in_order(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: "sensors/.+"})
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="paho-qos1")
    client.connect("127.0.0.1", proxy.port)
    client.loop_start()
    try:
        infos = [client.publish("sensors/a", f"{i}".encode(), qos=1) for i in range(500)]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
        # Each PUBACK came after Kafka's acknowledgement: the records are there already.
        assert message_count(bootstrap, topic) == 500
    finally:
        client.disconnect()
        client.loop_stop()
    assert [r.value for r in consume(bootstrap, topic, 500)] == [f"{i}".encode() for i in range(500)]
    assert proxy.stats()["written"] == 500


def test_first_matching_rule_wins_and_unmatched_topics_are_refused(bootstrap: str, new_topic, proxy_for) -> None:
    engine, car = new_topic(partitions=1), new_topic(partitions=1)
    proxy = proxy_for([(engine, "car/engine/.*"), (car, "car/.*")])
    assert pub(proxy, "car/engine/temperature", "e", "-q", "1") == 0
    assert pub(proxy, "car/light", "l", "-q", "1") == 0
    # No rule for house/...: the QoS 1 publish gets no PUBACK, its connection is closed.
    assert pub(proxy, "house/temperature", "h", "-q", "1") != 0
    assert pub(proxy, "house/temperature", "h0", "-q", "0") == 0  # nothing to answer at QoS 0
    assert [(r.key, r.value) for r in consume(bootstrap, engine, 1)] == [(b"car/engine/temperature", b"e")]
    assert [(r.key, r.value) for r in consume(bootstrap, car, 1)] == [(b"car/light", b"l")]
    time.sleep(0.5)
    stats = proxy.stats()
    assert stats["refused_unmatched"] == 2 and stats["refused"] == 2
    assert stats["written"] == 2
    assert message_count(bootstrap, engine) == 1 and message_count(bootstrap, car) == 1


# --- QoS 2 ----------------------------------------------------------------------------------


def test_qos2_retransmission_is_answered_not_written_again(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: "car/.*"})
    client = RawClient(proxy.port)
    first = publish_packet("car/engine/temperature", b"once", qos=2, packet_id=7)
    again = publish_packet("car/engine/temperature", b"once", qos=2, packet_id=7, dup=True)
    # The retransmission right behind the original (before its PUBREC), and once more after.
    client.send(first + again)
    assert client.read() == (0x50, b"\x00\x07")
    assert client.read() == (0x50, b"\x00\x07")
    client.send(again)
    assert client.read() == (0x50, b"\x00\x07")
    client.send(b"\x62\x02\x00\x07")  # PUBREL
    assert client.read() == (0x70, b"\x00\x07")  # PUBCOMP
    # After PUBREL the id is free: the same id now carries a new message.
    client.send(publish_packet("car/engine/temperature", b"next", qos=2, packet_id=7))
    assert client.read() == (0x50, b"\x00\x07")
    client.close()
    assert [r.value for r in read_all(bootstrap, topic)] == [b"once", b"next"]
    stats = proxy.stats()
    assert stats["duplicates"] == 2 and stats["written"] == 2 and stats["received_qos2"] == 4


def test_qos2_id_survives_a_reconnection_without_clean_session(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: "car/.*"})
    client = RawClient(proxy.port, "car-42", clean=False)
    assert not client.session_present
    client.send(publish_packet("car/x", b"reading", qos=2, packet_id=3))
    assert client.read() == (0x50, b"\x00\x03")
    client.close()  # vanishes before PUBREL
    client = RawClient(proxy.port, "car-42", clean=False)
    assert client.session_present
    client.send(publish_packet("car/x", b"reading", qos=2, packet_id=3, dup=True))
    assert client.read() == (0x50, b"\x00\x03")
    client.send(b"\x62\x02\x00\x03")
    assert client.read() == (0x70, b"\x00\x03")
    client.close()
    assert [r.value for r in read_all(bootstrap, topic)] == [b"reading"]
    assert proxy.stats()["duplicates"] == 1
    # A clean session starts without the stored ids.
    fresh = RawClient(proxy.port, "car-42", clean=True)
    assert not fresh.session_present
    fresh.close()


# --- refusals and errors --------------------------------------------------------------------


def test_payload_over_max_message_bytes_is_refused(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*"}, max_message_bytes=100)
    assert pub(proxy, "t", "x" * 100, "-q", "1") == 0
    assert pub(proxy, "t", "x" * 101, "-q", "1") != 0
    # A packet announcing 10 MB is refused from its header, before any body is sent.
    client = RawClient(proxy.port)
    client.send(b"\x30" + _length(10_000_000))
    assert client.closed_by_peer()
    client.close()
    stats = proxy.stats()
    assert stats["refused_too_large"] == 2 and stats["written"] == 1
    assert [len(r.value or b"") for r in read_all(bootstrap, topic)] == [100]


def test_retained_messages_and_subscriptions_are_refused(bootstrap: str, new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*"})
    assert pub(proxy, "car/x", "kept?", "-q", "1", "-r") != 0
    client = RawClient(proxy.port)
    subscribe = struct.pack(">H", 9) + _string("car/#") + b"\x01" + _string("other") + b"\x00"
    client.send(b"\x82" + _length(len(subscribe)) + subscribe)
    assert client.read() == (0x90, b"\x00\x09\x80\x80")  # SUBACK: failure for each filter
    client.send(b"\xc0\x00")  # the connection is still served
    assert client.read() == (0xD0, b"")
    client.close()
    stats = proxy.stats()
    assert stats["refused_retained"] == 1 and stats["subscriptions_refused"] == 2
    assert message_count(bootstrap, topic) == 0


def test_kafka_failure_gets_no_puback_and_closes_the_connection(bootstrap: str, new_topic, proxy_for) -> None:
    # The broker refuses records over the topic's max.message.bytes: a real Kafka failure.
    topic = new_topic(partitions=1, config={"max.message.bytes": "200"})
    proxy = proxy_for({topic: ".*"})
    client = RawClient(proxy.port)
    client.send(publish_packet("car/x", b"small", qos=1, packet_id=1))
    assert client.read() == (0x40, b"\x00\x01")
    client.send(publish_packet("car/x", b"y" * 1000, qos=1, packet_id=2))
    assert client.closed_by_peer(within=30), "a PUBACK for a record Kafka refused"
    client.close()
    stats = proxy.stats()
    assert stats["kafka_errors"] == 1 and stats["closed_on_kafka_error"] == 1
    # The proxy and its producer go on: the device reconnects and writes.
    assert pub(proxy, "car/x", "after", "-q", "1") == 0
    assert [r.value for r in read_all(bootstrap, topic)] == [b"small", b"after"]


def test_malformed_packets_and_mqtt5_are_closed_cleanly(new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*"})
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x30\x03\x00\x01t"):  # not CONNECT first
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        sock.sendall(garbage)
        assert sock.recv(10) == b""
        sock.close()
    client = RawClient(proxy.port)
    client.send(b"\x36\x03\x00\x01t")  # PUBLISH at QoS 3
    assert client.closed_by_peer()
    client.close()
    # MQTT 5: CONNACK "unacceptable protocol version" (0x01), as 3.1.1 servers answer.
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(connect_packet("v5", level=5))
    assert sock.recv(4) == b"\x20\x02\x00\x01"
    sock.close()
    assert pub(proxy, "t", "m", "-V", "mqttv5") != 0
    stats = proxy.stats()
    assert stats["protocol_errors"] == 3 and stats["refused_connections"] == 2
    assert proxy.running  # and it still serves
    assert pub(proxy, "t", "m", "-q", "1") == 0


def test_keep_alive_closes_silent_connections(new_topic, proxy_for) -> None:
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*"})
    client = RawClient(proxy.port, keep_alive=1)
    for _ in range(3):  # pinging keeps it open past 1.5 s
        time.sleep(0.7)
        client.send(b"\xc0\x00")
        assert client.read() == (0xD0, b"")
    started = time.monotonic()
    assert client.closed_by_peer(within=5)
    assert 1.0 < time.monotonic() - started < 4
    client.close()
    assert proxy.stats()["keepalive_timeouts"] == 1


def test_with_users_only_their_credentials_connect(bootstrap: str, new_topic, proxy_for) -> None:
    """mosquitto_pub with -u/-P: the right pair is served; a wrong password (CONNACK 0x04) and
    no credentials (0x05) are refused and counted, and write nothing; kafkaml.mqtt_publish
    sends credentials too."""
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: "car/.*"}, users={"car-1": "s3cret", "car-2": "other"})
    assert pub(proxy, "car/1/t", "with the right pair", "-q", "1", "-u", "car-1", "-P", "s3cret") == 0
    assert pub(proxy, "car/1/t", "wrong password", "-q", "1", "-u", "car-1", "-P", "other") != 0
    assert pub(proxy, "car/1/t", "another's password", "-q", "1", "-u", "car-2", "-P", "s3cret") != 0
    assert pub(proxy, "car/1/t", "no credentials", "-q", "1") != 0
    with pytest.raises(kafkaml.MqttError, match=r"refused the connection \(BadUsernameOrPassword\)"):
        kafkaml.mqtt_publish(proxy.url, "car/1/t", ["x"], qos=1, username="car-2", password="nope")
    with pytest.raises(kafkaml.MqttError, match=r"refused the connection \(NotAuthorized\)"):
        kafkaml.mqtt_publish(proxy.url, "car/1/t", ["x"], qos=1)
    assert kafkaml.mqtt_publish(proxy.url, "car/2/t", ["as car-2"], qos=1, username="car-2", password="other") == 1
    stats = proxy.stats()
    assert stats["refused_credentials"] == 5 and stats["refused_connections"] == 5
    assert stats["written"] == 2
    assert [r.value for r in read_all(bootstrap, topic)] == [b"with the right pair", b"as car-2"]


def test_bad_arguments_are_typed_errors(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    with pytest.raises(kafkaml.ConfigError, match="invalid regular expression"):
        kafkaml.MqttProxy(bootstrap, {topic: "car/(unclosed"})
    with pytest.raises(kafkaml.ConfigError, match="not a valid Kafka topic|contains"):
        kafkaml.MqttProxy(bootstrap, {"bad topic": ".*"})
    with pytest.raises(kafkaml.ConfigError, match="expected <kafka topic>:<regex>"):
        kafkaml.MqttProxy(bootstrap, "no-colon")
    with pytest.raises(kafkaml.KafkaError, match="nothing listens on 127.0.0.1:1|cannot reach Kafka"):
        kafkaml.MqttProxy("127.0.0.1:1", {topic: ".*"}, timeout=1)
    with kafkaml.MqttProxy(bootstrap, {topic: ".*"}) as proxy:
        with pytest.raises(kafkaml.ConfigError, match="cannot listen"):
            kafkaml.MqttProxy(bootstrap, {topic: ".*"}, listen=f"127.0.0.1:{proxy.port}")
    assert not proxy.running and proxy.stats() == {"running": False, "url": proxy.url}


# --- the talk's properties file -------------------------------------------------------------


def test_the_talks_properties_file(bootstrap: str, tmp_path: Path, temperature_topic: str) -> None:
    path = tmp_path / "kafka-mqtt-quickstart.properties"
    path.write_text(QUICKSTART)
    with pytest.warns(UserWarning, match="confluent.topic.replication.factor"):
        proxy = kafkaml.MqttProxy.from_properties(path, bootstrap=bootstrap, listen="127.0.0.1:0")
    with proxy:
        assert proxy.topics == [("temperature", ".*temperature")]
        before = message_count(bootstrap, "temperature")
        assert pub(proxy, "car/engine/temperature", TALK_PAYLOAD, "-q", "2") == 0
        assert message_count(bootstrap, "temperature") == before + 1
        assert proxy.stats()["written"] == 1


def test_cli_runs_the_talks_properties_file(bootstrap: str, tmp_path: Path, temperature_topic: str) -> None:
    path = tmp_path / "kafka-mqtt-quickstart.properties"
    path.write_text(QUICKSTART)
    # The file's bootstrap.servers (localhost:9092) is kept when it is this broker's address.
    command = [sys.executable, "-m", "kafkaml", "mqtt-proxy", "--config", str(path), "--listen", "127.0.0.1:0"]
    command += ["--user", "car-1:s3:cret"]  # the password is what follows the first colon
    if bootstrap.rsplit(":", 1)[-1] != "9092":
        command += ["--bootstrap", bootstrap]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("mqtt://127.0.0.1:"), url
        port = url.rsplit(":", 1)[1]
        before = message_count(bootstrap, "temperature")
        talk_pub = [MOSQUITTO_PUB or "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "car/engine/temperature"]
        talk_pub += ["-q", "2", "-m", TALK_PAYLOAD]
        assert subprocess.run(talk_pub, capture_output=True, timeout=20).returncode != 0  # no credentials
        assert subprocess.run([*talk_pub, "-u", "car-1", "-P", "s3:cret"], timeout=20).returncode == 0
        assert message_count(bootstrap, "temperature") == before + 1
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.start()
        reader.join(timeout=5)
    assert any("confluent.topic.replication.factor" in line for line in lines), lines


SENSOR_GENERATOR = (
    Path(__file__).resolve().parents[2] / "shared" / "seed" / "ksql-udf-mqtt-demo" / "sensor_generator.sh"
)


def test_the_talks_sensor_generator_runs_unchanged(bootstrap: str, new_topic, proxy_for, tmp_path: Path) -> None:
    """The live demo's sensor_generator.sh, as it is, publishes through mosquitto_pub to the
    proxy. Its `mosquitto_pub -h 0.0.0.0 -p 1883` is pointed at the proxy by a shim first on
    PATH that changes only the host and port (1883 may be taken here)."""
    assert SENSOR_GENERATOR.exists(), f"the talk's demo is expected at {SENSOR_GENERATOR}"
    topic = new_topic(partitions=1)
    proxy = proxy_for({topic: ".*temperature"})
    shim = tmp_path / "mosquitto_pub"
    shim.write_text(
        "#!/bin/bash\n"
        "args=()\n"
        "while [ $# -gt 0 ]; do\n"
        f'  case "$1" in -h) args+=(-h 127.0.0.1); shift 2 ;; -p) args+=(-p {proxy.port}); shift 2 ;;\n'
        '  *) args+=("$1"); shift ;; esac\n'
        "done\n"
        f'exec {MOSQUITTO_PUB} "${{args[@]}}"\n'
    )
    shim.chmod(0o755)
    generator = subprocess.Popen(
        ["bash", str(SENSOR_GENERATOR)],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while proxy.stats()["written"] < 3 and time.monotonic() < deadline and generator.poll() is None:
            time.sleep(0.2)
    finally:
        generator.terminate()
        output, _ = generator.communicate(timeout=30)
    assert proxy.stats()["written"] >= 3, output[-2000:]
    assert "New message published, nr: 1" in output
    stats = proxy.stats()
    assert stats["received_qos2"] == stats["written"] and stats["refused"] == 0
    records = read_all(bootstrap, topic)
    assert len(records) >= 3
    for record in records:
        assert record.key == b"car/engine/temperature"
        eventid, readings = record.value.decode().split(",", 1)
        values = [float(v) for v in readings.split("#")]
        # the script's message: its fixed event id and 210 readings of one digit and two decimals
        assert eventid == "99999" and len(values) == 210
        assert all(0.0 <= v < 10.0 for v in values), values


def test_cli_without_rules_says_what_to_give() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kafkaml", "mqtt-proxy"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:1"},
    )
    assert done.returncode == 1 and "--config FILE" in done.stderr
