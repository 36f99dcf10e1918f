"""The kafkaml command line: run the demo, a LocalKafka, a Schema Registry, an MQTT proxy or bridge, peek at a topic,
produce to one.

Examples:
  python -m kafkaml peek creditcard -n 5
  python -m kafkaml produce sensors events.jsonl
  python -m kafkaml produce creditcard creditcard.csv --format json
  python -m kafkaml local-kafka --topic creditcard:3
  python -m kafkaml schema-registry --bootstrap 127.0.0.1:9092 --listen 127.0.0.1:8081
  python -m kafkaml mqtt-proxy --config kafka-mqtt-quickstart.properties
  python -m kafkaml mqtt-proxy --topics temperature:.*temperature --listen 0.0.0.0:1883
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
"""The broker the commands use when neither --bootstrap nor KAFKA_BOOTSTRAP names one."""

PRODUCE_CHUNK = 10_000
"""Lines sent per producer call when the input is a file or a pipe (a terminal: each line)."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none: ``None``, a flag's ``False``,
    a repeatable option's empty list."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class _ExamplesFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """The top-level help: defaults as above, and the examples' line breaks kept."""


class CliError(Exception):
    """A usage problem found after parsing (bad input line, missing file): printed, exit 1."""


def _bootstrap_default() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        "-b",
        default=_bootstrap_default(),
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (host:port[,host:port...]): the KAFKA_BOOTSTRAP environment variable "
        f"when set, else {DEFAULT_BOOTSTRAP}",
    )
    parser.add_argument(
        "--config",
        "-X",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka property, e.g. security.protocol=SASL_SSL (repeatable)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the broker"
    )


def _config(pairs: Sequence[str]) -> dict[str, str] | None:
    config = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise CliError(f"--config takes KEY=VALUE, got {pair!r}")
        config[key.strip()] = value
    return config or None


def _schema_argument(text: str | None) -> str | None:
    """--schema as given, or the contents of the file it names (an .avsc or declarations)."""
    if text is None or not os.path.isfile(text):
        return text
    with open(text, encoding="utf-8") as handle:
        return handle.read()


# --- local-kafka, demo ------------------------------------------------------------------


def _wait_for_ctrl_c() -> None:
    """Blocks until Ctrl-C (SIGINT): the foreground services run until then."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def local_kafka(args: argparse.Namespace) -> int:
    """Runs a LocalKafka in the foreground and prints its address for other clients."""
    from kafkaml import LocalKafka

    with LocalKafka(
        brokers=args.brokers, engine=args.engine, path=args.path, partitions=args.partitions, port=args.port
    ) as kafka:
        for spec in args.topic:
            name, _, partitions = spec.partition(":")
            kafka.create_topic(name, int(partitions or 1))
        print(kafka.bootstrap_servers, flush=True)
        where = "in memory" if args.path is None else f"data in {args.path}"
        print(f"LocalKafka is running ({where}); Ctrl-C stops it.", file=sys.stderr, flush=True)
        _wait_for_ctrl_c()
    return 0


