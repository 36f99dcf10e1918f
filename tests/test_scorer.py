"""StreamScorer end to end on the real broker: the talk's autoencoder scores a topic.

Every result is checked against ``Model.reconstruction_error`` on the same rows; results are
counted per id, so a lost or a duplicated event fails the test.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import kafkaml
import numpy as np
import pyarrow as pa
import pytest

FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def talk_model(talk_fixtures: Path) -> kafkaml.Model:
    return kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb")


@pytest.fixture(scope="module")
def events(talk_fixtures: Path) -> pa.Table:
    """The talk's 999 credit-card rows with an id, as float32 features."""
    x = np.load(talk_fixtures / "creditcard_small_x.npy")
    columns = {"id": pa.array(np.arange(len(x), dtype=np.int64))}
    columns.update({name: pa.array(x[:, j]) for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def read_results(bootstrap: str, topic: str) -> pa.Table:
    return kafkaml.read_topic(bootstrap, topic, schema="id BIGINT, score DOUBLE, anomaly BOOLEAN")


def expected_scores(model: kafkaml.Model, events: pa.Table) -> np.ndarray:
    return model.reconstruction_error(events, columns=FEATURES)


def assert_scores_match(results: pa.Table, model: kafkaml.Model, events: pa.Table, threshold: float) -> None:
    expected = expected_scores(model, events)
    ids = np.asarray(results.column("id"))
    scores = np.asarray(results.column("score"))
    np.testing.assert_allclose(scores, expected[ids], rtol=1e-5, atol=1e-6)
    assert (np.asarray(results.column("anomaly")) == (scores > threshold)).all()


def test_every_event_gets_exactly_one_result_equal_to_model_score(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table
) -> None:
    source, sink = new_topic(partitions=3), new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events, key="id")
    threshold = float(np.median(expected_scores(talk_model, events)))
    scorer = kafkaml.StreamScorer(
        bootstrap,
        source,
        sink,
        talk_model,
        features=FEATURES,
        id_columns=["id"],
        threshold=threshold,
        group_id=f"g-{uuid.uuid4().hex}",
        batch_size=128,
    )
    stats = scorer.run(until=events.num_rows, timeout=120)
    assert (stats["consumed"], stats["produced"], stats["skipped"]) == (999, 999, 0)
    results = read_results(bootstrap, sink)
    assert sorted(Counter(results.column("id").to_pylist()).items()) == [(i, 1) for i in range(999)]
    assert_scores_match(results, talk_model, events, threshold)
    # the threshold is the median: about half are flagged, and the count is the results'
    assert 400 < stats["anomalies"] == results.column("anomaly").to_pylist().count(True) < 600
    assert stats["error"] is None


def test_clean_stop_and_restart_neither_loses_nor_repeats(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table
) -> None:
    source, sink = new_topic(partitions=3), new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events)
    options = dict(features=FEATURES, id_columns=["id"], threshold=1.0, group_id=f"g-{uuid.uuid4().hex}", batch_size=50)
    first = kafkaml.StreamScorer(bootstrap, source, sink, talk_model, **options).run(until=300, timeout=120)
    assert 300 <= first["produced"] < 999  # stopped part way
    second = kafkaml.StreamScorer(bootstrap, source, sink, talk_model, **options).run(until="caught_up", timeout=120)
    assert first["produced"] + second["produced"] == 999
    results = read_results(bootstrap, sink)
    assert sorted(Counter(results.column("id").to_pylist()).items()) == [(i, 1) for i in range(999)]


def test_results_keep_the_event_key(bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table) -> None:
    source, sink = new_topic(partitions=2), new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events.slice(0, 20), key="id")
    kafkaml.StreamScorer(
        bootstrap, source, sink, talk_model, features=FEATURES, id_columns=["id"], group_id=f"g-{uuid.uuid4().hex}"
    ).run(until=20, timeout=60)
    raw = kafkaml.read_topic(bootstrap, sink, format="raw")
    for key, value in zip(raw.column("key").to_pylist(), raw.column("value").to_pylist()):
        assert int(key) == json.loads(value)["id"]


