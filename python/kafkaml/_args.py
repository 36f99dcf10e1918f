"""Normalising the arguments users pass (bootstrap objects, dates, schemas, configs)."""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafkaml._native import ConfigError, KafkaError

Bootstrap = str | Any
"""A ``host:port[,host:port]`` string, or an object with ``.bootstrap_servers`` (LocalKafka)."""

SchemaRegistryArg = str | Mapping[str, str] | Any
"""A Schema Registry: its URL, ``{"url": ..., "basic.auth.user.info": "key:secret"}``, or an
object with a ``.url`` (a :class:`kafkaml.LocalSchemaRegistry`)."""

KAFKA_SCHEMES = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""The prefixes a bootstrap server may carry, as in Kafka's ``listeners`` (``PLAINTEXT://host:9092``).

librdkafka (and so confluent-kafka) accepts them when they match ``security.protocol``; kafkaml
passes them on unchanged. Any other scheme (``http://``, ``tcp://``, ``kafka://``) is refused."""

PROBE_TIMEOUT = 0.5
"""Seconds the reachability probe of :func:`bootstrap_servers` waits for a broker to answer.

A refused connection or an unknown host is known at once and raised; a broker that has not
answered within this time is left to the client's own ``timeout``. This is also the most the
probe can add to a normal start (a lost connection request is resent only after 1 s)."""

PROBE_MEMORY = 10.0
"""Seconds a bootstrap list that answered the probe is taken as reachable without a new probe
(clients made in a loop then cost the broker no extra connections)."""

_reachable_until: dict[str, float] = {}

_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_IPV6_LITERAL = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", -1)}
_HOW = "pass 'host:port' (e.g. 'localhost:9092'), several separated by commas"


@dataclass(frozen=True)
class BootstrapServer:
    """One entry of a bootstrap list: as written, and its host and port."""

    text: str
    scheme: str | None
    host: str
    port: int


def bootstrap_servers(bootstrap: Bootstrap, config: Mapping[str, Any] | None = None) -> str:
    """The bootstrap string of ``bootstrap`` (a string, or e.g. a :class:`LocalKafka`), checked.

    Every ``host:port`` entry is validated at once: a URL (``http://host:9092``), a missing,
    non-numeric or out-of-range port, or a malformed host raises :class:`ConfigError` naming
    the bad part. Kafka's own listener prefixes (``PLAINTEXT://``, ``SSL://``, ...) are
    accepted and passed on, as confluent-kafka does; given the client's ``config``, a prefix
    that contradicts its ``security.protocol`` is a :class:`ConfigError` too (librdkafka would
    silently ignore that server).

    A string is then probed (a TCP connect with a short timeout, see :data:`PROBE_TIMEOUT`), so
    a wrong address fails in milliseconds instead of after the client's timeout: when no
    server of the list can be reached because nothing listens on its port or its host name
    does not resolve, :class:`KafkaError` says which and what to check. A server that does
    not answer in time, or any one that accepts, lets the client go ahead; a list that
    answered is not probed again for :data:`PROBE_MEMORY` seconds. Objects such as
    :class:`LocalKafka` are not probed: their brokers run in this process (and may be down on
    purpose in a fault test).
    """
    if isinstance(bootstrap, str):
        servers = parse_bootstrap(bootstrap)
        _check_schemes(servers, config)
        text = ",".join(server.text for server in servers)
        now = time.monotonic()
        if _reachable_until.get(text, 0.0) < now:
            if probe_bootstrap(servers):
                _reachable_until[text] = now + PROBE_MEMORY
        return text
    given = getattr(bootstrap, "bootstrap_servers", None)
    if isinstance(given, str):
        servers = parse_bootstrap(given)
        _check_schemes(servers, config)
        return ",".join(server.text for server in servers)
    raise TypeError(f"bootstrap must be 'host:port' or have .bootstrap_servers, got {type(bootstrap).__name__}")


def parse_bootstrap(text: str) -> list[BootstrapServer]:
    """The entries of a ``host:port[,host:port...]`` list; :class:`ConfigError` for a bad one."""
    servers = [_parse_server(entry.strip(), text) for entry in text.split(",") if entry.strip()]
    if not servers:
        raise ConfigError(f"the bootstrap servers are empty ({text!r}): {_HOW}")
    return servers


def _parse_server(entry: str, whole: str) -> BootstrapServer:
    where = f"bootstrap server {entry!r}" + (f" (in {whole!r})" if entry != whole.strip() else "")
    scheme = None
    rest = entry
    if "://" in entry:
        scheme, rest = entry.split("://", 1)
        if scheme.upper() not in KAFKA_SCHEMES:
            address = rest.split("/", 1)[0] or "localhost"
            if not re.search(r":[0-9]+$", address):
                address += ":9092"
            raise ConfigError(
                f"{where} is a URL ({scheme}://): Kafka clients speak Kafka's protocol, not {scheme}; "
                f"pass 'host:port', here {address!r} (only Kafka's listener prefixes "
                f"{', '.join(s + '://' for s in KAFKA_SCHEMES)} are accepted)"
            )
    if "/" in rest:
        address, path = rest.split("/", 1)
        raise ConfigError(f"{where} has a path ('/{path}'): {_HOW}; here {address!r}")
    if rest.startswith("["):  # an IPv6 literal: [::1]:9092
        end = rest.find("]")
        host, after = (rest[1:end], rest[end + 1 :]) if end > 0 else (rest[1:], "")
        if end < 0 or not _IPV6_LITERAL.fullmatch(host):
            raise ConfigError(f"{where} has a malformed IPv6 address: write it as '[::1]:9092'")
        if not after.startswith(":"):
            raise ConfigError(f"{where} has no port: {_HOW} (IPv6: '[{host}]:9092')")
        port_text = after[1:]
    elif rest.count(":") > 1:
        raise ConfigError(f"{where} has several ':': an IPv6 address goes in brackets, '[::1]:9092'; else {_HOW}")
    elif ":" in rest:
        host, port_text = rest.rsplit(":", 1)
        if not host:
            raise ConfigError(f"{where} has no host before ':{port_text}': {_HOW}")
        if not _HOST_NAME.fullmatch(host):
            raise ConfigError(f"{where} has a malformed host {host!r} (letters, digits, '.', '-' and '_' only): {_HOW}")
    else:
        raise ConfigError(f"{where} has no port: {_HOW}, here {rest + ':9092'!r} for Kafka's default port")
    if not port_text:
        raise ConfigError(f"{where} has no port after ':': {_HOW}")
    if not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(f"{where} has a port that is not a number ({port_text!r}): {_HOW}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where} has a port out of range ({port}; ports are 1-65535): {_HOW}")
    return BootstrapServer(entry, scheme, host, port)


def _check_schemes(servers: list[BootstrapServer], config: Mapping[str, Any] | None) -> None:
    if config is None:
        return
    protocol = str(config.get("security.protocol", "plaintext"))
    for server in servers:
        if server.scheme is not None and server.scheme.upper() != protocol.upper():
            raise ConfigError(
                f"bootstrap server {server.text!r} says {server.scheme.upper()} but the client's "
                f"security.protocol is {protocol!r}: librdkafka would ignore this server; set "
                f"config={{'security.protocol': {server.scheme.upper()!r}}} or drop the prefix"
            )


def probe_bootstrap(servers: list[BootstrapServer], timeout: float = PROBE_TIMEOUT) -> bool:
    """Raises :class:`KafkaError` when no server can be reached: each refused the connection
    (nothing listens on its port), has a host name that does not resolve, or is otherwise
    unreachable at once (no route). Returns True as soon as one server accepts a TCP
    connection, False after ``timeout`` seconds when some server has not answered (the client
    then waits for it as it always has)."""
    failures: dict[BootstrapServer, str] = {}
    attempts: dict[socket.socket, BootstrapServer] = {}
    selector = selectors.DefaultSelector()
    try:
        for server in servers:
            try:
                addresses = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
            except socket.gaierror as error:
                failures[server] = _unknown_host(server, error)
                continue
            except UnicodeError:
                failures[server] = f"unknown host {server.host!r} (not a valid host name)"
                continue
            for family, kind, protocol, _, address in addresses:
                try:
                    attempt = socket.socket(family, kind, protocol)
                except OSError as error:  # e.g. no IPv6 on this machine
                    failures.setdefault(server, _refused(server, error.errno or 0))
                    continue
                attempt.setblocking(False)
                code = attempt.connect_ex(address)
                if code == 0:
                    attempt.close()
                    return True
                if code in _IN_PROGRESS:
                    attempts[attempt] = server
                    selector.register(attempt, selectors.EVENT_WRITE, data=attempt)
                else:
                    attempt.close()
                    failures.setdefault(server, _refused(server, code))
        deadline = time.monotonic() + timeout
        while attempts:
            left = deadline - time.monotonic()
            if left <= 0:
                return False  # no answer yet: the client's own timeout decides
            for key, _ in selector.select(left):
                attempt = key.data
                code = attempt.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    return True
                server = attempts.pop(attempt)
                selector.unregister(attempt)
                attempt.close()
                failures.setdefault(server, _refused(server, code))
    finally:
        for attempt in attempts:
            attempt.close()
        selector.close()
    if any(server not in failures for server in servers):
        return False  # a server with no address to try: leave it to the client
    raise KafkaError(_unreachable_message(servers, failures))


def _unknown_host(server: BootstrapServer, error: socket.gaierror) -> str:
    return f"unknown host {server.host!r} (the DNS lookup failed: {error.strerror or error})"


def _refused(server: BootstrapServer, code: int) -> str:
    address = f"{server.host}:{server.port}" if ":" not in server.host else f"[{server.host}]:{server.port}"
    if code == errno.ECONNREFUSED:
        return f"nothing listens on {address} (connection refused)"
    return f"{address} cannot be reached ({os.strerror(code) if code else 'no connection could be made'})"


def _unreachable_message(servers: list[BootstrapServer], failures: dict[BootstrapServer, str]) -> str:
    text = ",".join(server.text for server in servers)
    reasons = [failures[server] for server in servers]
    refused = any(reason.startswith("nothing listens") for reason in reasons)
    unknown = any(reason.startswith("unknown host") for reason in reasons)
    advice = []
    if refused:
        advice.append(
            "is the broker running, and on this port? Start it, or pass the host:port its listeners advertise"
        )
    if unknown:
        advice.append("check the host name for typos (or use the broker's IP address)")
    if not advice:
        advice.append("check the address and the network between here and the broker")
    if len(servers) == 1:
        return f"{reasons[0]} — {'; '.join(advice)} (bootstrap {text!r})"
    return f"no broker of bootstrap {text!r} can be reached: {'; '.join(reasons)} — {'; '.join(advice)}"


def epoch_ms(moment: _dt.datetime | _dt.date) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as local time (as Python does)."""
    if not isinstance(moment, _dt.datetime):
        moment = _dt.datetime(moment.year, moment.month, moment.day)
    return int(moment.timestamp() * 1000)


def avro_schema_text(schema: Any) -> str | None:
    """The JSON text of an Avro schema given as a dict or JSON string, else None."""
    if isinstance(schema, Mapping):
        return json.dumps(schema)
    if isinstance(schema, str) and schema.lstrip().startswith(("{", "[")):
        return schema
    return None


def string_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """librdkafka properties, passed through unchanged (values are stringified in Rust)."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise TypeError("config must be a dict of librdkafka properties")
    return dict(config)
