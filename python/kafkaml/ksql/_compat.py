"""``KSQLAPI``: a drop-in for ksql-python's client, on kafkaml's native one.

Same constructor, methods, return shapes and generated statements as ksql-python 0.10, so
notebooks only swap the import. Where ksql-python fell short of what it documented, this
does what it documented:

- ``ksql("SET 'auto.offset.reset'='earliest';")`` takes effect: the property is kept and
  sent with later requests (its issue #54);
- ``query()`` yields the response's lines whole, wherever HTTP chunks split them (#57,
  #105, #106, #108), so ksql-python's ``utils`` helpers (here in :mod:`kafkaml.ksql.utils`)
  work on them;
- ``return_objects=True`` names every column, lowercase, with digits, or ``DECIMAL(p, s)``
  (#123);
- ``INSERT ... VALUES`` answers ``[]`` without an error (#80);
- ``use_http2=True`` and client certificates (``cert=``) work (#77, #101).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

from kafkaml._display import html_table
from kafkaml._native import KsqlError, KsqlQueryStream
from kafkaml.ksql._client import Client, Entities
from kafkaml.ksql.utils import _rows_from_elements

#: ksql-python's name for the exception: ``KSQLError(message, error_code)`` works as there,
#: and every error the client raises is one (with ``.msg`` and ``.error_code``).
KSQLError = KsqlError

_VALUE_FORMATS = ("delimited", "json", "avro")


def _validate_sql_string(sql: str) -> str:
    if not sql:
        raise ValueError("empty KSQL statement")
    if not sql.endswith(";"):
        sql += ";"
    return sql.strip()


class KSQLAPI:
    """ksql-python's ``KSQLAPI``: ``KSQLAPI(url, max_retries=3, check_version=True, timeout=15,
    api_key=None, secret=None, cert=None)``.

    ``api_key``/``secret`` authenticate with basic auth (Confluent Cloud); ``cert`` is a
    client certificate as requests takes it (one PEM path, or a ``(cert, key)`` pair);
    ``verify`` may name a CA bundle. ``max_retries`` retries requests the server answers
    "not ready" (503). ``http2=False`` (a kafkaml extension) speaks HTTP/1.1 to
    ``/query-stream`` and ``/inserts-stream`` instead of HTTP/2.
    """

    def __init__(
        self,
        url: str,
        max_retries: int = 3,
        check_version: bool = True,
        timeout: float = 15,
        api_key: str | None = None,
        secret: str | None = None,
        cert: Any = None,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self._timeout = timeout
        # kafkaml extension: ksql-python always spoke HTTP/2 (prior knowledge on http://) to
        # /query-stream and /inserts-stream, as the ksqlDB docs require; http2=False uses
        # HTTP/1.1 there, for servers that accept it.
        self._http2 = bool(kwargs.get("http2", True))
        self.check_version = check_version
        auth = (api_key, secret or "") if api_key else None
        self.client = Client(
            url,
            auth=auth,
            cert=cert,
            verify=kwargs.get("verify", True),
            timeout=timeout,
            retries=max_retries,
            http2=False,
        )
        self._http2_client: Client | None = None
        self._client_options = dict(
            auth=auth, cert=cert, verify=kwargs.get("verify", True), timeout=timeout, retries=max_retries
        )
        if check_version:
            self.get_ksql_version()

    def close(self) -> None:
        """Closes the queries still open and releases the connections (a kafkaml extension;
        ``with KSQLAPI(url) as api:`` does it on leaving)."""
        self.client.close()
        if self._http2_client is not None:
            self._http2_client.close()

    def __enter__(self) -> KSQLAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KSQLAPI({self.url!r})" + ("" if not self.client.closed else " (closed)")

    def _repr_html_(self) -> str:
        return html_table("KSQLAPI (ksqlDB)", self.client._display_rows())

    def get_url(self) -> str:
        """The server URL this client talks to."""
        return self.url

    @property
    def timeout(self) -> float:
        """The request timeout in seconds."""
        return self._timeout

    def get_ksql_version(self) -> str:
        """The server's version, from ``GET /info``."""
        info = self.client.info()
        version: str = info["KsqlServerInfo"]["version"]
        return version

    def get_properties(self) -> list[dict[str, Any]]:
        """The server's properties (``SHOW PROPERTIES``)."""
        properties: list[dict[str, Any]] = self.ksql("show properties;")[0]["properties"]
        return properties

    def ksql(self, ksql_string: str, stream_properties: Mapping[str, Any] | None = None) -> Entities:
        """Runs statements; returns the server's entity list (a list, shown as tables in
        Jupyter). Raises :class:`KSQLError` (``.error_code``, ``.msg``) when the server refuses."""
        return self.client.ksql(_validate_sql_string(ksql_string.strip()), stream_properties)

    def _streaming_client(self, use_http2: bool | None) -> Client:
        if not use_http2:
            return self.client
        if self._http2_client is None:
            self._http2_client = Client(self.url, http2=self._http2, **self._client_options)
            self._http2_client._properties = self.client._properties
            self._http2_client._variables = self.client._variables
        return self._http2_client

    def query(
        self,
        query_string: str,
        encoding: str = "utf-8",
        chunk_size: int = 128,
        stream_properties: Mapping[str, Any] | None = None,
        idle_timeout: float | None = None,
        use_http2: bool | None = None,
        return_objects: bool | None = None,
        parse: bool | None = None,
    ) -> Iterator[Any]:
        """Streams a query's results (a generator: the query starts at the first ``next``).

        Yields the server's response line by line, each line whole and unchanged (its
        newline and the response's framing included; keep-alive newlines come with the
        line after them), so ``"".join(lines)`` is the response body and ksql-python's
        helpers (:mod:`kafkaml.ksql.utils`) parse them. The lines are ksqlDB's
        ``[{"header":...},`` ... ``{"finalMessage":...}]`` on ``/query``, KSQL 5.x's
        ``{"row":...}`` objects, or with ``use_http2=True`` (``/query-stream``) a header
        object and one JSON array per row. An error the server sends mid-stream is a line
        too. With ``return_objects=True`` (or ``parse=True``, ksql-python-ng's name) it
        yields one dict per row (column name -> value) instead, and an error the server
        sends mid-stream raises :class:`KSQLError`.

        ``idle_timeout`` ends the query when no data came for that many seconds; leaving
        the loop early closes the query on the server. ``encoding`` and ``chunk_size`` are
        accepted for compatibility (responses are UTF-8, read as they arrive).
        """
        client = self._streaming_client(use_http2)
        sql = _validate_sql_string(query_string.strip())
        objects = bool(return_objects or parse)
        stream = client._connection.query(
            sql,
            json.dumps(client._merged(stream_properties)),
            json.dumps(client._variables),
            endpoint="query-stream" if use_http2 else "query",
            header_timeout=self._timeout,
            wait_for_header=False,
            raw_lines=not objects,
        )
        if objects:
            texts = _read(stream.next_texts, stream, idle_timeout)
            try:
                yield from _rows_from_elements((json.loads(text) for text in texts), sql)
            finally:
                texts.close()  # rows end at the final message: close now, not when collected
        else:
            yield from _read(stream.next_lines, stream, idle_timeout)

    def stream(
        self,
        query_string: str,
        encoding: str = "utf-8",
        stream_properties: Mapping[str, Any] | None = None,
        use_http2: bool | None = None,
        parse: bool = False,
    ) -> Iterator[Any]:
        """ksql-python-ng's name for :meth:`query`: the response's lines, or one dict per
        row with ``parse=True``."""
        yield from self.query(
            query_string, encoding=encoding, stream_properties=stream_properties, use_http2=use_http2, parse=parse
        )

    def close_query(self, query_id: str) -> bool:
        """Closes a push query; True when the server confirmed, False when it refused."""
        try:
            self._streaming_client(self._http2_client is not None).close_query(query_id)
        except KsqlError as error:
            if getattr(error, "http_status", None) == 400:
                return False
            raise
        return True

    def inserts_stream(self, stream_name: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Inserts rows; returns the server's acks (dicts), in row order, rejected ones included."""
        client = self._streaming_client(True)
        texts = [json.dumps(row) for row in rows]
        return [json.loads(ack) for ack in client._connection.insert(stream_name, texts, fail_on_rejected=False)]

    def create_stream(
        self, table_name: str, columns_type: Sequence[str], topic: str, value_format: str = "JSON"
    ) -> bool:
        """``CREATE stream <name> (<columns>) WITH (kafka_topic=..., value_format=...)``; True."""
        return self._create("stream", table_name, columns_type, topic, value_format)

    def create_table(
        self, table_name: str, columns_type: Sequence[str], topic: str, value_format: str, key: str, **kwargs: Any
    ) -> bool:
        """``CREATE table ... WITH (..., key='<key>')``; True. ``key`` is required."""
        if not key:
            raise ValueError("key is required for creating a table.")
        return self._create("table", table_name, columns_type, topic, value_format, key)

    def _create(
        self,
        table_type: str,
        table_name: str,
        columns_type: Sequence[str],
        topic: str,
        value_format: str,
        key: str | None = None,
    ) -> bool:
        self.ksql(build_create(table_type, table_name, columns_type, topic, value_format, key))
        return True

    def create_stream_as(
        self,
        table_name: str,
        select_columns: Sequence[str],
        src_table: str,
        kafka_topic: str | None = None,
        value_format: str = "JSON",
        conditions: Any = (),
        partition_by: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """``CREATE stream <name> WITH (...) AS SELECT ... FROM <src> [where ...] [PARTITION BY ...]``;
        True. ``kwargs`` may set ``partitions``, ``replicas`` and ``timestamp``."""
        statement = build_create_as(
            "stream",
            table_name,
            select_columns,
            src_table,
            kafka_topic,
            value_format,
            conditions,
            partition_by,
            **kwargs,
        )
        self.ksql(statement)
        return True


def build_create(
    table_type: str, table_name: str, columns_type: Sequence[str], topic: str, value_format: str, key: str | None = None
) -> str:
    """The statement ksql-python's ``create_stream``/``create_table`` send."""
    if value_format.lower() not in _VALUE_FORMATS:
        raise ValueError(f"value format {value_format!r} is not one of {_VALUE_FORMATS}")
    key_clause = f", key='{key}'" if key else ""
    columns = ", ".join(columns_type)
    return f"CREATE {table_type} {table_name} ({columns}) WITH (kafka_topic='{topic}', value_format='{value_format}'{key_clause});"


def build_create_as(
    table_type: str,
    table_name: str,
    select_columns: Sequence[str] | None,
    src_table: str,
    kafka_topic: str | None,
    value_format: str,
    conditions: Any,
    partition_by: str | None,
    **kwargs: Any,
) -> str:
    """The statement ksql-python's ``create_stream_as`` sends (before its ``;``)."""
    if value_format.lower() not in _VALUE_FORMATS:
        raise ValueError(f"value format {value_format!r} is not one of {_VALUE_FORMATS}")
    properties = "".join(
        f", {name}='{kwargs[name]}'" if isinstance(kwargs[name], str) else f", {name}={kwargs[name]}"
        for name in ("kafka_topic", "value_format", "partitions", "replicas", "timestamp")
        if name in kwargs
    )
    select = ", ".join(select_columns) if select_columns else "*"
    where = f"where {conditions}".replace('"', "'") if len(conditions) > 0 else ""
    partition = f"PARTITION BY {partition_by}" if partition_by else ""
    statement = (
        f"CREATE {table_type} {table_name} WITH (kafka_topic='{kafka_topic or table_name}', "
        f"value_format='{value_format}'{properties}) AS SELECT {select} FROM {src_table} {where} {partition}"
    )
    return re.sub(r"\s+", " ", statement).strip()


def _read(
    next_part: Callable[[float | None], list[str] | None], stream: KsqlQueryStream, idle_timeout: float | None
) -> Generator[str, None, None]:
    try:
        while True:
            part = next_part(idle_timeout)
            if part is None:
                return
            yield from part
    finally:
        # Leaving the generator early (break, Ctrl-C, garbage collection) stops the query.
        stream.close()
