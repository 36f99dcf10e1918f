"""``python -m kafkaml``: every command's --help describes it with its defaults; ``peek`` and
``produce`` run in a subprocess against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kafkaml
import pyarrow as pa
import pytest

COMMANDS = ["local-kafka", "demo", "peek", "produce"]


def cli(*args: str, bootstrap: str | None = None, stdin: str | None = None, env: dict[str, str] | None = None):
    environment = dict(os.environ if env is None else env)
    if bootstrap is not None:
        environment["KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.run(
        [sys.executable, "-m", "kafkaml", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


# --- help -------------------------------------------------------------------------------


def test_top_level_help_lists_every_command() -> None:
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    assert "peek at a topic" in done.stdout
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_help(command: str) -> None:
    from kafkaml.__main__ import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    sub = subparsers.choices[command]
    assert sub.description
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    done = cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert sub.description.split()[0] in done.stdout


def test_help_shows_defaults_and_where_the_bootstrap_comes_from() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    done = cli("peek", "--help", env=env)
    text = " ".join(done.stdout.split())  # argparse wraps lines
    assert "(default: 10)" in text
    assert "(default: json)" in text
    assert "KAFKA_BOOTSTRAP environment variable when set, else 127.0.0.1:9092 (default: 127.0.0.1:9092)" in text
    assert "(default: None)" not in text
    with_env = " ".join(cli("produce", "--help", env=dict(env, KAFKA_BOOTSTRAP="broker.example:9093")).stdout.split())
    assert "(default: broker.example:9093)" in with_env
    assert "(default: json)" in with_env


# --- produce ----------------------------------------------------------------------------


def test_produce_json_lines_from_stdin_with_keys(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    lines = [json.dumps({"id": i, "sensor": f"s{i % 2}", "value": i * 1.5}) for i in range(5)]
    done = cli("produce", topic, "--key", "sensor", bootstrap=bootstrap, stdin="\n".join(lines) + "\n\n")
    assert done.returncode == 0, done.stderr
    assert f"wrote 5 messages to {topic}" in done.stderr
    raw = kafkaml.read_topic(bootstrap, topic, format="raw")
    assert [v.decode() for v in raw.column("value").to_pylist()] == lines
    assert [k.decode() for k in raw.column("key").to_pylist()] == ["s0", "s1", "s0", "s1", "s0"]


def test_produce_a_csv_file_as_json(bootstrap: str, new_topic, tmp_path: Path) -> None:
    topic = new_topic(partitions=1)
    path = tmp_path / "readings.csv"
    path.write_text("id,temperature\n1,20.5\n2,21.0\n3,\n")
    done = cli("produce", topic, str(path), "--format", "json", "-b", bootstrap)
    assert done.returncode == 0, done.stderr
    table = kafkaml.read_topic(bootstrap, topic, schema="id BIGINT, temperature DOUBLE")
    assert table.to_pylist() == [
        {"id": 1, "temperature": 20.5},
        {"id": 2, "temperature": 21.0},
        {"id": 3, "temperature": None},
    ]


def test_produce_delimited_lines_as_they_are(bootstrap: str, new_topic, tmp_path: Path) -> None:
    topic = new_topic(partitions=1)
    path = tmp_path / "transactions.txt"
    path.write_text('1,0.5,"a, b"\n2,1.5,c\n')
    done = cli("produce", topic, str(path), "--format", "csv", "--schema", "ID BIGINT, AMOUNT DOUBLE, NOTE STRING",
               "--key", "id", bootstrap=bootstrap)  # fmt: skip
    assert done.returncode == 0, done.stderr
    raw = kafkaml.read_topic(bootstrap, topic, format="raw")
    assert [v.decode() for v in raw.column("value").to_pylist()] == ['1,0.5,"a, b"', "2,1.5,c"]
    assert [k.decode() for k in raw.column("key").to_pylist()] == ["1", "2"]


def test_produce_rejects_a_line_that_is_not_json_before_sending(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    done = cli("produce", topic, bootstrap=bootstrap, stdin='{"id": 1}\n{"id": \n')
    assert done.returncode == 1
    assert "error: line 2 is not JSON" in done.stderr
    assert "Traceback" not in done.stderr
    assert kafkaml.read_topic(bootstrap, topic, format="raw").num_rows == 0


# --- peek -------------------------------------------------------------------------------


@pytest.fixture
def readings(bootstrap: str, new_topic) -> str:
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, pa.table({"id": list(range(15)), "name": [f"sensor-{i}" for i in range(15)]}))
    return topic


def rows_of(output: str) -> list[list[str]]:
    """The table's rows (after the header and the rule), split on runs of spaces."""
    lines = output.strip().splitlines()
    assert set(lines[1]) <= {"-", " "}, output
    return [line.split() for line in lines[2:]]


def test_peek_prints_the_first_messages_as_a_table(bootstrap: str, readings: str) -> None:
    done = cli("peek", readings, "-n", "5", bootstrap=bootstrap)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header == ["partition", "offset", "timestamp", "id", "name"]
    rows = rows_of(done.stdout)
    assert [(r[0], r[1], r[-2], r[-1]) for r in rows] == [("0", str(i), str(i), f"sensor-{i}") for i in range(5)]


def test_peek_last_prints_the_newest(bootstrap: str, readings: str) -> None:
    done = cli("peek", readings, "--last", "-n", "3", bootstrap=bootstrap)
    assert done.returncode == 0, done.stderr
    assert [r[-1] for r in rows_of(done.stdout)] == ["sensor-12", "sensor-13", "sensor-14"]


def test_peek_default_is_ten_messages_and_raw_shows_values(bootstrap: str, readings: str) -> None:
    done = cli("peek", readings, "--format", "raw", "--max-width", "12", bootstrap=bootstrap)
    assert done.returncode == 0, done.stderr
    rows = rows_of(done.stdout)
    assert len(rows) == 10
    assert rows[0][-1] == '{"id":0,"na\u2026'


def test_peek_says_what_to_do_with_messages_of_another_format(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, pa.table({"value": ["1,2,3"]}), format="raw")
    done = cli("peek", topic, bootstrap=bootstrap)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "--format raw shows any message" in done.stderr
    assert "Traceback" not in done.stderr
    schema = cli("peek", topic, "--format", "csv", "--schema", "A INT, B INT, C INT", bootstrap=bootstrap)
    assert schema.returncode == 0, schema.stderr
    assert rows_of(schema.stdout)[0][-3:] == ["1", "2", "3"]


def test_peek_an_empty_or_missing_topic(bootstrap: str, new_topic) -> None:
    empty = new_topic(partitions=2)
    done = cli("peek", empty, bootstrap=bootstrap)
    assert (done.returncode, done.stdout, done.stderr.strip()) == (0, "", f"{empty} has no messages")
    missing = cli("peek", "no-such-topic-for-kafkaml", "--timeout", "5", bootstrap=bootstrap)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
