"""Runs ksqlDB's own query-validation tests against kafkaml's embedded KSQL engine.

    python -m kafkaml.ksql.conformance PATH... [--report FILE.json] [--all]

PATH is a corpus file or a folder of them (ksqlDB's ``query-validation-tests/*.json``). One line
is printed per failing case (``--all``: also those marked deferred and those of unsupported
formats), then a per-file summary and a last line ``N passed, M failed``. Cases of a format the
engine does not support count as failed with the reason ``unsupported: FORMAT``; a case that
needs tables, aggregations, windows or joins (the engine's part 2) and fails counts as failed
with ``deferred: part 2 (needs ...): <why it failed>``, so that part 1's rates can leave them out.
The report is a JSON list with one entry per (test, format): ``file``, ``name``, ``status``
(``passed`` or ``failed``) and ``reason``.

The cases run in-process, record by record, through the same topologies that run on Kafka, with
topics and the Schema Registry in memory (as ksqlDB's own runner uses its topology test driver).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from kafkaml._native import ksql_conformance


def run(paths: list[str]) -> list[dict[str, str]]:
    """Runs the cases of ``paths``; one dict per case (``file``, ``name``, ``status``, ``reason``)."""
    return ksql_conformance(paths)


def summary(reports: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """Per file: ``passed``, ``failed`` (counted cases only), ``deferred`` (part 2) and
    ``unsupported`` (PROTOBUF, JSON_SR)."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0, "deferred": 0, "unsupported": 0})
    for report in reports:
        row = table[report["file"]]
        if report["status"] == "passed":
            row["passed"] += 1
        elif report["reason"].startswith("deferred:"):
            row["deferred"] += 1
        elif report["reason"].startswith("unsupported:"):
            row["unsupported"] += 1
        else:
            row["failed"] += 1
    return dict(table)


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring); returns 0 (failures are reported, not fatal)."""
    parser = argparse.ArgumentParser(prog="python -m kafkaml.ksql.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="corpus files or folders of them")
    parser.add_argument("--report", metavar="FILE.json", help="write every case's outcome here")
    parser.add_argument("--all", action="store_true", help="also print deferred and unsupported cases")
    args = parser.parse_args(argv)
    reports = run(args.paths)
    for report in reports:
        out_of_scope = report["reason"].startswith(("deferred:", "unsupported:"))
        if report["status"] != "passed" and (args.all or not out_of_scope):
            print(f"FAILED {report['file']} :: {report['name']} :: {report['reason']}")
    totals = {"passed": 0, "failed": 0, "deferred": 0, "unsupported": 0}
    for file, row in sorted(summary(reports).items()):
        counted = row["passed"] + row["failed"]
        rate = f"{100 * row['passed'] / counted:.0f}%" if counted else "-"
        print(
            f"{file}: {row['passed']} passed, {row['failed']} failed ({rate}); {row['deferred']} deferred, {row['unsupported']} unsupported"
        )
        for key in totals:
            totals[key] += row[key]
    if args.report:
        with open(args.report, "w") as f:
            json.dump(reports, f, indent=1)
    counted = totals["passed"] + totals["failed"]
    rate = f"{100 * totals['passed'] / counted:.1f}%" if counted else "-"
    print(
        f"in scope: {totals['passed']} of {counted} passed ({rate}); deferred to part 2: {totals['deferred']}, unsupported formats: {totals['unsupported']}"
    )
    not_passed = totals["failed"] + totals["deferred"] + totals["unsupported"]
    print(f"{totals['passed']} passed, {not_passed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
