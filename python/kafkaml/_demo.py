"""``python -m kafkaml demo``: credit-card rows through Kafka into a numpy matrix.

For now the Kafka round trip of the talk's first steps: write rows shaped like the talk's
credit-card data to a topic, replay the topic into Arrow and numpy, and check every row
came back. Training and deployment join as their issues land.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

import kafkaml

FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]


def credit_card_rows(rows: int, seed: int = 7) -> pa.Table:
    """Rows shaped like the talk's data: Time, V1..V28, Amount, Class (fraud ~0.2 %)."""
    rng = np.random.default_rng(seed)
    columns = {"Time": np.sort(rng.uniform(0, 172_800, rows))}
    for i in range(1, 29):
        columns[f"V{i}"] = rng.normal(0, 1, rows)
    columns["Amount"] = np.round(rng.lognormal(3, 1.5, rows), 2)
    columns["Class"] = (rng.random(rows) < 0.002).astype(np.int64)
    return pa.table(columns)


def run(bootstrap: str | None = None, rows: int = 100_000) -> int:
    local = kafkaml.LocalKafka() if bootstrap is None else None
    address = bootstrap or local.bootstrap_servers  # type: ignore[union-attr]
    topic = "creditcard"
    try:
        if local is not None:
            # the in-memory cluster keeps only ~5 MiB per partition (~6,000 of these rows)
            local.create_topic(topic, partitions=max(1, rows // 5_000))
        table = credit_card_rows(rows)
        where = "LocalKafka (in-process)" if local is not None else address
        print(f"kafkaml {kafkaml.__version__} demo on {where}")

        started = time.perf_counter()
        # Without keys, librdkafka's sticky partitioner sends bursts to one partition;
        # spreading them evenly keeps every partition within LocalKafka's limit.
        written = kafkaml.write_topic(address, topic, table, format="csv", config={"sticky.partitioning.linger.ms": 0})
        wrote_s = time.perf_counter() - started
        print(f"  wrote {written:,} rows as CSV in {wrote_s:.2f} s ({written / wrote_s:,.0f} msgs/s)")

        started = time.perf_counter()
        replay = kafkaml.read_topic(address, topic, format="csv", schema=table.schema)
        features = kafkaml.to_numpy(replay, columns=FEATURES)
        read_s = time.perf_counter() - started
        print(f"  read {replay.num_rows:,} rows into a {features.shape} {features.dtype} matrix "
              f"in {read_s:.2f} s ({replay.num_rows / read_s:,.0f} msgs/s)")

        expected = np.sort(table.column("Time").to_numpy())
        got = np.sort(replay.column("Time").to_numpy())
        if replay.num_rows != table.num_rows or not np.array_equal(expected, got):
            print("  MISMATCH: the replay differs from what was written")
            return 1
        frauds = int(np.sum(replay.column("Class").to_numpy()))
        print(f"  every row came back; {frauds} of them are fraud ({100 * frauds / rows:.2f} %)")
        return 0
    finally:
        if local is not None:
            local.stop()
