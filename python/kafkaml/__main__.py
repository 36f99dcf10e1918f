"""The kafkaml command line: ``python -m kafkaml demo | local-kafka``."""

from __future__ import annotations

import argparse
import sys
import time


def local_kafka(args: argparse.Namespace) -> int:
    """Runs a LocalKafka in the foreground and prints its address for other clients."""
    from kafkaml import LocalKafka

    with LocalKafka(brokers=args.brokers) as kafka:
        for spec in args.topic:
            name, _, partitions = spec.partition(":")
            kafka.create_topic(name, int(partitions or 1))
        print(kafka.bootstrap_servers, flush=True)
        print("LocalKafka is running (in memory); Ctrl-C stops it.", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def demo(args: argparse.Namespace) -> int:
    """The main job for a newcomer (grows with each part of the talk's pipeline)."""
    from kafkaml._demo import run

    return run(
        bootstrap=args.bootstrap, rows=args.rows, live_rows=args.live_rows, epochs=args.epochs, model_path=args.model
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafkaml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local-kafka", help="run an in-process Kafka cluster in the foreground")
    local.add_argument("--brokers", type=int, default=1)
    local.add_argument("--topic", action="append", default=[], help="NAME[:PARTITIONS] to create (repeatable)")
    local.set_defaults(func=local_kafka)

    run_demo = commands.add_parser("demo", help="run the talk's pipeline on LocalKafka")
    run_demo.add_argument("--bootstrap", default=None, help="use this broker instead of LocalKafka")
    run_demo.add_argument("--rows", type=int, default=60_000, help="transactions to train on")
    run_demo.add_argument("--live-rows", type=int, default=20_000, help="transactions in the live stream")
    run_demo.add_argument("--epochs", type=int, default=5)
    run_demo.add_argument("--model", default=None, help="deploy this trained model (.pb or .onnx) instead of training")
    run_demo.set_defaults(func=demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
