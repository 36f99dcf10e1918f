"""kafkaml's embedded KSQL engine (``kafkaml.ksql.LocalKsql``) on the real Apache Kafka broker,
through ``kafkaml.ksql.Client`` and ksql-python's ``KSQLAPI`` (kafkaml's drop-in): the talk's
car-sensor UDF demo verbatim, persistent queries surviving a restart, push queries on both
endpoints, inserts, and statement errors.

No ksqlDB server runs here; this engine is the server under test and the clients are the same
ones the recorded-response tests check against real ksqlDB answers."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import kafkaml
import numpy as np
import pytest
from confluent_kafka.admin import AdminClient
from kafka_helpers import consume, produce
from kafkaml.ksql import KSQLAPI, KsqlStatementError, LocalKsql, model_udf

# The talk's sample reading (live-demo-ksql-udf-deep-learning-mqtt-iot.adoc), 210 values.
DEMO_READING = (
    "2.10# 2.13# 2.19# 2.28# 2.44# 2.62# 2.80# 3.04# 3.36# 3.69# 3.97# 4.24# 4.53#4.80# 5.02# 5.21# 5.40# 5.57# "
    "5.71# 5.79# 5.86# 5.92# 5.98# 6.02# 6.06# 6.08# 6.14# 6.18# 6.22# 6.27#6.32# 6.35# 6.38# 6.45# 6.49# 6.53# "
    "6.57# 6.64# 6.70# 6.73# 6.78# 6.83# 6.88# 6.92# 6.94# 6.98# 7.01#7.03# 7.05# 7.06# 7.07# 7.08# 7.06# 7.04# "
    "7.03# 6.99# 6.94# 6.88# 6.83# 6.77# 6.69# 6.60# 6.53# 6.45#6.36# 6.27# 6.19# 6.11# 6.03# 5.94# 5.88# 5.81# "
    "5.75# 5.68# 5.62# 5.61# 5.54# 5.49# 5.45# 5.42# 5.38#5.34# 5.31# 5.30# 5.29# 5.26# 5.23# 5.23# 5.22# 5.20# "
    "5.19# 5.18# 5.19# 5.17# 5.15# 5.14# 5.17# 5.16#5.15# 5.15# 5.15# 5.14# 5.14# 5.14# 5.15# 5.14# 5.14# 5.13# "
    "5.15# 5.15# 5.15# 5.14# 5.16# 5.15# 5.15#5.14# 5.14# 5.15# 5.15# 5.14# 5.13# 5.14# 5.14# 5.11# 5.12# 5.12# "
    "5.12# 5.09# 5.09# 5.09# 5.10# 5.08# 5.08# 5.08# 5.08# 5.06# 5.05# 5.06# 5.07# 5.05# 5.03# 5.03# 5.04# 5.03# "
    "5.01# 5.01# 5.02# 5.01# 5.01#5.00# 5.00# 5.02# 5.01# 4.98# 5.00# 5.00# 5.00# 4.99# 5.00# 5.01# 5.02# 5.01# "
    "5.03# 5.03# 5.02# 5.02#5.04# 5.04# 5.04# 5.02# 5.02# 5.01# 4.99# 4.98# 4.96# 4.96# 4.96# 4.94# 4.93# 4.93# "
    "4.93# 4.93# 4.93# 5.02# 5.27# 5.80# 5.94# 5.58# 5.39# 5.32# 5.25# 5.21# 5.13# 4.97# 4.71# 4.39# 4.05# 3.69# "
    "3.32# 3.05#2.99# 2.74# 2.61# 2.47# 2.35# 2.26# 2.20# 2.15# 2.10# 2.08"
)


def readings(text: str) -> np.ndarray:
    return np.array([float(part) for part in text.split("#")], dtype=np.float32)


@pytest.fixture(scope="module")
def sensor_model(tmp_path_factory: pytest.TempPathFactory) -> kafkaml.Model:
    """A small Keras autoencoder over 210 engine-temperature readings (the talk's sensor
    width), trained on curves like the demo's reading and frozen to a TensorFlow graph."""
    import tensorflow as tf

    base = readings(DEMO_READING)
    rng = np.random.default_rng(7)
    train = (base[None, :] + rng.normal(0, 0.05, size=(512, base.size))).astype(np.float32)
    tf.random.set_seed(7)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(base.size,)),
            tf.keras.layers.Dense(32, activation="tanh"),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(32, activation="tanh"),
            tf.keras.layers.Dense(base.size),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(train, train, epochs=40, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("sensor") / "sensor_autoencoder.pb"
    kafkaml.export.freeze_keras(model, path)
    return kafkaml.Model.load(path)


def test_the_talks_car_sensor_demo_runs_verbatim(
    bootstrap: str, temperature_topic: str, confluent_producer: Any, sensor_model: kafkaml.Model
) -> None:
    """The demo's statements, character for character, with ANOMALY as a kafkaml model."""
    normal = DEMO_READING
    hot = "#".join(f"{value * 1.8:.2f}" for value in readings(DEMO_READING))  # an overheating engine
    events = [(99999, normal), (1, hot), (2, normal), (3, hot)]
    expected = {
        eventid: float(sensor_model.reconstruction_error(readings(text)[None, :])[0]) for eventid, text in events
    }
    assert expected[1] > 3 > expected[99999], expected  # the demo's threshold separates them

    with LocalKsql(bootstrap, udfs={"ANOMALY": model_udf(sensor_model, input="#-separated")}) as ksql:
        with ksql.client() as client:
            functions = client.ksql("LIST FUNCTIONS;")[0]["functions"]
            assert {"name": "ANOMALY", "type": "SCALAR", "category": "MODEL"} in functions
            client.ksql(
                "CREATE STREAM carsensor (eventid integer, sensorinput varchar) "
                "WITH (kafka_topic='temperature', value_format='DELIMITED');"
            )
            query = client.query("SELECT EVENTID, ANOMALY(SENSORINPUT) FROM CARSENSOR EMIT CHANGES;", limit=len(events))
            produce(confluent_producer, temperature_topic, [f"{i},{text}" for i, text in events], partitions=1)
            rows = list(query)
            assert [row["EVENTID"] for row in rows] == [eventid for eventid, _ in events]
            for row in rows:
                assert row["KSQL_COL_0"] == pytest.approx(expected[row["EVENTID"]], rel=1e-5)

            client.set("auto.offset.reset", "earliest")
            client.ksql(
                "CREATE STREAM ANOMALYDETECTION AS SELECT EVENTID, CAST (ANOMALY(SENSORINPUT) AS DOUBLE) AS ANOMALY_VAL "
                "FROM CARSENSOR;"
            )
            client.ksql(
                "CREATE STREAM ANOMALYDETECTIONWITHFILTER AS SELECT EVENTID, ANOMALY_VAL FROM ANOMALYDETECTION "
                "WHERE ANOMALY_VAL > 3;"
            )
            breaches = consume(bootstrap, "ANOMALYDETECTIONWITHFILTER", count=2, timeout=60)
            # The derived streams keep the source's DELIMITED format, as in ksqlDB.
            values = [message.value.decode().split(",") for message in breaches]
            assert [int(eventid) for eventid, _ in values] == [1, 3]
            assert float(values[0][1]) == pytest.approx(expected[1], rel=1e-5)
            stats = ksql.stats()["queries"]
            assert all(query["error"] is None for query in stats.values()), stats


def test_the_model_udf_reads_every_form_of_readings_as_the_model_does(
    bootstrap: str, new_topic: Any, confluent_producer: Any, sensor_model: kafkaml.Model
) -> None:
    """Compact readings (`2.10#2.13#...`, parsed 32 bytes at a time), the talk's spaced ones
    (`2.10# 2.13# ...`) and ones with exponents (the scalar path) score as Model does on the
    float32 of each number; a row with a reading too few is NULL."""
    values = readings(DEMO_READING)
    compact = "#".join(f"{v:.2f}" for v in values)
    spaced = "# ".join(f"{v:.2f}" for v in values)
    exponents = "#".join(f"{v * 100:.0f}e-2" for v in values)
    short = "#".join(f"{v:.2f}" for v in values[:-1])
    expected = float(sensor_model.reconstruction_error(values[None, :])[0])
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap, udfs={"ANOMALY": model_udf(sensor_model, input="#-separated")}) as ksql:
        with ksql.client() as client:
            client.ksql(
                f"CREATE STREAM forms (id INT, sensorinput VARCHAR) WITH (kafka_topic='{source}', value_format='DELIMITED');"
            )
            client.set("auto.offset.reset", "earliest")
            query = client.query("SELECT ID, ANOMALY(SENSORINPUT) AS SCORE FROM forms EMIT CHANGES;", limit=4)
            produce(
                confluent_producer,
                source,
                [f"1,{compact}", f"2,{spaced}", f"3,{exponents}", f"4,{short}"],
                partitions=1,
            )
            rows = {row["ID"]: row["SCORE"] for row in query}
    assert rows[1] == pytest.approx(expected, rel=1e-6)
    assert rows[2] == rows[1] and rows[3] == rows[1]
    assert rows[4] is None


