"""``KSQLAPI.query()``'s lines, ``kafkaml.ksql.utils``, ``KSQLError``, and the clients'
context managers and notebook reprs.

No ksqlDB server can run here. Streamed results come from a local test double
(``ksql_double``: a real HTTP/1.1 server on 127.0.0.1 in this process) serving response
bodies these tests write after the ksqlDB REST documentation, in the three formats (ksqlDB's
``/query`` array, KSQL 5.x's newline-separated objects, ``/query-stream``'s delimited lines),
cut into chunks at random places. Statement answers are real recorded KSQL/ksqlDB answers
(ksql-python's cassettes, ``../shared/fixtures/ksql-python-cassettes``) where they exist,
and synthesized where none was recorded (said so at each test).
"""

from __future__ import annotations

import json
import pickle
import random
import re
import socket
from collections.abc import Iterator
from typing import Any

import ksql_double
import pytest
from kafkaml import KafkaMLError
from kafkaml.ksql import (
    KSQLAPI,
    AsyncClient,
    Client,
    KsqlAuthError,
    KsqlConnectionError,
    KSQLError,
    KsqlError,
    KsqlStatementError,
    KsqlStreamError,
    utils,
)
from ksql_double import Reply, Request


@pytest.fixture
def double() -> Iterator[ksql_double.KsqlDouble]:
    server = ksql_double.start()
    yield server
    server.close()


SCHEMA = "`ID` BIGINT KEY, `name` STRING, `Amount` DECIMAL(10, 2), `TAGS` ARRAY<STRING>, `S` STRUCT<`A` INT, `B` MAP<STRING, INT>>"
NAMES = ["ID", "name", "Amount", "TAGS", "S"]
ROWS: list[list[Any]] = [
    [1, 'a "quoted" ],\n name', 12.5, ["x", "]"], {"A": 1, "B": {"k": 2}}],
    [2, "Zürich 東京 \\ ,", None, [], None],
    [3, "{[", 0.01, ["a,b"], {"A": None, "B": {}}],
    [4, "", -1.0, None, {"A": 4, "B": None}],
]


def ksqldb_body(rows: list[list[Any]] = ROWS, *, error: bool = False) -> str:
    """ksqlDB's ``/query`` answer: one JSON array over many lines, with keep-alives and a
    tombstone, ending with the final message (or an error)."""
    parts = ['[{"header":{"queryId":"transient_READINGS_3","schema":' + json.dumps(SCHEMA) + "}},\n"]
    for i, row in enumerate(rows):
        element: dict[str, Any] = {"row": {"columns": row}}
        if i == 1:
            element["row"]["tombstone"] = True
        parts.append(json.dumps(element, ensure_ascii=False) + ",\n")
        if i % 2 == 0:
            parts.append("\n\n")  # keep-alives
    if error:
        parts.append('{"errorMessage":{"@type":"generic_error","error_code":50000,"message":"Error deserializing"}}]\n')
    else:
        parts.append('{"finalMessage":"Limit Reached"}]\n')
    return "".join(parts)


def ksql5_body(rows: list[list[Any]] = ROWS, *, error: bool = False) -> str:
    """KSQL 5.x's ``/query`` answer: newline-separated objects, no header, keep-alives first
    and in between."""
    parts = ["\n"]
    for i, row in enumerate(rows):
        parts.append(json.dumps({"row": {"columns": row}, "errorMessage": None, "finalMessage": None}) + "\n")
        if i == 1:
            parts.append("\n")
    if error:
        parts.append(
            '{"row":null,"errorMessage":{"@type":"generic_error","error_code":50000,"message":"Query terminated"},"finalMessage":null}\n'
        )
    parts.append('{"row":null,"errorMessage":null,"finalMessage":"Limit Reached"}\n')
    return "".join(parts)


def query_stream_body(rows: list[list[Any]] = ROWS) -> str:
    """``/query-stream``'s delimited answer: a header object, then one array per row."""
    header = {
        "queryId": "push-7",
        "columnNames": NAMES,
        "columnTypes": ["BIGINT", "STRING", "DECIMAL(10, 2)", "ARRAY<STRING>", "STRUCT<`A` INT, `B` MAP<STRING, INT>>"],
    }
    return json.dumps(header) + "\n" + "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


FORMATS = {
    "ksqldb": ("/query", ksqldb_body, NAMES),
    "ksql5": ("/query", ksql5_body, [f"col{i}" for i in range(5)]),
    "query-stream": ("/query-stream", lambda **kw: query_stream_body(), NAMES),
}


