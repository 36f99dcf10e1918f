"""Normalising the arguments users pass (bootstrap objects, dates, schemas, configs)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

Bootstrap = str | Any
"""A ``host:port[,host:port]`` string, or an object with ``.bootstrap_servers`` (LocalKafka)."""


def bootstrap_servers(bootstrap: Bootstrap) -> str:
    """The bootstrap string of ``bootstrap`` (a string, or e.g. a :class:`LocalKafka`)."""
    if isinstance(bootstrap, str):
        return bootstrap
    servers = getattr(bootstrap, "bootstrap_servers", None)
    if isinstance(servers, str):
        return servers
    raise TypeError(f"bootstrap must be 'host:port' or have .bootstrap_servers, got {type(bootstrap).__name__}")


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
