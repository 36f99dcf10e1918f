"""Read options as a notebook user meets them: a missing stop, typos in keywords and topic
names, inferred schemas and what they cannot know, declared columns that never appear,
progress bars, long bad messages, and displays. Against the real broker."""

from __future__ import annotations

import json
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import kafkaml
import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka import Producer as ConfluentProducer


def produce_values(bootstrap: str, topic: str, values: list[str]) -> None:
    """Writes ``values`` in order, round-robin over the topic's partitions (confluent-kafka)."""
    producer = ConfluentProducer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % partitions)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def test_read_all_without_a_stop_says_to_pass_one_instead_of_hanging(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    produce_values(bootstrap, topic, [json.dumps({"id": 1})])
    with kafkaml.Consumer(bootstrap, topic, schema="id BIGINT") as consumer:
        started = time.monotonic()
        with pytest.raises(kafkaml.ConfigError, match='stop="end"'):
            consumer.read_all()
        with pytest.raises(kafkaml.ConfigError, match="read_matrix"):
            consumer.read_matrix()
        assert time.monotonic() - started < 1.0
        # The consumer is still usable: nothing was read.
        assert consumer.messages_read == 0


def test_a_keyword_typo_names_the_function_and_the_keyword_meant(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    with pytest.raises(
        TypeError, match=r"read_topic\(\) got an unexpected keyword argument 'shema'; did you mean 'schema'\?"
    ):
        kafkaml.read_topic(bootstrap, topic, shema="id BIGINT")
    with pytest.raises(TypeError, match=r"read_matrix\(\) .* 'colums'; did you mean 'columns'\?"):
        kafkaml.read_matrix(bootstrap, topic, colums=["id"])


def test_a_topic_typo_suggests_the_topic_meant(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    typo = topic[:-2] + ("yx" if topic[-2:] == "xy" else "xy")  # two letters off (names end in hex)
    with pytest.raises(kafkaml.KafkaError, match=f'does not exist .*did you mean "{topic}"'):
        kafkaml.read_topic(bootstrap, typo)


def test_an_inferred_schema_reads_at_the_declared_schemas_result(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=2)
    rows = [{"id": i, "v": i / 4, "name": f"n{i}", "ok": i % 2 == 0} for i in range(25_000)]
    produce_values(bootstrap, topic, [json.dumps(r) for r in rows])
    inferred = kafkaml.read_topic(bootstrap, topic)
    declared = kafkaml.read_topic(bootstrap, topic, schema=inferred.schema)
    assert inferred.schema.names == ["id", "v", "name", "ok"]
    assert inferred.schema.field("id").type == pa.int64()
    assert inferred.equals(declared)
    assert sorted(inferred.column("id").to_pylist()) == list(range(25_000))
    matrix = kafkaml.read_matrix(bootstrap, topic, columns=["id", "v"])
    np.testing.assert_array_equal(matrix, kafkaml.to_numpy(declared, ["id", "v"]))


def test_a_fraction_after_inferred_integers_names_the_inferred_type_and_where(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    values = [json.dumps({"x": i}) for i in range(12_000)] + [json.dumps({"x": 1.5})]  # partition 0 only
    produce_values(bootstrap, topic, values)
    with pytest.raises(kafkaml.DecodeError) as raised:
        kafkaml.read_topic(bootstrap, topic)
    error = raised.value
    assert (error.topic, error.partition, error.offset) == (topic, 0, 12_000)
    assert "1.5" in error.reason
    assert f"inferred from the first 10000 message(s), from {topic}[0]@0" in error.reason
    assert "schema=" in error.reason
    # Declared, the same topic reads.
    table = kafkaml.read_topic(bootstrap, topic, schema="x DOUBLE")
    assert table.column("x").to_pylist()[-1] == 1.5


def test_fields_an_inferred_schema_lacks_are_left_out_with_a_warning(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    values = [json.dumps({"x": i}) for i in range(10_000)] + [json.dumps({"x": 1, "late": "yes"})] * 3
    produce_values(bootstrap, topic, values)
    with pytest.warns(UserWarning, match=r'field\(s\) the inferred schema lacks: "late".*schema='):
        table = kafkaml.read_topic(bootstrap, topic)
    assert table.column_names == ["x"]
    assert table.num_rows == 10_003


def test_declared_columns_that_never_appear_are_warned_about(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    produce_values(bootstrap, topic, [json.dumps({"Amount": i, "Class": 0}) for i in range(10)])
    with pytest.warns(UserWarning, match=r"declared column\(s\) 'amount' never appeared in the 10 message"):
        table = kafkaml.read_topic(bootstrap, topic, schema=["amount DOUBLE", "Class INT"])
    assert table.column("Class").to_pylist() == [0] * 10
    # Columns that are there, even with some nulls, are no reason for a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kafkaml.read_topic(bootstrap, topic, schema=["Amount DOUBLE", "Class INT"])


def test_a_long_bad_message_is_quoted_briefly(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    produce_values(bootstrap, topic, ['{"id": 1}', '{"id": "' + "x" * 5_000])
    with kafkaml.Consumer(bootstrap, topic, schema="id BIGINT", stop="end", on_error="skip") as consumer:
        consumer.read_all()
        failure = consumer.errors.recent[0]
    assert failure.offset == 1
    assert len(failure.reason) < 500
    assert len(repr(consumer.errors)) < 1_000


def test_read_matrix_shows_progress(bootstrap: str, new_topic, capsys) -> None:
    topic = new_topic(partitions=1)
    produce_values(bootstrap, topic, [json.dumps({"a": i, "b": -i}) for i in range(3_000)])
    matrix = kafkaml.read_matrix(bootstrap, topic, schema="a DOUBLE, b DOUBLE", batch_size=1_000, progress=True)
    assert matrix.shape == (3_000, 2)
    shown = capsys.readouterr().err
    assert topic in shown and "100%" in shown, shown


def test_write_topic_shows_progress(bootstrap: str, new_topic, capsys) -> None:
    topic = new_topic(partitions=2)
    table = pa.table({"a": np.arange(25_000, dtype=np.int64)})
    assert kafkaml.write_topic(bootstrap, topic, table, progress=True) == 25_000
    shown = capsys.readouterr().err
    assert topic in shown and "100%" in shown and "25.0k" in shown, shown
    assert sorted(kafkaml.read_topic(bootstrap, topic).column("a").to_pylist()) == list(range(25_000))


def test_consumer_displays_its_state(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    produce_values(bootstrap, topic, [json.dumps({"id": i}) for i in range(5)])
    consumer = kafkaml.Consumer(bootstrap, topic, schema="id BIGINT", stop="end")
    consumer.read_all()
    assert "read=5" in repr(consumer) and "finished" in repr(consumer)
    page = consumer._repr_html_()
    assert topic in page and "messages read" in page and "id: int64" in page
    consumer.close()
    assert "closed" in repr(consumer) and "closed" in consumer._repr_html_()


def test_re_running_a_local_group_cell_gets_its_first_batch_quickly() -> None:
    # A notebook cell with three members of one group on LocalKafka, each reading on its own
    # thread (a member that never polls keeps its partitions, on a real broker too), run three
    # times as a user re-runs it, the old members dropped without close(): every run's first
    # batches come within 5 s. LocalKafka's first rebalance of a group waits 1 s for members
    # started together (one generation for all three, as Kafka's initial rebalance delay
    # does), and a dropped member leaves its group at once.
    spread = {"sticky.partitioning.linger.ms": 0}  # every partition gets rows

    def first_rows(member: kafkaml.Consumer) -> int:
        return next(iter(member)).num_rows

    with kafkaml.LocalKafka() as kafka:
        kafka.create_topic("events", partitions=3)
        for run in range(3):
            table = pa.table({"id": list(range(run * 300, run * 300 + 300))})
            kafkaml.write_topic(kafka, "events", table, config=spread)
            started = time.monotonic()
            members = [
                kafkaml.Consumer(kafka, "events", group_id="cell", schema="id BIGINT", max_wait_ms=100)
                for _ in range(3)
            ]
            with ThreadPoolExecutor(3) as pool:
                rows = list(pool.map(first_rows, members))
            waited = time.monotonic() - started
            assert all(count > 0 for count in rows), f"run {run}: first batches {rows}"
            assert waited < 5.0, f"run {run}: first batches after {waited:.1f} s"
            for member in members:
                member.commit()
            del member, members  # dropped, not closed, as a re-run cell drops them