def schema_registry(args: argparse.Namespace) -> int:
    """Runs a LocalSchemaRegistry in the foreground and prints its URL for clients."""
    from kafkaml import LocalSchemaRegistry

    with LocalSchemaRegistry(
        args.bootstrap, args.listen, topic=args.topic, config=_config(args.config), timeout=args.timeout
    ) as registry:
        print(registry.url, flush=True)
        print(
            f"Schema Registry is running (state in topic {args.topic!r} on {registry.bootstrap}); Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_ctrl_c()
    return 0


def _udf_spec(text: str) -> tuple[str, Any]:
    """``NAME=model.pb[:input=#-separated][:output=reconstruction_error]`` as (name, UDF)."""
    from kafkaml import Model
    from kafkaml.ksql import model_udf

    name, _, rest = text.partition("=")
    if not name or not rest:
        raise SystemExit(f"--udf {text!r}: expected NAME=MODEL_FILE[:input=...][:output=...]")
    path, *options = rest.split(":")
    settings = dict(option.split("=", 1) for option in options if "=" in option)
    unknown = set(settings) - {"input", "output"}
    if unknown:
        raise SystemExit(f"--udf {text!r}: unknown option(s) {sorted(unknown)}; use input= and output=")
    input_spec = settings.get("input", "#-separated")
    inputs: str | list[str] = input_spec if input_spec.endswith("-separated") else input_spec.split(",")
    output = settings.get("output", "reconstruction_error")
    if output not in ("reconstruction_error", "prediction"):
        raise SystemExit(f"--udf {text!r}: output must be reconstruction_error or prediction, not {output!r}")
    return name.upper(), model_udf(Model.load(path), input=inputs, output=output)  # type: ignore[arg-type]


def ksql_server(args: argparse.Namespace) -> int:
    """Runs the embedded KSQL server in the foreground and prints its URL for clients."""
    from kafkaml.ksql import LocalKsql

    udfs = dict(_udf_spec(spec) for spec in args.udf)
    with LocalKsql(
        args.bootstrap,
        listen=args.listen,
        udfs=udfs,
        schema_registry=args.schema_registry,
        service_id=args.service_id,
        config=_config(args.config),
    ) as server:
        print(server.url, flush=True)
        print(
            f"KSQL server is running (service id {server.service_id!r}, statements in {server.command_topic!r}"
            f" on {server.bootstrap}); Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_ctrl_c()
    return 0


def mqtt_proxy(args: argparse.Namespace) -> int:
    """Runs an MqttProxy in the foreground (configured by a Confluent properties file, or by
    options) and prints its URL for devices."""
    import warnings

    from kafkaml import MqttProxy

    config = _config(args.config)
    users: dict[str, str] = {}
    for pair in args.users:
        name, colon, password = pair.partition(":")
        if not name or not colon:
            raise CliError(f"--user takes NAME:PASSWORD, got {pair!r}")
        users[name] = password
    if args.properties is not None:
        if not os.path.isfile(args.properties):
            raise CliError(f"no such properties file: {args.properties}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            proxy = MqttProxy.from_properties(
                args.properties, bootstrap=args.bootstrap, listen=args.listen, timeout=args.timeout, users=users
            )
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr, flush=True)
    else:
        if not args.topics:
            raise CliError("give --config FILE (a properties file) or --topics KAFKA_TOPIC:REGEX[,...]")
        proxy = MqttProxy(
            args.bootstrap or _bootstrap_default(),
            args.topics,
            args.listen or "127.0.0.1:1883",
            max_message_bytes=args.max_message_bytes,
            config=config,
            timeout=args.timeout,
            users=users,
        )
    with proxy:
        print(proxy.url, flush=True)
        rules = ", ".join(f"{pattern} -> {topic}" for topic, pattern in proxy.topics)
        print(
            f"MQTT proxy is running (writing to {proxy.bootstrap}: {rules}); Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_ctrl_c()
    return 0


def mqtt_bridge(args: argparse.Namespace) -> int:
    """Runs an MqttBridge in the foreground: subscribes on an MQTT broker and writes to Kafka."""
    from kafkaml import MqttBridge

    bridge = MqttBridge(
        args.bootstrap,
        args.broker,
        args.topics,
        args.subscribe or ["#"],
        qos=args.qos,
        client_id=args.client_id,
        username=args.username,
        password=args.password,
        config=_config(args.config),
        timeout=args.timeout,
    )
    with bridge:
        rules = ", ".join(f"{pattern} -> {topic}" for topic, pattern in bridge.topics)
        print(
            f"MQTT bridge is running ({bridge.broker} {', '.join(bridge.subscriptions)} at QoS {args.qos} -> "
            f"{bridge.bootstrap}: {rules}); Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_ctrl_c()
        stats = bridge.stats()
    print(
        f"{stats['received']:,} messages received, {stats['written']:,} written, {stats['unmatched']:,} unmatched",
        file=sys.stderr,
    )
    return 0


def demo(args: argparse.Namespace) -> int:
    """The main job for a newcomer (grows with each part of the talk's pipeline)."""
    # Each demo keeps its own default for what was not given.
    given = {"epochs": args.epochs} if args.epochs is not None else {}
    if args.iot:
        from kafkaml import _demo_iot

        if args.events < 1 or not args.rate > 0:
            raise CliError(f"--events must be at least 1 and --rate above 0, got {args.events} and {args.rate}")

        return _demo_iot.run(
            bootstrap=args.bootstrap, events=args.events, rate=args.rate, model_path=args.model, **given
        )
    from kafkaml._demo import run

    return run(bootstrap=args.bootstrap, rows=args.rows, live_rows=args.live_rows, model_path=args.model, **given)


# --- peek -------------------------------------------------------------------------------

_METADATA = ["_partition", "_offset", "_timestamp", "_key"]


def peek(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Prints the first (or, with --last, the newest) n messages of a topic as a table."""
    from kafkaml import Consumer, DecodeError, SchemaError

    out = sys.stdout if out is None else out
    if args.n < 1:
        raise CliError(f"-n must be at least 1, got {args.n}")
    schema = _schema_argument(args.schema)
    if args.format == "csv" and schema is None:
        raise CliError("--format csv needs --schema: the columns of a line, e.g. 'ID BIGINT, V1 DOUBLE'")
    consumer = Consumer(
        args.bootstrap,
        args.topic,
        format=args.format,
        schema=schema,
        schema_registry=args.schema_registry,
        delimiter=args.delimiter,
        start="earliest",
        stop="end",
        include_metadata=True,
        batch_size=args.n if not args.last else 10_000,
        max_wait_ms=200,
        config=_config(args.config),
        timeout=args.timeout,
    )
    try:
        with consumer:
            table = _newest(consumer, args.n) if args.last else _oldest(consumer, args.n)
    except (DecodeError, SchemaError) as error:
        if args.format == "raw":
            raise
        hint = f"are the messages {args.format}? --format raw shows any message; --schema declares the columns"
        raise CliError(f"{error} ({hint})") from error
    if table is None:
        print(f"{args.topic} has no messages", file=sys.stderr)
        return 0
    _print_table(_display_columns(table, args.format), out, args.max_width)
    return 0


def _oldest(consumer: Any, n: int) -> Any:
    """The first n rows read from the start of the partitions, in time order (None: no rows)."""
    import pyarrow as pa

    batches, rows = [], 0
    for batch in consumer:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= n:
            break
    if rows == 0:
        return None  # (a table without columns would slice to n rows of nothing)
    return _in_time_order(pa.Table.from_batches(batches)).slice(0, n)


def _newest(consumer: Any, n: int) -> Any:
    """The newest n rows (None: no rows): every partition is read to its end (the consumer
    has no tail seek), keeping only each partition's last n rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tails: dict[int, pa.Table] = {}
    for batch in consumer:
        table = pa.Table.from_batches([batch])
        for partition in pc.unique(table.column("_partition")).to_pylist():
            rows = table.filter(pc.equal(table.column("_partition"), partition))
            kept = tails.get(partition)
            joined = rows if kept is None else pa.concat_tables([kept, rows])
            tails[partition] = joined.slice(max(0, joined.num_rows - n))
    if not tails:
        return None
    table = _in_time_order(pa.concat_tables(tails.values()))
    return table.slice(max(0, table.num_rows - n))


def _in_time_order(table: Any) -> Any:
    return table.sort_by([("_timestamp", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")])


def _display_columns(table: Any, format: str) -> Any:
    """Metadata first under short names, then the values; the key only when some message has
    one (raw messages carry it as their own ``key`` column)."""
    import pyarrow as pa

    columns = {"partition": table.column("_partition"), "offset": table.column("_offset")}
    columns["timestamp"] = table.column("_timestamp")
    if format != "raw" and table.column("_key").null_count < table.num_rows:
        columns["key"] = table.column("_key")
    for name in table.column_names:
        if name not in _METADATA and name != "_topic":
            columns[name] = table.column(name)
    return pa.table(columns)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _print_table(table: Any, out: IO[str], max_width: int) -> None:
    def clip(text: str) -> str:
        text = text.replace("\n", "\\n").replace("\t", " ")
        if max_width and len(text) > max_width:
            return text[: max(1, max_width - 1)] + "\u2026"
        return text

    header = [clip(name) for name in table.column_names]
    rows = [[clip(_text(v)) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]
    numeric = [pa_is_numeric(field.type) for field in table.schema]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "  ".join(parts).rstrip()

    out.write(line(header) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")
    out.flush()


def pa_is_numeric(data_type: Any) -> bool:
    """True for integer, floating point and decimal columns (printed right-aligned)."""
    import pyarrow.types as pt

    return bool(pt.is_integer(data_type) or pt.is_floating(data_type) or pt.is_decimal(data_type))


# --- produce ----------------------------------------------------------------------------


def produce(args: argparse.Namespace, stdin: IO[str] | None = None) -> int:
    """Writes a file's or stdin's lines (or a CSV table's rows) to a topic, one message each."""
    from kafkaml import Producer, write_topic

    config = _config(args.config)
    source = args.file
    if source not in (None, "-") and not os.path.isfile(source):
        raise CliError(f"no such file: {source}")
    if source not in (None, "-") and source.lower().endswith(".csv"):
        # A CSV table (header line, or --schema): each row encoded as --format.
        rows = write_topic(
            args.bootstrap,
            args.topic,
            source,
            format=args.format,
            key=args.key,
            schema=args.schema,
            delimiter=args.delimiter,
            config=config,
            timeout=args.timeout,
        )
        print(f"wrote {rows:,} messages to {args.topic}", file=sys.stderr)
        return 0
    if source in (None, "-"):
        handle = sys.stdin if stdin is None else stdin
        return _produce_lines(args, Producer, handle, interactive=handle.isatty(), config=config)
    with open(source, encoding="utf-8") as handle:
        return _produce_lines(args, Producer, handle, interactive=False, config=config)


def _produce_lines(
    args: argparse.Namespace, producer_class: Any, lines: IO[str], *, interactive: bool, config: Any
) -> int:
    import pyarrow as pa

    key_of = _key_reader(args)
    chunk = 1 if interactive else PRODUCE_CHUNK
    written = 0
    with producer_class(
        args.bootstrap, args.topic, format="raw", key="key", config=config, timeout=args.timeout
    ) as producer:
        for values, keys in _chunks(lines, chunk, args.format, key_of):
            written += producer.send(pa.table({"key": pa.array(keys, pa.string()), "value": values}))
        producer.flush()
    print(f"wrote {written:,} messages to {args.topic}", file=sys.stderr)
    return 0


def _key_reader(args: argparse.Namespace) -> Any:
    """A function from a parsed line to its key, or None without --key."""
    if args.key is None:
        return None
    if args.format == "json":
        field = args.key

        def json_key(parsed: Any) -> str | None:
            value = parsed.get(field) if isinstance(parsed, dict) else None
            return None if value is None else value if isinstance(value, str) else json.dumps(value)

        return json_key
    names = _column_names(args.schema)
    if names is None:
        raise CliError("--key with --format csv needs --schema to know which field it names")
    lowered = [n.lower() for n in names]
    if args.key.lower() not in lowered:
        raise CliError(f"--key {args.key!r} is not a column of --schema ({', '.join(names)})")
    index = lowered.index(args.key.lower())
    return lambda fields: fields[index] if index < len(fields) and fields[index] != "" else None


def _column_names(schema: str | None) -> list[str] | None:
    if schema is None:
        return None
    from kafkaml import parse_columns

    return list(parse_columns(schema).names)


def _chunks(lines: IO[str], size: int, format: str, key_of: Any) -> Iterator[tuple[list[str], list[str | None]]]:
    """The non-empty lines in chunks of ``size``, checked for ``format`` (a JSON value per
    line; a CSV line is taken as it is), with their keys."""
    values: list[str] = []
    keys: list[str | None] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if format == "json":
            try:
                parsed: Any = json.loads(line)
            except json.JSONDecodeError as error:
                raise CliError(f"line {number} is not JSON ({error.msg}): {line[:80]!r}") from None
        else:
            parsed = next(csv.reader(io.StringIO(line)), []) if key_of is not None else None
        values.append(line)
        keys.append(key_of(parsed) if key_of is not None else None)
        if len(values) >= size:
            yield values, keys
            values, keys = [], []
    if values:
        yield values, keys


# --- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m kafkaml`` (every option with its help and default)."""
    parser = argparse.ArgumentParser(prog="python -m kafkaml", description=__doc__, formatter_class=_ExamplesFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser(
        "local-kafka",
        help="run an in-process Kafka broker in the foreground",
        description="Runs LocalKafka, kafkaml's in-process Kafka broker, until Ctrl-C and prints its bootstrap "
        "address on stdout for other clients. Every message is kept: in memory (gone when it stops), or "
        "with --path in files that the next run finds again.",
        formatter_class=_Formatter,
    )
    local.add_argument(
        "--engine",
        choices=["broker", "mock"],
        default="broker",
        help="kafkaml's broker, or librdkafka's mock cluster (keeps only ~5 MiB per partition)",
    )
    local.add_argument("--path", default=None, metavar="DIR", help="keep the data in this directory (broker engine)")
    local.add_argument(
        "--partitions", type=int, default=1, help="partitions of a topic created on first use (broker engine)"
    )
    local.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one; broker engine)")
    local.add_argument("--brokers", type=int, default=1, help="number of brokers (mock engine)")
    local.add_argument(
        "--topic", action="append", default=[], metavar="NAME[:PARTITIONS]", help="a topic to create (repeatable)"
    )
    local.set_defaults(func=local_kafka)

    registry = commands.add_parser(
        "schema-registry",
        help="run a Confluent-compatible Schema Registry in the foreground",
        description="Serves Confluent's Schema Registry REST API (Avro schemas, compatibility checks) until "
        "Ctrl-C and prints its URL on stdout. Its state lives in a compacted Kafka topic, so a restarted "
        "registry, or several on one cluster, serve the same ids.",
        formatter_class=_Formatter,
    )
    _add_connection_options(registry)
    registry.add_argument(
        "--listen", default="127.0.0.1:8081", metavar="HOST:PORT", help="address to serve HTTP on (port 0: any free)"
    )
    registry.add_argument("--topic", default="_schemas", help="the Kafka topic holding the registry's state")
    registry.set_defaults(func=schema_registry)

    ksql = commands.add_parser(
        "ksql-server",
        help="run the embedded KSQL engine behind ksqlDB's REST API in the foreground",
        description="Serves ksqlDB's REST API (/ksql, /query, /query-stream, /inserts-stream, ...) with kafkaml's "
        "KSQL engine until Ctrl-C and prints its URL on stdout. Statements are kept on the service's command "
        "topic and replayed at the next start.",
        formatter_class=_Formatter,
    )
    _add_connection_options(ksql)
    ksql.add_argument("--listen", default="127.0.0.1:8088", metavar="HOST:PORT", help="address to serve HTTP on")
    ksql.add_argument(
        "--service-id", default="default_", help="the service id: names the command topic and the queries' groups"
    )
    ksql.add_argument("--schema-registry", default=None, metavar="URL", help="Schema Registry for the AVRO format")
    ksql.add_argument(
        "--udf",
        action="append",
        default=[],
        metavar="NAME=MODEL[:input=#-separated][:output=reconstruction_error]",
        help="a model as a KSQL function (repeatable); input= a separator form or comma-separated argument names, "
        "output=reconstruction_error or prediction",
    )
    ksql.set_defaults(func=ksql_server)

    proxy = commands.add_parser(
        "mqtt-proxy",
        help="run an MQTT proxy into Kafka in the foreground (Confluent MQTT Proxy's job)",
        description="Accepts MQTT 3.1.1 publishes (QoS 0, 1, 2) until Ctrl-C and writes each to Kafka: key = the "
        "MQTT topic, value = the payload, topic = the first topic rule whose regex matches. QoS 1/2 are "
        "acknowledged only once Kafka has the record. Prints its URL on stdout. Configure it with Confluent's "
        "properties file (--config: topic.regex.list, listeners, bootstrap.servers, mqtt.message.max.bytes, "
        "producer.*; other keys are ignored with a warning) or with --topics; options given replace the file's.",
        formatter_class=_Formatter,
    )
    proxy.add_argument(
        "--config",
        "-c",
        dest="properties",
        default=None,
        metavar="FILE",
        help="Confluent MQTT Proxy properties file, e.g. the talk's kafka-mqtt-quickstart.properties",
    )
    proxy.add_argument(
        "--bootstrap",
        "-b",
        default=None,
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (default: the file's bootstrap.servers, else KAFKA_BOOTSTRAP, else "
        f"{DEFAULT_BOOTSTRAP})",
    )
    proxy.add_argument(
        "--topics",
        "-t",
        default=None,
        metavar="TOPIC:REGEX[,...]",
        help="topic rules as topic.regex.list writes them (without --config)",
    )
    proxy.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="address to accept MQTT on (default: the file's listeners, else 127.0.0.1:1883; port 0: any free)",
    )
    proxy.add_argument(
        "--max-message-bytes", type=int, default=8092, help="larger payloads are refused (without --config)"
    )
    proxy.add_argument(
        "--producer-config",
        "-X",
        dest="config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka property for the producer (repeatable; without --config)",
    )
    proxy.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="how long Kafka may take to acknowledge"
    )
    proxy.add_argument(
        "--user",
        dest="users",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="serve only clients with these credentials (repeatable; without it anyone may connect)",
    )
    proxy.set_defaults(func=mqtt_proxy)

    bridge = commands.add_parser(
        "mqtt-bridge",
        help="subscribe on an MQTT broker (Mosquitto, HiveMQ, ...) and write to Kafka, in the foreground",
        description="Subscribes to topic filters on an MQTT broker with a persistent session under --client-id and "
        "writes each message to Kafka until Ctrl-C (key = the MQTT topic, value = the payload, topic = the first "
        "rule whose regex matches). QoS 1/2 messages are acknowledged to the broker only once Kafka has them.",
        formatter_class=_Formatter,
    )
    bridge.add_argument("broker", metavar="BROKER", help="the MQTT broker: mqtt://host:port (port 1883 when omitted)")
    _add_connection_options(bridge)
    bridge.add_argument(
        "--topics", "-t", required=True, metavar="TOPIC:REGEX[,...]", help="Kafka topic rules, first match wins"
    )
    bridge.add_argument(
        "--subscribe",
        "-s",
        action="append",
        default=[],
        metavar="FILTER",
        help="a topic filter (repeatable; default #)",
    )
    bridge.add_argument("--qos", type=int, default=1, choices=[0, 1, 2], help="the QoS asked for every filter")
    bridge.add_argument(
        "--client-id", default="kafkaml-bridge", help="the id the broker keeps the session under (resumes it)"
    )
    bridge.add_argument("--username", default=None, help="username for the broker")
    bridge.add_argument("--password", default=None, help="password for the broker")
    bridge.set_defaults(func=mqtt_bridge)

    run_demo = commands.add_parser(
        "demo",
        help="run the talk's fraud-detection pipeline (or with --iot its MQTT car-sensor demo) end to end",
        description="Generates credit-card transactions, writes them to Kafka, preprocesses them, trains the "
        "talk's autoencoder in Keras (needs TensorFlow), deploys it as a StreamScorer and reports precision, "
        "recall and throughput. With --iot: the talk's live IoT demo, cars publishing engine temperatures over "
        "MQTT to an MqttProxy, KSQL scoring them with an ANOMALY model UDF and keeping the breaches in "
        "ANOMALYDETECTIONWITHFILTER.",
        formatter_class=_Formatter,
    )
    run_demo.add_argument("--iot", action="store_true", help="run the MQTT -> Kafka -> KSQL car-sensor demo instead")
    run_demo.add_argument(
        "--bootstrap", default=None, metavar="HOST:PORT", help="use this broker (default: a LocalKafka of its own)"
    )
    run_demo.add_argument("--rows", type=int, default=60_000, help="transactions to train on")
    run_demo.add_argument("--live-rows", type=int, default=20_000, help="transactions in the live stream")
    run_demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: 5, with --iot 30)")
    run_demo.add_argument("--events", type=int, default=500, help="with --iot: car-sensor events to publish")
    run_demo.add_argument("--rate", type=float, default=100.0, help="with --iot: events published per second")
    run_demo.add_argument(
        "--model", default=None, metavar="PATH", help="deploy this trained model (.pb or .onnx) instead of training"
    )
    run_demo.set_defaults(func=demo)

    show = commands.add_parser(
        "peek",
        help="print a topic's first (or newest) messages as a table",
        description="Prints the first n messages of a topic (from the start of its partitions, in time order), "
        "or with --last the newest n, as a table with partition, offset and timestamp.",
        formatter_class=_Formatter,
    )
    show.add_argument("topic", metavar="TOPIC", help="the topic to read")
    _add_connection_options(show)
    show.add_argument(
        "--format",
        "-f",
        choices=["json", "csv", "raw", "avro"],
        default="json",
        help="how the messages are decoded: json (one object each), csv (one DELIMITED line each; needs --schema), "
        "raw (key and value as text), avro (needs --schema-registry or --schema)",
    )
    show.add_argument("-n", type=int, default=10, help="how many messages")
    show.add_argument(
        "--last",
        action="store_true",
        help="the newest n messages instead of the first n (reads every partition to its end)",
    )
    show.add_argument(
        "--schema",
        "-s",
        default=None,
        help="KSQL column declarations ('ID BIGINT, V1 DOUBLE'); for avro the Avro schema JSON; or a file "
        "holding either (default: inferred for json)",
    )
    show.add_argument("--schema-registry", default=None, metavar="URL", help="Schema Registry for avro")
    show.add_argument("--delimiter", default=",", help="the field delimiter for csv")
    show.add_argument("--max-width", type=int, default=40, metavar="CHARS", help="clip longer cells (0: never clip)")
    show.set_defaults(func=peek)

    write = commands.add_parser(
        "produce",
        help="write lines of a file or stdin (or a CSV table's rows) to a topic",
        description="Writes one message per line of FILE or stdin: with --format json each line is a JSON "
        "object, with --format csv one DELIMITED row, sent as it is. A FILE ending in .csv is read as a table "
        "instead (a header line, or --schema) and each row encoded as --format.",
        formatter_class=_Formatter,
    )
    write.add_argument("topic", metavar="TOPIC", help="the topic to write to")
    write.add_argument("file", nargs="?", default=None, metavar="FILE", help="the input (default: stdin; '-' too)")
    _add_connection_options(write)
    write.add_argument(
        "--format", "-f", choices=["json", "csv"], default="json", help="the messages' format (and the lines')"
    )
    write.add_argument(
        "--key",
        "-k",
        default=None,
        metavar="FIELD",
        help="message keys from this field (a JSON field; a CSV column named by --schema or the .csv header)",
    )
    write.add_argument(
        "--schema", "-s", default=None, help="KSQL column declarations naming (and, for a .csv file, typing) columns"
    )
    write.add_argument("--delimiter", default=",", help="the field delimiter of a .csv file")
    write.set_defaults(func=produce)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs ``python -m kafkaml``; returns the exit status (1 with a message on stderr on errors)."""
    from kafkaml import KafkaMLError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, KafkaMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
