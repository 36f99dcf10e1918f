"""``python -m kafkaml demo``: the talk's pipeline end to end, on LocalKafka by default.

generate -> Kafka -> preprocess -> train -> deploy -> report, as in the talk "IoT Sensor
Analytics with Apache Kafka, KSQL and TensorFlow":

1. credit-card transactions in the talk's DELIMITED source form go into a topic;
2. preprocessing (the talk's KSQL ``CREATE STREAM ... AS SELECT`` that drops ``Id``,
   ``Timestamp`` and ``User`` and keeps rows with a ``Class``) runs in kafkaml itself: the
   topic is replayed into Arrow, filtered and projected, and written as JSON;
3. the preprocessed topic is replayed into a numpy matrix and the talk's autoencoder
   (30-14-7-7-30) is trained on the normal transactions in Keras;
4. the model is frozen, loaded into kafkaml's Rust runtime (tract), checked against Keras,
   and deployed as a StreamScorer on a live stream of new transactions;
5. precision, recall and throughput are reported.

Without TensorFlow, ``--model PATH`` deploys a model trained elsewhere (a frozen ``.pb`` or
an ``.onnx``) instead of training one.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kafkaml
from kafkaml import datasets

FEATURES = datasets.FEATURES
TALK_DECLARATIONS = (
    ["Id bigint", "Timestamp varchar", "User varchar", "Time int"]
    + [f"V{i} double" for i in range(1, 29)]
    + ["Amount double", "Class string"]
)
# LocalKafka keeps every message: the partitions are a choice, not a limit.
PARTITIONS = 3


def say(message: str) -> None:
    print(message, flush=True)


def preprocess(bootstrap: str, source: str, target: str) -> int:
    """The talk's CSAS in Arrow: drop Id/Timestamp/User, keep rows with a Class, as JSON."""
    table = kafkaml.read_topic(bootstrap, source, format="delimited", schema=TALK_DECLARATIONS)
    table = table.filter(pc.is_valid(table.column("Class")))
    table = table.select([*FEATURES, "Class"]).set_column(
        len(FEATURES), "Class", pc.cast(table.column("Class"), pa.int32())
    )
    return kafkaml.write_topic(bootstrap, target, table, format="json", config={"sticky.partitioning.linger.ms": 0})


