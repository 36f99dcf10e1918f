"""The consumer on a real broker: bounded snapshots, starting and stopping by time and by
offset, consumer groups that commit and resume, metadata columns, batching."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import kafkaml
import pyarrow as pa
import pytest
from kafka_helpers import produce

UTC = dt.timezone.utc


def ids_table(rows: int, start: int = 0) -> pa.Table:
    return pa.table(
        {"id": pa.array(range(start, start + rows), pa.int64()), "x": [i * 0.25 for i in range(start, start + rows)]}
    )


def json_ids(rows: int, start: int = 0) -> list[str]:
    return [json.dumps({"id": i, "x": i * 0.25}) for i in range(start, start + rows)]


def test_stop_end_twice_gives_identical_tables(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, ids_table(600), config={"sticky.partitioning.linger.ms": 0})

    first = kafkaml.read_topic(bootstrap, topic)
    second = kafkaml.read_topic(bootstrap, topic)
    assert first.num_rows == 600
    assert sorted(first.column("id").to_pylist()) == list(range(600))
    assert first.equals(second)

    with_metadata = kafkaml.read_topic(bootstrap, topic, include_metadata=True)
    assert with_metadata.equals(kafkaml.read_topic(bootstrap, topic, include_metadata=True))
    assert len(set(with_metadata.column("_partition").to_pylist())) == 3  # all partitions were read


def test_stop_end_is_the_end_when_the_consumer_started(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, ids_table(300))
    with kafkaml.Consumer(bootstrap, topic, stop="end") as consumer:
        kafkaml.write_topic(bootstrap, topic, ids_table(50, start=300))  # after the snapshot
        table = consumer.read_all()
    assert sorted(table.column("id").to_pylist()) == list(range(300))
    assert kafkaml.read_topic(bootstrap, topic).num_rows == 350


@pytest.fixture
def timed_topic(bootstrap: str, new_topic, confluent_producer):
    """90 messages, id i stamped base + i seconds, spread over 3 partitions."""
    topic = new_topic(partitions=3)
    base_ms = (int(time.time()) - 3600) * 1000  # recent: well inside the broker's retention
    delivered = produce(confluent_producer, topic, json_ids(90), timestamps_ms=[base_ms + i * 1000 for i in range(90)])
    # The reads below count on it: id i at offset i // 3 of partition i % 3, once.
    assert [(d.partition, d.offset) for d in delivered] == [(i % 3, i // 3) for i in range(90)]
    return topic, base_ms


def moment(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=UTC)


def ids_of(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist()) if table.num_rows else []


def test_start_at_a_datetime_returns_exactly_the_later_messages(bootstrap: str, timed_topic) -> None:
    topic, base_ms = timed_topic
    assert ids_of(kafkaml.read_topic(bootstrap, topic, start=moment(base_ms + 60_000))) == list(range(60, 90))
    # between two messages: from the next one on
    assert ids_of(kafkaml.read_topic(bootstrap, topic, start=moment(base_ms + 30_500))) == list(range(31, 90))
    assert ids_of(kafkaml.read_topic(bootstrap, topic, start=moment(base_ms - 60_000))) == list(range(90))
    # after the last message: nothing (and no waiting for more)
    assert kafkaml.read_topic(bootstrap, topic, start=moment(base_ms + 600_000), schema="id BIGINT").num_rows == 0


def test_stop_at_a_datetime_returns_exactly_the_earlier_messages(bootstrap: str, timed_topic) -> None:
    topic, base_ms = timed_topic
    with kafkaml.Consumer(bootstrap, topic, stop=moment(base_ms + 30_000)) as consumer:
        assert ids_of(consumer.read_all()) == list(range(30))
    with kafkaml.Consumer(bootstrap, topic, start=moment(base_ms + 30_000), stop=moment(base_ms + 45_500)) as consumer:
        assert ids_of(consumer.read_all()) == list(range(30, 46))
    # a stop in the past, after every message: all of them, then the consumer stops
    with kafkaml.Consumer(bootstrap, topic, stop=moment(base_ms + 600_000)) as consumer:
        assert ids_of(consumer.read_all()) == list(range(90))


def test_start_at_offsets_and_latest(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    delivered = produce(confluent_producer, topic, json_ids(60))  # 20 per partition, id i at i % 3
    table = kafkaml.read_topic(bootstrap, topic, start={0: 15, 2: 19}, include_metadata=True)
    expected = sorted(
        (d.partition, d.offset)
        for d in delivered
        if (d.partition == 0 and d.offset >= 15) or d.partition == 1 or (d.partition == 2 and d.offset >= 19)
    )
    assert list(zip(table.column("_partition").to_pylist(), table.column("_offset").to_pylist())) == expected
    assert kafkaml.read_topic(bootstrap, topic, start="latest", schema="id BIGINT").num_rows == 0


def test_a_group_commits_and_resumes_where_it_left_off(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, ids_table(300), config={"sticky.partitioning.linger.ms": 0})
    group = f"group-{uuid.uuid4().hex}"

    with kafkaml.Consumer(bootstrap, topic, group_id=group, stop="end", batch_size=40) as consumer:
        first = next(iter(consumer))
        assert 0 < first.num_rows <= 40
        assert consumer.commit() >= 1

    with kafkaml.Consumer(bootstrap, topic, group_id=group, stop="end") as consumer:
        rest = consumer.read_all()
        # closing without a commit keeps the group's position
    with kafkaml.Consumer(bootstrap, topic, group_id=group, stop="end") as consumer:
        again = consumer.read_all()
        consumer.commit()
    with kafkaml.Consumer(bootstrap, topic, group_id=group, stop="end", schema="id BIGINT, x DOUBLE") as consumer:
        assert consumer.read_all().num_rows == 0  # everything is committed

    seen = first.column("id").to_pylist() + rest.column("id").to_pylist()
    assert len(seen) == 300, "no message lost, none read twice"
    assert sorted(seen) == list(range(300))
    assert ids_of(again) == ids_of(rest)


def test_commit_needs_a_group(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, ids_table(5))
    with kafkaml.Consumer(bootstrap, topic, stop="end") as consumer:
        consumer.read_all()
        with pytest.raises(kafkaml.ConfigError, match="group_id"):
            consumer.commit()


def test_metadata_columns_are_where_the_broker_put_each_message(bootstrap: str, new_topic, confluent_producer) -> None:
    topic = new_topic(partitions=3)
    base_ms = (int(time.time()) - 600) * 1000
    keys = [None if i % 10 == 0 else f"key-{i}".encode() for i in range(120)]
    delivered = produce(
        confluent_producer, topic, json_ids(120), keys=keys, timestamps_ms=[base_ms + 7 * i for i in range(120)]
    )

    table = kafkaml.read_topic(bootstrap, topic, include_metadata=True)
    assert table.schema.names == ["id", "x", "_topic", "_partition", "_offset", "_timestamp", "_key"]
    assert table.schema.field("_partition").type == pa.int32()
    assert table.schema.field("_offset").type == pa.int64()
    assert table.schema.field("_timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("_key").type == pa.binary()

    expected = sorted(delivered, key=lambda d: (d.partition, d.offset))
    assert table.column("_topic").to_pylist() == [topic] * 120
    assert table.column("_partition").to_pylist() == [d.partition for d in expected]
    assert table.column("_offset").to_pylist() == [d.offset for d in expected]
    assert table.column("_key").to_pylist() == [d.key for d in expected]
    assert [int(t.timestamp() * 1000) for t in table.column("_timestamp").to_pylist()] == [
        d.timestamp_ms for d in expected
    ]
    assert table.column("id").to_pylist() == [json.loads(d.value)["id"] for d in expected]
    assert {d.partition for d in delivered} == {0, 1, 2}

    without = kafkaml.read_topic(bootstrap, topic)
    assert without.schema.names == ["id", "x"]
    assert without.equals(table.select(["id", "x"]))


def test_batches_respect_batch_size_and_count_messages(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, ids_table(500), config={"sticky.partitioning.linger.ms": 0})
    with kafkaml.Consumer(bootstrap, topic, stop="end", batch_size=64) as consumer:
        batches = list(consumer)
        assert consumer.messages_read == 500
        assert not consumer.errors
    assert all(0 < b.num_rows <= 64 for b in batches)
    assert sum(b.num_rows for b in batches) == 500
    assert sorted(pa.Table.from_batches(batches).column("id").to_pylist()) == list(range(500))


def test_read_topic_chunks_follow_batch_size(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, ids_table(12_000))
    small = kafkaml.read_topic(bootstrap, topic, batch_size=5_000)
    assert [len(chunk) for chunk in small.column("id").chunks] == [5_000, 5_000, 2_000]
    # Without batch_size, read_topic's own default applies: more than a Consumer's 10,000.
    whole = kafkaml.read_topic(bootstrap, topic, schema=small.schema)
    assert [len(chunk) for chunk in whole.column("id").chunks] == [12_000]
    assert whole.equals(small.combine_chunks())
    # A schema still to be inferred comes from a first batch of at most 10,000 messages;
    # the rest follow in batches of the usual size.
    inferred = kafkaml.read_topic(bootstrap, topic)
    assert [len(chunk) for chunk in inferred.column("id").chunks] == [10_000, 2_000]
    assert inferred.equals(whole)


def test_several_topics_in_one_consumer(bootstrap: str, new_topic) -> None:
    first, second = new_topic(partitions=3), new_topic(partitions=2)
    kafkaml.write_topic(bootstrap, first, ids_table(40))
    kafkaml.write_topic(bootstrap, second, ids_table(30, start=1000))
    table = kafkaml.read_topic(bootstrap, [first, second], include_metadata=True)
    by_topic = {
        name: sorted(i for i, t in zip(table.column("id").to_pylist(), table.column("_topic").to_pylist()) if t == name)
        for name in (first, second)
    }
    assert by_topic == {first: list(range(40)), second: list(range(1000, 1030))}


def test_a_closed_consumer_says_so(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, topic, ids_table(3))
    consumer = kafkaml.Consumer(bootstrap, topic, stop="end")
    consumer.close()
    with pytest.raises(kafkaml.ClosedError, match="closed"):
        consumer.read_all()


def test_a_stop_time_in_the_future_ends_idle_and_empty_partitions_once_it_passes(
    bootstrap: str, new_topic, confluent_producer
) -> None:
    import threading

    topic = new_topic(partitions=3)
    now_ms = int(time.time() * 1000)
    # partition 0 gets two messages, partitions 1 and 2 stay empty
    produce(
        confluent_producer,
        topic,
        [json.dumps({"id": i}) for i in range(2)],
        partitions=1,
        timestamps_ms=[now_ms, now_ms + 1],
    )
    result: dict[str, pa.Table] = {}

    def read() -> None:
        with kafkaml.Consumer(bootstrap, topic, schema="id BIGINT", stop=moment(now_ms + 1500)) as consumer:
            result["table"] = consumer.read_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the read did not end after its stop time passed"
    assert ids_of(result["table"]) == [0, 1]


def test_progress_bar_counts_the_snapshot(bootstrap: str, new_topic, capsys: pytest.CaptureFixture[str]) -> None:
    topic = new_topic(partitions=3)
    kafkaml.write_topic(bootstrap, topic, ids_table(300))
    table = kafkaml.read_topic(bootstrap, topic, progress=True)
    assert sorted(table.column("id").to_pylist()) == list(range(300))
    assert "300/300" in capsys.readouterr().err
