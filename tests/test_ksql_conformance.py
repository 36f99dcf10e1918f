"""ksqlDB's own conformance cases (its query-validation tests, read from ``../shared`` as data)
run against kafkaml's embedded KSQL engine through ``python -m kafkaml.ksql.conformance``.

ksqlDB itself cannot run here; its test corpus is the reference. Each file of the engine's part 1
must keep at least the pass rate below (in-scope cases: a case needing tables, aggregations,
windows or joins that fails is reported as deferred to part 2, and PROTOBUF/JSON_SR are
unsupported), so a regression fails CI while the rates are tracked upwards; part 1's files
together must pass at least 95 % (its issue asks for 80 %), and part 2's files 80 % counting
every case but the unsupported formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kafkaml.ksql import conformance

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ksqldb-qtt"

# Minimum in-scope pass rates (%): each file's measured rate when the engine landed (99 % of
# the in-scope cases together, see README), less a small margin.
MINIMUM_RATES = {
    "query-validation-tests/project-filter.json": 95,
    "query-validation-tests/cast.json": 95,
    "query-validation-tests/delimited.json": 95,
    "query-validation-tests/json.json": 95,
    "query-validation-tests/kafka.json": 95,
    "query-validation-tests/math.json": 90,
    "query-validation-tests/null.json": 95,
    "query-validation-tests/in.json": 95,
    "query-validation-tests/binary-comparison.json": 95,
    "query-validation-tests/literals.json": 95,
    "query-validation-tests/simple-struct.json": 90,
    "query-validation-tests/elements.json": 95,
    "query-validation-tests/partition-by.json": 95,
    "query-validation-tests/identifiers.json": 95,
    "query-validation-tests/quoted-identifiers.json": 95,
    "query-validation-tests/source-stream.json": 95,
    "query-validation-tests/timestamp-extractor.json": 95,
    "query-validation-tests/date.json": 95,
    "query-validation-tests/time.json": 95,
    "query-validation-tests/timestamp.json": 95,
    "query-validation-tests/operators.json": 95,
    "query-validation-tests/regex.json": 95,
    "query-validation-tests/split.json": 95,
    "query-validation-tests/extract-json-field.json": 95,
    "query-validation-tests/substring.json": 95,
    "query-validation-tests/string-lpad-rpad.json": 95,
    "query-validation-tests/insert-into.json": 95,
    "rest-query-validation-tests/insert-values.json": 95,
    "rest-query-validation-tests/push-queries.json": 95,
}


@pytest.fixture(scope="module")
def reports() -> list[dict[str, str]]:
    if not CORPUS.is_dir():
        pytest.fail(f"ksqlDB's corpus is not at {CORPUS} (CI checks ../shared out beside the repository)")
    return conformance.run([str(CORPUS / name) for name in MINIMUM_RATES])


@pytest.mark.parametrize("name", sorted(MINIMUM_RATES))
def test_each_file_keeps_its_pass_rate(reports: list[dict[str, str]], name: str) -> None:
    rows = conformance.summary(reports)
    row = rows[str(CORPUS / name)]
    counted = row["passed"] + row["failed"]
    assert counted > 0, f"{name}: no case in scope"
    rate = 100 * row["passed"] / counted
    failing = [
        r
        for r in reports
        if r["file"].endswith(name)
        and r["status"] == "failed"
        and not r["reason"].startswith(("deferred:", "unsupported:"))
    ]
    assert rate >= MINIMUM_RATES[name], f"{name}: {rate:.0f}% < {MINIMUM_RATES[name]}%; first failures: {failing[:3]}"


def test_the_issue_files_pass_95_percent_together(reports: list[dict[str, str]]) -> None:
    in_scope = [r for r in reports if not r["reason"].startswith(("deferred:", "unsupported:"))]
    passed = sum(r["status"] == "passed" for r in in_scope)
    assert passed / len(in_scope) >= 0.95, f"{passed} of {len(in_scope)} in-scope cases passed"


# The engine's part 2 (tables, aggregations, windows, joins, pull queries): its issue's files.
# Here every case counts but those in PROTOBUF and JSON_SR (unsupported formats).
PART_TWO_FILES = [
    f"query-validation-tests/{name}.json"
    for name in (
        "group-by tumbling-windows session-windows window-bounds joins table-table-join multi-joins "
        "fk-join table source-table average average-udaf max-group-by min-group-by collect-list "
        "collect-set count-distinct earliest-offset-udaf latest-offset-udaf topk-group-by topk-distinct "
        "histogram standarddeviation suppress join-with-custom-timestamp multi-col-keys"
    ).split()
] + [
    f"rest-query-validation-tests/{name}.json"
    for name in (
        "pull-queries-against-materialized-aggregates pull-queries-against-ctas-materialized "
        "pull-queries-with-range-scan"
    ).split()
]


@pytest.fixture(scope="module")
def part_two_reports() -> list[dict[str, str]]:
    return conformance.run([str(CORPUS / name) for name in PART_TWO_FILES])


def test_part_two_files_pass_80_percent_together(part_two_reports: list[dict[str, str]]) -> None:
    counted = [r for r in part_two_reports if not r["reason"].startswith("unsupported:")]
    passed = sum(r["status"] == "passed" for r in counted)
    # 697 of 841 (82.9 %) when the stateful engine landed; the issue asks for 80 %.
    assert passed / len(counted) >= 0.80, f"{passed} of {len(counted)} counted cases passed"
    per_file = {name: [r for r in counted if r["file"].endswith(name)] for name in PART_TWO_FILES}
    assert all(per_file.values()), [name for name, rows in per_file.items() if not rows]


def test_reports_name_every_case_once_per_format(reports: list[dict[str, str]]) -> None:
    names = [(r["file"], r["name"]) for r in reports]
    assert len(names) == len(set(names))
    formatted = [r["name"] for r in reports if r["file"].endswith("simple-struct.json")]
    assert any(name.endswith(" - JSON") for name in formatted) and any(name.endswith(" - AVRO") for name in formatted)
    for report in reports:
        assert report["status"] in ("passed", "failed")
        assert (report["status"] == "passed") == (report["reason"] == ""), report


def test_the_command_line_prints_failures_a_summary_and_writes_the_report(tmp_path: Path) -> None:
    target = CORPUS / "query-validation-tests" / "in.json"
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "kafkaml.ksql.conformance", str(target), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    written = json.loads(report.read_text())
    passed = sum(r["status"] == "passed" for r in written)
    assert lines[-1] == f"{passed} passed, {len(written) - passed} failed"
    assert any(line.startswith(f"{target}: ") for line in lines)
    assert sum(line.startswith("FAILED ") for line in lines) == sum(
        r["status"] == "failed" and not r["reason"].startswith(("deferred:", "unsupported:")) for r in written
    )