def test_a_query_at_latest_is_caught_up_once_it_stands_at_the_end(
    bootstrap: str, new_topic: Any, confluent_producer: Any
) -> None:
    """ksqlDB's default offset reset is `latest`: on a topic with older records the query
    reads none of them, and wait_for_queries returns once it stands at the end (it did not:
    nothing read and nothing committed looked like "not there yet"); what comes after is read,
    and a second wait_for_queries waits for it."""
    source = new_topic(partitions=2)
    produce(confluent_producer, source, [json.dumps({"ID": i}) for i in range(20)], partitions=2)
    sink = f"LATEST_{uuid.uuid4().hex[:8].upper()}"
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(f"CREATE STREAM older (id INT) WITH (kafka_topic='{source}', value_format='JSON');")
        client.ksql(f"CREATE STREAM {sink} AS SELECT id FROM older;")
        queries = ksql.wait_for_queries(timeout=60)
        assert [q["records_in"] for q in queries.values()] == [0]
        time.sleep(1.5)  # the query checked that it is caught up since: that answer is old now
        produce(confluent_producer, source, [json.dumps({"ID": i}) for i in range(20, 25)], partitions=2)
        # waits for what was written before the call, not an answer from before it
        assert [q["records_in"] for q in ksql.wait_for_queries(timeout=60).values()] == [5]
        got = consume(bootstrap, sink, count=5, timeout=60)
        assert sorted(json.loads(m.value)["ID"] for m in got) == list(range(20, 25))


