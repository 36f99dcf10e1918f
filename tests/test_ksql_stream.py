"""Streaming queries, inserts, sessions, errors and TLS of ``kafkaml.ksql``, end to end.

No ksqlDB server can run here, and the recorded cassettes hold no streaming responses, so a
local test double (``ksql_double``: a real HTTP/1.1 server on 127.0.0.1 in this process)
serves responses synthesized by these tests, following the ksqlDB REST documentation:
``/query`` in both the KSQL 5.x (newline-separated objects) and ksqlDB (one JSON array with
a header) formats, ``/query-stream`` delimited, ``/inserts-stream`` acks, ``/close-query``.
They are sent chunked at awkward places (inside strings, mid-row) with keep-alive newlines.
HTTP/2 is tested in the Rust core's tests (no HTTP/2 server library is available to Python
here).
"""

from __future__ import annotations

import _thread
import asyncio
import datetime
import decimal
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ksql_double
import pandas as pd
import pyarrow as pa
import pytest
from kafkaml.ksql import (
    KSQLAPI,
    AsyncClient,
    Client,
    KsqlAuthError,
    KsqlConnectionError,
    KsqlEndpointError,
    KsqlError,
    KsqlServerNotReadyError,
    KsqlStreamError,
    _magic,
    load_ipython_extension,
    split_statements,
)
from ksql_double import Reply, Request, split_every


@pytest.fixture
def double() -> Iterator[ksql_double.KsqlDouble]:
    server = ksql_double.start()
    yield server
    server.close()


SCHEMA = "`ID` BIGINT KEY, `name` STRING, `V1` DOUBLE, `Amount` DECIMAL(10, 2), `TAGS` ARRAY<STRING>, `TS` TIMESTAMP"


def ksqldb_rows(n: int) -> list[list[object]]:
    return [[i, f'sensor "{i}" ü', i * 0.5, f"{i}.25", ["a", "]"], "2024-05-01T12:00:00.000"] for i in range(n)]


def ksqldb_query_body(rows: list[list[object]], *, tombstone_at: int | None = None, error: bool = False) -> str:
    """ksqlDB's /query answer: a JSON array with a header, rows, keep-alives, and a final
    message (or an error)."""
    parts = ['[{"header":{"queryId":"transient_READINGS_7","schema":' + json.dumps(SCHEMA) + "}},\n"]
    for i, row in enumerate(rows):
        element: dict[str, object] = {"row": {"columns": row}}
        if i == tombstone_at:
            element["row"]["tombstone"] = True  # type: ignore[index]
        parts.append(json.dumps(element) + ",\n")
        if i % 4 == 0:
            parts.append("\n")  # keep-alive
    if error:
        parts.append(
            '{"errorMessage":{"@type":"generic_error","error_code":50000,"message":"Error deserializing row"}}]\n'
        )
    else:
        parts.append('{"finalMessage":"Limit Reached"}]\n')
    return "".join(parts)


def serve_query(double: ksql_double.KsqlDouble, body: str, chunk: int = 7) -> None:
    double.script("/query", lambda request: Reply(chunks=split_every(body, chunk)))


def serve_push_query(double: ksql_double.KsqlDouble, rows: int = 5) -> None:
    """/query-stream, delimited: a header, rows, then keep-alives until the client leaves."""
    text = '{"queryId":"push-42","columnNames":["ID","V"],"columnTypes":["BIGINT","DOUBLE"]}\n'
    text += "".join(f"[{i},{i}.5]\n" for i in range(rows))
    double.script("/query-stream", lambda request: Reply(chunks=split_every(text, 5), keep_alive_until_closed=True))
    double.script("/close-query", lambda request: Reply(body=""))


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_query_to_arrow_and_pandas_wherever_chunks_split(double: ksql_double.KsqlDouble, chunk: int) -> None:
    rows = ksqldb_rows(9)
    serve_query(double, ksqldb_query_body(rows), chunk)
    with Client(double.url).query("SELECT * FROM READINGS EMIT CHANGES LIMIT 9") as query:
        assert query.query_id == "transient_READINGS_7"
        assert query.schema is not None
        assert query.schema.names == ["ID", "name", "V1", "Amount", "TAGS", "TS"]
        assert query.schema.field("Amount").type == pa.decimal128(10, 2)
        table = query.to_arrow()
        assert query.final_message == "Limit Reached"
    assert table.num_rows == 9
    assert table.column("ID").to_pylist() == list(range(9))
    assert table.column("name").to_pylist()[3] == 'sensor "3" ü'
    assert table.column("Amount").to_pylist()[2] == decimal.Decimal("2.25")
    assert table.column("TAGS").to_pylist()[0] == ["a", "]"]
    assert table.column("TS").to_pylist()[0] == datetime.datetime(2024, 5, 1, 12, 0)
    request = double.requests[0]
    assert request.body == {"ksql": "SELECT * FROM READINGS EMIT CHANGES LIMIT 9;", "streamsProperties": {}}


