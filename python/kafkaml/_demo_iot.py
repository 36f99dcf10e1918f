"""``python -m kafkaml demo --iot``: the talk's live IoT demo end to end, on LocalKafka by default.

As in the talk's "KSQL UDF, deep learning, MQTT, IoT" live demo: connected cars publish engine
temperatures over MQTT (``car/engine/temperature``, QoS 2, an event id and 210 readings as its
``sensor_generator.sh`` makes them); an MQTT proxy configured by the demo's
``kafka-mqtt-quickstart.properties`` writes them to the Kafka topic ``temperature``; KSQL
declares ``CARSENSOR`` over it, scores every event with the ``ANOMALY`` UDF (an autoencoder's
reconstruction error) and keeps the events above 3 in ``ANOMALYDETECTIONWITHFILTER``.

Every part is embedded: LocalKafka, :class:`kafkaml.MqttProxy`, :func:`kafkaml.mqtt_publish`
as the cars, and :class:`kafkaml.ksql.LocalKsql` with a :class:`kafkaml.Model` as ``ANOMALY``.
The demo's KSQL statements run as the talk writes them.

1. train the sensor autoencoder in Keras on normal engine runs (or ``--model PATH``);
2. start the proxy from the talk's properties file, and the KSQL engine with the model;
3. run the demo's statements, then publish live events at QoS 2 and print each breach as
   ``SELECT * FROM ANOMALYDETECTIONWITHFILTER EMIT CHANGES`` delivers it;
4. report how the breaches compare with the faults injected, and what each part counted.
"""

from __future__ import annotations

import datetime
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import kafkaml
from kafkaml import datasets
from kafkaml._demo import say, tensorflow_installed
from kafkaml.ksql import KsqlError, LocalKsql, model_udf

# The live demo's kafka-mqtt-quickstart.properties, as the talk writes it; the demo replaces
# bootstrap.servers and listeners (1883 may be taken) and keeps the rest.
QUICKSTART_PROPERTIES = """topic.regex.list=temperature:.*temperature
listeners=0.0.0.0:1883
bootstrap.servers=PLAINTEXT://localhost:9092
confluent.topic.replication.factor=1
"""
MQTT_TOPIC = "car/engine/temperature"
# The demo's statements, as it writes them.
CREATE_CARSENSOR = (
    "CREATE STREAM carsensor (eventid integer, sensorinput varchar) "
    "WITH (kafka_topic='temperature', value_format='DELIMITED');"
)
CREATE_ANOMALYDETECTION = (
    "CREATE STREAM ANOMALYDETECTION AS SELECT EVENTID, CAST (ANOMALY(SENSORINPUT) AS DOUBLE) AS ANOMALY_VAL "
    "FROM CARSENSOR;"
)
CREATE_WITH_FILTER = (
    "CREATE STREAM ANOMALYDETECTIONWITHFILTER AS SELECT EVENTID, ANOMALY_VAL FROM ANOMALYDETECTION "
    "WHERE ANOMALY_VAL > 3;"
)
THRESHOLD = 3.0


def train(readings: np.ndarray, epochs: int, seed: int) -> Any:
    """An autoencoder over 210 engine temperatures (210-64-16-64-210), trained to reconstruct
    normal runs. The UDF hands it the readings as they are, so the scaling of the sensor's
    range (2 to 8 degrees) to [-1, 1] and back is part of the model."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    width = readings.shape[1]
    model = tf.keras.Sequential(
        [
            tf.keras.Input((width,), name="sensorinput"),
            tf.keras.layers.Rescaling(1 / 3, offset=-5 / 3),
            tf.keras.layers.Dense(64, activation="tanh"),
            tf.keras.layers.Dense(16),
            tf.keras.layers.Dense(64, activation="tanh"),
            tf.keras.layers.Dense(width),
            tf.keras.layers.Rescaling(3, offset=5),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.003), loss="mean_squared_error")
    model.fit(readings, readings, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    return model


def messages(events: Any) -> list[str]:
    """The MQTT payloads: ``<eventid>,<readings>``, the script's message body."""
    ids = events.column("eventid").to_pylist()
    texts = events.column("sensorinput").to_pylist()
    return [f"{eventid},{text}" for eventid, text in zip(ids, texts)]


