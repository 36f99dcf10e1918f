"""LocalKafka's engines side by side with the real Apache Kafka broker, in one run.

    python benchmarks/bench_local_kafka.py [--messages 1000000] [--repeat 1]

The same credit-card rows (Time, V1..V28, Amount, Class as JSON, ~600-700 bytes a message)
written with kafkaml.write_topic into a fresh 3-partition topic and read back with
read_matrix, on
  (a) the Apache Kafka broker of scripts/kafka-server (KAFKA_BOOTSTRAP, or started here);
  (b) LocalKafka(), kafkaml's own broker, in the worker's process;
  (c) LocalKafka(engine="mock"), librdkafka's mock cluster, in the worker's process: it keeps
      only ~5 MiB per partition, so it reads back far fewer rows (printed).
Each side runs in a fresh process; the peak RSS is that process's (it hosts LocalKafka; for
Apache Kafka the broker's JVM resident memory is printed beside it). "memory per message" is
the growth of the hosting process's resident memory over the write, per message, against the
payload's bytes per message. Prints msgs/s and ratios; saves results/local_kafka.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Timer,
    fastest,
    kafka_broker,
    machine,
    peak_rss_mb,
    run_worker,
    save,
    settle,
)

FIELDS = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
DECLARATIONS = ", ".join(f"{name} DOUBLE" for name in FIELDS)
PARTITIONS = 3
SIDES = ["apache", "broker", "mock"]


def rss_mb(pid: int | str = "self") -> float:
    """A process's current resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def kafka_broker_rss_mb() -> float | None:
    """The resident memory of this machine's one Apache Kafka broker JVM, if there is one."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"kafka.Kafka" in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            continue
    return rss_mb(found[0]) if len(found) == 1 else None


def worker(side: str, bootstrap: str, messages: int) -> dict:
    import json

    import kafkaml
    import numpy as np
    from kafkaml.datasets import credit_card_transactions

    table = credit_card_transactions(messages, seed=7).cast(kafkaml.parse_columns(DECLARATIONS))
    # write_topic's JSON is compact (no spaces after separators)
    sample = table.slice(0, 1000).to_pylist()
    payload = sum(len(json.dumps(row, separators=(",", ":"))) for row in sample) / len(sample)
    topic = f"bench-local-{side}-{np.random.default_rng().integers(1 << 30)}"
    local = None
    if side == "broker":
        local = kafkaml.LocalKafka()
    elif side == "mock":
        local = kafkaml.LocalKafka(engine="mock")
    target = local if local is not None else bootstrap
    if local is not None:
        local.create_topic(topic, PARTITIONS)
    else:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    settle()
    rss_before = rss_mb()
    broker_before = kafka_broker_rss_mb() if local is None else None
    with Timer() as write:
        kafkaml.write_topic(target, topic, table, format="json")
    rss_after_write = rss_mb()
    broker_after = kafka_broker_rss_mb() if local is None else None
    with Timer() as read:
        matrix = kafkaml.read_matrix(target, topic, format="json", schema=DECLARATIONS, columns=FIELDS)
    result = {
        "side": side,
        "messages": messages,
        "rows_read": int(matrix.shape[0]),
        "write_seconds": write.seconds,
        "read_seconds": read.seconds,
        "seconds": write.seconds + read.seconds,
        "payload_bytes_per_message": payload,
        "memory_growth_bytes_per_message": (rss_after_write - rss_before) * 2**20 / messages,
        "peak_rss_mb": peak_rss_mb(),
        "apache_broker_rss_mb": broker_after,
        "apache_broker_rss_growth_mb": None if broker_after is None else broker_after - (broker_before or 0),
    }
    if local is not None:
        local.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest counts")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "BOOTSTRAP", "MESSAGES"))
    args = parser.parse_args()
    if args.worker:
        import json

        side, bootstrap, messages = args.worker
        print(json.dumps(worker(side, bootstrap, int(messages))))
        return

    with kafka_broker() as bootstrap:
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(args.repeat):
            for side in SIDES:
                runs[side].append(run_worker(Path(__file__), side, bootstrap, str(args.messages)))
    best = {side: fastest(r) for side, r in runs.items()}
    apache = best["apache"]

    def rate(result: dict, key: str) -> float:
        """msgs/s of the write (messages written) or the read (rows that came back)."""
        count = result["rows_read"] if key == "read_seconds" else result["messages"]
        return count / result[key]

    print(f"\n{args.messages:,} credit-card messages as JSON, {PARTITIONS} partitions, write_topic + read_matrix")
    print(f"{'engine':<24}{'write msgs/s':>14}{'read msgs/s':>14}{'rows read':>12}{'peak RSS':>11}{'B/msg held':>12}")
    for side in SIDES:
        r = best[side]
        print(
            f"{side:<24}{rate(r, 'write_seconds'):>14,.0f}{rate(r, 'read_seconds'):>14,.0f}"
            f"{r['rows_read']:>12,}{r['peak_rss_mb']:>9,.0f}MB{r['memory_growth_bytes_per_message']:>12,.0f}"
        )
    payload = best["broker"]["payload_bytes_per_message"]
    print(f"\npayload: {payload:,.0f} bytes a message")
    if apache.get("apache_broker_rss_mb") is not None:
        print(
            f"Apache Kafka broker JVM: {apache['apache_broker_rss_mb']:,.0f} MB resident "
            f"(+{apache['apache_broker_rss_growth_mb']:,.0f} MB over the write)"
        )
    for side in ("broker", "mock"):
        r = best[side]
        print(
            f"LocalKafka {side}: write {rate(r, 'write_seconds') / rate(apache, 'write_seconds'):.0%}, "
            f"read {rate(r, 'read_seconds') / rate(apache, 'read_seconds'):.0%}, "
            f"write+read {apache['seconds'] / r['seconds']:.0%} of Apache Kafka's rate; "
            f"memory held {r['memory_growth_bytes_per_message'] / payload:.2f}x the payload"
        )
    path = save("local_kafka", {"machine": machine(), "messages": args.messages, "runs": runs, "best": best})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