def test_query_to_pandas_and_row_dicts(double: ksql_double.KsqlDouble) -> None:
    rows = ksqldb_rows(4)
    serve_query(double, ksqldb_query_body(rows, tombstone_at=2))
    client = Client(double.url)
    frame = client.query("SELECT * FROM READINGS;").to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["ID", "name", "V1", "Amount", "TAGS", "TS"]
    assert frame["V1"].tolist() == [0.0, 0.5, 1.0, 1.5]
    as_dicts = list(client.query("SELECT * FROM READINGS;"))
    assert as_dicts[1]["name"] == 'sensor "1" ü'
    assert as_dicts[1]["ID"] == 1
    batches = list(client.query("SELECT * FROM READINGS;").batches(max_rows=3))
    assert [b.num_rows for b in batches] == [3, 1]


def test_ksql5_newline_format_infers_types(double: ksql_double.KsqlDouble) -> None:
    lines = [
        '{"row":{"columns":[1524760769983,"1",1,"A"]},"errorMessage":null,"finalMessage":null}\n',
        "\n",
        '{"row":{"columns":[1524760769984,"2",2,"B"]},"errorMessage":null,"finalMessage":null}\n',
        '{"row":null,"errorMessage":null,"finalMessage":"Limit Reached"}\n',
    ]
    serve_query(double, "".join(lines), 11)
    query = Client(double.url).query("SELECT * FROM pageviews LIMIT 2;")
    assert query.query_id is None
    table = query.to_arrow()
    assert table.schema.names == ["col0", "col1", "col2", "col3"]
    assert table.column("col0").to_pylist() == [1524760769983, 1524760769984]
    assert table.column("col3").to_pylist() == ["A", "B"]


def test_error_mid_stream_after_the_rows_before_it(double: ksql_double.KsqlDouble) -> None:
    serve_query(double, ksqldb_query_body(ksqldb_rows(3), error=True))
    query = Client(double.url).query("SELECT * FROM READINGS;")
    rows = []
    with pytest.raises(KsqlStreamError) as raised:
        for row in query:
            rows.append(row)
    assert len(rows) == 3
    assert raised.value.error_code == 50000
    assert raised.value.message == "Error deserializing row"
    assert raised.value.statement_text == "SELECT * FROM READINGS;"
    assert "Error deserializing row" in str(raised.value)


def test_push_query_limit_closes_it_on_the_server(double: ksql_double.KsqlDouble) -> None:
    serve_push_query(double)
    query = Client(double.url).query("SELECT * FROM READINGS EMIT CHANGES;", endpoint="query-stream", limit=3)
    assert query.query_id == "push-42"
    frame = query.to_pandas()
    assert frame["ID"].tolist() == [0, 1, 2]
    closes = [r.body for r in double.requests if r.path == "/close-query"]
    assert closes == [{"queryId": "push-42"}]
    assert double.requests[0].headers["accept"] == "application/vnd.ksqlapi.delimited.v1"
    assert double.requests[0].body == {"sql": "SELECT * FROM READINGS EMIT CHANGES;", "properties": {}}


def test_push_query_idle_timeout(double: ksql_double.KsqlDouble) -> None:
    serve_push_query(double)
    started = time.monotonic()
    query = Client(double.url).query("SELECT * FROM READINGS EMIT CHANGES;", endpoint="query-stream", idle_timeout=0.5)
    assert query.to_arrow().num_rows == 5
    assert time.monotonic() - started < 5
    assert [r.path for r in double.requests].count("/close-query") == 1


