"""Ctrl-C interrupts a consumer that waits for messages (the GIL is released while it reads),
and the messages of the interrupted batch are read again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import kafkaml
import pyarrow as pa


def test_sigint_stops_a_consumer_following_an_idle_topic(bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    script = textwrap.dedent(
        f"""
        import kafkaml
        consumer = kafkaml.Consumer({bootstrap!r}, {topic!r}, format="json", schema="A BIGINT")
        print("reading", flush=True)
        try:
            for batch in consumer:  # follows the topic forever: nothing arrives
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "reading"
    time.sleep(1.0)  # let it settle into the read
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=30)
    assert "interrupted" in out
    assert child.returncode == 0


def test_an_interrupted_batch_is_read_again_not_lost(bootstrap: str, new_topic: Callable[..., str]) -> None:
    # The consumer waits (max_wait_ms=60 s) for a batch of 1,000 while only 10 messages exist;
    # Ctrl-C ends that wait. Iterating on must start again at those 10 messages.
    topic = new_topic(partitions=1)
    script = textwrap.dedent(
        f"""
        import json, sys
        import pyarrow as pa
        import kafkaml
        kafkaml.write_topic({bootstrap!r}, {topic!r}, pa.table({{"A": list(range(10))}}))
        consumer = kafkaml.Consumer({bootstrap!r}, {topic!r}, format="json", schema="A BIGINT",
                                    batch_size=1_000, max_wait_ms=60_000)
        batches = iter(consumer)
        print("reading", flush=True)
        try:
            next(batches)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        sys.stdin.readline()  # the test writes 1,000 more messages meanwhile
        print(json.dumps(next(batches).column("A").to_pylist()), flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "reading"
    time.sleep(2.0)  # the 10 messages are gathered; the batch waits for more
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline().strip() == "interrupted"
    kafkaml.write_topic(bootstrap, topic, pa.table({"A": list(range(10, 1_010))}))
    out, _ = child.communicate("go\n", timeout=60)
    assert json.loads(out.strip().splitlines()[-1]) == list(range(1_000))
    assert child.returncode == 0
