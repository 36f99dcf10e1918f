"""Bad bootstrap addresses fail at once, saying what is wrong and what to do.

A malformed address (a URL, no port, a port that is not one) is a ConfigError before anything
is dialled; a well-formed one that nothing listens on, or whose host does not resolve, is a
KafkaError within milliseconds instead of after the client's timeout; a broker that does not
answer still gets the client's timeout. Every entry point that takes a bootstrap is checked:
read_topic, Consumer, write_topic and Producer.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator

import kafkaml
import pyarrow as pa
import pytest

ROWS = pa.table({"id": [1, 2, 3]})

ENTRY_POINTS: dict[str, Callable[[str], object]] = {
    "read_topic": lambda bootstrap: kafkaml.read_topic(bootstrap, "anything", timeout=8),
    "Consumer": lambda bootstrap: kafkaml.Consumer(bootstrap, "anything", stop="end", timeout=8),
    "write_topic": lambda bootstrap: kafkaml.write_topic(bootstrap, "anything", ROWS, timeout=8),
    "Producer": lambda bootstrap: kafkaml.Producer(bootstrap, "anything", timeout=8),
}
"""Each opens a client on ``bootstrap``; the 8 s timeouts would show if the fast path were missed."""


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound by this test but not listening: connecting to it is refused, and
    no other process can start listening on it while the test runs."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    yield holder.getsockname()[1]
    holder.close()


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - the caller checks the type
        return error, time.monotonic() - started
    raise AssertionError("no exception was raised")


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
def test_nothing_listening_is_a_fast_kafka_error_naming_cause_and_fix(entry: str, refused_port: int) -> None:
    address = f"127.0.0.1:{refused_port}"
    error, seconds = timed(lambda: ENTRY_POINTS[entry](address))
    assert isinstance(error, kafkaml.KafkaError) and not isinstance(error, kafkaml.DeliveryError), repr(error)
    assert seconds < 2.0, f"took {seconds:.2f} s"
    message = str(error)
    assert f"nothing listens on {address}" in message
    assert "is the broker running" in message  # the fix to try


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
def test_an_unknown_host_is_a_fast_kafka_error_naming_it(entry: str) -> None:
    error, seconds = timed(lambda: ENTRY_POINTS[entry]("no-such-host.invalid:9092"))
    assert isinstance(error, kafkaml.KafkaError), repr(error)
    assert seconds < 2.0, f"took {seconds:.2f} s"
    message = str(error)
    assert "unknown host 'no-such-host.invalid'" in message
    assert "check the host name" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
@pytest.mark.parametrize(
    ("address", "names"),
    [
        ("http://localhost:9092", ["is a URL (http://)", "'localhost:9092'"]),
        ("https://broker.example.com", ["is a URL (https://)", "'broker.example.com:9092'"]),
        ("localhost", ["has no port", "'localhost:9092'"]),
        ("localhost:", ["has no port after ':'"]),
        ("localhost:kafka", ["port that is not a number ('kafka')"]),
        ("localhost:70000", ["port out of range (70000"]),
        ("localhost:0", ["port out of range (0"]),
        (":9092", ["has no host"]),
        ("my host:9092", ["malformed host 'my host'"]),
        ("localhost:9092/kafka", ["has a path ('/kafka')", "'localhost:9092'"]),
        ("::1:9092", ["IPv6 address goes in brackets"]),
        ("", ["bootstrap servers are empty"]),
        ("127.0.0.1:9092,localhost", ["'localhost'", "has no port"]),
    ],
)
def test_a_malformed_address_is_a_config_error_naming_the_bad_part(entry: str, address: str, names: list[str]) -> None:
    error, seconds = timed(lambda: ENTRY_POINTS[entry](address))
    assert isinstance(error, kafkaml.ConfigError), repr(error)
    assert seconds < 0.5, f"took {seconds:.2f} s: a malformed address must fail before any network wait"
    message = str(error)
    for name in names:
        assert name in message, message
    assert "host:port" in message  # what to pass instead


def test_every_server_failing_names_each_one(refused_port: int) -> None:
    address = f"127.0.0.1:{refused_port},no-such-host.invalid:9092"
    error, seconds = timed(lambda: kafkaml.Consumer(address, "anything", timeout=8))
    assert isinstance(error, kafkaml.KafkaError)
    assert seconds < 2.0
    assert f"nothing listens on 127.0.0.1:{refused_port}" in str(error)
    assert "unknown host 'no-such-host.invalid'" in str(error)


def test_one_reachable_server_of_several_is_enough(bootstrap: str, new_topic, refused_port: int) -> None:
    topic = new_topic(partitions=1)
    address = f"127.0.0.1:{refused_port}, no-such-host.invalid:9092, {bootstrap}"
    assert kafkaml.write_topic(address, topic, ROWS) == 3
    assert kafkaml.read_topic(address, topic).column("id").to_pylist() == [1, 2, 3]


def test_kafka_listener_prefix_is_accepted(bootstrap: str, new_topic) -> None:
    # As in server.properties' listeners=PLAINTEXT://host:port; librdkafka accepts it too.
    topic = new_topic(partitions=1)
    assert kafkaml.write_topic(f"PLAINTEXT://{bootstrap}", topic, ROWS) == 3
    with kafkaml.Consumer(f"plaintext://{bootstrap}", topic, stop="end") as consumer:
        assert consumer.read_all().num_rows == 3


def test_a_silent_address_keeps_the_client_timeout() -> None:
    """A listener whose accept queue is full drops new connection attempts unanswered, as a
    firewalled host does: the probe gives up after a moment and the client's own timeout
    decides, with its own message (not the refused one)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    for _ in range(8):  # fill the accept queue; later attempts go unanswered
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex(silent.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect(silent.getsockname())
        answered = True
    except OSError:
        answered = False
    finally:
        probe.close()
    try:
        if answered:
            pytest.skip("this kernel answers connections beyond a full accept queue: no silent address to test")
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        error, seconds = timed(lambda: kafkaml.Producer(address, f"t-{uuid.uuid4().hex}", timeout=2).flush())
        assert isinstance(error, kafkaml.KafkaError), repr(error)
        assert "nothing listens" not in str(error) and "unknown host" not in str(error)
        assert seconds >= 1.0, f"failed after {seconds:.2f} s: the silent address was taken for a refusal"
    finally:
        for filler in fillers:
            filler.close()
        silent.close()


def test_local_kafka_objects_are_not_probed() -> None:
    """A LocalKafka's address comes from the cluster in this process and is used as it is: a
    broker taken down on purpose (a fault test) gets the client's timeout, as a real broker
    that is restarting would, not the probe's instant refusal."""
    with kafkaml.LocalKafka(engine="mock") as kafka:
        kafka.create_topic("rows", 1)
        assert kafkaml.write_topic(kafka, "rows", ROWS) == 3
        assert kafkaml.read_topic(kafka, "rows").column("id").to_pylist() == [1, 2, 3]
        kafka.broker_down(1)
        error, seconds = timed(lambda: kafkaml.write_topic(kafka, "rows", ROWS, timeout=1))
        assert isinstance(error, kafkaml.KafkaError), repr(error)
        assert "nothing listens" not in str(error)
        assert seconds >= 0.9, f"failed after {seconds:.2f} s: the LocalKafka address was probed"
