"""The notebooks run top to bottom, headless, against the real broker; any error output fails.

They run in order in one artefacts folder (notebook 2 saves the model notebook 3 deploys). In a
test run the sizes are small (few epochs, shorter live streams; the notebooks read them from
``KAFKAML_*`` variables) and the artefacts go to a temporary folder. Committed notebooks must
carry no error outputs.

``KAFKAML_SAVE_NOTEBOOK_OUTPUTS=1`` writes the executed notebooks back in place, outputs
included, to commit them: then the notebooks run with their own default sizes (or the
``KAFKAML_*`` values in the environment), their artefacts go to ``notebooks/artefacts/`` as they
would for a reader, and no timing metadata is recorded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import kafkaml
import ksql_double
import nbclient
import nbformat
import pytest
from ksql_double import Reply, Request

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SAVE_OUTPUTS = os.environ.get("KAFKAML_SAVE_NOTEBOOK_OUTPUTS") == "1"

QUICK_SIZES = {
    "KAFKAML_EPOCHS": "3",
    "KAFKAML_LIVE_ROWS": "8000",
    "KAFKAML_CAR_LIVE_EVENTS": "1500",
    "KAFKAML_CAR_TABLE_CARS": "120",
}
"""A test run's sizes, unless the environment sets them (a saving run keeps the notebooks' own)."""

ARTEFACTS = {
    "01_ingest_and_preprocess": [],
    "02_train": ["creditcard_autoencoder.pb", "creditcard_scaling.npz", "02_loss_and_errors.png"],
    "03_deploy": ["03_live_scores.png"],
    "04_iot_car_sensors": [
        "car_autoencoder.pb",
        "04_warm_up_curves.png",
        "04_car_anomalies.png",
        "car_autoencoder_udf.pb",
        "04_mqtt_ksql_anomalies.png",
    ],
    "05_ksql_tables_windows_joins": ["05_possible_detect.png"],
}
"""What each notebook leaves in the artefacts folder."""

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Exception in thread")


def error_outputs(cells: list[dict]) -> list[str]:
    """Every error a notebook shows: error outputs, and tracebacks printed to stderr (an
    exception in a background thread, which does not fail its cell)."""
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                if TRACEBACK.search(text):
                    found.append(f"cell {index} (stderr): {text[-2000:]}")
    return found


def printed(cells: list[dict]) -> str:
    """All stdout a notebook printed."""
    return "".join(
        "".join(output.get("text", ""))
        for cell in cells
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def execute(notebook: Path) -> nbformat.NotebookNode:
    """Runs ``notebook`` in a fresh kernel from its own folder (as Jupyter does); raises
    ``CellExecutionError`` naming the cell on any error."""
    document = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        document,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
        record_timing=not SAVE_OUTPUTS,
    )
    client.execute()
    return document


def test_the_five_notebooks_are_there() -> None:
    assert [n.name for n in NOTEBOOKS] == [
        "01_ingest_and_preprocess.ipynb",
        "02_train.ipynb",
        "03_deploy.ipynb",
        "04_iot_car_sensors.ipynb",
        "05_ksql_tables_windows_joins.ipynb",
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_error_outputs(notebook: Path) -> None:
    assert error_outputs(json.loads(notebook.read_text())["cells"]) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_sizes_come_from_the_environment(notebook: Path) -> None:
    code = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    assert "30_000" not in code.replace('"KAFKAML_ROWS", 30_000', "")  # only as KAFKAML_ROWS's default
    assert "mkdtemp" not in code and "home()" not in code  # artefacts go where a reader sees them


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SAVE_OUTPUTS:
        return NOTEBOOK_DIR / "artefacts"  # the notebooks' own default, git-ignored
    return tmp_path_factory.mktemp("notebook-artefacts")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_the_real_broker(
    notebook: Path, bootstrap: str, artefacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", bootstrap)  # the kernel inherits this process's environment
    monkeypatch.delenv("KSQL_URL", raising=False)  # the ksqlDB path has its own test
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)  # the notebooks start their own registry
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if not SAVE_OUTPUTS:
        monkeypatch.setenv("KAFKAML_ARTEFACTS", str(artefacts))
        for name, value in QUICK_SIZES.items():
            monkeypatch.setenv(name, os.environ.get(name, value))
    document = execute(notebook)
    assert error_outputs(document.cells) == []
    for name in ARTEFACTS[notebook.stem]:
        assert (artefacts / name).is_file(), f"{notebook.name} did not write {name} into {artefacts}"
    output = printed(document.cells)
    if notebook.stem == "01_ingest_and_preprocess":
        # Without KSQL_URL the talk's statements run on kafkaml's own KSQL engine, in-process.
        assert "(LocalKsql, in-process)" in output
        assert "(LocalSchemaRegistry, in-process)" in output
        assert (
            "the engine's queries have read their sources to the end: {'CSAS_CREDITCARDFRAUD_PREPROCESSED_AVRO_"
            in output
        )
        # The Avro stream, read through a second registry on the cluster: it serves the schema
        # the notebook's registry stored in `_schemas`.
        with kafkaml.LocalSchemaRegistry(bootstrap) as registry:
            written = kafkaml.read_topic(
                bootstrap, "creditcardfraud_preprocessed_avro", format="avro", schema_registry=registry
            )
        source = kafkaml.read_topic(bootstrap, "creditcardfraud-source", format="raw")
        assert written.num_rows == source.num_rows > 0  # every source row has a Class
        assert written.column_names == ["TIME", *[f"V{i}" for i in range(1, 29)], "AMOUNT", "CLASS"]
        assert f"{written.num_rows:,} Avro rows read back from creditcardfraud_preprocessed_avro" in output
    if notebook.stem == "03_deploy":
        live = int(os.environ.get("KAFKAML_LIVE_ROWS", 20_000))
        assert f"{live:,} results" in output
    if notebook.stem == "04_iot_car_sensors":
        live = int(os.environ.get("KAFKAML_CAR_LIVE_EVENTS", 3_000))
        assert f"{live:,} events scored;" in output  # StreamScorer
        # the talk's path: every event over MQTT into Kafka, through both KSQL queries
        assert f"{live:,} events published over MQTT at QoS 2" in output
        assert f"the proxy wrote {live:,} records to 'temperature'" in output
        assert f"ANOMALYDETECTION: {live:,} events scored" in output
        found = re.search(
            r"ANOMALYDETECTIONWITHFILTER: \d+ breaches, \d+ of \d+ faulty runs: precision (\S+), recall (\S+)", output
        )
        assert found, output[-3000:]
        assert float(found.group(1)) >= 0.8 and float(found.group(2)) >= 0.8, found.group(0)
    if notebook.stem == "05_ksql_tables_windows_joins":
        # The slides' join keeps every luxury-car event; the windowed count matches pandas.
        found = re.search(r"car_sensor_XYZ: ([\d,]+) luxury-car events of ([\d,]+)", output)
        assert found and found.group(1) == found.group(2), output[-3000:]
        assert (
            "refused, as ksqlDB refuses it: Non-aggregate SELECT expression(s) not part of GROUP BY: SENSOR_VALUE"
            in output
        )
        assert re.search(r"possible_detect: [1-9]\d* cars flagged in \d+ windows; same as pandas: True", output), output
    if SAVE_OUTPUTS:
        nbformat.write(document, notebook)


# --- notebook 1's ksqlDB path, against a ksqlDB stand-in ----------------------------------


def ksqldb(double: ksql_double.KsqlDouble) -> None:
    """Answers as a ksqlDB server would (its REST API docs): version info, the streams it
    has, command statuses for the CREATE statements, a description, and a push query's rows."""
    streams: list[dict[str, str]] = []

    def ksql(request: Request) -> Reply:
        statement = request.body["ksql"]
        if statement.upper().startswith("SHOW STREAMS"):
            entity = {"@type": "streams", "statementText": statement, "streams": list(streams), "warnings": []}
        elif statement.upper().startswith("CREATE STREAM"):
            name = statement.split()[2].upper()
            streams.append({"type": "STREAM", "name": name, "topic": name.lower(), "format": "JSON"})
            entity = {
                "@type": "currentStatus",
                "statementText": statement,
                "commandId": f"stream/`{name}`/create",
                "commandStatus": {"status": "SUCCESS", "message": "Stream created"},
                "commandSequenceNumber": len(streams),
                "warnings": [],
            }
        elif statement.upper().startswith("DESCRIBE"):
            entity = {
                "@type": "sourceDescription",
                "statementText": statement,
                "sourceDescription": {"name": "CREDITCARDFRAUD_PREPROCESSED_AVRO", "type": "STREAM", "fields": []},
                "warnings": [],
            }
        else:
            return Reply(
                status=400, body=json.dumps({"@type": "statement_error", "message": f"unexpected {statement}"})
            )
        return Reply(body=json.dumps([entity]))

    columns = ["TIME", *[f"V{i}" for i in range(1, 29)], "AMOUNT", "CLASS"]
    schema = ", ".join(f"`{c}` {'STRING' if c == 'CLASS' else 'DOUBLE'}" for c in columns)
    rows = [[float(i), *[0.5] * 28, 10.0 * i, "1" if i == 2 else "0"] for i in range(4)]
    header = {"header": {"queryId": "transient_CREDITCARDFRAUD_PREPROCESSED_AVRO_1", "schema": schema}}
    body = "[" + ",\n".join(json.dumps(p) for p in [header, *({"row": {"columns": r}} for r in rows)]) + "]\n"
    double.script("/info", lambda request: Reply(body='{"KsqlServerInfo":{"version":"0.29.0"}}'))
    double.script("/ksql", ksql)
    double.script("/query", lambda request: Reply(chunks=ksql_double.split_every(body, 256)))
    double.script("/close-query", lambda request: Reply(body=""))


def test_notebook_1_ksqldb_path(bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    double = ksql_double.start()
    ksqldb(double)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("KSQL_URL", double.url)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    try:
        document = execute(NOTEBOOK_DIR / "01_ingest_and_preprocess.ipynb")
    finally:
        double.close()
    assert error_outputs(document.cells) == []
    sent = [(r.path, r.body) for r in double.requests if r.method == "POST"]
    statements = [body["ksql"] for path, body in sent if path == "/ksql"]
    created = [s for s in statements if s.startswith("CREATE STREAM")]
    assert [s.split()[2] for s in created] == ["creditcardfraud_source", "creditcardfraud_preprocessed_avro"]
    assert "value_format='AVRO'" in created[1]
    # the session's SET reached the server with the statement that reads the source
    csas = next(body for path, body in sent if path == "/ksql" and body["ksql"] == created[1])
    assert csas["streamsProperties"] == {"auto.offset.reset": "earliest"}
    query = next(body for path, body in sent if path == "/query")
    assert query["ksql"] == "SELECT * FROM creditcardfraud_preprocessed_avro EMIT CHANGES;"
    assert "4 rows; fraud share 0.2500" in printed(document.cells)
