"""A Confluent Schema Registry test double for the Avro tests.

No Schema Registry server can be installed on the machines this suite runs on (it is a
JVM service outside Kafka's own jars), so the tests run this stand-in instead: a tiny
``http.server`` on 127.0.0.1 (port 0, in a thread) that speaks the part of the REST API
that confluent-kafka's ``SchemaRegistryClient`` (AvroSerializer / AvroDeserializer) and
kafkaml use. Only the registry is doubled; the Kafka broker the data goes through is real.

Endpoints:

* ``POST /subjects/{subject}/versions`` ``{"schema": ..., "schemaType"?: ...}`` -> ``{"id": N}``
  (the same schema text gets the same id, in any subject);
* ``POST /subjects/{subject}`` (lookup of a schema under a subject) -> the registered schema, or 404;
* ``GET /schemas/ids/{id}`` -> ``{"schema": "...", "schemaType": "AVRO"}``;
* ``GET /subjects/{subject}/versions/latest`` and ``/versions/{n}`` -> the registered schema;
* ``GET /subjects`` and ``GET /subjects/{subject}/versions``;
* ``GET /associations/resources/{namespace}/{topic}`` -> ``[]`` (confluent-kafka 2.16's
  serializers ask for a topic's associations before falling back to ``<topic>-value``).

Every request is recorded in :attr:`SchemaRegistryDouble.requests` as ``(method, path)``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryDouble:
    """The registry's state and its HTTP server; use as a context manager."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[str, int] = {}  # schema text -> id
        self.schemas: dict[int, tuple[str, str]] = {}  # id -> (schema text, schema type)
        self.subjects: dict[str, list[int]] = {}  # subject -> ids, version n at index n-1
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="schema-registry-double", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SchemaRegistryDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # --- the registry's logic -------------------------------------------------

    def register(self, subject: str, schema: str, schema_type: str) -> int:
        with self.lock:
            schema_id = self.ids.get(schema)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.ids[schema] = schema_id
                self.schemas[schema_id] = (schema, schema_type)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def version_of(self, subject: str, version: str) -> dict | None:
        with self.lock:
            versions = self.subjects.get(subject)
            if not versions:
                return None
            index = len(versions) if version == "latest" else int(version)
            if not 1 <= index <= len(versions):
                return None
            schema_id = versions[index - 1]
            schema, schema_type = self.schemas[schema_id]
            return {"subject": subject, "version": index, "id": schema_id, "schema": schema, "schemaType": schema_type}

    def lookup(self, subject: str, schema: str) -> dict | None:
        with self.lock:
            schema_id = self.ids.get(schema)
            versions = self.subjects.get(subject, [])
            if schema_id is None or schema_id not in versions:
                return None
            text, schema_type = self.schemas[schema_id]
            return {
                "subject": subject,
                "version": versions.index(schema_id) + 1,
                "id": schema_id,
                "schema": text,
                "schemaType": schema_type,
            }


def _handler(registry: SchemaRegistryDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, code: int, message: str) -> None:
            self._reply(404, {"error_code": code, "message": message})

        def _parts(self) -> list[str]:
            path = urlsplit(self.path).path
            registry.requests.append((self.command, path))
            return [unquote(p) for p in path.strip("/").split("/") if p]

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            parts = self._parts()
            body = self._body()
            schema, schema_type = body.get("schema"), body.get("schemaType", "AVRO")
            if not isinstance(schema, str):
                self._reply(422, {"error_code": 42201, "message": "schema missing"})
            elif len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                self._reply(200, {"id": registry.register(parts[1], schema, schema_type)})
            elif len(parts) == 2 and parts[0] == "subjects":
                found = registry.lookup(parts[1], schema)
                if found is None:
                    self._not_found(40403, "Schema not found")
                else:
                    self._reply(200, found)
            else:
                self._not_found(404, f"no such endpoint: POST {self.path}")

        def do_GET(self) -> None:  # noqa: N802
            parts = self._parts()
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                entry = registry.schemas.get(int(parts[2]))
                if entry is None:
                    self._not_found(40403, "Schema not found")
                else:
                    self._reply(200, {"schema": entry[0], "schemaType": entry[1]})
            elif len(parts) == 4 and parts[:2] == ["associations", "resources"]:
                self._reply(200, [])  # no topic associations (confluent-kafka >= 2.13 asks)
            elif parts == ["subjects"]:
                self._reply(200, sorted(registry.subjects))
            elif len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                versions = registry.subjects.get(parts[1])
                if versions is None:
                    self._not_found(40401, "Subject not found")
                else:
                    self._reply(200, list(range(1, len(versions) + 1)))
            elif len(parts) == 4 and parts[0] == "subjects" and parts[2] == "versions":
                found = registry.version_of(parts[1], parts[3])
                if found is None:
                    self._not_found(40402, "Version not found")
                else:
                    self._reply(200, found)
            else:
                self._not_found(404, f"no such endpoint: GET {self.path}")

    return Handler