def test_leaving_with_block_closes_the_query(double: ksql_double.KsqlDouble) -> None:
    serve_push_query(double)
    with Client(double.url).query("SELECT * FROM READINGS EMIT CHANGES;", endpoint="query-stream") as query:
        first = next(iter(query))
        assert first == {"ID": 0, "V": 0.5}
    assert [r.body for r in double.requests if r.path == "/close-query"] == [{"queryId": "push-42"}]


def test_ctrl_c_interrupts_reading_and_closes_the_query(double: ksql_double.KsqlDouble) -> None:
    serve_push_query(double)
    query = Client(double.url).query("SELECT * FROM READINGS EMIT CHANGES;", endpoint="query-stream")
    timer = threading.Timer(0.7, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            query.to_arrow()  # a push query without limit: only Ctrl-C ends it
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3
    assert [r.body for r in double.requests if r.path == "/close-query"] == [{"queryId": "push-42"}]


def inserts_double(double: ksql_double.KsqlDouble) -> None:
    def acks(request: Request) -> Reply:
        lines = [line for line in request.text.split("\n") if line.strip()]
        assert json.loads(lines[0]) == {"target": "READINGS"}
        out = []
        for seq, line in reversed(list(enumerate(lines[1:]))):  # out of order on purpose
            if "bad" in line:
                out.append(
                    json.dumps(
                        {"status": "error", "seq": seq, "error_code": 40000, "message": "Failed to deserialise value"}
                    )
                )
            else:
                out.append(json.dumps({"status": "ok", "seq": seq}))
        return Reply(chunks=split_every("\n".join(out) + "\n", 13), content_type="application/vnd.ksqlapi.delimited.v1")

    double.script("/inserts-stream", acks)


def test_insert_acks_come_in_row_order(double: ksql_double.KsqlDouble) -> None:
    inserts_double(double)
    client = Client(double.url)
    acks = client.insert("READINGS", [{"ID": i, "V": i / 2} for i in range(4)])
    assert acks == [{"status": "ok", "seq": i} for i in range(4)]
    with pytest.raises(KsqlError) as raised:
        client.insert("READINGS", [{"ID": 1}, {"ID": "bad"}, {"ID": 3}])
    assert raised.value.error_code == 40000
    assert "1 of 3 rows were rejected; first: row 1" in str(raised.value)
    # ksql-python's inserts_stream returns the acks, rejected ones included.
    # (HTTP/1.1 here: this double cannot speak HTTP/2; the Rust tests cover HTTP/2 inserts.)
    acks = KSQLAPI(double.url, check_version=False, http2=False).inserts_stream("READINGS", [{"ID": 1}, {"ID": "bad"}])
    assert [a["status"] for a in acks] == ["ok", "error"]


def test_session_properties_persist_set_statement_works(double: ksql_double.KsqlDouble) -> None:
    """ksql-python #54: SET through ksql() used to have no effect."""
    double.script(
        "/ksql", lambda r: Reply(body=json.dumps([{"@type": "tables", "statementText": r.body["ksql"], "tables": []}]))
    )
    serve_query(double, ksqldb_query_body(ksqldb_rows(1)))
    api = KSQLAPI(double.url, check_version=False)
    entities = api.ksql("SET 'auto.offset.reset'='earliest';")
    assert entities[0]["@type"] == "property_set"
    assert double.requests == []  # nothing to tell the server yet
    api.ksql("show tables;")
    assert double.requests[-1].body == {"ksql": "show tables;", "streamsProperties": {"auto.offset.reset": "earliest"}}
    list(api.query("SELECT * FROM READINGS;"))
    assert double.requests[-1].body["streamsProperties"] == {"auto.offset.reset": "earliest"}

    client = Client(double.url)
    client.set("ksql.streams.cache.max.bytes.buffering", 0)
    client.define("topic", "readings")
    client.ksql("SHOW TABLES; UNSET 'ksql.streams.cache.max.bytes.buffering'; SHOW STREAMS;")
    assert [r.body for r in double.requests[-2:]] == [
        {
            "ksql": "SHOW TABLES;",
            "streamsProperties": {"ksql.streams.cache.max.bytes.buffering": 0},
            "sessionVariables": {"topic": "readings"},
        },
        {"ksql": "SHOW STREAMS;", "sessionVariables": {"topic": "readings"}},
    ]


def test_insert_values_answering_empty_list(double: ksql_double.KsqlDouble) -> None:
    """ksql-python #80: INSERT ... VALUES answers [] and it raised IndexError."""
    double.script("/ksql", lambda r: Reply(body="[]"))
    assert KSQLAPI(double.url, check_version=False).ksql("INSERT INTO READINGS (ID) VALUES (1);") == []
    assert Client(double.url).ksql("INSERT INTO READINGS (ID) VALUES (1);") == []


def test_ksqlapi_query_text_and_objects(double: ksql_double.KsqlDouble) -> None:
    """ksql-python #57/#105/#106/#108 (rows split across chunks) and #123 (its column regex
    dropped lowercase names, digits and DECIMAL(p, s))."""
    rows = ksqldb_rows(3)
    serve_query(double, ksqldb_query_body(rows), 3)
    api = KSQLAPI(double.url, check_version=False)
    lines = list(api.query("SELECT * FROM READINGS"))
    assert "".join(lines) == ksqldb_query_body(rows)  # whole lines, the body unchanged
    assert json.loads(lines[1].strip().rstrip(",")) == {"row": {"columns": rows[0]}}
    assert lines[-1].strip() == '{"finalMessage":"Limit Reached"}]'
    objects = list(api.query("SELECT * FROM READINGS", return_objects=True))
    assert objects[2] == dict(zip(["ID", "name", "V1", "Amount", "TAGS", "TS"], rows[2]))


def test_ksqlapi_query_over_query_stream(double: ksql_double.KsqlDouble) -> None:
    text = '{"queryId":"q1","columnNames":["K","v2"],"columnTypes":["STRING","INTEGER"]}\n["a",1]\n["b",2]\n'
    double.script("/query-stream", lambda r: Reply(chunks=split_every(text, 4)))
    api = KSQLAPI(double.url, check_version=False, http2=False)  # /query-stream, but HTTP/1.1 (see above)
    objects = list(api.query("SELECT * FROM T;", use_http2=True, return_objects=True))
    assert objects == [{"K": "a", "v2": 1}, {"K": "b", "v2": 2}]


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (401, {"@type": "generic_error", "error_code": 40101, "message": "Unauthorized"}, KsqlAuthError),
        (403, {"@type": "generic_error", "error_code": 40301, "message": "Forbidden"}, KsqlAuthError),
        (
            400,
            {
                "@type": "statement_error",
                "error_code": 40002,
                "message": "SELECT and PRINT queries must use the /query endpoint",
                "statementText": "SELECT 1;",
            },
            KsqlEndpointError,
        ),
        (503, {"@type": "generic_error", "error_code": 50301, "message": "Server not ready"}, KsqlServerNotReadyError),
        (500, "<html>oops</html>", KsqlError),
    ],
)
def test_error_answers_map_to_exception_classes(
    double: ksql_double.KsqlDouble, status: int, body: object, error_type: type
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    double.script("/ksql", lambda r: Reply(status=status, body=text))
    with pytest.raises(error_type) as raised:
        Client(double.url, retries=1).ksql("SELECT 1;")
    assert raised.value.http_status == status
    assert raised.value.raw == text
    if isinstance(body, dict):
        assert raised.value.error_code == body["error_code"]
        assert raised.value.message == body["message"]


def test_not_ready_is_retried(double: ksql_double.KsqlDouble) -> None:
    answers = iter([503, 503, 200])

    def flaky(request: Request) -> Reply:
        status = next(answers)
        if status == 503:
            return Reply(status=503, body='{"@type":"generic_error","error_code":50301,"message":"not ready"}')
        return Reply(body="[]")

    double.script("/ksql", flaky)
    assert Client(double.url, retries=3).ksql("SHOW STREAMS;") == []
    assert len(double.requests) == 3


def test_bearer_token_and_unreachable_server(double: ksql_double.KsqlDouble) -> None:
    double.script("/info", lambda r: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))
    Client(double.url, auth="tok3n").info()
    assert double.requests[0].headers["authorization"] == "Bearer tok3n"
    port = double.server.server_address[1]
    double.close()
    with pytest.raises(KsqlConnectionError) as raised:
        Client(f"http://127.0.0.1:{port}", connect_timeout=2).info()
    assert f"http://127.0.0.1:{port}/info" in str(raised.value)