def test_persistent_queries_come_back_after_a_restart(
    bootstrap: str, new_topic: Any, confluent_producer: Any, admin: AdminClient
) -> None:
    """Statements live on the command topic: a server with the same service id finds the
    stream and resumes the query from its committed offsets (no row twice, none lost)."""
    source = new_topic(partitions=2)
    sink = f"FILTERED_{uuid.uuid4().hex[:8].upper()}"
    service_id = f"restart_{uuid.uuid4().hex[:8]}_"
    rows = [json.dumps({"ID": i, "AMOUNT": float(i)}) for i in range(100)]
    with LocalKsql(bootstrap, service_id=service_id) as first, first.client() as client:
        client.ksql(
            f"CREATE STREAM payments (id INT, amount DOUBLE) WITH (kafka_topic='{source}', value_format='JSON');"
        )
        client.set("auto.offset.reset", "earliest")
        client.ksql(f"CREATE STREAM {sink} AS SELECT id, amount * 2 AS doubled FROM payments WHERE amount >= 50;")
        produce(confluent_producer, source, rows[:60], partitions=2)
        assert len(consume(bootstrap, sink, count=10, timeout=60)) == 10
    with LocalKsql(bootstrap, service_id=service_id) as second, second.client() as client:
        assert second.stats()["replayed"] == 2
        names = [s["name"] for s in client.ksql("SHOW STREAMS;")[0]["streams"]]
        assert {"PAYMENTS", sink} <= set(names)
        produce(confluent_producer, source, rows[60:], partitions=2)
        got = consume(bootstrap, sink, count=50, timeout=60)
        ids = sorted(json.loads(m.value)["ID"] for m in got)
        assert ids == list(range(50, 100))
        assert kafkaml.read_topic(bootstrap, sink, format="json").num_rows == 50  # nothing written twice
    admin.delete_topics([f"_confluent-ksql-{service_id}_command_topic", sink], operation_timeout=30)


