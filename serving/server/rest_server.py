"""The HTTP plumbing of the embedded model server's REST front end: a threading HTTP/1.1 server (keep-alive,
as TF Serving's evhttp server) around ``rest_routes.RestApi``, which refuses oversized bodies from their
``Content-Length`` (also on ``Expect: 100-continue``) before reading them. Every exchange, up to its last
byte written, counts as in progress for the drain (``admission.py``); during a drain answers close their
connection, so that no client sends a next request into a closing server. A request must arrive whole
within ``--rest-read-timeout-seconds`` of its first byte (a slow client is cut off: 408, or the connection closed), so slow
clients cannot hold the server's threads.
"""
from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.rest_routes import RestApi

log = logging.getLogger("tfxformers.serve")


DEFAULT_READ_TIMEOUT = 5.0  # seconds for a whole request to arrive (--rest-read-timeout-seconds)
# A refused body up to this size is read and dropped so the client gets its 413; a larger one is not read.
DISCARD_LIMIT = 64 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's evhttp server
    api: RestApi = None
    read_timeout: float = DEFAULT_READ_TIMEOUT

    def handle_one_request(self):
        # The whole request (line, headers, body) must arrive within read_timeout of its first byte. A
        # per-recv socket timeout alone would let a client sending a byte a second hold this thread for
        # ever; closing the read side wakes the blocked read with an end of file. An idle keep-alive
        # connection is not timed: closing it could race a client's next request on it.
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except OSError:
            self.close_connection = True
            return
        self._timer = threading.Timer(self.read_timeout, self._read_expired)
        self._timer.daemon = True
        self._timer.start()
        try:
            super().handle_one_request()
        finally:
            self._timer.cancel()

    def _read_expired(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        admission = self.api.admission
        try:
            # Status, metadata and metrics stay answered during a drain; model requests are refused.
            with admission.request(refuse=method not in ("GET", "HEAD")):
                self._exchange(method)
        except ServingError as exc:  # draining: refused before the body is read
            self.close_connection = True
            self._send(exc.http_status, "application/json", json.dumps({"error": exc.message}).encode())

    def _exchange(self, method: str) -> None:
        headers = {}
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        try:
            if length < 0:
                self.close_connection = True  # the body's end is unknown: the connection cannot be reused
                status, content_type, out = 400, "application/json", json.dumps(
                    {"error": f"Content-Length {self.headers.get('Content-Length')!r} is not a byte count"}).encode()
            elif length > self.api.limits.max_request_bytes:
                status, content_type, out = self.api.refuse_body(method, self.path, length)
                self._discard_body(length)
            else:
                body = self.rfile.read(length) if length > 0 else b""
                self._timer.cancel()  # the request is in: computing it may take longer than reading it
                if len(body) < length:
                    self.close_connection = True
                    status, content_type, out = 408, "application/json", json.dumps({"error": (
                        f"the request body did not arrive within {self.read_timeout:g} s "
                        f"(--rest-read-timeout-seconds): {len(body)} of {length} bytes")}).encode()
                else:
                    status, content_type, out = self.api.handle(method, self.path, body, headers)
        except Exception as exc:  # a bug must answer 500, not drop the connection
            log.exception("REST request failed")
            status, content_type, out = 500, "application/json", json.dumps({"error": str(exc)}).encode()
        if self.api.admission.draining:
            self.close_connection = True  # the client must not send its next request on this connection
        self._send(status, content_type, out, headers)

    def _send(self, status: int, content_type: str, out: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _discard_body(self, length: int) -> None:
        """Read a refused body in small pieces and drop it, so that the client, still sending, reads the
        413 instead of a broken pipe; a body beyond DISCARD_LIMIT closes the connection instead."""
        if length > DISCARD_LIMIT:
            self.close_connection = True  # the unread body must not be taken for the next request
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def handle_expect_100(self):
        """``Expect: 100-continue`` (curl's default for bodies over 1 MiB): refuse an oversized body before
        the client sends it."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.api.limits.max_request_bytes:
            status, content_type, out = self.api.refuse_body(self.command, self.path, length)
            self.close_connection = True
            self.send_response(status)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def log_message(self, format, *args):  # access logs only at debug level
        log.debug("REST %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client that went away (or was cut off by the read timeout) is not a server error: no traceback."""
        log.debug("REST connection from %s ended: %s", client_address, sys.exc_info()[1])


def start_rest_server(manager, metrics, host: str, port: int, prometheus_path: str | None, limits=None,
                      admission=None, read_timeout: float = DEFAULT_READ_TIMEOUT):
    """Start the REST server in a thread; returns (server, bound port)."""
    handler = type("Handler", (_Handler,), {"api": RestApi(manager, metrics, prometheus_path, limits, admission),
                                            "read_timeout": float(read_timeout)})
    server = _Server((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="tfxformers-serve-rest", daemon=True)
    thread.start()
    return server, server.server_address[1]
