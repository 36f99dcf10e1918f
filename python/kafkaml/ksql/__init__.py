"""kafkaml's ksqlDB client: statements, push/pull queries into Arrow and pandas, inserts.

- :class:`Client` / :class:`AsyncClient`: the native client (HTTP/1.1 and HTTP/2, basic
  auth, bearer tokens, TLS client certificates, timeouts, "not ready" retries);
- :class:`Query`: a query's rows as dicts, record batches, a Table or a DataFrame;
- :class:`LocalKsql`: kafkaml's embedded KSQL engine behind ksqlDB's REST API, with
  :func:`model_udf` to run models as KSQL functions;
- :class:`KSQLAPI`: a drop-in for ksql-python's client (``from kafkaml.ksql import KSQLAPI``);
- :mod:`kafkaml.ksql.utils`: ksql-python's helpers (streams, dropping them, parsing
  ``KSQLAPI.query()``'s lines into row dicts);
- :class:`KsqlError` and its subclasses (``KSQLError`` is ksql-python's name for it; ``.kind``
  says which class of failure, as the Rust core classified it);
- ``%load_ext kafkaml.ksql`` for the ``%%ksql`` cell magic.
"""

from kafkaml._native import (
    KsqlAuthError,
    KsqlConnectionError,
    KsqlEndpointError,
    KsqlError,
    KsqlServerNotReadyError,
    KsqlStatementError,
    KsqlStreamError,
)
from kafkaml.ksql._client import AsyncClient, AsyncQuery, Client, Entities, Query, split_statements
from kafkaml.ksql._compat import KSQLAPI, KSQLError
from kafkaml.ksql._local import LocalKsql, model_udf
from kafkaml.ksql._magic import load_ipython_extension

__all__ = [
    "Client",
    "AsyncClient",
    "Query",
    "AsyncQuery",
    "Entities",
    "KSQLAPI",
    "LocalKsql",
    "model_udf",
    "KSQLError",
    "KsqlError",
    "KsqlStatementError",
    "KsqlEndpointError",
    "KsqlAuthError",
    "KsqlServerNotReadyError",
    "KsqlStreamError",
    "KsqlConnectionError",
    "load_ipython_extension",
    "split_statements",
]