def test_bad_events_are_skipped_and_counted_or_stop_the_scorer_naming_them(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table
) -> None:
    source = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events.slice(0, 10))
    # offset 10: not JSON at all; offset 11: V3 missing (a null feature)
    bad_row = {name: 0.5 for name in FEATURES if name != "V3"} | {"id": 11}
    kafkaml.write_topic(bootstrap, source, pa.table({"value": ["not json", json.dumps(bad_row)]}), format="raw")
    kafkaml.write_topic(bootstrap, source, events.slice(12, 5))
    schema = kafkaml.parse_columns(["id BIGINT"] + [f"{f} DOUBLE" for f in FEATURES])

    skipping = kafkaml.StreamScorer(
        bootstrap,
        source,
        new_topic(partitions=1),
        talk_model,
        features=FEATURES,
        id_columns=["id"],
        group_id=f"g-{uuid.uuid4().hex}",
        on_error="skip",
        schema=schema,
    )
    stats = skipping.run(until="caught_up", timeout=60)
    assert (stats["produced"], stats["skipped"]) == (15, 2)
    failures = sorted(skipping.errors.recent, key=lambda f: f.offset)
    assert [(f.partition, f.offset) for f in failures] == [(0, 10), (0, 11)]
    assert "V3" in failures[1].reason

    raising = kafkaml.StreamScorer(
        bootstrap,
        source,
        new_topic(partitions=1),
        talk_model,
        features=FEATURES,
        id_columns=["id"],
        group_id=f"g-{uuid.uuid4().hex}",
        on_error="raise",
        schema=schema,
        batch_size=5,
    )
    with pytest.raises(kafkaml.DecodeError) as caught:
        raising.run(until="caught_up", timeout=60)
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == (source, 0, 10)
    assert raising.stats()["produced"] == 10  # the two batches before the bad one


def test_wrong_features_fail_at_the_first_batch_with_the_column_named(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table
) -> None:
    source = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events.slice(0, 5))
    scorer = kafkaml.StreamScorer(
        bootstrap,
        source,
        new_topic(partitions=1),
        talk_model,
        features=[*FEATURES[:-1], "Amnt"],
        group_id=f"g-{uuid.uuid4().hex}",
    )
    with pytest.raises(kafkaml.SchemaError, match="Amnt"):
        scorer.run(until=5, timeout=60)


def test_missing_source_topic_and_missing_group_are_errors(bootstrap: str, talk_model: kafkaml.Model) -> None:
    with pytest.raises(kafkaml.KafkaError, match="does not exist"):
        kafkaml.StreamScorer(
            bootstrap, f"absent-{uuid.uuid4().hex}", "x", talk_model, features=FEATURES, group_id="g"
        ).start()
    with pytest.raises(kafkaml.ConfigError, match="group_id"):
        kafkaml.StreamScorer(bootstrap, "x", "y", talk_model, features=FEATURES, group_id="")


# --- a broker restart mid-run, on a broker of this test's own ---------------------------


def test_a_broker_restart_mid_run_loses_nothing(own_broker, talk_model: kafkaml.Model, events: pa.Table) -> None:
    address, env = own_broker
    many = pa.concat_tables([events] * 20)  # 19,980 events
    many = many.set_column(0, "id", pa.array(np.arange(many.num_rows, dtype=np.int64)))
    half = many.num_rows // 2
    kafkaml.write_topic(address, "events", many.slice(0, half))
    scorer = kafkaml.StreamScorer(
        address,
        "events",
        "scores",
        talk_model,
        features=FEATURES,
        id_columns=["id"],
        group_id="restart",
        batch_size=500,
        max_wait_ms=20,
        # small fetches slow the scorer down, so that the restart lands while it reads
        config={"max.partition.fetch.bytes": "65536"},
    ).start()
    deadline = time.monotonic() + 60
    while scorer.stats()["produced"] < 2000 and time.monotonic() < deadline:
        time.sleep(0.005)
    restart = subprocess.run(
        [str(REPO / "scripts" / "kafka-server"), "restart"], env=env, capture_output=True, text=True, timeout=300
    )
    assert restart.returncode == 0, restart.stderr[-2000:]
    kafkaml.write_topic(address, "events", many.slice(half))  # and more events after the restart
    stats = scorer.run(until="caught_up", timeout=240)
    results = kafkaml.read_topic(address, "scores", schema="id BIGINT, score DOUBLE")
    counts = Counter(results.column("id").to_pylist())
    assert set(counts) == set(range(many.num_rows)), f"lost {many.num_rows - len(counts)} events"
    assert stats["consumed"] >= many.num_rows
