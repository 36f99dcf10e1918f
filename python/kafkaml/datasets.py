"""Deterministic generators for the talk's two data sets, as Arrow tables or live topics.

- :func:`credit_card_transactions`: rows shaped like the Kaggle credit-card fraud data the
  talk trains on (``Time, V1..V28, Amount, Class``), with rare, learnably different fraud;
  :func:`credit_card_source` puts the talk's ``Id, Timestamp, User`` in front (the
  DELIMITED source stream of its KSQL statements).
- :func:`car_sensor_events`: the connected-car demo of the talk's KSQL UDF — ``eventid`` and
  210 ``#``-separated engine temperature readings following warm-up curves, some with
  injected faults; :func:`talk_sensor_events`: the same events as the talk's live demo
  generates them (its ``sensor_generator.sh`` random walk), with faults injected.
- :func:`write_events`: writes such a table to a topic, at once or at a given rate.

The same arguments always give the same rows (numpy's PCG64 with the given seed).
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._producer import Producer

FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
"""The talk's model inputs: every credit-card column but ``Class``."""

SENSOR_READINGS = 210
"""Readings per car-sensor event, as in the talk's UDF demo."""

# Spread of the 28 PCA components of the real data: the first ones vary most.
_COMPONENT_STD = np.linspace(1.9, 0.3, 28)
# How fraud differs, per component (in units of the component's spread): in the real data
# frauds sit far out on V14, V12, V10, V17, V3 (low) and V4, V11, V2 (high).
_FRAUD_SHIFT = np.zeros(28)
for _component, _shift in {
    1: -2.0,
    2: 2.0,
    3: -4.0,
    4: 3.5,
    5: -1.5,
    7: -3.0,
    9: -2.0,
    10: -4.5,
    11: 3.0,
    12: -5.0,
    14: -6.0,
    16: -3.5,
    17: -5.0,
    18: -2.0,
}.items():
    _FRAUD_SHIFT[_component - 1] = _shift
_SECONDS_PER_DAY = 86_400


