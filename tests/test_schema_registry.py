"""kafkaml's Schema Registry against confluent-kafka's own registry client and Avro serde, on
the real broker and on LocalKafka: evolution, restarts, two registry processes, concurrency
and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kafkaml
import pyarrow as pa
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from kafka_helpers import consume, produce

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

V1 = {
    "type": "record",
    "name": "Reading",
    "namespace": "kafkaml.registry",
    "fields": [{"name": "id", "type": "long"}, {"name": "value", "type": "double"}],
}
# Compatible (BACKWARD): a new field with a default.
V2 = {**V1, "fields": [*V1["fields"], {"name": "unit", "type": "string", "default": "C"}]}
# Incompatible: a new field without a default cannot be filled in for old data.
V3_BAD = {**V1, "fields": [*V1["fields"], {"name": "site", "type": "string"}]}


def record_schema(n: int) -> str:
    return json.dumps({"type": "record", "name": f"R{n}", "fields": [{"name": f"f{n}", "type": "long"}]})


def call(url: str, method: str = "GET", body: bytes | str | dict | None = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, parsed JSON body)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def state_topic(admin: AdminClient) -> Iterator[str]:
    """A fresh topic name for a registry's state, deleted afterwards."""
    topic = f"_schemas-test-{uuid.uuid4().hex[:12]}"
    yield topic
    admin.delete_topics([topic], operation_timeout=30)