def test_push_queries_on_both_endpoints_and_inserts(bootstrap: str, new_topic: Any) -> None:
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(
            f"CREATE STREAM readings (sensor STRING KEY, temp DOUBLE, tags ARRAY<STRING>) "
            f"WITH (kafka_topic='{source}', value_format='JSON');"
        )
        client.set("auto.offset.reset", "earliest")
        acks = client.insert("readings", [{"SENSOR": "a", "TEMP": 21.5, "TAGS": ["x"]}, {"sensor": "b", "temp": 99.0}])
        assert [ack["status"] for ack in acks] == ["ok", "ok"]
        for endpoint in ("query", "query-stream"):
            query = client.query(
                "SELECT sensor, temp * 2 AS twice, tags FROM readings WHERE temp > 0 EMIT CHANGES;",
                limit=2,
                endpoint=endpoint,
            )
            table = query.to_arrow()
            assert table.column_names == ["SENSOR", "TWICE", "TAGS"], endpoint
            assert table.column("TWICE").to_pylist() == [43.0, 198.0]
            assert table.column("TAGS").to_pylist() == [["x"], None]


def test_ksql_python_code_runs_against_it(bootstrap: str, new_topic: Any) -> None:
    """ksql-python's API, as the talk's notebooks use it."""
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap) as ksql:
        api = KSQLAPI(ksql.url)
        api.ksql(f"CREATE STREAM events (id INT, name STRING) WITH (kafka_topic='{source}', value_format='DELIMITED');")
        description = api.ksql("DESCRIBE events;")[0]["sourceDescription"]
        assert [f["name"] for f in description["fields"]] == ["ID", "NAME"]
        assert description["valueFormat"] == "DELIMITED"
        streams = api.ksql("SHOW STREAMS;")[0]["streams"]
        assert any(s["name"] == "EVENTS" and s["topic"] == source for s in streams)


def test_statement_errors_name_the_statement_and_the_construct(bootstrap: str, new_topic: Any) -> None:
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap) as ksql, ksql.client() as client:
        client.ksql(f"CREATE STREAM s (id INT, v DOUBLE) WITH (kafka_topic='{source}', value_format='JSON');")
        with pytest.raises(KsqlStatementError) as refused:
            client.ksql("CREATE TYPE address AS STRUCT<street STRING>;")
        assert "not supported" in str(refused.value) and "TYPE" in str(refused.value)
        with pytest.raises(KsqlStatementError) as unknown:
            client.ksql("CREATE STREAM t2 AS SELECT nope FROM s;")
        assert "NOPE" in str(unknown.value) and "cannot be resolved" in str(unknown.value)
        with pytest.raises(KsqlStatementError) as syntax:
            client.ksql("CREATE STREAM t3 AS SELEC id FROM s;")
        assert "line 1:" in str(syntax.value)
        assert ksql.stats()["statement_errors"] == 3


