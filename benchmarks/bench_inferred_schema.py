"""A JSON topic read without ``schema=`` (inferred) side by side with the same read with the
columns declared, in one run.

    python benchmarks/bench_inferred_schema.py [--messages 1000000] [--repeat 3]

One topic of credit-card rows (Time, V1..V28, Amount, Class) as JSON on a real broker, read
by ``read_topic`` and ``read_matrix`` with and without declared columns. Each read runs in a
fresh process, in rounds (declared and inferred alternate, so a slow spell of the shared
machine touches both alike); the fastest run of each counts. Prints msgs/s and the inferred /
declared ratio; saves benchmarks/results/inferred_schema.json. The target: >= 90 %.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, fastest, kafka_broker, machine, peak_rss_mb, run_worker, save, settle  # noqa: E402

FIELDS = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
DECLARATIONS = ", ".join(f"{name} DOUBLE" for name in FIELDS)
PARTITIONS = 3


def worker(bootstrap: str, topic: str, route: str, schema: str) -> dict:
    import kafkaml

    declared = DECLARATIONS if schema == "declared" else None
    settle()
    with Timer() as t:
        if route == "matrix":
            matrix = kafkaml.read_matrix(bootstrap, topic, schema=declared, columns=FIELDS)
            rows, checksum = matrix.shape[0], float(matrix[:, 1].astype(np.float64).sum())
        else:
            table = kafkaml.read_topic(bootstrap, topic, schema=declared)
            rows, checksum = table.num_rows, float(np.sum(table.column("V1").to_numpy()))
    return {"rows": rows, "seconds": t.seconds, "peak_rss_mb": peak_rss_mb(), "checksum": checksum}


def produce(bootstrap: str, messages: int) -> str:
    import kafkaml
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafkaml.datasets import credit_card_transactions

    topic = f"bench-inferred-{messages}-{np.random.default_rng().integers(1 << 30)}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result()
    table = credit_card_transactions(messages, seed=7).cast(kafkaml.parse_columns(DECLARATIONS))
    kafkaml.write_topic(bootstrap, topic, table, format="json")
    return topic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per read; the fastest counts")
    parser.add_argument("--worker", nargs=4, metavar=("BOOTSTRAP", "TOPIC", "ROUTE", "SCHEMA"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    me = Path(__file__)
    reads = [(route, schema) for route in ("table", "matrix") for schema in ("declared", "inferred")]
    with kafka_broker() as bootstrap:
        topic = produce(bootstrap, args.messages)
        runs: dict[str, list[dict]] = {f"{route}_{schema}": [] for route, schema in reads}
        for _ in range(args.repeat):
            for route, schema in reads:
                runs[f"{route}_{schema}"].append(run_worker(me, bootstrap, topic, route, schema))
    best = {name: fastest(rs) for name, rs in runs.items()}
    for name, result in best.items():
        assert result["rows"] == args.messages, f"{name} read {result['rows']} of {args.messages}"
        result["msgs_s"] = result["rows"] / result["seconds"]
    ratios = {}
    for route in ("table", "matrix"):
        declared, inferred = best[f"{route}_declared"], best[f"{route}_inferred"]
        if abs(declared["checksum"] - inferred["checksum"]) > 1e-6 * args.messages:
            raise SystemExit(f"{route}: the inferred and the declared read differ")
        ratios[f"{route}_inferred_vs_declared"] = inferred["msgs_s"] / declared["msgs_s"]
    print(f"{args.messages:,} credit-card JSON rows, {PARTITIONS} partitions, fastest of {args.repeat}:")
    for name, result in best.items():
        print(
            f"  {name:<18} {result['msgs_s']:>12,.0f} msgs/s  {result['seconds']:.2f} s  peak {result['peak_rss_mb']:.0f} MB"
        )
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.0%} (target >= 90 %)")
    path = save(
        "inferred_schema",
        {"machine": machine(), "messages": args.messages, "reads": best, "all_runs": runs, "ratios": ratios},
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
