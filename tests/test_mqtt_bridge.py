"""kafkaml.MqttBridge against a real Mosquitto broker (Debian's, started here on a free port
with persistence) and the real Kafka broker: QoS 0/1/2 delivery, order, the persistent
session while the bridge is away, a Mosquitto restart mid-stream, a record Kafka refuses,
and the errors a user meets first."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import kafkaml
import pytest
from kafka_helpers import read_all

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "mosquitto_pub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A Mosquitto broker on a free port that keeps its sessions on disk across restarts."""

    def __init__(self) -> None:
        assert Path(MOSQUITTO).exists(), "mosquitto is missing: scripts/setup --test installs it"
        self.port = free_port()
        # Started as root, Mosquitto drops to its own user unless told `user root`; its folder
        # sits under /tmp (pytest's tmp_path is private to root's test user).
        self.folder = Path(tempfile.mkdtemp(prefix="kafkaml-mosquitto-", dir="/tmp"))
        self.folder.chmod(0o777)
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.folder}/\nuser root\nmax_queued_messages 100000\n"
            "max_inflight_messages 100\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"Mosquitto did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: it saves its sessions before exiting
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def publish(self, topic: str, messages: list[str], qos: int) -> None:
        """``mosquitto_pub -l``: one message per line of its input, at ``qos``."""
        done = subprocess.run(
            [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-l"],
            input="\n".join(messages) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto()
    yield broker
    broker.stop()
    shutil.rmtree(broker.folder, ignore_errors=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
