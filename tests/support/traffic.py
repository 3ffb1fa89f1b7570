"""Everything a browser receives, recorded on the wire: a TCP relay between the browser and the
server that keeps every byte, decoded afterwards as HTTP/1.1 with h11.

Recording below the browser sees all of it whatever the page does with it: the page config,
every event stream (Gradio's server-sent events), API responses, files, scripts. Recording in
the page (DOM, fetch hooks) would miss what the page receives and does not show.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import h11


@dataclass
class _Connection:
    sent: bytearray = field(default_factory=bytearray)  # browser -> server
    received: bytearray = field(default_factory=bytearray)  # server -> browser


class RecordingProxy:
    """Listens on a loopback port and relays each connection to `upstream_port`, keeping a copy
    of both directions."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="recording proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            record = _Connection()
            with self._lock:
                self._connections.append(record)
            threading.Thread(target=self._pump, args=(client, upstream, record.sent), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, record.received), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, log: bytearray) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    log.extend(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def received_text(self) -> list[str]:
        """What the browser has received so far, one decoded text per response part: headers,
        and bodies de-chunked and decompressed (a stream still open: what has arrived of it)."""
        with self._lock:
            snapshot = [(bytes(c.sent), bytes(c.received)) for c in self._connections]
        return [part for sent, received in snapshot for part in _decode(sent, received)]

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def _decode(sent: bytes, received: bytes) -> list[str]:
    """Each response on one connection: its status line and headers, then its body whole, or an
    event stream's messages one by one (a stream still open: the messages that have arrived)."""
    server = h11.Connection(h11.SERVER)  # reads the browser's requests
    server.receive_data(sent)
    client = h11.Connection(h11.CLIENT)  # reads the server's responses to them
    parts: list[str] = []
    offset = 0
    for request in _requests(server):
        # replayed without its body: only the responses are read
        headers = [(k, v) for k, v in request.headers if k.lower() not in (b"content-length", b"transfer-encoding")]
        client.send(h11.Request(method=request.method, target=request.target, headers=headers))
        client.send(h11.EndOfMessage())
        response: dict[str, str] = {}
        body = bytearray()
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                if offset >= len(received):
                    break  # the recording ends mid-response (a stream still open)
                client.receive_data(received[offset:])
                offset = len(received)
                continue
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                parts.append(received[offset:].decode("utf-8", "replace"))  # a websocket, as it came
                return parts
            if isinstance(event, h11.Response):
                response = {k.decode().lower(): v.decode() for k, v in event.headers}
                parts.append(f"{event.status_code} {request.target.decode()} {response}")
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        text = _decompress(bytes(body), response.get("content-encoding", ""))
        if response.get("content-type", "").startswith("text/event-stream"):
            parts += text.split("\n\n")
        elif text:
            parts.append(text)
        if client.their_state is not h11.DONE or client.our_state is not h11.DONE:
            break
        client.start_next_cycle()
    return parts


def _requests(server: h11.Connection) -> Iterator[h11.Request]:
    while True:
        event = server.next_event()
        if isinstance(event, h11.Request):
            yield event
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return
        elif isinstance(event, h11.EndOfMessage):
            server.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            server.send(h11.EndOfMessage())
            server.start_next_cycle()


def _decompress(body: bytes, encoding: str) -> str:
    if not body:
        return ""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding == "br":
        import brotli

        body = brotli.decompress(body)
    return body.decode("utf-8", "replace")
