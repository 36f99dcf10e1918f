"""MQTT into Kafka: kafkaml's MqttProxy side by side with the usual Python bridge (a paho-mqtt
subscriber on a Mosquitto broker, writing with confluent-kafka's producer), in one run.

    python benchmarks/bench_mqtt.py [--publishers 10] [--messages 5000] [--rate 1000]

The same load drives both paths: ``--publishers`` MQTT clients publish ``--messages`` readings
of the talk's size (an event id and 210 temperatures, ~1.3 kB) at QoS 0 and then QoS 1
(waiting for every PUBACK). Path 1: publishers -> MqttProxy -> Kafka.
Path 2: publishers -> Mosquitto (started here on a free port) -> paho subscriber (QoS of the
load, in its own process) -> confluent-kafka producer -> Kafka. Path 3: the same through
``kafkaml.MqttBridge`` instead of the Python bridge. Throughput is records landed
in Kafka per second, from the first publish until the topic holds them all, or until it stops
growing for 5 s; records that never land are counted as lost. Latency: one publisher at
``--rate`` msgs/s at QoS 1 for 5 s, each payload carrying its send time, against the broker's
LogAppendTime (1 ms resolution). Prints the ratios; saves benchmarks/results/mqtt.json.

The throughput load generator is kafkaml's Rust MQTT client (``kafkaml.mqtt_publish``): each
publisher a thread of its own with the GIL released, 100 messages in flight at QoS 1. The
latency run paces one paho-mqtt publisher (1,000 msgs/s is well within Python's reach).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import kafka_broker, machine, save  # noqa: E402

PAYLOAD = ("99999," + "# ".join(f"{2.1 + (i % 50) * 0.1:.2f}" for i in range(210))).encode()
QUIET_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def landed(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            high - low
            for low, high in (consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions)
        )
    finally:
        consumer.close()


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, partitions, 1, config={"message.timestamp.type": "LogAppendTime"})
    for future in admin.create_topics([topic]).values():
        future.result()
    return name


def python_bridge(mqtt_port: int, bootstrap: str, topic: str, qos: int, ready: Any) -> None:
    """The usual bridge: paho subscriber -> confluent-kafka producer (one message at a time)."""
    import paho.mqtt.client as paho
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def on_message(client, userdata, message) -> None:
        while True:
            try:
                producer.produce(topic, key=message.topic.encode(), value=message.payload)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bridge-{uuid.uuid4().hex[:6]}")
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("car/#", qos=qos)
    client.on_subscribe = lambda *args: ready.set()
    client.connect("127.0.0.1", mqtt_port, keepalive=120)
    try:
        while True:
            client.loop(timeout=0.1)
            producer.poll(0)
    finally:
        producer.flush(10)


def drive(bootstrap: str, port: int, topic: str, qos: int, publishers: int, messages: int) -> dict[str, Any]:
    """Runs the publishers against ``port``; measures until ``topic`` holds every record.

    Each publisher is kafkaml's Rust MQTT client (``kafkaml.mqtt_publish``, 100 in flight) on
    a thread of its own; it releases the GIL, so the threads publish in parallel."""
    import kafkaml

    payloads = [PAYLOAD] * messages
    start = threading.Event()
    failures: list[BaseException] = []

    def device(index: int) -> None:
        start.wait()
        try:
            kafkaml.mqtt_publish(
                f"mqtt://127.0.0.1:{port}",
                f"car/{index}/temperature",
                payloads,
                qos=qos,
                in_flight=100,
                client_id=f"bench-{index}-{uuid.uuid4().hex[:6]}",
                timeout=120,
            )
        except BaseException as error:  # counted as lost below; said here
            failures.append(error)

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(publishers)]
    for thread in threads:
        thread.start()
    expected = publishers * messages
    started = time.perf_counter()
    start.set()
    count, last_change, last_count = 0, time.perf_counter(), -1
    while count < expected:
        time.sleep(0.05)
        count = landed(bootstrap, topic)
        if count != last_count:
            last_change, last_count = time.perf_counter(), count
        elif time.perf_counter() - last_change > QUIET_SECONDS:
            break
    seconds = (last_change if count < expected else time.perf_counter()) - started
    for thread in threads:
        thread.join(timeout=60)
    for failure in failures:
        print(f"  a publisher failed: {failure}", flush=True)
    return {
        "expected": expected,
        "landed": count,
        "lost": expected - count,
        "publisher_failures": len(failures),
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds, 1),
    }


def latency(bootstrap: str, port: int, topic: str, rate: int, seconds: float = 5.0) -> dict[str, Any]:
    """One QoS 1 publisher at ``rate`` msgs/s; publish-to-Kafka latency from LogAppendTime."""
    import paho.mqtt.client as paho
    from confluent_kafka import Consumer

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"latency-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    total = int(rate * seconds)
    began = time.perf_counter()
    for i in range(total):
        target = began + i / rate
        pause = target - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        client.publish("car/latency/temperature", f"{time.time() * 1000:.3f},".encode() + PAYLOAD, qos=1)
    time.sleep(2)
    client.disconnect()
    client.loop_stop()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    delays: list[float] = []
    deadline = time.monotonic() + 60
    while len(delays) < total and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        sent_ms = float(message.value().split(b",", 1)[0])
        delays.append(message.timestamp()[1] - sent_ms)
    consumer.close()
    delays.sort()

    def at(q: float) -> float:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else float("nan")

    return {"rate": rate, "messages": total, "landed": len(delays), "p50_ms": at(0.50), "p99_ms": at(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000, help="per publisher and QoS")
    parser.add_argument("--rate", type=int, default=1000, help="msgs/s of the latency run")
    args = parser.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        sys.exit("mosquitto is missing: scripts/setup --test installs it")

    import kafkaml

    results: dict[str, Any] = {"machine": machine(), "publishers": args.publishers, "messages": args.messages}
    context = multiprocessing.get_context("spawn")
    with kafka_broker() as bootstrap, tempfile.TemporaryDirectory() as folder:
        mosquitto_port = free_port()
        conf = Path(folder) / "mosquitto.conf"
        # Mosquitto's default in-flight and queue limits would drop QoS 0 messages under load
        # for the slow subscriber; unlimited, so losses are the bridge's own.
        conf.write_text(
            f"listener {mosquitto_port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            "max_inflight_messages 0\npersistence false\n"
        )
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            for qos in (0, 1):
                run = uuid.uuid4().hex[:8]
                proxy_topic = create_topic(bootstrap, f"bench-mqtt-proxy-q{qos}-{run}")
                bridge_topic = create_topic(bootstrap, f"bench-mqtt-bridge-q{qos}-{run}")
                with kafkaml.MqttProxy(bootstrap, {proxy_topic: "car/.*"}) as proxy:
                    proxy_side = drive(bootstrap, proxy.port, proxy_topic, qos, args.publishers, args.messages)
                    proxy_side["stats"] = {k: v for k, v in proxy.stats().items() if isinstance(v, int)}
                ready = context.Event()
                bridge = context.Process(
                    target=python_bridge, args=(mosquitto_port, bootstrap, bridge_topic, qos, ready)
                )
                bridge.start()
                ready.wait(30)
                bridge_side = drive(bootstrap, mosquitto_port, bridge_topic, qos, args.publishers, args.messages)
                bridge.terminate()
                bridge.join(10)
                # kafkaml's own bridge on the same Mosquitto: the Python bridge's job in Rust
                ours_topic = create_topic(bootstrap, f"bench-mqtt-mqttbridge-q{qos}-{run}")
                with kafkaml.MqttBridge(
                    bootstrap,
                    f"mqtt://127.0.0.1:{mosquitto_port}",
                    {ours_topic: "car/.*"},
                    "car/#",
                    qos=qos,
                    client_id=f"bench-bridge-{run}-q{qos}",
                ):
                    ours = drive(bootstrap, mosquitto_port, ours_topic, qos, args.publishers, args.messages)
                ratio = proxy_side["records_per_s"] / max(bridge_side["records_per_s"], 1e-9)
                bridge_ratio = ours["records_per_s"] / max(bridge_side["records_per_s"], 1e-9)
                results[f"qos{qos}"] = {
                    "proxy": proxy_side,
                    "python_bridge": bridge_side,
                    "ratio": round(ratio, 2),
                    "mqtt_bridge": ours,
                    "mqtt_bridge_ratio": round(bridge_ratio, 2),
                }
                print(
                    f"QoS {qos}: MqttProxy {proxy_side['records_per_s']:,.0f} records/s "
                    f"(lost {proxy_side['lost']}), paho+Mosquitto+confluent-kafka bridge "
                    f"{bridge_side['records_per_s']:,.0f} records/s (lost {bridge_side['lost']}): "
                    f"{ratio:.2f}x; kafkaml.MqttBridge on the same Mosquitto {ours['records_per_s']:,.0f} "
                    f"records/s (lost {ours['lost']}): {bridge_ratio:.2f}x the Python bridge",
                    flush=True,
                )
            run = uuid.uuid4().hex[:8]
            proxy_topic = create_topic(bootstrap, f"bench-mqtt-latency-proxy-{run}")
            bridge_topic = create_topic(bootstrap, f"bench-mqtt-latency-bridge-{run}")
            with kafkaml.MqttProxy(bootstrap, {proxy_topic: "car/.*"}) as proxy:
                proxy_latency = latency(bootstrap, proxy.port, proxy_topic, args.rate)
            ready = context.Event()
            bridge = context.Process(target=python_bridge, args=(mosquitto_port, bootstrap, bridge_topic, 1, ready))
            bridge.start()
            ready.wait(30)
            bridge_latency = latency(bootstrap, mosquitto_port, bridge_topic, args.rate)
            bridge.terminate()
            bridge.join(10)
            results["latency_qos1"] = {"proxy": proxy_latency, "python_bridge": bridge_latency}
            print(
                f"latency at {args.rate} msgs/s, QoS 1: MqttProxy p50 {proxy_latency['p50_ms']} ms, "
                f"p99 {proxy_latency['p99_ms']} ms; bridge p50 {bridge_latency['p50_ms']} ms, "
                f"p99 {bridge_latency['p99_ms']} ms",
                flush=True,
            )
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"saved {save('mqtt', results)}")


if __name__ == "__main__":
    main()