def train(x_normal: np.ndarray, epochs: int, seed: int) -> Any:
    """The talk's autoencoder (30-14-7-7-30; tanh, relu, tanh, relu), trained to reconstruct
    standardised normal transactions."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    width = x_normal.shape[1]
    model = tf.keras.Sequential(
        [
            tf.keras.Input((width,), name="transaction"),
            tf.keras.layers.Dense(14, activation="tanh", activity_regularizer=tf.keras.regularizers.l1(1e-5)),
            tf.keras.layers.Dense(7, activation="relu"),
            tf.keras.layers.Dense(7, activation="tanh"),
            tf.keras.layers.Dense(width, activation="linear"),
        ]
    )
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(x_normal, x_normal, epochs=epochs, batch_size=64, shuffle=True, verbose=2, validation_split=0.1)
    return model


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported; if not, says how to get it or do without."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        say(
            "   TensorFlow is not installed: install the training extra (pip install 'kafkaml[train]',\n"
            "   or scripts/setup --train), or pass --model PATH to deploy a trained model instead."
        )
        return False
    return True


def precision_recall(flags: np.ndarray, fraud: np.ndarray) -> tuple[float, float]:
    true_positive = float(np.sum(flags & fraud))
    precision = true_positive / max(1.0, float(np.sum(flags)))
    recall = true_positive / max(1.0, float(np.sum(fraud)))
    return precision, recall


def run(
    bootstrap: str | None = None,
    rows: int = 60_000,
    live_rows: int = 20_000,
    epochs: int = 5,
    model_path: str | None = None,
    seed: int = 7,
) -> int:
    started_all = time.perf_counter()
    local = kafkaml.LocalKafka() if bootstrap is None else None
    address = bootstrap or local.bootstrap_servers  # type: ignore[union-attr]
    suffix = "" if local is not None else f"-{uuid.uuid4().hex[:8]}"
    source, preprocessed, live, scores, backlog_scores = (
        f"{name}{suffix}" for name in ("creditcard-source", "creditcard", "transactions", "anomalies", "backlog-scores")
    )
    try:
        if local is not None:
            for topic in (source, preprocessed, live, scores, backlog_scores):
                local.create_topic(topic, partitions=PARTITIONS)
        where = "LocalKafka (in-process)" if local is not None else address
        say(f"kafkaml {kafkaml.__version__}: the talk's pipeline on {where}")

        # 1. integrate: the DELIMITED source stream
        t0 = time.perf_counter()
        history = datasets.credit_card_source(rows, seed=seed)
        written = kafkaml.write_topic(
            address, source, history, format="csv", config={"sticky.partitioning.linger.ms": 0}
        )
        say(f"1. wrote {written:,} transactions (DELIMITED) to {source!r} in {time.perf_counter() - t0:.1f} s")

        # 2. preprocess (the talk's KSQL step, here in Arrow)
        t0 = time.perf_counter()
        kept = preprocess(address, source, preprocessed)
        say(
            f"2. preprocessed {kept:,} rows into {preprocessed!r} (JSON, Id/Timestamp/User dropped, Class not null) "
            f"in {time.perf_counter() - t0:.1f} s — no KSQL server needed"
        )

        # 3. replay into numpy, train
        t0 = time.perf_counter()
        table = kafkaml.read_topic(address, preprocessed, schema=[*(f"{f} DOUBLE" for f in FEATURES), "Class INT"])
        x = kafkaml.to_numpy(table, columns=FEATURES)
        fraud = table.column("Class").to_numpy() == 1
        say(
            f"3. replayed {len(x):,} rows into a {x.shape} float32 matrix in {time.perf_counter() - t0:.2f} s "
            f"({int(fraud.sum())} frauds)"
        )
        rng = np.random.default_rng(seed)
        test_rows = rng.random(len(x)) < 0.2
        mean = x[~test_rows & ~fraud].mean(axis=0)
        scale = x[~test_rows & ~fraud].std(axis=0) + 1e-6
        standardised = (x - mean) / scale
        workdir = Path(tempfile.mkdtemp(prefix="kafkaml-demo-"))
        if model_path is None:
            if not tensorflow_installed():
                return 2
            t0 = time.perf_counter()
            keras_model = train(standardised[~test_rows & ~fraud], epochs, seed)
            say(f"   trained {epochs} epochs in {time.perf_counter() - t0:.1f} s")
            model_file = workdir / "autoencoder.pb"
            kafkaml.export.freeze_keras(keras_model, model_file)
            model = kafkaml.Model.load(model_file)
            sample = standardised[test_rows][:1000]
            parity = float(np.max(np.abs(model.predict(sample) - keras_model(sample, training=False).numpy())))
            say(
                f"4. froze the model to {model_file.name}, loaded it in kafkaml (tract): max |kafkaml - Keras| = {parity:.1e}"
            )
            scaling: tuple[np.ndarray, np.ndarray] | None = (mean, scale)
        else:
            model = kafkaml.Model.load(model_path)
            scaling = None
            standardised = x
            say(f"4. loaded {model_path} in kafkaml (tract): {model!r}")

        # threshold: the 99th percentile of the normal held-out rows' reconstruction errors
        errors = model.reconstruction_error(standardised[test_rows])
        threshold = float(np.quantile(errors[~fraud[test_rows]], 0.99))
        precision, recall = precision_recall(errors > threshold, fraud[test_rows])
        say(
            f"   threshold {threshold:.3f} (99th percentile of normal rows); held-out rows: "
            f"precision {precision:.2f}, recall {recall:.2f}"
        )

        # 5. deploy: score a live stream of new transactions
        stream = datasets.credit_card_transactions(live_rows, seed=seed + 1)
        stream = stream.add_column(0, "Id", pa.array(np.arange(live_rows, dtype=np.int64)))

        def feed(rows: pa.Table) -> None:
            datasets.write_events(
                address, live, rows, rate=live_rows / 5.0, chunk=500, config={"sticky.partitioning.linger.ms": 0}
            )

        first = min(500, live_rows)
        t0 = time.perf_counter()
        feed(stream.slice(0, first))  # the first events create the topic on a real broker
        writer = threading.Thread(target=feed, args=(stream.slice(first),))
        scorer = kafkaml.StreamScorer(
            address,
            live,
            scores,
            model,
            features=FEATURES,
            id_columns=["Id"],
            scaling=scaling,
            threshold=threshold,
            group_id=f"demo-scorer{suffix}",
        )
        writer.start()
        scorer.start()
        writer.join()
        stats = scorer.run(until="caught_up", timeout=120)
        took = time.perf_counter() - t0
        say(
            f"5. StreamScorer kept pace with a live stream of {stats['consumed']:,} transactions "
            f"(written over ~5 s): all scored {took:.1f} s after the feed began"
        )

        results = kafkaml.read_topic(address, scores, schema="Id BIGINT, score DOUBLE, anomaly BOOLEAN")
        by_id = results.sort_by("Id")
        flags = by_id.column("anomaly").to_numpy(zero_copy_only=False)
        truth = stream.column("Class").to_numpy()[by_id.column("Id").to_numpy()] == 1
        precision, recall = precision_recall(flags, truth)
        say(
            f"   {results.num_rows:,} results in {scores!r}: {int(flags.sum())} anomalies flagged, "
            f"{int(truth.sum())} real frauds; precision {precision:.2f}, recall {recall:.2f}"
        )
        if results.num_rows != live_rows:
            say(f"   MISMATCH: {live_rows:,} events in, {results.num_rows:,} results out")
            return 1

        # 6. throughput: the whole preprocessed history as a backlog, as fast as it goes
        backlog = kafkaml.StreamScorer(
            address,
            preprocessed,
            backlog_scores,
            model,
            features=FEATURES,
            scaling=scaling,
            threshold=threshold,
            group_id=f"demo-backlog{suffix}",
        )
        t0 = time.perf_counter()
        stats = backlog.run(until=rows, timeout=120)
        took = time.perf_counter() - t0
        say(
            f"6. StreamScorer on a backlog of {stats['produced']:,} events: {stats['produced'] / took:,.0f} events/s "
            f"end to end (consume, decode, score, produce, commit; includes joining the group)"
        )
        say(f"done in {time.perf_counter() - started_all:.0f} s")
        return 0
    finally:
        if local is not None:
            local.stop()
