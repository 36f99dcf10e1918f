"""Shared helpers for the side-by-side benchmarks: a real broker, workers in fresh processes."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@contextlib.contextmanager
def kafka_broker() -> Iterator[str]:
    """The broker in KAFKA_BOOTSTRAP, or a real one started (and stopped) for the run."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    script = ROOT / "scripts" / "kafka-server"
    address = subprocess.run([str(script), "start"], check=True, capture_output=True, text=True).stdout.split()[-1]
    try:
        yield address
    finally:
        subprocess.run([str(script), "stop"], check=False, capture_output=True)


def run_worker(script: Path, *args: str) -> dict[str, Any]:
    """Runs ``script --worker args...`` in a fresh interpreter; returns the JSON it prints last."""
    done = subprocess.run([sys.executable, str(script), "--worker", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB (VmHWM: unlike ru_maxrss, not inherited
    from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def broker_cpu_seconds() -> float | None:
    """CPU time the local Apache Kafka broker process has used so far (from /proc), or None
    when there is not exactly one such process on this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"kafka.Kafka" in (proc / "cmdline").read_bytes():
                found.append(proc)
        except OSError:
            continue
    if len(found) != 1:
        return None
    fields = (found[0] / "stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(seconds: float = 0.5) -> None:
    """Waits out the threads that imports start: importing numpy starts OpenBLAS threads that
    spin for ~0.1 s of CPU, which would otherwise be charged to whichever reader starts its
    timer right after its imports. Every worker of a benchmark calls it alike."""
    time.sleep(seconds)


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several runs of one side (by ``seconds``), with every run's seconds in
    ``all_seconds`` (and ``all_cpu_seconds``, ``all_broker_cpu_seconds`` when measured) and,
    when runs measure memory, the worst ``peak_rss_mb`` of them."""
    best = dict(min(runs, key=lambda r: r["seconds"]), all_seconds=[r["seconds"] for r in runs])
    for key in ("cpu_seconds", "broker_cpu_seconds"):
        if all(key in r for r in runs):
            best[f"all_{key}"] = [r[key] for r in runs]
    if "peak_rss_mb" in runs[0]:
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best