def random_chunks(body: str, seed: int) -> list[bytes]:
    """The body's bytes cut at random places (inside strings, UTF-8 characters and rows)."""
    data = body.encode()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(1, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def serve(double: ksql_double.KsqlDouble, path: str, body: str, seed: int) -> list[bytes]:
    chunks = random_chunks(body, seed) if seed >= 0 else [body.encode()[i : i + 1] for i in range(len(body.encode()))]
    double.script(path, lambda request: Reply(chunks=chunks))
    return chunks


def api_for(double: ksql_double.KsqlDouble) -> KSQLAPI:
    # The double speaks HTTP/1.1: /query-stream over HTTP/1.1 (http2=False, a kafkaml option).
    return KSQLAPI(double.url, check_version=False, http2=False)


@pytest.mark.parametrize("seed", [-1, 0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_query_lines_join_back_to_the_exact_body(double: ksql_double.KsqlDouble, fmt: str, seed: int) -> None:
    path, make_body, _ = FORMATS[fmt]
    body = make_body()
    chunks = serve(double, path, body, seed)
    assert len(chunks) > 1
    lines = list(api_for(double).query("SELECT * FROM READINGS;", use_http2=fmt == "query-stream"))
    assert "".join(lines) == body
    # Whole lines only: each ends its line, none is only a keep-alive, and there is one per
    # non-blank line of the body.
    assert all(line.endswith("\n") and line.strip() for line in lines)
    assert len(lines) == sum(1 for line in body.split("\n") if line.strip())
    assert [line.strip() for line in lines] == [line for line in body.split("\n") if line.strip()]


def test_last_line_without_newline_and_trailing_keep_alives(double: ksql_double.KsqlDouble) -> None:
    body = ksqldb_body().rstrip("\n")
    serve(double, "/query", body, 7)
    lines = list(api_for(double).query("SELECT * FROM READINGS;"))
    assert "".join(lines) == body
    assert lines[-1] == '{"finalMessage":"Limit Reached"}]'
    body = ksql5_body() + "\n\n"
    serve(double, "/query", body, 8)
    lines = list(api_for(double).query("SELECT * FROM READINGS;"))
    assert "".join(lines) == body
    assert lines[-1] == "\n\n"  # what followed the last line, so that nothing is lost


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_ksql_python_helpers_parse_the_lines(double: ksql_double.KsqlDouble, fmt: str) -> None:
    path, make_body, names = FORMATS[fmt]
    serve(double, path, make_body(), 11)
    api = api_for(double)
    use_http2 = fmt == "query-stream"
    expected = [dict(zip(names, row)) for row in ROWS]
    # ksql-python's way: process_query_result over the lines.
    rows = list(utils.process_query_result(api.query("SELECT * FROM R;", use_http2=use_http2), return_objects=True))
    assert rows == expected
    # ksql-python-ng's way.
    assert list(utils.parse_query_results(api.query("SELECT * FROM R;", use_http2=use_http2))) == expected
    # By hand: the header line's columns, then process_row on each line.
    lines = list(api.query("SELECT * FROM R;", use_http2=use_http2))
    if fmt == "ksql5":
        assert utils.parse_columns(lines[0]) == []  # KSQL 5.x sends no header
        columns: list[Any] = names
        body_lines = lines
    else:
        columns = utils.parse_columns(lines[0])
        assert [c["name"] for c in columns] == NAMES
        body_lines = lines[1:]
    by_hand = [utils.process_row(line, columns) for line in body_lines]
    assert [r for r in by_hand if r is not None] == expected
    if fmt != "query-stream":
        assert by_hand[-1] is None  # the final message
    # Without return_objects the lines pass through unchanged.
    assert list(utils.process_query_result(iter(lines))) == lines


@pytest.mark.parametrize("flag", ["return_objects", "parse"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_return_objects_and_parse_yield_row_dicts(double: ksql_double.KsqlDouble, fmt: str, flag: str) -> None:
    path, make_body, names = FORMATS[fmt]
    serve(double, path, make_body(), 13)
    api = api_for(double)
    rows = list(api.query("SELECT * FROM R;", use_http2=fmt == "query-stream", **{flag: True}))
    assert rows == [dict(zip(names, row)) for row in ROWS]


def test_ksql_python_ng_stream_method(double: ksql_double.KsqlDouble) -> None:
    serve(double, "/query-stream", query_stream_body(), 17)
    api = api_for(double)
    lines = list(api.stream("SELECT * FROM R;", use_http2=True))
    assert "".join(lines) == query_stream_body()
    assert list(api.stream("SELECT * FROM R;", use_http2=True, parse=True))[0] == dict(zip(NAMES, ROWS[0]))


@pytest.mark.parametrize("make_body", [ksqldb_body, ksql5_body])
def test_error_in_the_stream_raises_ksqlerror_after_the_rows(double: ksql_double.KsqlDouble, make_body: Any) -> None:
    body = make_body(error=True)
    serve(double, "/query", body, 19)
    api = api_for(double)
    rows = []
    with pytest.raises(KSQLError) as raised:
        for row in api.query("SELECT * FROM R;", return_objects=True):
            rows.append(row)
    assert len(rows) == len(ROWS)
    assert isinstance(raised.value, KsqlStreamError)
    assert raised.value.error_code == 50000
    assert raised.value.msg in ("Error deserializing", "Query terminated")
    assert raised.value.statement_text == "SELECT * FROM R;"
    # As lines, the error is a line like the others: the body is handed over unchanged.
    assert "".join(api.query("SELECT * FROM R;")) == body
    # ksql-python's process_row raises it too.
    lines = list(api.query("SELECT * FROM R;"))
    error_line = next(line for line in lines if "error_code" in line)
    with pytest.raises(KSQLError) as raised:
        utils.process_row(error_line, NAMES)
    assert raised.value.error_code == 50000


def test_query_is_lazy_and_leaving_early_closes_it(double: ksql_double.KsqlDouble) -> None:
    text = '{"queryId":"push-9","columnNames":["ID"],"columnTypes":["BIGINT"]}\n' + "".join(
        f"[{i}]\n" for i in range(3)
    )
    double.script("/query-stream", lambda r: Reply(chunks=[text.encode()], keep_alive_until_closed=True))
    double.script("/close-query", lambda r: Reply(body=""))
    api = api_for(double)
    lines = api.query("SELECT * FROM R EMIT CHANGES;", use_http2=True)
    assert double.requests == []  # a generator, as ksql-python's: nothing sent yet
    assert next(lines).startswith('{"queryId":"push-9"')
    assert next(lines) == "[0]\n"
    lines.close()
    assert double.requests[-1].path == "/close-query"
    assert double.requests[-1].body == {"queryId": "push-9"}
    # idle_timeout ends a push query whose server only sends keep-alives.
    rows = list(api.query("SELECT * FROM R EMIT CHANGES;", use_http2=True, idle_timeout=0.3, parse=True))
    assert rows == [{"ID": 0}, {"ID": 1}, {"ID": 2}]


# --- KSQLError ---------------------------------------------------------------------------


def test_ksqlerror_built_by_user_code() -> None:
    error = KSQLError("m", 40001)
    assert error.error_code == 40001
    assert error.msg == "m" and error.message == "m"
    assert str(error) == "m"
    assert isinstance(error, KafkaMLError)
    assert KSQLError("only a message").error_code is None
    assert KSQLError(ValueError("boom")).msg == "boom"  # ksql-python formats what it is given
    with pytest.raises(KSQLError) as raised:
        raise KsqlStatementError("bad statement", error_code=40001)
    assert raised.value.error_code == 40001 and raised.value.http_status is None
    copy = pickle.loads(pickle.dumps(KSQLError("m", 40001)))
    assert (copy.msg, copy.error_code) == ("m", 40001)


@pytest.mark.parametrize(
    ("status", "code", "kind", "error_type"),
    [
        (400, 40001, "statement", KsqlStatementError),
        (400, 40000, "bad_request", KsqlError),
        (401, 40100, "auth", KsqlAuthError),
        (404, 40400, "not_found", KsqlError),
        (429, 42900, "rate_limited", KsqlError),
        (500, 50000, "server", KsqlError),
    ],
)
def test_errors_carry_the_cores_kind(
    double: ksql_double.KsqlDouble, status: int, code: int, kind: str, error_type: type
) -> None:
    """Synthesized error answers (ksqlDB's error-body shape): the Rust core classifies them."""
    double.script(
        "/ksql",
        lambda r: Reply(
            status=status, body=json.dumps({"@type": "generic_error", "error_code": code, "message": "no"})
        ),
    )
    with pytest.raises(KSQLError) as raised:
        Client(double.url).ksql("SHOW STREAMS;")
    assert type(raised.value) is error_type
    assert raised.value.kind == kind
    assert (raised.value.error_code, raised.value.http_status, raised.value.msg) == (code, status, "no")


# --- utils -------------------------------------------------------------------------------


def test_parse_columns_of_declarations_and_header_lines() -> None:
    expected = [
        {"name": "ID", "type": "BIGINT"},
        {"name": "name", "type": "STRING"},
        {"name": "Amount", "type": "DECIMAL(10, 2)"},
        {"name": "TAGS", "type": "ARRAY<STRING>"},
        {"name": "S", "type": "STRUCT<`A` INT, `B` MAP<STRING, INT>>"},
    ]
    assert utils.parse_columns(SCHEMA) == expected
    assert utils.parse_columns(ksqldb_body().split("\n")[0] + "\n") == expected
    header = query_stream_body().split("\n")[0]
    assert [c["name"] for c in utils.parse_columns(header)] == NAMES
    assert utils.parse_columns("`K` STRING PRIMARY KEY, `H` BYTES HEADER('x')") == [
        {"name": "K", "type": "STRING"},
        {"name": "H", "type": "BYTES"},
    ]


def test_process_row_takes_both_originals_arguments() -> None:
    line = '{"row":{"columns":[1,"a"]}},\n'
    assert utils.process_row(line, [{"name": "ID", "type": "BIGINT"}, {"name": "N", "type": "STRING"}]) == {
        "ID": 1,
        "N": "a",
    }
    assert utils.process_row('[1,"a"]\n', ["ID", "N"]) == {"ID": 1, "N": "a"}  # ksql-python-ng
    assert utils.process_row('{"row":{"columns":[1,"a"]}}]\n', ["ID"]) == {"ID": 1, "col1": "a"}
    assert utils.process_row('{"finalMessage":"Limit Reached"}]\n', ["ID"]) is None
    assert utils.process_row("\n", ["ID"]) is None
    with pytest.raises(ValueError):
        utils.process_row("<html>", ["ID"])


def test_iterate_and_drop_streams_on_recorded_answers(double: ksql_double.KsqlDouble) -> None:
    """Recorded answers; the one stream nobody recorded gets the double's 599 and goes to
    the error handler."""
    double.replay("utils_test_drop_all_streams.yml")
    api = KSQLAPI(double.url, check_version=False)
    name = "ksql_python_test_test_drop_all_streams"
    utils.drop_stream(api, name)
    api.ksql(next(i.body["ksql"] for i in double.interactions if i.body["ksql"].startswith("CREATE")))
    streams = utils.get_all_streams(api, prefix="ksql_python_test")
    assert streams == [name.upper()]
    failed: list[str] = []
    utils.iterate_and_drop_streams(api, [*streams, "NOT_RECORDED"], failed.append)
    assert failed == ["NOT_RECORDED"]
    assert utils.get_stream_info(api, name) is None
    assert double.unused() == []
    utils.iterate_and_drop_streams(api, ["NOT_RECORDED"])  # the default handler carries on


def test_drop_all_streams_retries_what_failed_once(double: ksql_double.KsqlDouble) -> None:
    """Synthesized answers: stream A cannot be dropped before B (which reads from it) the
    first time; the second pass drops it. If it keeps failing, that raises."""
    statements: list[str] = []
    refusals = {"A": 1}

    def answer(request: Request) -> Reply:
        statement = request.body["ksql"]
        statements.append(" ".join(statement.split()))
        if statement == "SHOW STREAMS;":
            streams = [{"name": n, "type": "STREAM"} for n in ("A", "B")]
            return Reply(body=json.dumps([{"@type": "streams", "streams": streams}]))
        if statement.startswith("DESCRIBE"):
            return Reply(body=json.dumps([{"sourceDescription": {"readQueries": [], "writeQueries": []}}]))
        stream = statement.split()[-1].rstrip(";")
        if refusals.get(stream, 0) > 0:
            refusals[stream] -= 1
            return Reply(status=400, body=json.dumps({"error_code": 40001, "message": f"{stream} is in use"}))
        return Reply(body="[]")

    double.script("/ksql", answer)
    utils.drop_all_streams(Client(double.url))
    drops = [s for s in statements if s.startswith("DROP")]
    assert drops == ["DROP STREAM IF EXISTS A;", "DROP STREAM IF EXISTS B;", "DROP STREAM IF EXISTS A;"]
    refusals["A"] = 2
    with pytest.raises(KSQLError, match="A is in use"):
        utils.drop_all_streams(Client(double.url))


def test_check_kafka_available() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        assert utils.check_kafka_available(f"127.0.0.1:{port}")
        assert utils.check_kafka_available(f"127.0.0.1:1, PLAINTEXT://127.0.0.1:{port}")
    finally:
        listener.close()
    assert not utils.check_kafka_available(f"127.0.0.1:{port}", timeout=2)
    assert not utils.check_kafka_available("no-port-given")


# --- context managers and reprs -----------------------------------------------------------


def test_client_context_manager_closes_queries_and_connections(double: ksql_double.KsqlDouble) -> None:
    double.script("/info", lambda r: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))
    text = '{"queryId":"push-5","columnNames":["ID"],"columnTypes":["BIGINT"]}\n[1]\n'
    double.script("/query-stream", lambda r: Reply(chunks=[text.encode()], keep_alive_until_closed=True))
    double.script("/close-query", lambda r: Reply(body=""))
    with Client(double.url) as client:
        client.info()
        query = client.query("SELECT * FROM R EMIT CHANGES;", endpoint="query-stream")
        assert query.state == "running"
        assert double.open_connections >= 1  # the streaming one (it reused /info's)
    assert client.closed
    assert query.state == "closed"
    assert {"queryId": "push-5"} in [r.body for r in double.requests]
    # The client was the last user of its connection pool: its connections are gone.
    assert double.wait_for_connections(0) == 0
    with pytest.raises(KsqlConnectionError, match="closed"):
        client.info()
    with KSQLAPI(double.url, http2=False) as api:  # check_version asks /info
        assert api.get_ksql_version() == "0.29.0"
    assert api.client.closed and "closed" in repr(api)
    assert double.wait_for_connections(0) == 0


def test_async_client_context_manager(double: ksql_double.KsqlDouble) -> None:
    import asyncio

    double.script("/info", lambda r: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))

    async def main() -> AsyncClient:
        async with AsyncClient(double.url) as client:
            await client.info()
            assert "server 0.29.0" in repr(client)
        return client

    client = asyncio.run(main())
    assert client.sync.closed


def test_client_and_query_reprs(double: ksql_double.KsqlDouble) -> None:
    double.script("/info", lambda r: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))
    serve(double, "/query", ksqldb_body(), 23)
    client = Client(double.url)
    assert repr(client) == f"Client({double.url!r})"
    assert "unknown" in client._repr_html_()
    client.info()
    client.set("auto.offset.reset", "earliest")
    client.define("min", "5")
    text = repr(client)
    assert "server 0.29.0" in text and "'auto.offset.reset': 'earliest'" in text and "'min': '5'" in text
    page = client._repr_html_()
    assert "0.29.0" in page and "auto.offset.reset" in page and double.url in page
    query = client.query("SELECT * FROM READINGS LIMIT 4")
    # Waiting for the header may have read a first row already.
    assert re.match(
        r"<Query 'SELECT \* FROM READINGS LIMIT 4;' running, [01] rows? read, columns: ID, name,", repr(query)
    )
    table = query.to_arrow()
    assert table.num_rows == 4
    assert repr(query).startswith("<Query 'SELECT * FROM READINGS LIMIT 4;' finished, 4 rows read, columns: ID,")
    page = query._repr_html_()
    for part in ("SELECT * FROM READINGS LIMIT 4;", "finished", "transient_READINGS_3", "Limit Reached", "Amount"):
        assert part in page
    client.close()
    assert repr(client).endswith("closed)")


def test_ksqlapi_results_show_as_tables(double: ksql_double.KsqlDouble) -> None:
    """A recorded SHOW STREAMS answer."""
    double.replay("utils_test_get_all_streams.yml")
    api = KSQLAPI(double.url, check_version=False)
    shown: Any = None
    for interaction in double.interactions:
        try:
            result = api.ksql(interaction.body["ksql"])
        except KsqlError:
            continue
        if interaction.body["ksql"] == "SHOW STREAMS;":
            shown = result
            assert result == json.loads(interaction.response)
    assert isinstance(shown, list)
    page = shown._repr_html_()
    assert "<th>name</th>" in page and "KSQL_PYTHON_TEST_TEST_GET_ALL_STREAMS" in page
    assert "KSQLAPI" in api._repr_html_() and double.url in api._repr_html_()
