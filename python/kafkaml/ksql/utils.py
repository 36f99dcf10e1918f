"""ksql-python's ``ksql.utils`` helpers (streams, their queries, dropping them), for ``KSQLAPI``
or :class:`kafkaml.ksql.Client`."""

from __future__ import annotations

from typing import Any

from kafkaml._native import KsqlError


def get_all_streams(api_client: Any, prefix: str | None = None) -> list[str]:
    """Names of the server's streams (``SHOW STREAMS``), optionally only those starting with
    ``prefix`` (compared in upper case, as ksqlDB stores names)."""
    streams = api_client.ksql("SHOW STREAMS;")[0]["streams"]
    return [
        s["name"] for s in streams if s.get("type") == "STREAM" and (not prefix or s["name"].startswith(prefix.upper()))
    ]


def get_stream_info(api_client: Any, stream_name: str) -> dict[str, Any] | None:
    """The stream's ``DESCRIBE EXTENDED`` source description, or None if it does not exist."""
    try:
        entities = api_client.ksql(f"DESCRIBE EXTENDED {stream_name}")
    except KsqlError as error:
        if getattr(error, "error_code", None) == 40001:
            return None
        raise
    info: dict[str, Any] = entities[0]["sourceDescription"]
    return info


def get_dependent_queries(api_client: Any, stream_name: str) -> tuple[list[str], list[str]]:
    """The ids of the queries reading from and writing to a stream."""
    info = get_stream_info(api_client, stream_name) or {}
    read = [q["id"] for q in info.get("readQueries") or []]
    write = [q["id"] for q in info.get("writeQueries") or []]
    return read, write


def drop_stream(api_client: Any, stream_name: str) -> None:
    """Terminates the queries that use a stream, then drops it (if it exists)."""
    read, write = get_dependent_queries(api_client, stream_name)
    for query_id in read + write:
        api_client.ksql(f"TERMINATE {query_id};")
    api_client.ksql(f"DROP\n    STREAM IF EXISTS\n    {stream_name};")


def drop_all_streams(api_client: Any, prefix: str | None = None) -> None:
    """Drops every stream (whose name starts with ``prefix``), with its queries."""
    for stream in get_all_streams(api_client, prefix=prefix):
        drop_stream(api_client, stream)
