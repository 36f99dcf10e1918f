"""``kafkaml.ksql`` against real recorded KSQL/ksqlDB answers.

No ksqlDB server can run here, so a local replay server (``ksql_double``, a real HTTP
server on 127.0.0.1) stands in for one: it answers with the exchanges recorded from real
KSQL 5.0 / ksqlDB 0.10.1 servers in ksql-python's test cassettes
(``../shared/fixtures/ksql-python-cassettes``), matched by method, path and JSON body. So a
request that differs from what ksql-python sent (e.g. a statement built differently) finds
no answer and fails the test; the answers themselves are the recorded real ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import ksql_double
import pytest
from kafkaml import KafkaMLError
from kafkaml.ksql import KSQLAPI, Client, KSQLError, KsqlError, KsqlStatementError, utils

if not ksql_double.CASSETTES.is_dir():  # CI checks ../shared out beside the repository
    pytest.fail(f"the recorded cassettes are not at {ksql_double.CASSETTES}", pytrace=False)

ALL_CASSETTES = sorted(p.name for p in ksql_double.CASSETTES.glob("*.yml"))


@pytest.fixture
def double() -> Iterator[ksql_double.KsqlDouble]:
    server = ksql_double.start()
    yield server
    server.close()


def make(kind: str, url: str, **kwargs: Any) -> Any:
    if kind == "KSQLAPI":
        return KSQLAPI(url, check_version=False, **kwargs)
    auth = (kwargs["api_key"], kwargs["secret"]) if "api_key" in kwargs else None
    return Client(url, auth=auth)


BOTH = pytest.mark.parametrize("kind", ["Client", "KSQLAPI"])


@BOTH
@pytest.mark.parametrize("cassette", ALL_CASSETTES)
def test_every_recorded_exchange(double: ksql_double.KsqlDouble, kind: str, cassette: str) -> None:
    """Each recorded request, sent again, gives the recorded entities, or raises KsqlError
    with the recorded status and error code."""
    interactions = double.replay(cassette)
    api = make(kind, double.url)
    client = api.client if kind == "KSQLAPI" else api
    for interaction in interactions:
        recorded = json.loads(interaction.response)
        if interaction.method == "GET":
            got: Any = json.loads(client._connection.get(interaction.path))
            assert interaction.status == 200
            assert got == recorded
            continue
        statement = interaction.body["ksql"]
        if interaction.status == 200:
            assert api.ksql(statement) == recorded
        else:
            with pytest.raises(KsqlError) as raised:
                api.ksql(statement)
            error = raised.value
            assert isinstance(error, KafkaMLError)
            assert error.http_status == interaction.status
            assert error.error_code == recorded["error_code"]
            assert error.message == recorded["message"]
            assert error.statement_text == recorded.get("statementText")
            assert json.loads(error.raw) == recorded
            assert recorded["message"] in str(error)
    assert double.unused() == []


@BOTH
def test_bad_statement_is_error_40001(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("bad_requests.yml")
    api = make(kind, double.url)
    with pytest.raises(KSQLError) as raised:
        api.ksql("noi")  # ksql-python appends the semicolon; so do both
    assert raised.value.error_code == 40001
    assert isinstance(raised.value, KsqlStatementError)
    assert "mismatched input 'noi'" in raised.value.msg
    assert "/ksql answered HTTP 400 (error code 40001)" in str(raised.value)
    assert "noi;" in str(raised.value)


def test_get_ksql_version_on_construction(double: ksql_double.KsqlDouble) -> None:
    double.replay("get_ksql_server.yml")
    api = KSQLAPI(double.url)  # check_version=True asks /info
    assert double.paths() == ["/info"]
    assert api.get_ksql_version.__name__ == "get_ksql_version"
    assert api.get_url() == double.url
    assert api.timeout == 15


@BOTH
def test_info_version(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("get_ksql_server.yml")
    api = make(kind, double.url)
    version = api.get_ksql_version() if kind == "KSQLAPI" else api.info()["KsqlServerInfo"]["version"]
    assert version == "0.10.1"


def test_get_properties(double: ksql_double.KsqlDouble) -> None:
    recorded = double.replay("get_properties.yml")
    properties = KSQLAPI(double.url, check_version=False).get_properties()
    assert properties == json.loads(recorded[0].response)[0]["properties"]
    assert {"name": "ksql.service.id", "scope": "KSQL", "value": "default_"} in properties


def test_status_endpoint(double: ksql_double.KsqlDouble) -> None:
    double.replay("healthcheck.yml")
    statuses = Client(double.url).status()["commandStatuses"]
    assert statuses["stream/`TEST_TABLE`/create"] == "SUCCESS"


@BOTH
def test_show_tables(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("ksql_show_table.yml")
    entities = make(kind, double.url).ksql("show tables;")
    assert entities == [{"@type": "tables", "statementText": "show tables;", "tables": [], "warnings": []}]


@BOTH
def test_show_tables_with_api_key(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("ksql_show_table_with_api_key.yml")
    api = make(kind, double.url, api_key="foo", secret="bar")
    assert api.ksql("show tables;")[0]["@type"] == "tables"
    assert double.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"foo:bar").decode()


def test_create_stream_sends_ksql_pythons_statement(double: ksql_double.KsqlDouble) -> None:
    double.replay("ksql_create_stream_by_builder_api.yml")
    api = KSQLAPI(double.url, check_version=False)
    utils.drop_stream(api, "test_table")
    assert (
        api.create_stream(
            table_name="test_table",
            columns_type=["viewtime bigint", "userid varchar", "pageid varchar"],
            topic="exist_topic",
            value_format="DELIMITED",
        )
        is True
    )
    assert double.unused() == []
    assert double.requests[-1].body == {
        "ksql": "CREATE stream test_table (viewtime bigint, userid varchar, pageid varchar) "
        "WITH (kafka_topic='exist_topic', value_format='DELIMITED');"
    }


def test_create_stream_twice_is_error_40001(double: ksql_double.KsqlDouble) -> None:
    double.replay("ksql_topic_already_registered.yml")
    api = KSQLAPI(double.url, check_version=False)
    utils.drop_stream(api, "foo_table")
    assert api.create_stream("foo_table", ["name string", "age bigint"], "exist_topic", "DELIMITED") is True
    with pytest.raises(KSQLError) as raised:
        api.create_stream("foo_table", ["name string", "age bigint"], "exist_topic", "DELIMITED")
    assert raised.value.error_code == 40001
    assert "already exists" in raised.value.msg


def test_create_stream_without_topic_is_error_40000(double: ksql_double.KsqlDouble) -> None:
    double.replay("raise_create_error_no_topic.yml")
    api = KSQLAPI(double.url, check_version=False)
    with pytest.raises(KSQLError) as raised:
        api.create_stream("foo_table", ["name string", "age bigint"], "this_topic_is_not_exist", "DELIMITED")
    assert raised.value.error_code == 40000
    assert raised.value.http_status == 400


PAGEVIEWS = ["name string", "age bigint", "userid string", "pageid bigint"]


@pytest.mark.parametrize(
    ("cassette", "table", "conditions", "drop_first"),
    [
        ("ksql_create_stream_as_without_conditions.yml", "create_stream_as_without_conditions", [], False),
        (
            "ksql_create_stream_as_with_conditions_without_startwith.yml",
            "create_stream_as_with_conditions_without_startwith",
            "userid = 'foo'",
            False,
        ),
        (
            "ksql_create_stream_as_with_conditions_with_startwith.yml",
            "create_stream_as_with_conditions_with_startwith",
            "userid = 'foo_%'",
            True,
        ),
        (
            "ksql_create_stream_as_with_conditions_with_startwith_with_and.yml",
            "create_stream_as_with_conditions_with_startwith_with_and",
            "userid = 'foo_%' and age > 10",
            False,
        ),
    ],
)
def test_create_stream_as_sends_ksql_pythons_statements(
    double: ksql_double.KsqlDouble, cassette: str, table: str, conditions: Any, drop_first: bool
) -> None:
    double.replay(cassette)
    api = KSQLAPI(double.url, check_version=False)
    if drop_first:
        utils.drop_stream(api, "pageviews_original")
        utils.drop_stream(api, table)
    assert api.create_stream("pageviews_original", PAGEVIEWS, "exist_topic", "DELIMITED") is True
    assert (
        api.create_stream_as(
            table_name=table,
            select_columns=["rowtime as logtime", "*"],
            src_table="pageviews_original",
            kafka_topic=table,
            value_format="DELIMITED",
            conditions=conditions,
            timestamp="logtime",
        )
        is True
    )
    # Every recorded request was matched, byte for byte of its statement.
    assert double.unused() == []


def test_create_stream_as_with_wrong_timestamp_raises(double: ksql_double.KsqlDouble) -> None:
    double.replay("ksql_create_stream_as_with_wrong_timestamp.yml")
    api = KSQLAPI(double.url, check_version=False)
    utils.drop_stream(api, "prebid_traffic_log_total_stream")
    utils.drop_stream(api, "prebid_traffic_log_valid_stream")
    api.create_stream("prebid_traffic_log_total_stream", PAGEVIEWS, "exist_topic", "DELIMITED")
    with pytest.raises(KSQLError) as raised:
        api.create_stream_as(
            table_name="prebid_traffic_log_valid_stream",
            select_columns=["*"],
            src_table="prebid_traffic_log_total_stream",
            kafka_topic="prebid_traffic_log_valid_topic",
            value_format="DELIMITED",
            timestamp="foo",
        )
    assert raised.value.error_code == 40001
    assert "TIMESTAMP column" in raised.value.msg
    assert double.unused() == []


CREATE_UTILS_STREAM = (
    "CREATE STREAM {name} (viewtime bigint, userid varchar, pageid varchar){spaces}"
    "WITH (kafka_topic='ksql_python_test_exist_topic', value_format='DELIMITED');"
)


def _create_statement(double: ksql_double.KsqlDouble, name: str) -> str:
    # The recorded statements differ in their whitespace; take it from the recording.
    for interaction in double.interactions:
        statement = interaction.body and interaction.body["ksql"]
        if statement and statement.startswith(f"CREATE STREAM {name} ("):
            return str(statement)
    raise AssertionError(f"no CREATE for {name}")


@BOTH
def test_utils_get_stream_info(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_get_stream_info.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_get_stream_info"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    info = utils.get_stream_info(api, name)
    assert info is not None and info["name"] == name.upper()
    assert [f["name"] for f in info["fields"]][-3:] == ["VIEWTIME", "USERID", "PAGEID"]
    assert double.unused() == []


@BOTH
def test_utils_get_all_streams(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_get_all_streams.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_get_all_streams"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    assert utils.get_all_streams(api, prefix="ksql_python_test") == [name.upper()]
    assert double.unused() == []


@BOTH
def test_utils_drop_stream(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_drop_stream.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_drop_stream"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    assert utils.get_stream_info(api, name) is not None
    utils.drop_stream(api, name)
    assert utils.get_stream_info(api, name) is None
    assert double.unused() == []


@BOTH
def test_utils_drop_stream_terminates_its_queries(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_drop_stream_create_as_stream.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_drop_stream"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    api.ksql(f"CREATE STREAM {name}_as as select * from {name};")
    assert utils.get_stream_info(api, f"{name}_as") is not None
    utils.drop_stream(api, f"{name}_as")
    assert utils.get_stream_info(api, f"{name}_as") is None
    assert {"ksql": "TERMINATE CSAS_KSQL_PYTHON_TEST_TEST_DROP_STREAM_AS_4;"} in [r.body for r in double.requests]
    assert double.unused() == []


@BOTH
def test_utils_get_dependent_queries(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_get_dependent_queries.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_get_dependent_queries"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    api.ksql(f"CREATE STREAM {name}_as as select * from {name};")
    read, write = utils.get_dependent_queries(api, f"{name}_as")
    assert read == []
    assert write == ["CSAS_KSQL_PYTHON_TEST_TEST_GET_DEPENDENT_QUERIES_AS_5"]
    assert double.unused() == []


@BOTH
def test_utils_drop_all_streams(double: ksql_double.KsqlDouble, kind: str) -> None:
    double.replay("utils_test_drop_all_streams.yml")
    api = make(kind, double.url)
    name = "ksql_python_test_test_drop_all_streams"
    utils.drop_stream(api, name)
    api.ksql(_create_statement(double, name))
    utils.drop_all_streams(api, prefix="ksql_python_test")
    assert utils.get_stream_info(api, name) is None
    assert double.unused() == []


def test_entities_render_as_html_tables(double: ksql_double.KsqlDouble) -> None:
    double.replay("utils_test_get_all_streams.yml")
    client = Client(double.url)
    for interaction in double.interactions:
        try:
            entities = client.ksql(interaction.body["ksql"])
        except KsqlError:
            continue
    page = entities._repr_html_()
    assert page.count("<tr>") == 1 + len(entities[0]["streams"])
    assert "<th>name</th>" in page and "KSQL_PYTHON_TEST_TEST_GET_ALL_STREAMS" in page
