"""The ksqlDB client: statements, streaming queries into Arrow and pandas, inserts."""

from __future__ import annotations

import asyncio
import functools
import html
import json
import re
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from kafkaml._display import html_table
from kafkaml._native import ConfigError, KsqlConnection, KsqlConnectionError, KsqlQueryStream

T = TypeVar("T")

#: ``SET 'name' = 'value';`` and ``UNSET 'name';``, which the REST API does not keep between
#: requests: the client keeps them, as the ksql CLI does.
_SET = re.compile(r"^\s*SET\s+'([^']+)'\s*=\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE | re.DOTALL)
_UNSET = re.compile(r"^\s*UNSET\s+'([^']+)'\s*$", re.IGNORECASE | re.DOTALL)
_DEFINE = re.compile(r"^\s*DEFINE\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE | re.DOTALL)
_UNDEFINE = re.compile(r"^\s*UNDEFINE\s+([A-Za-z_][A-Za-z0-9_]*)\s*$", re.IGNORECASE | re.DOTALL)


def _is_session_statement(statement: str) -> bool:
    body = statement.rstrip().rstrip(";")
    return any(p.match(body) for p in (_SET, _UNSET, _DEFINE, _UNDEFINE))


def split_statements(text: str) -> list[str]:
    """Splits KSQL text at the semicolons that end statements (not those inside quotes or
    comments); each statement keeps its semicolon."""
    statements: list[str] = []
    start = 0
    i = 0
    quote: str | None = None
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
        elif c in "'`\"":
            quote = c
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif c == ";":
            statement = text[start : i + 1].strip()
            if statement != ";":
                statements.append(statement)
            start = i + 1
        i += 1
    rest = text[start:].strip()
    if rest:
        statements.append(rest)
    return statements


class Entities(list[Any]):
    """The entities ``/ksql`` answered: a plain list of dicts, shown as tables in Jupyter."""

    def _repr_html_(self) -> str:
        return "".join(_entity_html(entity) for entity in self)


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return html.escape("" if value is None else str(value))


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _entity_html(entity: Any) -> str:
    if not isinstance(entity, dict):
        return f"<pre>{_cell(entity)}</pre>"
    kind = entity.get("@type", "")
    title = f"<p><b>{html.escape(str(kind))}</b> {_cell(entity.get('statementText'))}</p>"
    # Listings (streams, tables, queries, properties, topics, ...) are one list of records.
    listings = [
        v for k, v in entity.items() if isinstance(v, list) and k != "warnings" and all(isinstance(x, dict) for x in v)
    ]
    if len(listings) == 1:
        rows = listings[0]
        return title + (_table(rows) if rows else "<p><i>(none)</i></p>")
    if isinstance(entity.get("sourceDescription"), dict):
        description = entity["sourceDescription"]
        fields = [
            {"name": f.get("name"), "type": (f.get("schema") or {}).get("type")} for f in description.get("fields", [])
        ]
        return title + _table(fields)
    pairs = [{"field": k, "value": v} for k, v in entity.items() if k not in ("@type", "statementText")]
    return title + _table(pairs)


def _read_pem(value: str | bytes | Path) -> bytes:
    if isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


_PKCS8_KEY = re.compile(rb"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\s*", re.DOTALL)


def _split_pem(pem: bytes, where: str) -> tuple[bytes, bytes]:
    """A PEM file holding a certificate chain and its key, as (certificates, key)."""
    match = _PKCS8_KEY.search(pem)
    if match is None:
        raise ConfigError(
            f"{where} holds no PKCS#8 private key (-----BEGIN PRIVATE KEY-----); convert an RSA/EC "
            "key with: openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem"
        )
    return pem[: match.start()] + pem[match.end() :], match.group(0)


class Client:
    """A ksqlDB (or KSQL 5.x) REST client.

    ``url`` is the server, e.g. ``"http://localhost:8088"``. ``auth`` is ``(key, secret)``
    for basic auth (Confluent Cloud API keys) or a string for a bearer token. ``verify`` is
    True, False (no certificate check, tests only) or the path of a PEM CA bundle; ``cert``
    is a PEM file holding the client certificate and its PKCS#8 key, or a ``(cert, key)``
    pair of paths, as with requests. ``timeout`` bounds each non-streaming request and the
    wait for a query's header; ``http2=True`` speaks HTTP/2 with prior knowledge to
    ``/query-stream`` and ``/inserts-stream`` on ``http://`` URLs (``https://`` negotiates
    it). Requests answered "server not ready" (HTTP 503) are retried ``retries`` times.

    Session state persists across calls, as in the ksql CLI: :meth:`set` (or a ``SET``
    statement) adds a streams property to every later request, :meth:`define` (or
    ``DEFINE``) a session variable.

    ``with Client(url) as client:`` closes it on leaving (see :meth:`close`).
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | str | None = None,
        verify: bool | str | Path = True,
        cert: str | Path | tuple[str | Path, str | Path] | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        http2: bool = False,
        retries: int = 3,
    ) -> None:
        username = password = token = None
        if isinstance(auth, str):
            token = auth
        elif auth is not None:
            username, password = auth
        ca_pem = None if isinstance(verify, bool) else _read_pem(verify)
        cert_pem = key_pem = None
        if cert is not None:
            if isinstance(cert, tuple):
                cert_pem, key_pem = _read_pem(cert[0]), _read_pem(cert[1])
            else:
                cert_pem, key_pem = _split_pem(_read_pem(cert), str(cert))
        self.timeout = timeout
        self._native: KsqlConnection | None = KsqlConnection(
            url,
            username=username,
            password=password,
            bearer_token=token,
            verify=verify is not False,
            ca_pem=ca_pem,
            client_cert_pem=cert_pem,
            client_key_pem=key_pem,
            connect_timeout=connect_timeout,
            timeout=timeout,
            http2=http2,
            retries=retries,
        )
        self._url = self._native.url
        self._properties: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._server_version: str | None = None
        # Queries this client started that may still run, closed with it.
        self._queries: weakref.WeakSet[Query] = weakref.WeakSet()

    @property
    def _connection(self) -> KsqlConnection:
        if self._native is None:
            raise KsqlConnectionError(f"this Client of {self._url} is closed")
        return self._native

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._url

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._native is None

    @property
    def server_version(self) -> str | None:
        """The server's version once :meth:`info` asked for it (None before)."""
        return self._server_version

    def close(self) -> None:
        """Closes the queries this client started that still run (on the server too) and
        releases its HTTP connections; later calls raise :class:`KsqlConnectionError`."""
        for query in list(self._queries):
            query.close()
        self._queries.clear()
        # The last user of a connection pool dropping it closes the pool's connections.
        self._native = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = [repr(self.url)]
        if self._server_version:
            parts.append(f"server {self._server_version}")
        if self._properties:
            parts.append(f"properties={self._properties!r}")
        if self._variables:
            parts.append(f"variables={self._variables!r}")
        if self.closed:
            parts.append("closed")
        return f"Client({', '.join(parts)})"

    def _display_rows(self) -> list[tuple[str, object]]:
        return [
            ("url", self.url),
            ("server version", self._server_version or "unknown (call info())"),
            ("state", "closed" if self.closed else "open"),
            ("properties", self._properties or "(none)"),
            ("variables", self._variables or "(none)"),
            ("running queries", sum(1 for q in self._queries if not q._stream.finished)),
        ]

    def _repr_html_(self) -> str:
        return html_table("ksqlDB Client", self._display_rows())

    @property
    def properties(self) -> dict[str, Any]:
        """The session's streams properties (a copy)."""
        return dict(self._properties)

    @property
    def variables(self) -> dict[str, Any]:
        """The session's variables (a copy)."""
        return dict(self._variables)

    def set(self, name: str, value: Any) -> None:
        """Sets a streams property for every later request, e.g. ``set("auto.offset.reset", "earliest")``."""
        self._properties[name] = value

    def unset(self, name: str) -> None:
        """Removes a property set with :meth:`set`."""
        self._properties.pop(name, None)

    def define(self, name: str, value: Any) -> None:
        """Defines a session variable, substituted by the server for ``${name}``."""
        self._variables[name] = value

    def undefine(self, name: str) -> None:
        """Removes a variable defined with :meth:`define`."""
        self._variables.pop(name, None)

    def _merged(self, properties: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**self._properties, **(properties or {})}

    def _apply_session_statement(self, statement: str) -> dict[str, Any]:
        body = statement.rstrip().rstrip(";")
        if match := _SET.match(body):
            self.set(match.group(1), match.group(2).replace("''", "'"))
            return {
                "@type": "property_set",
                "statementText": statement,
                "name": match.group(1),
                "value": match.group(2),
            }
        if match := _UNSET.match(body):
            self.unset(match.group(1))
            return {"@type": "property_unset", "statementText": statement, "name": match.group(1)}
        if match := _DEFINE.match(body):
            self.define(match.group(1), match.group(2).replace("''", "'"))
            return {
                "@type": "variable_defined",
                "statementText": statement,
                "name": match.group(1),
                "value": match.group(2),
            }
        if match := _UNDEFINE.match(body):
            self.undefine(match.group(1))
            return {"@type": "variable_undefined", "statementText": statement, "name": match.group(1)}
        raise ValueError(f"not a session statement: {statement!r}")

    def ksql(self, statements: str, properties: Mapping[str, Any] | None = None) -> Entities:
        """Runs statements through ``POST /ksql``; returns the server's entities.

        ``SET``/``UNSET``/``DEFINE``/``UNDEFINE`` statements change this client's session
        (the server keeps none between requests); they answer local entities with an
        ``@type`` of ``property_set`` etc. Other statements go to the server in order, with
        the session's properties and variables (``properties`` adds to them for this call).
        Raises :class:`KsqlError` (a subclass by cause) when the server refuses.
        """
        entities = Entities()
        batch: list[str] = []

        def send() -> None:
            if batch:
                text = self._connection.ksql(
                    " ".join(batch),
                    json.dumps(self._merged(properties)),
                    json.dumps(self._variables),
                )
                entities.extend(json.loads(text))
                batch.clear()

        parts = split_statements(statements)
        if not parts:
            raise ValueError("no statement to run")
        for statement in parts:
            if _is_session_statement(statement):
                send()  # the statements before it run with the session as it was
                entities.append(self._apply_session_statement(statement))
            else:
                batch.append(statement if statement.endswith(";") else statement + ";")
        send()
        return entities

    def query(
        self,
        sql: str,
        properties: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        idle_timeout: float | None = None,
        endpoint: str = "query",
    ) -> Query:
        """Starts a streaming (push or pull) query; returns a :class:`Query` over its rows.

        ``endpoint`` is ``"query"`` (HTTP/1.1, KSQL 5.x and ksqlDB) or ``"query-stream"``
        (ksqlDB's newer API; pass ``http2=True`` to the client for servers that need HTTP/2).
        ``limit`` stops after that many rows, ``idle_timeout`` when no row came for that
        many seconds; either one then closes the query on the server.
        """
        sql = sql.strip()
        if not sql.endswith(";"):
            sql += ";"
        stream = self._connection.query(
            sql,
            json.dumps(self._merged(properties)),
            json.dumps(self._variables),
            endpoint=endpoint,
            limit=limit,
            header_timeout=self.timeout,
        )
        query = Query(stream, idle_timeout=idle_timeout, sql=sql)
        self._queries.add(query)
        return query

    def insert(self, stream: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Inserts rows (dicts of column values) into a stream through ``/inserts-stream``.

        Returns one ack per row, in row order (``{"status": "ok", "seq": 0}``, ...), whatever
        order the server sent them in; raises :class:`KsqlError` if the server rejected any.
        """
        texts = [json.dumps(row, default=str) for row in rows]
        return [json.loads(ack) for ack in self._connection.insert(stream, texts)]

    def info(self) -> dict[str, Any]:
        """``GET /info``: the server's version, Kafka cluster id and service id."""
        result: dict[str, Any] = json.loads(self._connection.get("/info"))
        version = (result.get("KsqlServerInfo") or {}).get("version")
        if isinstance(version, str):
            self._server_version = version
        return result

    def healthcheck(self) -> dict[str, Any]:
        """``GET /healthcheck``: whether the server and its dependencies are healthy."""
        result: dict[str, Any] = json.loads(self._connection.get("/healthcheck"))
        return result

    def cluster_status(self) -> dict[str, Any]:
        """``GET /clusterStatus``: the state of every server in the cluster."""
        result: dict[str, Any] = json.loads(self._connection.get("/clusterStatus"))
        return result

    def status(self, command_id: str | None = None) -> dict[str, Any]:
        """``GET /status/<command_id>`` (or ``/status`` for all commands)."""
        path = "/status" if command_id is None else f"/status/{command_id}"
        result: dict[str, Any] = json.loads(self._connection.get(path))
        return result

    def close_query(self, query_id: str) -> None:
        """``POST /close-query``: stops a push query by its id."""
        self._connection.close_query(query_id)

    def terminate(self, delete_topics: Sequence[str] = ()) -> dict[str, Any]:
        """``POST /ksql/terminate``: terminates the cluster and deletes the given topics."""
        result: dict[str, Any] = json.loads(self._connection.terminate(list(delete_topics)))
        return result


class Query:
    """The rows of one streaming query.

    Iterating yields one dict per row (column name -> value), as ksql-python's
    ``return_objects=True`` does; :meth:`batches` yields ``pyarrow.RecordBatch`` es,
    :meth:`to_arrow` and :meth:`to_pandas` collect the rest of the results (for push queries,
    pass ``limit`` or ``idle_timeout`` to the query, or they wait for more rows forever).
    Tombstones of table queries come as rows whose value columns are null.

    Closing it (:meth:`close`, leaving a ``with`` block, or Ctrl-C while reading) closes the
    query on the server.
    """

    def __init__(self, stream: KsqlQueryStream, *, idle_timeout: float | None = None, sql: str | None = None) -> None:
        self._stream = stream
        self._idle_timeout = idle_timeout
        self._sql = sql
        self._closed_early = False

    @property
    def sql(self) -> str | None:
        """The query's statement."""
        return self._sql

    @property
    def state(self) -> str:
        """``"running"`` while more rows may come, ``"finished"`` once the results ended
        (a limit, an idle timeout, the server's end), ``"closed"`` if closed before that."""
        if self._closed_early:
            return "closed"
        return "finished" if self._stream.finished else "running"

    def _columns(self) -> list[tuple[str, str]]:
        schema = self.schema
        return [] if schema is None else [(field.name, str(field.type)) for field in schema]

    def __repr__(self) -> str:
        columns = ", ".join(name for name, _ in self._columns()) or "?"
        sql = self._sql if self._sql is None or len(self._sql) <= 80 else self._sql[:77] + "..."
        rows = self.rows_read
        return f"<Query {sql!r} {self.state}, {rows:,} row{'' if rows == 1 else 's'} read, columns: {columns}>"

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("sql", self._sql),
            ("state", self.state),
            ("query id", self.query_id),
            ("rows read", self.rows_read),
            ("columns", ", ".join(f"{n} {t}" for n, t in self._columns()) or "(not known yet)"),
        ]
        if self.final_message:
            rows.append(("final message", self.final_message))
        return html_table("ksqlDB Query", rows)

    @property
    def query_id(self) -> str | None:
        """The server's id of the query (None for KSQL 5.x, which sends none)."""
        return self._stream.query_id

    @property
    def schema(self) -> pa.Schema | None:
        """The result's ``pyarrow.Schema`` (KSQL 5.x: inferred from the first rows)."""
        return self._stream.schema

    @property
    def final_message(self) -> str | None:
        """The server's closing message, e.g. ``"Limit Reached"``, once it came."""
        return self._stream.final_message

    @property
    def rows_read(self) -> int:
        """Rows received so far."""
        return self._stream.rows_read

    def batches(self, max_rows: int = 10_000, max_wait: float = 0.5) -> Iterator[pa.RecordBatch]:
        """Yields record batches of at most ``max_rows`` rows, or what arrived within
        ``max_wait`` seconds, until the results end."""
        try:
            while True:
                batch = self._stream.next_batch(max_rows, max_wait, self._idle_timeout)
                if batch is None:
                    return
                yield batch
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Each row as soon as it is read (max_wait=0): what one read brought comes as one
        # batch, so a busy stream is still decoded in bulk, and a sparse one is not held back.
        for batch in self.batches(max_wait=0.0):
            yield from batch.to_pylist()

    def to_arrow(self) -> pa.Table:
        """All remaining rows as a ``pyarrow.Table``."""
        batches = list(self.batches())
        schema = self.schema
        if schema is None:
            schema = batches[0].schema if batches else pa.schema([])
        return pa.Table.from_batches(batches, schema=schema)

    def to_pandas(self) -> Any:
        """All remaining rows as a ``pandas.DataFrame``."""
        return self.to_arrow().to_pandas()

    def close(self) -> None:
        """Stops reading and closes the query on the server, if it may still run."""
        if not self._stream.finished:
            self._closed_early = True
        self._stream.close()

    def __enter__(self) -> Query:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class AsyncClient:
    """:class:`Client` for asyncio code: the same methods, as coroutines.

    The native client's calls block (with the GIL released), so each runs in the event
    loop's default thread-pool executor; the event loop itself never blocks.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.sync = Client(url, **options)

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))

    def __repr__(self) -> str:
        return "Async" + repr(self.sync)

    def _repr_html_(self) -> str:
        return html_table("ksqlDB AsyncClient", self.sync._display_rows())

    async def close(self) -> None:
        """See :meth:`Client.close`."""
        await self._run(self.sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def set(self, name: str, value: Any) -> None:
        """See :meth:`Client.set`."""
        self.sync.set(name, value)

    def define(self, name: str, value: Any) -> None:
        """See :meth:`Client.define`."""
        self.sync.define(name, value)

    async def ksql(self, statements: str, properties: Mapping[str, Any] | None = None) -> Entities:
        """See :meth:`Client.ksql`."""
        return await self._run(self.sync.ksql, statements, properties)

    async def query(self, sql: str, properties: Mapping[str, Any] | None = None, **options: Any) -> AsyncQuery:
        """See :meth:`Client.query`; returns an :class:`AsyncQuery`."""
        return AsyncQuery(self, await self._run(self.sync.query, sql, properties, **options))

    async def insert(self, stream: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """See :meth:`Client.insert`."""
        return await self._run(self.sync.insert, stream, list(rows))

    async def info(self) -> dict[str, Any]:
        """See :meth:`Client.info`."""
        return await self._run(self.sync.info)

    async def healthcheck(self) -> dict[str, Any]:
        """See :meth:`Client.healthcheck`."""
        return await self._run(self.sync.healthcheck)

    async def close_query(self, query_id: str) -> None:
        """See :meth:`Client.close_query`."""
        await self._run(self.sync.close_query, query_id)

    async def terminate(self, delete_topics: Sequence[str] = ()) -> dict[str, Any]:
        """See :meth:`Client.terminate`."""
        return await self._run(self.sync.terminate, delete_topics)


class AsyncQuery:
    """:class:`Query` for asyncio: ``async for row in query``, ``await query.to_pandas()``."""

    def __init__(self, client: AsyncClient, query: Query) -> None:
        self._client = client
        self.sync = query

    @property
    def query_id(self) -> str | None:
        """See :attr:`Query.query_id`."""
        return self.sync.query_id

    @property
    def schema(self) -> pa.Schema | None:
        """See :attr:`Query.schema`."""
        return self.sync.schema

    async def batches(self, max_rows: int = 10_000, max_wait: float = 0.5) -> AsyncIterator[pa.RecordBatch]:
        """See :meth:`Query.batches`."""
        stream = self.sync._stream
        while True:
            batch = await self._client._run(stream.next_batch, max_rows, max_wait, self.sync._idle_timeout)
            if batch is None:
                return
            yield batch

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.batches(max_wait=0.0):  # rows as they arrive (see Query.__iter__)
            for row in batch.to_pylist():
                yield row

    async def to_arrow(self) -> pa.Table:
        """See :meth:`Query.to_arrow`."""
        return await self._client._run(self.sync.to_arrow)

    async def to_pandas(self) -> Any:
        """See :meth:`Query.to_pandas`."""
        return await self._client._run(self.sync.to_pandas)

    async def close(self) -> None:
        """See :meth:`Query.close`."""
        await self._client._run(self.sync.close)

    async def __aenter__(self) -> AsyncQuery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
