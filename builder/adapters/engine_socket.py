"""The engine's image listing straight from its socket, for the no-op check of `stacks build`.

Importing the Docker SDK (and requests under it) costs more than the whole
no-op check may take, and even `http.client` brings the email parser and
ssl along. One HTTP/1.0 `GET` over the engine's Unix socket (or plain TCP)
answers each question a build receipt asks: which daemon (the `Server`
header of `/_ping`), and which images, with which tags and labels, are
here (`/images/json`). HTTP/1.0 makes the
engine send the plain body and close the connection. Anything else (TLS,
SSH, a socket that does not answer, an error status) returns None and the
caller takes the full path through `builder.adapters.docker`.
"""
from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

from builder.adapters.engine_address import EngineAddress

MAX_ANSWER = 256 * 1024 * 1024  # a listing of many thousand images is a few MB


def _connect(address: EngineAddress, timeout: float) -> socket.socket | None:
    url = urlsplit(address.host)
    try:
        if url.scheme == "unix" and url.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(url.path)
            return sock
        if url.scheme == "tcp" and url.hostname and not address.tls:
            return socket.create_connection((url.hostname, url.port or 2375), timeout=timeout)
    except OSError:
        return None
    return None


class Answer:
    """A request already sent: the engine works on it while the caller does something else."""

    def __init__(self, sock: socket.socket | None):
        self._sock = sock
        self._read: tuple[bytes, bytes] | None = None  # (head, body) of a 200 answer; (b"", b"") of anything else

    def _answer(self) -> tuple[bytes, bytes]:
        if self._read is None:
            self._read = self._receive()
        return self._read

    def _receive(self) -> tuple[bytes, bytes]:
        if self._sock is None:
            return b"", b""
        try:
            chunks, size = [], 0
            while size <= MAX_ANSWER:
                chunk = self._sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError:
            return b"", b""
        finally:
            self._sock.close()
            self._sock = None
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200" or b"transfer-encoding: chunked" in head.lower():
            return b"", b""
        return head, body

    def json(self) -> Any:
        """The JSON body, or None (no connection, an error status, a broken answer)."""
        body = self._answer()[1]
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        """A response header of a successful answer, or None."""
        wanted = name.lower().encode() + b":"
        for line in self._answer()[0].split(b"\r\n")[1:]:
            if line.lower().startswith(wanted):
                return line[len(wanted):].strip().decode("latin-1")
        return None


def ask(address: EngineAddress, path: str, timeout: float = 5.0) -> Answer:
    """Send `GET path` to the engine at `address` now; read the answer later with `.json()`."""
    sock = _connect(address, timeout)
    if sock is not None:
        try:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        except OSError:
            sock.close()
            sock = None
    return Answer(sock)


def images_of(answer: Any) -> list[dict[str, Any]] | None:
    return answer if isinstance(answer, list) else None


def list_images(address: EngineAddress) -> list[dict[str, Any]] | None:
    """Every row (Id, RepoTags, Labels, Size, ...) of the engine's image listing."""
    return images_of(ask(address, "/images/json").json())


def daemon_version(address: EngineAddress) -> str | None:
    """The daemon's `Server` header ("Docker/20.10.24 (linux)"), from `/_ping`: far cheaper than `/version`."""
    return ask(address, "/_ping").header("Server")
