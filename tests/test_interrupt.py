"""Ctrl-C interrupts a consumer that waits for messages (the GIL is released while it reads)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from typing import Callable


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
