"""A ksqlDB server stand-in for the tests: a real HTTP/1.1 server on 127.0.0.1, in a thread.

No ksqlDB server can run on the machines these tests run on, so this plays one:

- ``replay(cassette)`` serves HTTP exchanges recorded from real KSQL/ksqlDB servers
  (ksql-python's vcrpy cassettes in ``../shared/fixtures/ksql-python-cassettes``). A request
  is answered by the first not-yet-used recorded exchange with the same method, path and
  JSON body; its recorded status and body are sent back unchanged. A request nobody
  recorded gets HTTP 599, which fails the test that made it.
- ``script(path, handler)`` serves responses the tests author themselves (synthesized,
  following the ksqlDB REST documentation): streamed ``/query`` and ``/query-stream``
  results, inserts acks, error answers. Streams are sent with chunked transfer encoding in
  the chunks the test chooses, so rows can be split anywhere.

Every request is recorded (method, path, headers, parsed body) for the tests to inspect, and
``open_connections`` counts the TCP connections clients hold open to it right now.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ksql-python-cassettes"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, the raw text when it is not JSON, or None
    text: str


@dataclass
class Reply:
    """What to send: a status and either a whole body or chunks (with a pause before each);
    ``keep_alive_until_closed`` then sends a newline every 50 ms until the client leaves."""

    status: int = 200
    body: str | None = None
    chunks: Iterable[bytes] = ()
    pause: float = 0.0
    keep_alive_until_closed: bool = False
    content_type: str = "application/json"


@dataclass
class Interaction:
    method: str
    path: str
    body: Any
    status: int
    response: str
    used: bool = False


def load_cassette(name: str) -> list[Interaction]:
    """The recorded exchanges of one cassette file, in order."""
    data = yaml.safe_load((CASSETTES / name).read_text())
    interactions = []
    for entry in data["interactions"]:
        request, response = entry["request"], entry["response"]
        body = request.get("body")
        interactions.append(
            Interaction(
                method=request["method"],
                path=urlsplit(request["uri"]).path,
                body=None if body is None else json.loads(body),
                status=response["status"]["code"],
                response=response["body"]["string"],
            )
        )
    return interactions


@dataclass
class KsqlDouble:
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    scripts: dict[str, Callable[[Request], Reply]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    open_connections: int = 0

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> int:
        """Waits until ``count`` connections are open (or the timeout); returns how many are."""
        deadline = time.monotonic() + timeout
        while self.open_connections != count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        scheme = "https" if getattr(self, "tls", False) else "http"
        return f"{scheme}://127.0.0.1:{port}"

    def replay(self, cassette: str) -> list[Interaction]:
        """Adds a cassette's exchanges to what the server answers; returns them."""
        interactions = load_cassette(cassette)
        self.interactions.extend(interactions)
        return interactions

    def script(self, path: str, handler: Callable[[Request], Reply]) -> None:
        """Answers requests to ``path`` with ``handler(request)`` (before any cassette)."""
        self.scripts[path] = handler

    def unused(self) -> list[Interaction]:
        return [i for i in self.interactions if not i.used]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def answer(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            handler = self.scripts.get(request.path)
            if handler is None:
                for interaction in self.interactions:
                    if (
                        not interaction.used
                        and interaction.method == request.method
                        and interaction.path == request.path
                        and interaction.body == request.body
                    ):
                        interaction.used = True
                        return Reply(status=interaction.status, body=interaction.response)
                return Reply(
                    status=599,
                    body=json.dumps(
                        {"message": f"no recorded exchange for {request.method} {request.path} {request.text}"}
                    ),
                )
        return handler(request)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_class(double_ref: list[KsqlDouble]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with double_ref[0].lock:
                double_ref[0].open_connections += 1

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with double_ref[0].lock:
                    double_ref[0].open_connections -= 1

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode() if length else ""
            try:
                body: Any = json.loads(text) if text else None
            except ValueError:
                body = text
            request = Request(
                self.command, urlsplit(self.path).path, {k.lower(): v for k, v in self.headers.items()}, body, text
            )
            reply = double_ref[0].answer(request)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.body is not None:
                data = reply.body.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in reply.chunks:
                    if reply.pause:
                        time.sleep(reply.pause)
                    self._chunk(chunk)
                while reply.keep_alive_until_closed:
                    time.sleep(0.05)
                    self._chunk(b"\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        do_GET = _serve
        do_POST = _serve

    return Handler


def start(tls_context: Any = None) -> KsqlDouble:
    """Starts a double on a free port (HTTPS when given an ``ssl.SSLContext``)."""
    ref: list[KsqlDouble] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(ref))
    server.daemon_threads = True
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    double = KsqlDouble(server)
    double.tls = tls_context is not None  # type: ignore[attr-defined]
    ref.append(double)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return double


def split_every(data: str | bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter)."""
    raw = data.encode() if isinstance(data, str) else data
    return [raw[i : i + size] for i in range(0, len(raw), size)]