class RegistryProcess:
    """``python -m kafkaml schema-registry`` in a subprocess: a second registry process."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kafkaml", "schema-registry", "-b", bootstrap, "--listen", "127.0.0.1:0"]
            + ["--topic", topic],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise AssertionError(f"the registry process did not start: {self.process.stderr.read()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture
def registry_process(bootstrap: str) -> Iterator[Callable[[str], RegistryProcess]]:
    started: list[RegistryProcess] = []

    def start(topic: str) -> RegistryProcess:
        started.append(RegistryProcess(bootstrap, topic))
        return started[-1]

    yield start
    for process in started:
        process.stop()


# ---------- confluent-kafka's client and serde ----------


def test_confluent_serde_registers_evolves_and_reads_old_data_with_the_new_schema(
    bootstrap: str, new_topic, confluent_producer, registry
) -> None:
    topic = new_topic(partitions=1)
    subject = f"{topic}-value"
    client = SchemaRegistryClient({"url": registry.url})
    context = SerializationContext(topic, MessageField.VALUE)

    old_rows = [{"id": i, "value": i / 2} for i in range(5)]
    v1_serializer = AvroSerializer(client, json.dumps(V1))
    produce(confluent_producer, topic, [v1_serializer(row, context) for row in old_rows], partitions=1)
    v1 = client.get_latest_version(subject)
    assert (v1.version, json.loads(v1.schema.schema_str)) == (1, V1)

    # evolve compatibly: a new id, version 2
    new_rows = [{"id": 10 + i, "value": 1.5, "unit": "F"} for i in range(3)]
    v2_serializer = AvroSerializer(client, json.dumps(V2))
    produce(confluent_producer, topic, [v2_serializer(row, context) for row in new_rows], partitions=1)
    assert client.get_versions(subject) == [1, 2]
    v2 = client.get_version(subject, 2)  # (get_latest_version is cached by the client)
    assert v2.schema_id != v1.schema_id
    assert client.lookup_schema(subject, Schema(json.dumps(V1), "AVRO")).version == 1

    # an incompatible change is refused with 409, and nothing is registered
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(V3_BAD), "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert client.test_compatibility(subject, Schema(json.dumps(V3_BAD), "AVRO")) is False
    assert client.get_versions(subject) == [1, 2]

    # old data read with the new schema gets the new field's default
    reader = AvroDeserializer(SchemaRegistryClient({"url": registry.url}), json.dumps(V2))
    decoded = [reader(m.value, context) for m in consume(bootstrap, topic, 8)]
    assert decoded == [{**row, "unit": "C"} for row in old_rows] + new_rows
    # and with use.latest.version the deserializer finds v2 itself
    latest = AvroDeserializer(SchemaRegistryClient({"url": registry.url}), conf={"use.latest.version": True})
    assert latest(consume(bootstrap, topic, 1)[0].value, context) == {**old_rows[0], "unit": "C"}


def test_the_same_schema_gets_the_same_id_in_every_subject(registry) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    spaced = json.dumps(V1, indent=4)
    first = client.register_schema("a-value", Schema(json.dumps(V1), "AVRO"))
    assert client.register_schema("b-value", Schema(spaced, "AVRO")) == first
    assert sorted(client.get_subjects()) == ["a-value", "b-value"]
    assert sorted(client.get_subjects_by_schema_id(first)) == ["a-value", "b-value"]
    assert json.loads(client.get_schema(first).schema_str) == V1


def test_config_deletes_and_references_through_the_client(registry) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("s-value", "NONE")
    assert client.get_compatibility("s-value") == "NONE"
    client.register_schema("s-value", Schema(json.dumps(V1), "AVRO"))
    client.register_schema("s-value", Schema(json.dumps(V3_BAD), "AVRO"))  # NONE takes it

    assert client.delete_version("s-value", 1) == 1
    assert client.get_versions("s-value") == [2]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_version("s-value", 1)
    assert gone.value.error_code == 40402
    assert client.delete_subject("s-value") == [2]
    assert client.delete_subject("s-value", permanent=True) == [1, 2]
    assert client.get_subjects() == []

    address = {"type": "record", "name": "Address", "namespace": "x", "fields": [{"name": "city", "type": "string"}]}
    person = {"type": "record", "name": "Person", "namespace": "x", "fields": [{"name": "home", "type": "x.Address"}]}
    client.register_schema("address", Schema(json.dumps(address), "AVRO"))
    reference = SchemaReference("x.Address", "address", 1)
    person_id = client.register_schema("person-value", Schema(json.dumps(person), "AVRO", [reference]))
    fetched = client.get_schema(person_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [("x.Address", "address", 1)]
    # and confluent-kafka's serializer writes with it
    serializer = AvroSerializer(
        client,
        Schema(json.dumps(person), "AVRO", [reference]),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    payload = serializer({"home": {"city": "Bonn"}}, SerializationContext("person", MessageField.VALUE))
    assert payload[1:5] == person_id.to_bytes(4, "big")


# ---------- kafkaml's own Avro path ----------


def test_kafkaml_avro_reads_and_writes_go_through_the_registry(bootstrap: str, new_topic, registry) -> None:
    topic = new_topic(partitions=2)
    table = pa.table({"id": pa.array(range(50), pa.int64()), "x": [i / 4 for i in range(50)]})
    assert kafkaml.write_topic(bootstrap, topic, table, format="avro", schema_registry=registry) == 50
    back = kafkaml.read_topic(bootstrap, topic, format="avro", schema_registry=registry)
    assert back.sort_by("id").equals(table)
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    context = SerializationContext(topic, MessageField.VALUE)
    decoded = sorted((deserializer(m.value, context) for m in consume(bootstrap, topic, 50)), key=lambda r: r["id"])
    assert decoded == table.to_pylist()
    assert registry.stats()["registered"] == 1


def test_a_large_avro_read_without_a_reader_schema_keeps_every_column(bootstrap: str, new_topic, registry) -> None:
    # Large enough for decoding ahead on threads (batches of 10,000, chunks of a few thousand):
    # the writer's schema is learnt from the first message, before any thread decodes.
    topic = new_topic(partitions=1)
    rows = 25_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "x": [i / 4 for i in range(rows)]})
    kafkaml.write_topic(bootstrap, topic, table, format="avro", schema_registry=registry)
    with kafkaml.Consumer(bootstrap, topic, format="avro", schema_registry=registry, stop="end") as consumer:
        batches = list(consumer)
    assert all(batch.schema.names == ["id", "x"] for batch in batches), [b.schema.names for b in batches]
    assert pa.Table.from_batches(batches).equals(table)
    matrix = kafkaml.read_matrix(bootstrap, topic, format="avro", schema_registry=registry, columns=["x"])
    assert matrix.shape == (rows, 1) and matrix[-1, 0] == (rows - 1) / 4


# ---------- persistence, restarts, two registries ----------


def test_ids_survive_a_restart_and_a_second_process_serves_the_same(
    bootstrap: str, admin: AdminClient, state_topic: str, registry_process
) -> None:
    with kafkaml.LocalSchemaRegistry(bootstrap, topic=state_topic) as first:
        # the state topic is made as Confluent's: one partition, compacted
        assert len(admin.list_topics(state_topic, timeout=10).topics[state_topic].partitions) == 1
        configs = admin.describe_configs([ConfigResource("topic", state_topic)])
        assert next(iter(configs.values())).result()["cleanup.policy"].value == "compact"
        client = SchemaRegistryClient({"url": first.url})
        client.set_compatibility(level="NONE")
        ids = {n: client.register_schema(f"subject-{n % 3}", Schema(record_schema(n), "AVRO")) for n in range(9)}
        client.delete_version("subject-0", 2)
    assert first.stats() == {"running": False, "url": first.url}

    with kafkaml.LocalSchemaRegistry(bootstrap, topic=state_topic) as restarted:
        other = registry_process(state_topic)
        for url in (restarted.url, other.url):
            client = SchemaRegistryClient({"url": url})
            assert client.get_compatibility() == "NONE"
            assert client.get_versions("subject-0") == [1, 3]
            for n, schema_id in ids.items():
                assert json.loads(client.get_schema(schema_id).schema_str) == json.loads(record_schema(n))
                found = client.lookup_schema(f"subject-{n % 3}", Schema(record_schema(n), "AVRO"), deleted=True)
                assert found.schema_id == schema_id
        # a write through one is read through the other
        new_id = SchemaRegistryClient({"url": other.url}).register_schema("late", Schema(record_schema(99), "AVRO"))
        assert call(f"{restarted.url}/schemas/ids/{new_id}")[1]["schema"] == record_schema(99)
        assert new_id == max(ids.values()) + 1


def test_fifty_clients_registering_one_schema_at_once_get_one_id(
    bootstrap: str, state_topic: str, registry_process
) -> None:
    schema = json.dumps(V2)
    with kafkaml.LocalSchemaRegistry(bootstrap, topic=state_topic) as local:
        other = registry_process(state_topic)
        for urls in ([local.url], [local.url, other.url]):
            subject = f"shared-{len(urls)}"
            barrier = threading.Barrier(50)

            def register(n: int, urls: list[str] = urls, subject: str = subject, barrier=barrier) -> int:
                client = SchemaRegistryClient({"url": urls[n % len(urls)]})  # each its own cache
                barrier.wait()
                return client.register_schema(subject, Schema(schema, "AVRO"))

            with ThreadPoolExecutor(50) as pool:
                ids = set(pool.map(register, range(50)))
            assert len(ids) == 1
            assert SchemaRegistryClient({"url": urls[-1]}).get_versions(subject) == [1]
        # the same schema in both subjects: one id
        assert call(f"{other.url}/schemas/ids/{ids.pop()}/subjects")[1] == ["shared-1", "shared-2"]


def test_a_thousand_schemas_registered_concurrently_survive_a_restart(
    bootstrap: str, state_topic: str, registry_process
) -> None:
    with kafkaml.LocalSchemaRegistry(bootstrap, topic=state_topic) as local:
        other = registry_process(state_topic)
        urls = [local.url, other.url]

        def register(n: int) -> tuple[int, int]:
            status, body = call(f"{urls[n % 2]}/subjects/s-{n}/versions", "POST", {"schema": record_schema(n)})
            assert status == 200, body
            return n, body["id"]

        with ThreadPoolExecutor(40) as pool:
            registered = dict(pool.map(register, range(1000)))
        assert len(set(registered.values())) == 1000
        # every even n went to this registry, each a new version it wrote (after any lost race)
        assert local.stats()["registered"] == 500
        other.stop()

    with kafkaml.LocalSchemaRegistry(bootstrap, topic=state_topic) as restarted:
        assert restarted.stats()["schemas"] == 1000
        assert restarted.stats()["subjects"] == 1000
        for n, schema_id in registered.items():
            status, body = call(f"{restarted.url}/subjects/s-{n}/versions/latest")
            assert (status, body["id"], body["schema"]) == (200, schema_id, record_schema(n))


# ---------- bad input ----------


def test_bad_input_gets_the_registrys_error_codes_never_a_500(registry) -> None:
    url = registry.url
    call(f"{url}/subjects/known/versions", "POST", {"schema": json.dumps(V1)})
    cases: list[tuple[str, str, Any, int, int]] = [
        ("POST", "/subjects/s/versions", "{not json", 400, 400),
        ("POST", "/subjects/s/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type": "record", "name": "R"}'}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type": "int32"}'}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "{}", "schemaType": "JSON"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF"}, 422, 42201),
        ("POST", "/subjects/s/versions", {}, 422, 42201),
        # a record that must contain itself, and a schema whose reference names itself
        (
            "POST",
            "/subjects/s/versions",
            {"schema": json.dumps({"type": "record", "name": "N", "fields": [{"name": "n", "type": "N"}]})},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/self/versions",
            {
                "schema": json.dumps(V1),
                "references": [{"name": "kafkaml.registry.Reading", "subject": "self", "version": 1}],
            },
            422,
            42201,
        ),
        ("GET", "/subjects/unknown/versions", None, 404, 40401),
        ("GET", "/subjects/known/versions/7", None, 404, 40402),
        ("GET", "/subjects/known/versions/0", None, 422, 42202),
        ("GET", "/schemas/ids/4242", None, 404, 40403),
        ("POST", "/subjects/known", {"schema": json.dumps(V2)}, 404, 40403),
        ("POST", "/compatibility/subjects/known/versions/9", {"schema": json.dumps(V2)}, 404, 40402),
        ("PUT", "/config", {"compatibility": "MOSTLY"}, 422, 42203),
        ("DELETE", "/subjects/known/versions/1?permanent=true", None, 404, 40407),
    ]
    for method, path, body, status, code in cases:
        got_status, got = call(f"{url}{path}", method, body)
        assert (got_status, got.get("error_code")) == (status, code), (method, path, got)
        assert got["message"]

    # a 10 MB body: refused before it is read whole
    huge = json.dumps({"schema": json.dumps({"type": "enum", "name": "E", "symbols": ["S"] * 1_500_000})})
    assert len(huge) > 10_000_000
    status, body = call(f"{url}/subjects/huge/versions", "POST", huge)
    assert (status, body["error_code"]) == (413, 413)
    assert registry.stats()["server_errors"] == 0


def test_an_unreachable_cluster_is_a_kafka_error() -> None:
    with pytest.raises(kafkaml.KafkaError):
        kafkaml.LocalSchemaRegistry("127.0.0.1:1", timeout=2)


def test_a_listen_address_in_use_is_a_config_error(registry) -> None:
    with pytest.raises(kafkaml.ConfigError, match="cannot listen"):
        kafkaml.LocalSchemaRegistry(registry.bootstrap, f"127.0.0.1:{registry.port}", topic=registry.topic)


# ---------- LocalKafka ----------


def test_on_local_kafka_confluent_serde_round_trips_and_ids_survive_a_restart() -> None:
    from confluent_kafka import Producer as ConfluentProducer

    with kafkaml.LocalKafka() as kafka:
        kafka.create_topic("readings", partitions=1)
        with kafkaml.LocalSchemaRegistry(kafka) as registry:
            client = SchemaRegistryClient({"url": registry.url})
            context = SerializationContext("readings", MessageField.VALUE)
            serializer = AvroSerializer(client, json.dumps(V1))
            producer = ConfluentProducer({"bootstrap.servers": kafka.bootstrap_servers})
            for i in range(3):
                producer.produce("readings", serializer({"id": i, "value": 0.5}, context))
            producer.flush(30)
            schema_id = client.get_latest_version("readings-value").schema_id
            table = kafkaml.read_topic(kafka, "readings", format="avro", schema_registry=registry)
            assert table.column("id").to_pylist() == [0, 1, 2]
        with kafkaml.LocalSchemaRegistry(kafka) as restarted:
            found = SchemaRegistryClient({"url": restarted.url}).lookup_schema(
                "readings-value", Schema(json.dumps(V1), "AVRO")
            )
            assert found.schema_id == schema_id
            reader = AvroDeserializer(SchemaRegistryClient({"url": restarted.url}))
            decoded = [reader(m.value, context) for m in consume(kafka.bootstrap_servers, "readings", 3)]
            assert decoded == [{"id": i, "value": 0.5} for i in range(3)]


# ---------- the Python face ----------


def test_stats_repr_and_html(registry) -> None:
    call(f"{registry.url}/subjects/a/versions", "POST", {"schema": json.dumps(V1)})
    call(f"{registry.url}/schemas/ids/999")
    stats = registry.stats()
    assert (stats["schemas"], stats["subjects"], stats["requests"], stats["client_errors"]) == (1, 1, 2, 1)
    assert stats["topic"] == registry.topic and stats["log_position"] >= 1
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", registry.url) and registry.url.endswith(str(registry.port))
    assert registry.url in repr(registry)
    html = registry._repr_html_()
    assert "LocalSchemaRegistry" in html and registry.topic in html
    registry.stop()
    assert "stopped" in registry._repr_html_() and "stopped" in repr(registry)
    registry.stop()  # twice is fine


def test_cli_help_names_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kafkaml", "schema-registry", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for option in ("--bootstrap", "--listen", "--topic", "--config", "--timeout"):
        assert option in done.stdout