def test_slow_server_times_out(double: ksql_double.KsqlDouble) -> None:
    def slow(request: Request) -> Reply:
        time.sleep(3)
        return Reply(body="[]")

    double.script("/ksql", slow)
    started = time.monotonic()
    with pytest.raises(KsqlConnectionError) as raised:
        Client(double.url, timeout=0.5).ksql("SHOW STREAMS;")
    assert time.monotonic() - started < 2.5
    assert "no answer within 0.5 s" in str(raised.value)


def test_async_client(double: ksql_double.KsqlDouble) -> None:
    serve_query(double, ksqldb_query_body(ksqldb_rows(5)))
    double.script("/ksql", lambda r: Reply(body="[]"))

    async def main() -> tuple[object, object, list[dict[str, object]]]:
        client = AsyncClient(double.url)
        entities = await client.ksql("SHOW STREAMS;")
        frame = await (await client.query("SELECT * FROM READINGS;")).to_pandas()
        rows = []
        async with await client.query("SELECT * FROM READINGS;") as query:
            async for row in query:
                rows.append(row)
        return entities, frame, rows

    entities, frame, rows = asyncio.run(main())
    assert entities == []
    assert len(frame) == 5  # type: ignore[arg-type]
    assert [r["ID"] for r in rows] == [0, 1, 2, 3, 4]


