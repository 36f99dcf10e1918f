"""A real Mosquitto broker for the MQTT tests: Debian's, started on a free port with its
sessions kept on disk across restarts (the ``mosquitto`` fixture in conftest.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "mosquitto_pub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A Mosquitto broker on a free port that keeps its sessions on disk across restarts."""

    def __init__(self) -> None:
        assert Path(MOSQUITTO).exists(), "mosquitto is missing: scripts/setup --test installs it"
        self.port = free_port()
        # Started as root, Mosquitto drops to its own user unless told `user root`; its folder
        # sits under /tmp (pytest's tmp_path is private to root's test user).
        self.folder = Path(tempfile.mkdtemp(prefix="kafkaml-mosquitto-", dir="/tmp"))
        self.folder.chmod(0o777)
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.folder}/\nuser root\nmax_queued_messages 100000\n"
            "max_inflight_messages 100\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"Mosquitto did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: it saves its sessions before exiting
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def publish(self, topic: str, messages: list[str], qos: int) -> None:
        """``mosquitto_pub -l``: one message per line of its input, at ``qos``."""
        done = subprocess.run(
            [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-l"],
            input="\n".join(messages) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
