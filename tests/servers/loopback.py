"""A small HTTP/1.1 server on 127.0.0.1 in a background thread, for fake engine servers.

Answers are written by hand (status line, headers, chunked body), so a fake can do what real
servers do on a bad day: stop mid-body, answer slowly, or send an error status.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["Exchange"], None]


class ClientGone(Exception):
    """The client closed the connection while we were answering (a cancel)."""


class Exchange:
    """One request and the means to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        self._handler = handler
        self.method = handler.command
        self.path = handler.path.split("?", 1)[0]
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def send_json(self, status: int, value: Any, content_type: str = "application/json; charset=utf-8") -> None:
        data = json.dumps(value).encode()
        self._head(status, {"Content-Type": content_type, "Content-Length": str(len(data))})
        self._write(data)

    def start_chunked(self, content_type: str, status: int = 200) -> None:
        self._head(status, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})

    def send_chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self._write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Drop the connection now, body unfinished (a crash or a proxy timeout)."""
        self._handler.close_connection = True
        self._handler.wfile.flush()

    def _head(self, status: int, headers: dict[str, str]) -> None:
        handler = self._handler
        handler.send_response_only(status)
        handler.send_header("Date", handler.date_time_string())
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()

    def _write(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone from exc


class LoopbackServer:
    """Serves `routes` ({(method, path): handler}) on a free port until `stop()`."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self._routes = routes
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Set when a client went away in the middle of an answer.
        self.client_gone = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                exchange = Exchange(self, body)
                route = owner._routes.get((exchange.method, exchange.path))
                try:
                    if route is None:
                        exchange.send_json(404, {"error": f"{exchange.method} {exchange.path} not found"},
                                           "text/plain; charset=utf-8")
                    else:
                        route(exchange)
                except ClientGone:
                    owner.client_gone.set()
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="loopback server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def paced(items: Iterable[Any], interval_s: float) -> Iterable[Any]:
    """Yield `items` at a fixed rate against a schedule (sleep overshoot does not accumulate)."""
    start = time.perf_counter()
    for index, item in enumerate(items):
        if interval_s > 0:
            time.sleep(max(0.0, start + index * interval_s - time.perf_counter()))
        yield item