def test_cell_magic(double: ksql_double.KsqlDouble) -> None:
    double.script(
        "/ksql",
        lambda r: Reply(
            body=json.dumps(
                [{"@type": "streams", "statementText": "SHOW STREAMS;", "streams": [{"name": "S1", "type": "STREAM"}]}]
            )
        ),
    )
    serve_query(double, ksqldb_query_body(ksqldb_rows(30)))
    registered = {}

    class FakeShell:
        def register_magic_function(self, function: object, magic_kind: str, magic_name: str) -> None:
            registered[(magic_kind, magic_name)] = function

    load_ipython_extension(FakeShell())
    magic = registered[("cell", "ksql")]
    entities = magic(double.url, "SHOW STREAMS;\n")
    assert "<td>S1</td>" in entities._repr_html_()
    frame = magic("--limit 5", "SELECT * FROM READINGS EMIT CHANGES;")  # the URL is remembered
    assert len(frame) == 5
    _magic._last_url.clear()


def test_split_statements() -> None:
    assert split_statements("SHOW STREAMS; SELECT ';' FROM T -- a ; comment\n; DESCRIBE `a;b`") == [
        "SHOW STREAMS;",
        "SELECT ';' FROM T -- a ; comment\n;",
        "DESCRIBE `a;b`",
    ]


def _certificates(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(
        name: str, issuer_key: object, issuer_name: x509.Name | None, ca: bool, usage: object = None, san: object = None
    ) -> tuple[object, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())  # type: ignore[arg-type]
        return key, cert

    ca_key, ca_cert = issue("kafkaml test CA", None, None, True)
    server_key, server_cert = issue(
        "127.0.0.1",
        ca_key,
        ca_cert.subject,
        False,
        ExtendedKeyUsageOID.SERVER_AUTH,
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    )
    client_key, client_cert = issue("notebook", ca_key, ca_cert.subject, False, ExtendedKeyUsageOID.CLIENT_AUTH)
    paths = {}
    for label, key, cert in [
        ("ca", ca_key, ca_cert),
        ("server", server_key, server_cert),
        ("client", client_key, client_cert),
    ]:
        paths[f"{label}_cert"] = tmp_path / f"{label}.crt"
        paths[f"{label}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{label}_key"] = tmp_path / f"{label}.key"
        paths[f"{label}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )  # type: ignore[attr-defined]
        )
    return paths


def test_tls_with_custom_ca_and_client_certificate(tmp_path: Path) -> None:
    paths = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["server_cert"], paths["server_key"])
    context.load_verify_locations(paths["ca_cert"])
    context.verify_mode = ssl.CERT_REQUIRED  # the server demands a client certificate
    double = ksql_double.start(context)
    try:
        double.script("/info", lambda r: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))
        assert double.url.startswith("https://")
        client = Client(double.url, verify=paths["ca_cert"], cert=(paths["client_cert"], paths["client_key"]))
        assert client.info()["KsqlServerInfo"]["version"] == "0.29.0"
        # One PEM file holding both, as requests' cert= takes it.
        both = tmp_path / "client.pem"
        both.write_bytes(paths["client_cert"].read_bytes() + paths["client_key"].read_bytes())
        api = KSQLAPI(double.url, verify=str(paths["ca_cert"]), cert=str(both))
        assert api.get_ksql_version() == "0.29.0"
        # Without the client certificate the handshake fails; without the CA, verification.
        with pytest.raises(KsqlConnectionError):
            Client(double.url, verify=paths["ca_cert"], timeout=5).info()
        with pytest.raises(KsqlConnectionError):
            Client(double.url, cert=(paths["client_cert"], paths["client_key"]), timeout=5).info()
    finally:
        double.close()


