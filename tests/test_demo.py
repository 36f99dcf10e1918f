"""`python -m kafkaml demo`, the newcomer's command, runs the talk's pipeline to the end.

Small sizes keep it short; the demo itself checks that every live event got one result and
exits non-zero otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from kafka_helpers import produce

TALK_MODEL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "talk" / "autoencoder_fraud.pb"


def demo_output(*arguments: str) -> str:
    """``python -m kafkaml demo ARGUMENTS``'s output; fails unless it exits 0."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "kafkaml", "demo", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def run_demo(*arguments: str) -> str:
    return demo_output("--rows", "12000", "--live-rows", "3000", *arguments)


def test_demo_trains_and_deploys_on_local_kafka() -> None:
    out = run_demo("--epochs", "1")
    assert "on LocalKafka (in-process)" in out
    assert "preprocessed 12,000 rows" in out
    parity = float(re.search(r"max \|kafkaml - Keras\| = (\S+)", out).group(1))  # type: ignore[union-attr]
    assert parity < 1e-4
    assert "3,000 results in 'anomalies'" in out
    assert re.search(r"precision \d\.\d\d, recall \d\.\d\d", out)
    assert re.search(r"backlog of 12,000 events: [\d,]+ events/s", out)


def test_demo_deploys_a_given_model_on_the_real_broker(bootstrap: str) -> None:
    out = run_demo("--bootstrap", bootstrap, "--model", str(TALK_MODEL))
    assert f"on {bootstrap}" in out
    assert f"loaded {TALK_MODEL}" in out
    assert "Epoch" not in out  # nothing trained
    assert re.search(r"3,000 results in 'anomalies-[0-9a-f]{8}'", out)


def run_iot_demo(*arguments: str) -> str:
    return demo_output("--iot", "--events", "300", "--rate", "150", *arguments)


def faults_caught(out: str) -> tuple[int, int, float, float]:
    found = re.search(r"(\d+) of (\d+) injected faults caught \(precision (\S+), recall (\S+)\)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2)), float(found.group(3)), float(found.group(4))


def test_iot_demo_mqtt_to_ksql_catches_the_faults_on_local_kafka() -> None:
    """Cars publish over MQTT at QoS 2, the proxy writes them to Kafka, the demo's KSQL
    statements score them with the ANOMALY model UDF: every event lands once and the
    breaches are the injected faults."""
    out = run_iot_demo()
    assert "on LocalKafka (in-process)" in out
    assert re.search(
        r"300 events published in [\d.]+ s and acknowledged \(QoS 2\); the proxy wrote 300 records", out
    ), out
    caught, faults, precision, recall = faults_caught(out)
    assert faults >= 5, out  # 5 % of 300 events
    assert precision >= 0.9 and recall >= 0.9, out
    # both persistent queries read every event
    assert len(re.findall(r"query \S+: 300 records in", out)) == 2, out
    assert re.search(r"EVENTID +\d+ +ANOMALY_VAL +\d", out), "no breach was shown live"


def test_iot_demo_on_the_real_broker(bootstrap: str, temperature_topic: str, confluent_producer) -> None:
    """On a cluster the talk's `temperature` topic is made first (as the talk does with
    kafka-topics); records already in it are not scored again."""
    produce(confluent_producer, temperature_topic, ["1,2.10# 2.13", "2,2.10# 2.13"], partitions=1)
    out = run_iot_demo("--bootstrap", bootstrap, "--epochs", "15")
    assert f"on {bootstrap}" in out
    assert "the proxy wrote 300 records" in out
    assert len(re.findall(r"query \S+: 300 records in", out)) == 2, out
    caught, faults, precision, recall = faults_caught(out)
    assert faults >= 5 and recall >= 0.8, out


def test_iot_demo_refuses_a_rate_of_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kafkaml", "demo", "--iot", "--rate", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "--events must be at least 1 and --rate above 0, got 500 and 0.0" in done.stderr
