"""The ``%%ksql`` cell magic: ``%load_ext kafkaml.ksql``, then

    %%ksql http://localhost:8088
    SHOW STREAMS;

runs the cell's statements and shows the entities as tables. The URL may be left out after
the first use (or set ``KSQL_URL``). A cell that is one ``SELECT`` runs as a query and shows
a DataFrame: ``%%ksql --limit 100`` (default 20 rows) or ``--idle-timeout 5`` bound it.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from kafkaml.ksql._client import Client

_clients: dict[str, Client] = {}
_last_url: list[str] = []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%%ksql", add_help=False)
    parser.add_argument("url", nargs="?")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--idle-timeout", type=float, default=None)
    return parser


def run_cell(line: str, cell: str) -> Any:
    """What ``%%ksql <line>`` shows for a cell: entities, or a DataFrame for a SELECT."""
    args = _parser().parse_args(shlex.split(line))
    url = args.url or (_last_url[-1] if _last_url else os.environ.get("KSQL_URL"))
    if not url:
        raise ValueError("%%ksql needs the server URL once: %%ksql http://host:8088")
    _last_url.append(url)
    client = _clients.get(url) or _clients.setdefault(url, Client(url))
    text = cell.strip()
    if text.upper().startswith("SELECT"):
        with client.query(text, limit=args.limit, idle_timeout=args.idle_timeout) as query:
            return query.to_pandas()
    return client.ksql(text)


def load_ipython_extension(ipython: Any) -> None:
    """Registers ``%%ksql`` (``%load_ext kafkaml.ksql``)."""
    ipython.register_magic_function(run_cell, magic_kind="cell", magic_name="ksql")
