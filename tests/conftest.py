"""Fixtures for kafkaml's test suite: a real Kafka broker, topics, kafkaml's Schema Registry.

The broker is real Apache Kafka. Its address comes from ``KAFKA_BOOTSTRAP`` when set (CI and
``scripts/test`` start the broker once); otherwise the session runs ``scripts/kafka-server
start`` itself and stops the broker at the end, but only if it was not running before.
``KAFKA_BOOTSTRAP=local`` runs the session against a LocalKafka (kafkaml's own broker) in the
pytest process instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import kafkaml
import pytest
from confluent_kafka import Producer as ConfluentProducer
from confluent_kafka.admin import AdminClient, NewTopic
from mqtt_helpers import Mosquitto

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules next to this file

REPO = Path(__file__).resolve().parents[1]
KAFKA_SERVER = REPO / "scripts" / "kafka-server"
# CI checks ../shared out beside the repository.
TALK_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "talk"


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """The bootstrap address of a real Kafka broker."""
    address = os.environ.get("KAFKA_BOOTSTRAP")
    if address == "local":
        with kafkaml.LocalKafka() as kafka:
            yield kafka.bootstrap_servers
        return
    if address:
        yield address
        return
    was_running = subprocess.run([str(KAFKA_SERVER), "status"], capture_output=True, text=True).returncode == 0
    started = subprocess.run([str(KAFKA_SERVER), "start"], capture_output=True, text=True, timeout=600)
    if started.returncode != 0 or not started.stdout.strip():
        pytest.exit(
            f"scripts/kafka-server start failed (exit {started.returncode}):\n{started.stderr[-3000:]}",
            returncode=3,
        )
    address = started.stdout.strip().splitlines()[-1].strip()
    try:
        yield address
    finally:
        if not was_running:
            subprocess.run([str(KAFKA_SERVER), "stop"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})


@pytest.fixture
def new_topic(admin: AdminClient, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Creates topics with unique names: ``new_topic(partitions=3, config=None)`` -> name.

    Waits until the broker reports a leader for every partition, and deletes the topics
    after the test.
    """
    created: list[str] = []

    def create(partitions: int = 3, config: dict[str, str] | None = None) -> str:
        name = re.sub(r"[^A-Za-z0-9._-]", "-", f"{request.node.name[:60]}-{uuid.uuid4().hex[:10]}")
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        created.append(name)
        wait_for_topic(admin, name, partitions)
        return name

    yield create
    if created:
        admin.delete_topics(created, operation_timeout=30)


def wait_for_topic(admin: AdminClient, name: str, partitions: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        ready = (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions after {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def confluent_producer(bootstrap: str) -> Iterator[ConfluentProducer]:
    """confluent-kafka's own producer on the broker (the peer client). Idempotent: tests
    expect each message once and in order; a plain producer may append a retried batch again,
    after later ones (the suspected cause of ids 0 and 3 read back once too often in one CI
    run on a fresh broker)."""
    producer = ConfluentProducer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    yield producer
    producer.flush(30)


@pytest.fixture
def registry(bootstrap: str, admin: AdminClient) -> Iterator[kafkaml.LocalSchemaRegistry]:
    """kafkaml's Schema Registry on the real broker, its state in a topic of its own."""
    topic = f"_schemas-test-{uuid.uuid4().hex[:12]}"
    with kafkaml.LocalSchemaRegistry(bootstrap, topic=topic) as served:
        yield served
    admin.delete_topics([topic], operation_timeout=30)


@pytest.fixture(scope="session")
def talk_fixtures() -> Path:
    """The talk's data files (``../shared/fixtures/talk`` beside the checkout)."""
    if not TALK_FIXTURES.is_dir():
        pytest.fail(f"the talk's fixtures are not at {TALK_FIXTURES} (CI checks ../shared out beside the repo)")
    return TALK_FIXTURES


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto broker of the test's own on a free port, stopped and removed afterwards."""
    broker = Mosquitto()
    yield broker
    broker.stop()
    shutil.rmtree(broker.folder, ignore_errors=True)


# The talk's demo writes these topics under these names (its statements run verbatim).
TALK_DEMO_TOPICS = ["temperature", "ANOMALYDETECTION", "ANOMALYDETECTIONWITHFILTER"]


@pytest.fixture
def temperature_topic(admin: AdminClient) -> Iterator[str]:
    """The talk's ``temperature`` topic, made fresh (one partition, as the talk's
    ``kafka-topics --create``), with the demo's sink topics gone: tests that run the demo's
    statements verbatim share these names."""

    def delete_all() -> None:
        admin.delete_topics(TALK_DEMO_TOPICS, operation_timeout=30)
        deadline = time.monotonic() + 30
        while set(TALK_DEMO_TOPICS) & set(admin.list_topics(timeout=10).topics):
            assert time.monotonic() < deadline, "the talk's demo topics were not deleted within 30 s"
            time.sleep(0.1)

    delete_all()
    admin.create_topics([NewTopic("temperature", num_partitions=1, replication_factor=1)])["temperature"].result(
        timeout=60
    )
    yield "temperature"
    delete_all()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A second real broker on other ports, so restarting it disturbs no other test: yields its
    address and the environment for ``scripts/kafka-server`` (``restart`` keeps its data)."""
    port = 19092 + os.getpid() % 1000 * 2
    env = dict(
        os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(port + 1), KAFKA_DATA_DIR=str(tmp_path / "kafka")
    )
    server = str(KAFKA_SERVER)
    started = subprocess.run([server, "start"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield started.stdout.strip().splitlines()[-1], env
    finally:
        subprocess.run([server, "stop"], env=env, capture_output=True, text=True, timeout=120)