def credit_card_transactions(rows: int, *, fraud_rate: float = 0.002, seed: int = 0) -> pa.Table:
    """Credit-card transactions shaped like the talk's data.

    Columns: ``Time`` (seconds since the first transaction, ascending, over about two days
    with a daily rhythm), ``V1``..``V28`` (PCA-like components, float64), ``Amount`` (euros,
    two decimals), ``Class`` (int32: 1 for fraud, about ``fraud_rate`` of the rows).

    Fraud rows are shifted on the components where real fraud stands out and have other
    amounts, so an autoencoder trained on normal rows reconstructs them worse.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= fraud_rate <= 1.0:
        raise ValueError(f"fraud_rate must be within [0, 1], got {fraud_rate}")
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < fraud_rate
    # Two days; fewer transactions at night (a rejection-free warp of uniform times).
    days = rng.uniform(0.0, 2.0, rows)
    time_of_day = days % 1.0
    warped = time_of_day + 0.08 * np.sin(2 * np.pi * time_of_day)
    seconds = np.sort(np.floor(days) + warped) * _SECONDS_PER_DAY
    if rows:
        seconds -= seconds[0]  # as in the real data: seconds since the first transaction
    components = rng.normal(0.0, 1.0, (rows, 28)) * _COMPONENT_STD
    components[fraud] = rng.normal(0.0, 1.6, (int(fraud.sum()), 28)) * _COMPONENT_STD + _FRAUD_SHIFT * _COMPONENT_STD
    amount = np.where(fraud, rng.lognormal(4.2, 1.6, rows), rng.lognormal(3.0, 1.3, rows))
    columns: dict[str, Any] = {"Time": pa.array(np.floor(seconds))}
    for i in range(28):
        columns[f"V{i + 1}"] = pa.array(components[:, i])
    columns["Amount"] = pa.array(np.round(amount, 2))
    columns["Class"] = pa.array(fraud.astype(np.int32))
    return pa.table(columns)


def credit_card_source(
    rows: int,
    *,
    fraud_rate: float = 0.002,
    users: int = 500,
    start: _dt.datetime = _dt.datetime(2019, 3, 1, tzinfo=_dt.timezone.utc),
    seed: int = 0,
) -> pa.Table:
    """The talk's DELIMITED source form: ``Id, Timestamp, User`` then the transaction.

    Matches the talk's declarations ``Id bigint, Timestamp varchar, User varchar, Time int,
    V1..V28 double, Amount double, Class string``: ``Time`` as whole seconds, ``Class`` as
    the text ``"0"``/``"1"``, ``Timestamp`` as ISO-8601 text ``start + Time``.
    """
    table = credit_card_transactions(rows, fraud_rate=fraud_rate, seed=seed)
    rng = np.random.default_rng(seed + 1)
    seconds = table.column("Time").to_numpy().astype(np.int64)
    stamps = [(start + _dt.timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S") for s in seconds]
    user_ids = rng.integers(1, users + 1, rows)
    front = {
        "Id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
        "Timestamp": pa.array(stamps, pa.string()),
        "User": pa.array([f"user{u}" for u in user_ids], pa.string()),
        "Time": pa.array(seconds.astype(np.int32)),
    }
    rest = {name: table.column(name) for name in table.column_names if name not in ("Time", "Class")}
    classes = pa.array([str(c) for c in table.column("Class").to_numpy()], pa.string())
    return pa.table({**front, **rest, "Class": classes})


def car_sensor_events(
    events: int,
    *,
    readings: int = SENSOR_READINGS,
    anomaly_rate: float = 0.01,
    seed: int = 0,
    labels: bool = True,
) -> pa.Table:
    """Connected-car engine temperature series, one event per engine run.

    Columns: ``eventid`` (int64, from 1), ``sensorinput`` (``readings`` temperatures in °C
    with two decimals, joined by ``#``, as the talk's UDF takes them) and, with ``labels``,
    ``anomaly`` (bool) and ``fault`` (``""``, ``"overheating"``, ``"dropout"``, ``"spikes"``
    or ``"oscillation"``) — drop those before streaming for a realistic feed.

    A normal run warms up from the ambient temperature towards an operating temperature of
    about 90 °C with a per-engine time constant, plus sensor noise. About ``anomaly_rate``
    of the runs carry a fault: overheating past a random point, a sensor dropping to 0, a
    burst of spikes, or an oscillating thermostat.
    """
    if events < 0:
        raise ValueError(f"events must be >= 0, got {events}")
    if readings < 2:
        raise ValueError(f"readings must be >= 2, got {readings}")
    rng = np.random.default_rng(seed)
    steps = np.arange(readings, dtype=np.float64)
    ambient = rng.uniform(5.0, 30.0, (events, 1))
    operating = rng.normal(90.0, 2.0, (events, 1))
    tau = rng.uniform(25.0, 55.0, (events, 1))
    series = ambient + (operating - ambient) * (1.0 - np.exp(-steps / tau))
    series += rng.normal(0.0, 0.4, (events, readings))

    faulty = rng.random(events) < anomaly_rate
    kinds = np.array(["overheating", "dropout", "spikes", "oscillation"])
    fault = np.full(events, "", dtype=object)
    for row in np.flatnonzero(faulty):
        kind = kinds[rng.integers(0, len(kinds))]
        fault[row] = kind
        onset = int(rng.integers(readings // 4, readings * 3 // 4))
        if kind == "overheating":
            series[row, onset:] += np.linspace(0.0, rng.uniform(25.0, 40.0), readings - onset)
        elif kind == "dropout":
            series[row, onset : onset + int(rng.integers(10, 40))] = 0.0
        elif kind == "spikes":
            at = rng.integers(0, readings, 8)
            series[row, at] += rng.uniform(30.0, 60.0, 8)
        else:
            series[row, onset:] += 12.0 * np.sin(np.arange(readings - onset) / 3.0)

    return _sensor_table(["#".join(f"{v:.2f}" for v in row) for row in series], faulty, fault, labels)


def talk_sensor_events(
    events: int,
    *,
    fault_rate: float = 0.05,
    seed: int = 0,
    labels: bool = True,
) -> pa.Table:
    """Engine temperatures as the talk's live demo makes them (its ``sensor_generator.sh``),
    with faults injected.

    Columns: ``eventid`` (int64, from 1), ``sensorinput`` (210 readings joined by ``"# "``,
    exactly the script's message body after its ``EVENTID,``) and, with ``labels``,
    ``anomaly`` (bool) and ``fault`` (``""``, ``"overheating"``, ``"stuck high"`` or
    ``"spikes"``).

    The readings follow the script's random walk: values between 2 and 8 with two decimals,
    in runs of 1 to 10 readings that rise or fall by 0.00-0.09 or 0.00-0.99 each step, turning
    back at 2 and 8 (also between runs, where the script's walk can drift out of its range);
    each event starts where the last one ended. The script sends the same
    event id (99999) every time; here ids count up so results can be matched to events.
    About ``fault_rate`` of the events carry a fault from a random point between a quarter and
    half of the run: an engine overheating (rising to 15-20 degrees above the walk by the
    end), a sensor stuck 8-12 degrees high, or 12 spikes of 10-15 degrees.
    """
    if events < 0:
        raise ValueError(f"events must be >= 0, got {events}")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
    rng = np.random.default_rng(seed)
    readings = SENSOR_READINGS
    series = np.empty((events, readings), dtype=np.int64)  # hundredths of a degree
    value = int(rng.integers(200, 800))
    for event in range(events):
        # drawn per event in bulk (at most one run per reading): the walk itself is sequential
        lengths, directions = rng.integers(1, 11, readings), rng.integers(0, 2, readings)
        steps = np.where(
            rng.integers(0, 2, readings) == 0, rng.integers(0, 10, readings), rng.integers(0, 100, readings)
        )
        filled, run = 0, 0
        while filled < readings:
            length = min(int(lengths[run]), readings - filled)
            # The script draws each run's direction afresh, so its walk can drift out of the
            # range between runs (and then prints malformed numbers): a run beyond a bound
            # here heads back.
            rising = value <= 200 or (value < 800 and bool(directions[run]))
            run += 1
            for _ in range(length):
                step = int(steps[filled])
                value += step if rising else -step
                series[event, filled] = value
                filled += 1
                if not rising and value <= 200:
                    rising = True
                elif rising and value >= 800:
                    rising = False
    degrees = series / 100.0

    faulty = rng.random(events) < fault_rate
    kinds = np.array(["overheating", "stuck high", "spikes"])
    fault = np.full(events, "", dtype=object)
    for row in np.flatnonzero(faulty):
        kind = str(kinds[rng.integers(0, len(kinds))])
        fault[row] = kind
        onset = int(rng.integers(readings // 4, readings // 2))
        if kind == "overheating":
            degrees[row, onset:] += np.linspace(0.0, rng.uniform(15.0, 20.0), readings - onset)
        elif kind == "stuck high":
            degrees[row, onset:] += rng.uniform(8.0, 12.0)
        else:
            at = rng.choice(readings, 12, replace=False)
            degrees[row, at] += rng.uniform(10.0, 15.0, 12)

    return _sensor_table(["# ".join(f"{v:.2f}" for v in row) for row in degrees], faulty, fault, labels)


def _sensor_table(text: list[str], faulty: np.ndarray, fault: np.ndarray, labels: bool) -> pa.Table:
    """The sensor generators' table: ``eventid`` from 1, ``sensorinput`` and, with ``labels``,
    ``anomaly`` and ``fault``."""
    columns: dict[str, Any] = {
        "eventid": pa.array(np.arange(1, len(text) + 1, dtype=np.int64)),
        "sensorinput": pa.array(text, pa.string()),
    }
    if labels:
        columns["anomaly"] = pa.array(faulty)
        columns["fault"] = pa.array(list(fault), pa.string())
    return pa.table(columns)


def sensor_matrix(table: pa.Table, column: str = "sensorinput") -> np.ndarray:
    """The ``#``-separated readings of ``column`` as a float32 matrix [events, readings]."""
    values = table.column(column).to_pylist()
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    return np.array([[float(v) for v in row.split("#")] for row in values], dtype=np.float32)


def write_events(
    bootstrap: Bootstrap,
    topic: str,
    table: pa.Table,
    *,
    rate: float | None = None,
    format: Literal["json", "csv", "delimited", "avro"] = "json",
    key: str | None = None,
    chunk: int = 1_000,
    config: dict[str, Any] | None = None,
) -> int:
    """Writes ``table`` to ``topic``; with ``rate`` (rows per second), paced like a live feed.

    Rows go out in chunks of ``chunk``; between chunks the writer sleeps so the average rate
    holds. Returns the number of rows written. Ctrl-C stops it between chunks.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    written = 0
    with Producer(bootstrap_servers(bootstrap), topic, format=format, key=key, config=config) as producer:
        started = time.perf_counter()
        for offset in range(0, table.num_rows, chunk):
            written += producer.send(table.slice(offset, chunk))
            if rate is not None:
                due = started + written / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
        producer.flush()
    return written
