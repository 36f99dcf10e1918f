"""The README's Python examples run as written, top to bottom, in one namespace (as a reader
pasting them into a notebook would), and do what the README says they do.

The quick start uses LocalKafka, the embedded cluster, exactly as printed. The scoring example
loads the talk's frozen model by its file name, so the examples run in a folder that holds a
copy of it (``../shared/fixtures/talk/autoencoder_fraud.pb``). The ksqlDB example talks to a
server at ``http://localhost:8088``: it runs against ``ksql_double`` (a real HTTP server in
this process, answering as ksqlDB's REST API does), the URL replaced by the double's.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kafkaml
import ksql_double
import numpy as np
import pandas as pd
import pytest
from ksql_double import Reply, Request

README = Path(__file__).resolve().parents[1] / "README.md"
KSQL_URL = "http://localhost:8088"
"""The server the README's ksqlDB example names; blocks using it run against the double."""

FENCE = re.compile(r"^```python\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[int, str]]:
    """Every fenced ``python`` block of the README: (the line its code starts on, the code)."""
    text = README.read_text()
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in FENCE.finditer(text)]


def run_block(line: int, code: str, namespace: dict[str, object]) -> None:
    # Padded so that a traceback names the README's own line numbers.
    exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fails the examples if they run longer than ``seconds``: a Consumer without ``stop=``
    follows its topic forever (kafkaml's reads wake for signals, so the alarm interrupts it)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the README's examples did not finish within {seconds} s (a Consumer without stop=?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def ksqldb_answers(double: ksql_double.KsqlDouble) -> None:
    """What a ksqlDB server answers to the README's statements (ksqlDB's REST API docs):
    a command status for ``CREATE STREAM ... AS SELECT``, a push query's rows as one JSON
    array with a header, and a closed query."""

    def ksql(request: Request) -> Reply:
        statement = request.body["ksql"]
        status = {
            "@type": "currentStatus",
            "statementText": statement,
            "commandId": "stream/`FRAUD`/create",
            "commandStatus": {"status": "SUCCESS", "message": "Created query with ID CSAS_FRAUD_3"},
            "commandSequenceNumber": 4,
            "warnings": [],
        }
        return Reply(body=json.dumps([status]))

    rows = [[406.0, -2.31, 0.0, 1], [472.0, -3.04, 529.0, 1], [4462.0, -2.3, 239.93, 1]]
    header = {
        "header": {
            "queryId": "transient_FRAUD_1",
            "schema": "`TIME` DOUBLE, `V1` DOUBLE, `AMOUNT` DOUBLE, `CLASS` INTEGER",
        }
    }
    body = "[" + ",\n".join(json.dumps(part) for part in [header, *({"row": {"columns": r}} for r in rows)]) + "]\n"
    double.script("/ksql", ksql)
    double.script("/query", lambda request: Reply(chunks=ksql_double.split_every(body, 40)))
    double.script("/close-query", lambda request: Reply(body=""))


def test_the_readme_has_the_examples_this_test_expects() -> None:
    blocks = [code for _, code in python_blocks()]
    assert len(blocks) >= 3
    assert "kafkaml.LocalKafka()" in blocks[0]  # the quick start comes first and runs on LocalKafka
    assert sum(KSQL_URL in code for code in blocks) == 1


def test_the_readme_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, talk_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the quick start writes its CSV file into the current folder
    shutil.copy(talk_fixtures / "autoencoder_fraud.pb", tmp_path / "autoencoder_fraud.pb")
    double = ksql_double.start()
    ksqldb_answers(double)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = 0
    try:
        with deadline(180):
            for line, code in python_blocks():
                run_block(line, code.replace(KSQL_URL, double.url), namespace)
                ran += 1
    finally:
        double.close()
    assert ran == len(python_blocks())

    # The quick start: 5,000 generated rows through a topic into a table and a 30-column matrix.
    table, x = namespace["table"], namespace["x"]
    assert table.num_rows == 5_000  # type: ignore[attr-defined]
    assert isinstance(x, np.ndarray) and x.shape == (5_000, 30) and x.dtype == np.float32
    assert (tmp_path / "creditcard_small.csv").is_file()
    back = namespace["back"]  # the Schema Registry example's Avro round trip
    assert back.equals(table)  # type: ignore[attr-defined]
    # ... and its Consumer loop ends (stop="end"), having read every row once.
    printed = capsys.readouterr().out
    batch_rows = [int(n.replace(",", "")) for n in re.findall(r"^([\d,]+) rows, largest amount", printed, re.M)]
    assert batch_rows and sum(batch_rows) == 5_000, printed

    # The scoring example: one score and one flag per row of the quick start's table.
    scores, flags = namespace["scores"], namespace["flags"]
    assert isinstance(scores, np.ndarray) and scores.shape == (5_000,)
    assert isinstance(flags, np.ndarray) and flags.dtype == np.bool_ and flags.shape == (5_000,)
    assert np.isfinite(scores).all()

    # The embedded KSQL engine scored the transactions with the talk's model, as Model does.
    scored = namespace["scored"]
    assert len(scored) == 10  # type: ignore[arg-type]
    model = kafkaml.Model.load(tmp_path / "autoencoder_fraud.pb")
    readings = namespace["readings"]
    first = int(scored.EVENTID.iloc[0])  # type: ignore[attr-defined]
    row = np.array([[float(v) for v in readings[first].split("#")]], dtype=np.float32)  # type: ignore[index]
    assert float(scored.ANOMALY_VAL.iloc[0]) == pytest.approx(float(model.reconstruction_error(row)[0]), rel=1e-5)  # type: ignore[attr-defined]
    # The ksqlDB example sent the README's statements and got the served rows into pandas.
    frame = namespace["frame"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["TIME", "V1", "AMOUNT", "CLASS"] and len(frame) == 3
    sent = {r.path: r.body for r in double.requests if r.method == "POST"}
    assert sent["/ksql"]["ksql"].startswith("CREATE STREAM fraud AS SELECT")
    assert sent["/query"]["ksql"] == "SELECT * FROM fraud EMIT CHANGES;"
    assert sent["/query"]["streamsProperties"] == {"auto.offset.reset": "earliest"}