def test_a_body_over_the_limit_gets_413_not_a_broken_pipe(bootstrap: str) -> None:
    """The server reads an oversized body to its end before answering, so a client that is
    still sending (urllib sends the whole body first) reads the 413 instead of a reset."""
    import urllib.error
    import urllib.request

    huge = json.dumps({"ksql": "SHOW STREAMS; -- " + "x" * (24 * 1024 * 1024)}).encode()
    with LocalKsql(bootstrap) as ksql:
        request = urllib.request.Request(
            f"{ksql.url}/ksql", data=huge, method="POST", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        body = json.loads(refused.value.read())
        assert (refused.value.code, body["error_code"]) == (413, 41300)
        # the server is still answering afterwards
        with ksql.client() as client:
            assert client.ksql("SHOW STREAMS;") is not None


def test_a_udf_that_does_not_fit_its_model_is_refused_where_it_is_made(sensor_model: kafkaml.Model) -> None:
    with pytest.raises(kafkaml.ConfigError, match="3 input columns"):
        model_udf(sensor_model, input=["a", "b", "c"])
    with pytest.raises(kafkaml.ConfigError, match="separated"):
        model_udf(sensor_model, input="comma")


def test_bad_readings_become_null_and_are_counted(
    bootstrap: str, new_topic: Any, confluent_producer: Any, sensor_model: kafkaml.Model
) -> None:
    source = new_topic(partitions=1)
    with LocalKsql(bootstrap, udfs={"ANOMALY": model_udf(sensor_model)}) as ksql, ksql.client() as client:
        client.ksql(
            f"CREATE STREAM car (eventid INT, sensorinput STRING) WITH (kafka_topic='{source}', value_format='DELIMITED');"
        )
        query = client.query("SELECT EVENTID, ANOMALY(SENSORINPUT) AS SCORE FROM car EMIT CHANGES;", limit=3)
        produce(confluent_producer, source, [f"1,{DEMO_READING}", "2,1.0#2.0", "3,x#y"], partitions=1)
        rows = list(query)
        assert [r["EVENTID"] for r in rows] == [1, 2, 3]
        assert rows[0]["SCORE"] is not None and rows[1]["SCORE"] is None and rows[2]["SCORE"] is None


@pytest.mark.parametrize("cluster", ["apache-kafka", "local-kafka"])
def test_the_talks_credit_card_preprocessing(cluster: str, bootstrap: str, new_topic: Any) -> None:
    """Notebook 1's statements (the talk's DELIMITED source and its CREATE STREAM AS SELECT)
    through ksql-python's API, on the real broker and on LocalKafka: every row comes out with
    the model's inputs and the label, values unchanged."""
    import contextlib

    from kafkaml import datasets

    rows = 2_000
    table = datasets.credit_card_source(rows, seed=1)
    declarations = (
        ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
        + [f"V{i} double" for i in range(1, 29)]
        + ["Amount double", "Class string"]
    )
    features = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
    with contextlib.ExitStack() as stack:
        if cluster == "local-kafka":
            local = stack.enter_context(kafkaml.LocalKafka())
            target, source, sink = local.bootstrap_servers, "creditcardfraud-source", "creditcardfraud-preprocessed"
            local.create_topic(source, 2)
            local.create_topic(sink, 2)
        else:
            target, source, sink = bootstrap, new_topic(partitions=2), new_topic(partitions=2)
        kafkaml.write_topic(target, source, table, format="delimited")
        ksql = stack.enter_context(LocalKsql(target))
        api = KSQLAPI(ksql.url)
        api.ksql("SET 'auto.offset.reset'='earliest'")
        api.ksql(
            "CREATE STREAM creditcardfraud_source (" + ", ".join(declarations) + ") "
            f"WITH (kafka_topic='{source}', value_format='DELIMITED')"
        )
        api.ksql(
            f"CREATE STREAM creditcardfraud_preprocessed WITH (kafka_topic='{sink}', value_format='JSON') AS "
            "SELECT " + ", ".join([*features, "Class"]) + " FROM creditcardfraud_source WHERE Class IS NOT NULL"
        )
        ksql.wait_for_queries(timeout=120)
        out = kafkaml.read_topic(target, sink, format="json")
    assert out.num_rows == rows
    assert out.column_names == [name.upper() for name in [*features, "Class"]]
    expected = sorted(
        zip(table.column("Id").to_pylist(), table.column("Amount").to_pylist(), table.column("V7").to_pylist())
    )
    # Ids are not projected: match rows by (Amount, V7), which the generator makes unique.
    got = sorted(zip(out.column("AMOUNT").to_pylist(), out.column("V7").to_pylist()))
    assert got == sorted((amount, v7) for _, amount, v7 in expected)
    assert sorted(out.column("CLASS").to_pylist()) == sorted(table.column("Class").to_pylist())


def test_the_ksql_server_command_serves_a_model_udf_to_other_processes(bootstrap: str, talk_fixtures: Any) -> None:
    """``python -m kafkaml ksql-server`` in a subprocess: prints its URL, serves ksqlDB's API
    with the model as a function, and stops on Ctrl-C (SIGINT)."""
    import signal
    import subprocess
    import sys

    service_id = f"cli_{uuid.uuid4().hex[:8]}_"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "kafkaml", "ksql-server", "-b", bootstrap, "--listen", "127.0.0.1:0",
            "--service-id", service_id, "--udf", f"ANOMALY={talk_fixtures / 'autoencoder_fraud.pb'}:input=#-separated",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else url
        with kafkaml.ksql.Client(url) as client:
            described = client.ksql("DESCRIBE FUNCTION ANOMALY;")[0]
            assert (
                described["name"] == "ANOMALY"
                and "30 numbers separated by '#'" in described["functions"][0]["description"]
            )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([f"_confluent-ksql-{service_id}_command_topic"])