def test_admin_endpoints(double: ksql_double.KsqlDouble) -> None:
    double.script(
        "/healthcheck",
        lambda r: Reply(
            body='{"isHealthy":true,"details":{"metastore":{"isHealthy":true},"kafka":{"isHealthy":true}}}'
        ),
    )
    double.script("/clusterStatus", lambda r: Reply(body='{"clusterStatus":{"localhost:8088":{"hostAlive":true}}}'))
    double.script(
        "/status/stream/PAGEVIEWS/create", lambda r: Reply(body='{"status":"SUCCESS","message":"Stream created"}')
    )
    double.script(
        "/ksql/terminate", lambda r: Reply(body='{"@type":"generic_error","error_code":0,"message":"terminated"}')
    )
    double.script(
        "/close-query",
        lambda r: Reply(
            status=400, body='{"@type":"generic_error","error_code":40000,"message":"No query with id q9"}'
        ),
    )
    client = Client(double.url)
    assert client.healthcheck()["isHealthy"] is True
    assert client.cluster_status()["clusterStatus"]["localhost:8088"]["hostAlive"] is True
    assert client.status("stream/PAGEVIEWS/create")["status"] == "SUCCESS"
    client.terminate(["PAGEVIEWS_TOPIC"])
    assert double.requests[-1].body == {"deleteTopicList": ["PAGEVIEWS_TOPIC"]}
    with pytest.raises(KsqlError) as raised:
        client.close_query("q9")
    assert raised.value.http_status == 400 and "No query with id q9" in str(raised.value)
    assert double.requests[-1].body == {"queryId": "q9"}
    # ksql-python's close_query answers False when the server refuses.
    assert KSQLAPI(double.url, check_version=False, http2=False).close_query("q9") is False


def test_create_table_statement(double: ksql_double.KsqlDouble) -> None:
    """ksql-python's create_table: its CreateBuilder's text, with the key property."""
    double.script(
        "/ksql",
        lambda r: Reply(
            body='[{"@type":"currentStatus","commandStatus":{"status":"SUCCESS","message":"Table created"}}]'
        ),
    )
    api = KSQLAPI(double.url, check_version=False)
    assert api.create_table("users", ["id bigint", "name varchar"], "users_topic", "JSON", key="id") is True
    assert double.requests[-1].body == {
        "ksql": "CREATE table users (id bigint, name varchar) WITH (kafka_topic='users_topic', value_format='JSON', key='id');"
    }
    with pytest.raises(ValueError):
        api.create_table("users", ["id bigint"], "users_topic", "JSON", key=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        api.create_stream("users", ["id bigint"], "users_topic", "PROTOBUF")
    # An old server's "200 with commandStatus ERROR" is an error too.
    double.script(
        "/ksql",
        lambda r: Reply(
            body='[{"@type":"currentStatus","statementText":"DROP TABLE x;","commandStatus":{"status":"ERROR","message":"boom"}}]'
        ),
    )
    with pytest.raises(KsqlError) as raised:
        api.ksql("DROP TABLE x;")
    assert raised.value.message == "boom" and raised.value.http_status == 200
