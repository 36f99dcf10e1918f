"""ksql-python's and ksql-python-ng's ``ksql.utils`` helpers, for ``KSQLAPI`` or
:class:`kafkaml.ksql.Client` (anything with a ``ksql(statement)`` method).

- streams: :func:`get_all_streams`, :func:`get_stream_info`, :func:`get_dependent_queries`,
  :func:`drop_stream`, :func:`drop_all_streams`, :func:`iterate_and_drop_streams`;
- query results as ``KSQLAPI.query()`` yields them (the response's lines): :func:`parse_columns`,
  :func:`process_row`, :func:`process_query_result` (ksql-python) and
  :func:`parse_query_results` (ksql-python-ng) turn them into one dict per row, for all three
  response formats (ksqlDB's ``/query`` array, KSQL 5.x's newline-separated objects,
  ``/query-stream``'s delimited lines);
- :func:`check_kafka_available`.

Where the originals fell short this does what they meant: column names and types of any
spelling (ksql-python's pattern missed lowercase names, digits, ``DECIMAL(p, s)`` and nested
types), keep-alive newlines and the closing ``]`` of the array format are skipped, and an
error the server sent inside the stream raises :class:`~kafkaml.ksql.KSQLError`.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from kafkaml._native import KsqlError, KsqlStreamError

__all__ = [
    "check_kafka_available",
    "get_all_streams",
    "get_stream_info",
    "get_dependent_queries",
    "drop_stream",
    "drop_all_streams",
    "iterate_and_drop_streams",
    "parse_columns",
    "process_row",
    "process_query_result",
    "parse_query_results",
]


def check_kafka_available(bootstrap_servers: str, timeout: float = 5.0) -> bool:
    """True when a TCP connection to one of the ``host:port`` servers (comma-separated, an
    optional ``PLAINTEXT://``-style prefix allowed) succeeds within ``timeout`` seconds."""
    for server in bootstrap_servers.split(","):
        address = server.strip().rpartition("://")[2]
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def get_all_streams(api_client: Any, prefix: str | None = None) -> list[str]:
    """Names of the server's streams (``SHOW STREAMS``), optionally only those starting with
    ``prefix`` (compared in upper case, as ksqlDB stores names)."""
    streams = api_client.ksql("SHOW STREAMS;")[0]["streams"]
    return [
        s["name"] for s in streams if s.get("type") == "STREAM" and (not prefix or s["name"].startswith(prefix.upper()))
    ]


def get_stream_info(api_client: Any, stream_name: str) -> dict[str, Any] | None:
    """The stream's ``DESCRIBE EXTENDED`` source description, or None if it does not exist
    (the server answers error code 40001)."""
    try:
        entities = api_client.ksql(f"DESCRIBE EXTENDED {stream_name}")
    except KsqlError as error:
        if getattr(error, "error_code", None) == 40001:
            return None
        raise
    info: dict[str, Any] = entities[0]["sourceDescription"]
    return info


def get_dependent_queries(api_client: Any, stream_name: str) -> tuple[list[str], list[str]]:
    """The ids of the queries reading from and writing to a stream, as ``(read, write)``."""
    info = get_stream_info(api_client, stream_name) or {}
    read = [q["id"] for q in info.get("readQueries") or []]
    write = [q["id"] for q in info.get("writeQueries") or []]
    return read, write


def drop_stream(api_client: Any, stream_name: str) -> None:
    """Terminates the queries that use a stream, then drops it (if it exists)."""
    read, write = get_dependent_queries(api_client, stream_name)
    for query_id in read + write:
        api_client.ksql(f"TERMINATE {query_id};")
    # ksql-python's exact text: recorded servers' answers are matched on it.
    api_client.ksql(f"DROP\n    STREAM IF EXISTS\n    {stream_name};")


def _ignore(stream_name: str) -> None:
    """The default error handler of :func:`iterate_and_drop_streams`: carries on."""


def iterate_and_drop_streams(
    api_client: Any, streams: Iterable[str], error_handler: Callable[[str], Any] = _ignore
) -> None:
    """Drops each stream (with its queries); a stream that cannot be dropped is passed to
    ``error_handler`` (which by default ignores it, as ksql-python-ng's does)."""
    for stream in streams:
        try:
            drop_stream(api_client, stream)
        except Exception:
            error_handler(stream)


def drop_all_streams(api_client: Any, prefix: str | None = None) -> None:
    """Drops every stream (whose name starts with ``prefix``), with its queries.

    A stream that others are derived from may fail to drop before them, so failures are
    retried once after the rest (as ksql-python-ng does); one that fails again raises.
    """
    failed: list[str] = []
    iterate_and_drop_streams(api_client, get_all_streams(api_client, prefix=prefix), failed.append)
    for stream in failed:
        drop_stream(api_client, stream)


# --- query results ---------------------------------------------------------------------


def _is_header(element: Any) -> bool:
    return isinstance(element, dict) and ("header" in element or "columnNames" in element)


def _elements(line: str) -> list[Any]:
    """The JSON elements of one response line, its framing (the array format's ``[``, ``,``
    and ``]``) and keep-alive newlines removed; ``[]`` for a blank line."""
    text = line.strip()
    if text.endswith(","):
        text = text[:-1].rstrip()
    if not text:
        return []
    candidates = [text]
    if text.startswith("["):
        candidates.append(text[1:])
    if text.endswith("]"):
        candidates.append(text[:-1])
        if text.startswith("["):
            candidates.append(text[1:-1])
    for candidate in candidates:
        try:
            element = json.loads(candidate)
        except ValueError:
            continue
        # A whole array-format response on one line (e.g. a pull query without rows).
        if isinstance(element, list) and element and _is_header(element[0]):
            return element
        return [element]
    raise ValueError(f"not a line of a ksqlDB query response: {line!r}")


def _split_top_level(text: str) -> list[str]:
    """``text`` cut at the commas outside brackets, parentheses, backticks and quotes."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "`'\"":
            quote = c
        elif c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


# Column modifiers that are not part of the type.
_MODIFIER = re.compile(r"\s+(?:PRIMARY\s+KEY|KEY|HEADERS|HEADER\s*\(.*\))\s*$", re.IGNORECASE)


def _declarations(text: str) -> list[dict[str, str]]:
    columns = []
    for part in _split_top_level(text):
        if part.startswith("`"):
            end = part.find("`", 1)
            name, rest = part[1:end], part[end + 1 :]
        else:
            name, _, rest = part.partition(" ")
        columns.append({"name": name, "type": _MODIFIER.sub("", rest.strip())})
    return columns


def parse_columns(columns_str: str) -> list[dict[str, str]]:
    """The columns of a result, as ``[{"name": ..., "type": ...}, ...]``.

    ``columns_str`` is a header's schema (``"`ID` BIGINT KEY, `name` STRING"``) or the
    header line itself, as ``KSQLAPI.query()`` yields it (ksqlDB's ``[{"header":...},`` or
    ``/query-stream``'s ``{"columnNames":...}``). Types are kept whole
    (``DECIMAL(10, 2)``, ``ARRAY<STRING>``); ksql-python kept only their leading letters.
    """
    text = columns_str.strip()
    if text.startswith(("[", "{")):
        try:
            elements = _elements(text)
        except ValueError:
            elements = []
        for element in elements:
            if isinstance(element, dict) and isinstance(element.get("header"), dict):
                return _declarations(element["header"].get("schema") or "")
            if isinstance(element, dict) and "columnNames" in element:
                types = element.get("columnTypes") or [""] * len(element["columnNames"])
                return [{"name": n, "type": t} for n, t in zip(element["columnNames"], types)]
        if elements:
            return []
    return _declarations(text)


def _names(column_names: Sequence[Any]) -> list[str]:
    return [c["name"] if isinstance(c, Mapping) else str(c) for c in column_names]


def _row(values: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    # Headerless results (KSQL 5.x) name columns by position, as the Arrow path does.
    return {names[i] if i < len(names) else f"col{i}": value for i, value in enumerate(values)}


def _stream_error(element: Mapping[str, Any], text: str) -> KsqlError:
    error = element.get("errorMessage") or element
    if isinstance(error, Mapping):
        message, code = str(error.get("message", text)), error.get("error_code")
    else:
        message, code = str(error), None
    raised = KsqlStreamError(message, code)
    raised.http_status = 200
    raised.kind = "stream"
    raised.raw = text
    return raised


def _is_error(element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    return bool(element.get("errorMessage")) or str(element.get("@type", "")).endswith("error")


def _rows_from_elements(elements: Iterable[Any], statement: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per row of a result's parsed JSON elements; stops at the final message and
    raises :class:`~kafkaml.ksql.KsqlStreamError` (a ``KSQLError``) at an error element."""
    names: list[str] = []
    for element in elements:
        if isinstance(element, list):
            yield _row(element, names)
        elif _is_error(element):
            error = _stream_error(element, json.dumps(element))
            error.statement_text = statement
            raise error
        elif isinstance(element, dict) and isinstance(element.get("header"), dict):
            names = _names(_declarations(element["header"].get("schema") or ""))
        elif isinstance(element, dict) and "columnNames" in element:
            names = list(element["columnNames"])
        elif isinstance(element, dict) and isinstance(element.get("row"), dict):
            yield _row(element["row"].get("columns") or [], names)
        elif isinstance(element, dict) and element.get("finalMessage"):
            return


def process_row(row: str, column_names: Sequence[Any]) -> dict[str, Any] | None:
    """One response line's row as a dict, or None when the line holds no row (the final
    message, a header, a keep-alive).

    ``row`` is a line as ``KSQLAPI.query()`` yields it (``{"row":{"columns":[...]}},`` or a
    ``/query-stream`` ``[...]`` array); ``column_names`` is :func:`parse_columns`' list
    (ksql-python) or plain names (ksql-python-ng). Raises
    :class:`~kafkaml.ksql.KsqlStreamError` for an error line.
    """
    for element in _elements(row):
        if _is_error(element):
            raise _stream_error(element, row.strip())
        if isinstance(element, list):
            return _row(element, _names(column_names))
        if isinstance(element, dict) and isinstance(element.get("row"), dict):
            return _row(element["row"].get("columns") or [], _names(column_names))
    return None


def _lines_to_elements(lines: Iterable[str]) -> Iterator[Any]:
    for line in lines:
        yield from _elements(line)


def process_query_result(results: Iterable[str], return_objects: bool | None = None) -> Iterator[Any]:
    """ksql-python's: the lines unchanged, or with ``return_objects=True`` one dict per row
    (column name -> value), for any of the three response formats."""
    if not return_objects:
        yield from results
        return
    yield from _rows_from_elements(_lines_to_elements(results))


def parse_query_results(results: Iterable[str]) -> Iterator[dict[str, Any]]:
    """ksql-python-ng's: one dict per row (column name -> value) of a query's lines."""
    yield from _rows_from_elements(_lines_to_elements(results))