def run(
    bootstrap: str | None = None,
    events: int = 500,
    training_events: int = 3_000,
    rate: float = 100.0,
    epochs: int = 30,
    model_path: str | None = None,
    seed: int = 7,
) -> int:
    started_all = time.perf_counter()
    local = kafkaml.LocalKafka() if bootstrap is None else None
    address = bootstrap or local.bootstrap_servers  # type: ignore[union-attr]
    try:
        where = "LocalKafka (in-process)" if local is not None else address
        say(f"kafkaml {kafkaml.__version__}: the talk's IoT demo (MQTT -> Kafka -> KSQL with a model UDF) on {where}")

        # 1. the model
        workdir = Path(tempfile.mkdtemp(prefix="kafkaml-demo-iot-"))
        if model_path is None:
            if not tensorflow_installed():
                return 2
            t0 = time.perf_counter()
            normal = datasets.talk_sensor_events(training_events, fault_rate=0.0, seed=seed)
            x = datasets.sensor_matrix(normal)
            keras_model = train(x, epochs, seed)
            model_file = workdir / "sensor_autoencoder.pb"
            kafkaml.export.freeze_keras(keras_model, model_file)
            model = kafkaml.Model.load(model_file)
            errors = model.reconstruction_error(x)
            say(
                f"1. trained a {x.shape[1]}-64-16-64-{x.shape[1]} autoencoder on {len(x):,} normal engine runs "
                f"({epochs} epochs, {time.perf_counter() - t0:.1f} s); reconstruction error of normal runs: "
                f"median {np.median(errors):.2f}, max {errors.max():.2f} (the demo flags > {THRESHOLD:g})"
            )
        else:
            model = kafkaml.Model.load(model_path)
            say(f"1. loaded {model_path}: {model!r}")

        # 2. the proxy and the engine
        if local is not None:
            local.create_topic("temperature", partitions=1)
        with warnings.catch_warnings():
            # said below: the one key of the talk's file that a single broker has no use for
            warnings.filterwarnings("ignore", "MQTT proxy properties not used")
            proxy = kafkaml.MqttProxy.from_properties(QUICKSTART_PROPERTIES, bootstrap=address, listen="127.0.0.1:0")
        with (
            proxy,
            LocalKsql(address, udfs={"ANOMALY": model_udf(model, input="#-separated")}) as ksql,
            ksql.client() as client,
        ):
            say(
                f"2. MqttProxy on {proxy.url} from the talk's kafka-mqtt-quickstart.properties "
                f"(topic.regex.list=temperature:.*temperature; confluent.topic.replication.factor ignored); "
                f"LocalKsql on {ksql.url} with ANOMALY = the model"
            )

            # 3. the demo's statements, then the cars
            try:
                client.ksql(CREATE_CARSENSOR)
            except KsqlError as error:
                if local is None and "temperature" in str(error):
                    say(
                        f"   {error}\n   Create the topic first, as the talk does: kafka-topics --create "
                        f"--bootstrap-server {address} --partitions 1 --topic temperature"
                    )
                    return 2
                raise
            client.ksql(CREATE_ANOMALYDETECTION)
            client.ksql(CREATE_WITH_FILTER)
            # The queries start at the topics' ends (ksqlDB's default, so older records on a
            # shared cluster are not scored): let them take their positions before the cars go.
            ksql.wait_for_queries(timeout=60)
            say(
                "3. CREATE STREAM carsensor ... ANOMALYDETECTION ... ANOMALYDETECTIONWITHFILTER (WHERE ANOMALY_VAL > 3)"
            )
            live = datasets.talk_sensor_events(events, seed=seed + 1)
            payloads = messages(live.select(["eventid", "sensorinput"]))
            faults = {
                eventid: kind
                for eventid, kind in zip(live.column("eventid").to_pylist(), live.column("fault").to_pylist())
                if kind
            }
            published: list[int] = []
            failure: list[BaseException] = []
            finished: list[float] = []  # seconds the cars took

            def cars() -> None:
                """Publishes in chunks of a tenth of a second, paced at ``rate`` events/s."""
                chunk = max(1, int(rate / 10))
                t_start = time.perf_counter()
                try:
                    for offset in range(0, len(payloads), chunk):
                        published.append(
                            kafkaml.mqtt_publish(
                                proxy.url,
                                MQTT_TOPIC,
                                payloads[offset : offset + chunk],
                                qos=2,
                                client_id=f"car-{uuid.uuid4().hex[:8]}",
                            )
                        )
                        pause = t_start + (offset + chunk) / rate - time.perf_counter()
                        if pause > 0:
                            time.sleep(pause)
                except BaseException as error:  # reported by the main thread
                    failure.append(error)
                finished.append(time.perf_counter() - t_start)

            say(
                f"   publishing {events:,} events at QoS 2 to {MQTT_TOPIC!r} at {rate:g} events/s; breaches as they come:"
            )
            # (Kafka's timestamps are milliseconds: a margin below the first record's)
            t0, started_at = (
                time.perf_counter(),
                datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(milliseconds=5),
            )
            publisher = threading.Thread(target=cars, name="cars", daemon=True)
            publisher.start()
            last_breach_at: list[float] = []
            # The push query shows breaches as they come; it ends once none came for a while
            # after the cars stopped (a read cannot be interrupted from here otherwise).
            with client.query(
                "SELECT * FROM ANOMALYDETECTIONWITHFILTER EMIT CHANGES;", idle_timeout=max(5.0, 50 / rate)
            ) as query:
                for row in query:
                    eventid, value = int(row["EVENTID"]), float(row["ANOMALY_VAL"])
                    last_breach_at.append(time.perf_counter() - t0)
                    say(
                        f"   {last_breach_at[-1]:6.1f} s  EVENTID {eventid:>5}  ANOMALY_VAL {value:8.3f}  "
                        f"({faults.get(eventid) or 'no fault injected'})"
                    )
            publisher.join(timeout=60)
            if failure:
                raise failure[0]
            if publisher.is_alive():
                raise TimeoutError("the cars were still publishing 60 s after the last breach")
            queries = ksql.wait_for_queries(timeout=120)

            # 4. report: this run's breaches, from the sink topic (the live view may have ended early)
            sink = kafkaml.read_topic(
                address,
                "ANOMALYDETECTIONWITHFILTER",
                format="delimited",
                schema="EVENTID INT, ANOMALY_VAL DOUBLE",
                start=started_at,
            )
            breaches = set(sink.column("EVENTID").to_pylist())
            caught = breaches & set(faults)
            precision = len(caught) / max(1, len(breaches))
            recall = len(caught) / max(1, len(faults))
            proxy_stats = proxy.stats()
            last_breach = f"{last_breach_at[-1]:.1f} s" if last_breach_at else "-"
            say(
                f"4. {sum(published):,} events published in {finished[0]:.1f} s and acknowledged (QoS 2); the proxy "
                f"wrote {proxy_stats['written']:,} records to 'temperature' ({proxy_stats['duplicates']} "
                f"retransmissions answered, {proxy_stats['refused']} refused); the last breach came at {last_breach}"
            )
            say(
                f"   ANOMALYDETECTIONWITHFILTER holds {sink.num_rows} breaches: {len(caught)} of {len(faults)} "
                f"injected faults caught (precision {precision:.2f}, recall {recall:.2f})"
            )
            for name, stats in sorted(queries.items()):
                say(f"   query {name}: {stats['records_in']:,} records in, {stats['records_out']:,} out")
            complete = sum(published) == events and proxy_stats["written"] == events
        say(f"done in {time.perf_counter() - started_all:.0f} s")
        return 0 if complete else 1
    finally:
        if local is not None:
            local.stop()
