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

TALK_MODEL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "talk" / "autoencoder_fraud.pb"


def run_demo(*arguments: str) -> str:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "kafkaml", "demo", "--rows", "12000", "--live-rows", "3000", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


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
