"""The data generators: deterministic, shaped like the talk's data, and streamable."""

from __future__ import annotations

import re
import time

import kafkaml
import numpy as np
import pyarrow as pa
import pytest
from kafkaml import datasets

TALK_DECLARATIONS = (
    ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
    + [f"V{i} double" for i in range(1, 29)]
    + ["Amount double", "Class string"]
)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    assert datasets.credit_card_transactions(500, seed=4).equals(datasets.credit_card_transactions(500, seed=4))
    assert not datasets.credit_card_transactions(500, seed=4).equals(datasets.credit_card_transactions(500, seed=5))
    assert datasets.car_sensor_events(50, seed=4).equals(datasets.car_sensor_events(50, seed=4))
    assert datasets.credit_card_source(50, seed=4).equals(datasets.credit_card_source(50, seed=4))


def test_credit_card_shape_and_fraud_rate() -> None:
    table = datasets.credit_card_transactions(200_000, seed=1)
    assert table.column_names == [*datasets.FEATURES, "Class"]
    assert table.schema.field("Class").type == pa.int32()
    time_column = table.column("Time").to_numpy()
    assert time_column[0] == 0 and (np.diff(time_column) >= 0).all() and time_column[-1] < 2 * 86_400
    fraud = table.column("Class").to_numpy() == 1
    assert 0.0015 < fraud.mean() < 0.0025


def test_fraud_is_learnably_different() -> None:
    """A model of normal rows (here: their mean and spread) tells fraud apart."""
    table = datasets.credit_card_transactions(100_000, seed=2)
    x = kafkaml.to_numpy(table, columns=[f"V{i}" for i in range(1, 29)], dtype="float64")
    fraud = table.column("Class").to_numpy() == 1
    normal = x[~fraud]
    z = (x - normal.mean(axis=0)) / normal.std(axis=0)
    score = (z**2).mean(axis=1)
    threshold = np.quantile(score[~fraud], 0.99)
    recall = (score[fraud] > threshold).mean()
    assert recall > 0.9


def test_source_form_reads_back_with_the_talks_declarations(bootstrap: str, new_topic) -> None:
    source = datasets.credit_card_source(300, seed=3)
    assert source.column_names[:4] == ["Id", "Timestamp", "User", "Time"]
    topic = new_topic(partitions=3)
    assert kafkaml.write_topic(bootstrap, topic, source, format="csv") == 300
    back = kafkaml.read_topic(bootstrap, topic, format="delimited", schema=TALK_DECLARATIONS).sort_by("Id")
    assert back.column("Id").to_pylist() == list(range(1, 301))
    assert back.column("Class").to_pylist() == source.column("Class").to_pylist()
    assert back.column("V14").to_pylist() == source.column("V14").to_pylist()


def test_car_sensor_events_warm_up_and_faults() -> None:
    table = datasets.car_sensor_events(3_000, anomaly_rate=0.05, seed=6)
    assert table.column_names == ["eventid", "sensorinput", "anomaly", "fault"]
    readings = datasets.sensor_matrix(table)
    assert readings.shape == (3_000, datasets.SENSOR_READINGS)
    labels = table.column("anomaly").to_numpy(zero_copy_only=False)
    assert 0.03 < labels.mean() < 0.07
    normal = readings[~labels]
    # warm-up: starts near ambient, ends near the operating temperature, mostly rising
    assert (normal[:, 0] < 35).all() and (np.abs(normal[:, -1] - 90) < 10).all()
    assert (np.diff(normal.mean(axis=0)) > -0.5).all()
    faults = set(table.column("fault").to_pylist()) - {""}
    assert faults == {"overheating", "dropout", "spikes", "oscillation"}
    assert datasets.car_sensor_events(5, labels=False).column_names == ["eventid", "sensorinput"]


def test_talk_sensor_events_follow_the_scripts_walk() -> None:
    """The live demo's sensor_generator.sh: two decimals joined by '# ', runs of 1 to 10
    readings moving one way by at most 0.99, turning back at 2 and 8, each event starting
    where the last one ended; faults only where labelled."""
    table = datasets.talk_sensor_events(400, fault_rate=0.1, seed=3)
    assert table.column_names == ["eventid", "sensorinput", "anomaly", "fault"]
    labels = table.column("anomaly").to_numpy(zero_copy_only=False)
    first = table.column("sensorinput")[int(np.argmin(labels))].as_py()  # a normal one
    assert re.fullmatch(r"\d\.\d\d(# \d\.\d\d){209}", first), first[:80]
    readings = datasets.sensor_matrix(table)
    assert 0.05 < labels.mean() < 0.15
    normal = readings[~labels]
    assert normal.min() >= 1.0 and normal.max() <= 9.0
    assert np.abs(np.diff(normal, axis=1)).max() <= 0.99 + 1e-6
    walk = datasets.sensor_matrix(datasets.talk_sensor_events(50, fault_rate=0.0, seed=3))
    assert np.abs(walk[1:, 0] - walk[:-1, -1]).max() <= 0.99 + 1e-6  # continues across events
    faults = set(table.column("fault").to_pylist()) - {""}
    assert faults == {"overheating", "stuck high", "spikes"}
    assert (readings[labels].max(axis=1) > 12).all()  # every fault leaves the walk's range
    assert datasets.talk_sensor_events(20, seed=3).equals(datasets.talk_sensor_events(20, seed=3))
    assert datasets.talk_sensor_events(3, labels=False).column_names == ["eventid", "sensorinput"]
    with pytest.raises(ValueError, match="fault_rate"):
        datasets.talk_sensor_events(3, fault_rate=1.5)


def test_write_events_keeps_the_rate(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    events = datasets.car_sensor_events(200, seed=7, labels=False)
    started = time.perf_counter()
    assert datasets.write_events(bootstrap, topic, events, rate=400, chunk=20, format="csv") == 200
    took = time.perf_counter() - started
    assert took >= 0.45  # 200 rows at 400/s: at least half a second, not a burst
    back = kafkaml.read_topic(bootstrap, topic, format="csv", schema="eventid BIGINT, sensorinput STRING")
    assert back.column("sensorinput").to_pylist() == events.column("sensorinput").to_pylist()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fraud_rate"):
        datasets.credit_card_transactions(10, fraud_rate=2.0)
    with pytest.raises(ValueError, match="readings"):
        datasets.car_sensor_events(10, readings=1)
    with pytest.raises(ValueError, match="rate"):
        datasets.write_events("127.0.0.1:1", "t", datasets.car_sensor_events(1), rate=0)
