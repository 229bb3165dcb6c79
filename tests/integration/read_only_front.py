"""A read-only front for a registry on 127.0.0.1: reads pass through, writes get 403.

That is what a pull request from a fork meets: its token may pull from the
upstream repository's packages, and every push (blob upload, manifest PUT,
delete) is answered `403 DENIED`. The front streams bodies through, so the
Docker engine pulls image layers via it as from the registry itself.
"""
from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate"}
CHUNK = 1 << 20


class ReadOnlyFront:
    """Forwards GET and HEAD to `upstream` (host:port); answers every other method 403."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.denied: list[str] = []  # "METHOD path" of every refused write
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                front._forward(self)

            def do_HEAD(self) -> None:  # noqa: N802
                front._forward(self)

            def do_POST(self) -> None:  # noqa: N802
                front._deny(self)

            def do_PUT(self) -> None:  # noqa: N802
                front._deny(self)

            def do_PATCH(self) -> None:  # noqa: N802
                front._deny(self)

            def do_DELETE(self) -> None:  # noqa: N802
                front._deny(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _deny(self, handler: BaseHTTPRequestHandler) -> None:
        self.denied.append(f"{handler.command} {handler.path}")
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        body = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}).encode()
        handler.send_response(403)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        handler.end_headers()
        handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        host, port = self.upstream.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        connection.request(handler.command, handler.path, headers=headers)
        reply = connection.getresponse()
        handler.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        length = reply.getheader("Content-Length")
        if length is None and handler.command != "HEAD":
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if handler.command != "HEAD":
            while chunk := reply.read(CHUNK):
                handler.wfile.write(chunk)
        connection.close()
